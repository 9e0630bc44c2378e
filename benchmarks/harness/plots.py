"""The report's pictures (matplotlib, no display needed): one PNG per question a reader asks.

    s2-delivered.png  S2 ladder: deliveries/s delivered against offered, per server and round
    s2-p99.png        S2 ladder: p99 latency against the rate R, per server and round
    s1-memory.png     S1: KiB per idle connection at each N
    s3-cpu.png        S3: server CPU % at each N of private streams
    s4-rate.png       S4: handshakes/s

Everything is read through records.py, the same figures as report.py's tables. A bar is the mean
of the rounds; each round is a dot on it, so a spread between rounds is seen, not averaged away.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402
from records import by, client, first_failing, group, s2_ladders  # noqa: E402

MAX_P99_MS = 100.0  # the ladder's latency limit (harness --max-p99)
THOUSANDS = FuncFormatter(lambda v, _: f"{v:,.0f}")
PLAIN = FuncFormatter(lambda v, _: f"{v:g}")


def colours(labels):
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {label: cycle[i % len(cycle)] for i, label in enumerate(labels)}


def _largest_n_ladders(recs):
    ladders = s2_ladders(recs)
    if not ladders:
        return {}
    n = max(k[0] for k in ladders)
    return {run: steps for (m, run), steps in ladders.items() if m == n}


def _clients(data):
    ns = sorted({k[0] for recs in data.values() for k in s2_ladders(recs)})
    return ", ".join(f"{n:,}" for n in ns)


def s2_delivered(data, path):
    fig, ax = plt.subplots(figsize=(8, 5))
    colour = colours(data)
    top = 0
    for label, recs in data.items():
        for i, (run, steps) in enumerate(sorted(_largest_n_ladders(recs).items())):
            xs = [s["offered"] for s in steps]
            ys = [s["delivered"] or 0 for s in steps]
            top = max([top, *xs, *ys])
            ax.plot(xs, ys, "o-", color=colour[label], alpha=0.9 if i == 0 else 0.55, ms=4,
                    label=label if i == 0 else None)
            fail = first_failing(steps)
            if fail:
                ax.plot([fail["offered"]], [fail["delivered"] or 0], "X", color=colour[label], ms=11,
                        markeredgecolor="black")
    ax.plot([0, top], [0, top], "--", color="grey", lw=1, label="delivered = offered")
    ax.set_xlabel("offered deliveries/s (clients x R)")
    ax.set_ylabel("delivered deliveries/s")
    ax.xaxis.set_major_formatter(THOUSANDS)
    ax.yaxis.set_major_formatter(THOUSANDS)
    ax.set_title(f"S2 broadcast to {_clients(data)} clients: delivered against offered (X: first failing step)",
                 fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def s2_p99(data, path):
    fig, ax = plt.subplots(figsize=(8, 5))
    colour = colours(data)
    for label, recs in data.items():
        for i, (run, steps) in enumerate(sorted(_largest_n_ladders(recs).items())):
            pts = [(s["rate"], s["p99"]) for s in steps if s["p99"] is not None and s["p99"] > 0]
            if pts:
                ax.plot(*zip(*pts), "o-", color=colour[label], alpha=0.9 if i == 0 else 0.55, ms=4,
                        label=label if i == 0 else None)
    ax.axhline(MAX_P99_MS, ls="--", color="grey", lw=1, label=f"ladder limit {MAX_P99_MS:.0f} ms")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(PLAIN)
    ax.yaxis.set_minor_formatter(PLAIN)
    ax.set_xlabel("R (messages/s to every client)")
    ax.set_ylabel("p99 latency (ms, log)")
    ax.set_title(f"S2 broadcast to {_clients(data)} clients: p99 latency against the rate", fontsize=11)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, path)


def grouped_bars(ax, values, colour):
    """values: {label: {x: [one value per round]}} -> bars per x group, one per label, dots per round."""
    xs = sorted({x for per in values.values() for x in per})
    labels = [label for label in values if values[label]]
    width = 0.8 / max(len(labels), 1)
    for j, label in enumerate(labels):
        for i, x in enumerate(xs):
            vals = [v for v in values[label].get(x, []) if v is not None]
            if not vals:
                continue
            pos = i - 0.4 + width * (j + 0.5)
            ax.bar(pos, sum(vals) / len(vals), width * 0.9, color=colour[label], label=label if i == 0 else None)
            ax.plot([pos] * len(vals), vals, "o", color="black", ms=3)
    ax.set_xticks(range(len(xs)), [f"{x:,}" for x in xs])
    ax.grid(alpha=0.3, axis="y")
    if labels:
        ax.legend(fontsize=8)


def per_n(recs, scenario, value):
    return {n: [value(r) for r in rs] for n, rs in group(by(recs, scenario), lambda r: r["conns"]).items()}


def s1_memory(data, path):
    fig, ax = plt.subplots(figsize=(8, 5))
    grouped_bars(ax, {label: per_n(recs, "S1", lambda r: r.get("kib_per_conn")) for label, recs in data.items()},
                 colours(data))
    ax.set_xlabel("idle connections open (N)")
    ax.set_ylabel("server RSS per connection (KiB)")
    ax.set_title("S1 memory per idle connection (lower is better)")
    return _save(fig, path)


def s3_cpu(data, path):
    fig, ax = plt.subplots(figsize=(8, 5))
    grouped_bars(ax, {label: per_n(recs, "S3", lambda r: r.get("server_cpu_pct")) for label, recs in data.items()},
                 colours(data))
    ax.set_xlabel("clients, each with its own stream (N)")
    ax.set_ylabel("server CPU (% of one core)")
    ax.set_title("S3 private streams: server CPU (lower is better)")
    return _save(fig, path)


def s4_rate(data, path):
    fig, ax = plt.subplots(figsize=(8, 5))
    values = {label: {0: [client(r).get("conns_per_s") for r in by(recs, "S4")]} for label, recs in data.items()}
    grouped_bars(ax, {k: v for k, v in values.items() if v[0]}, colours(data))
    ax.set_xticks([])
    ax.set_ylabel("handshakes/s (open, upgrade, close)")
    ax.yaxis.set_major_formatter(THOUSANDS)
    ax.set_title("S4 handshake rate (higher is better)")
    return _save(fig, path)


DPI = 100  # 800 x 500 pixels


def _save(fig, path):
    # Fixed margins that fit these labels: tight_layout() would cost a second rendering pass.
    fig.subplots_adjust(left=0.11, right=0.97, top=0.92, bottom=0.11)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


# (title, file name, function, scenario whose records it needs)
PLOTS = [
    ("S2: delivered against offered deliveries/s", "s2-delivered.png", s2_delivered, "S2"),
    ("S2: p99 latency against the rate", "s2-p99.png", s2_p99, "S2"),
    ("S1: memory per idle connection", "s1-memory.png", s1_memory, "S1"),
    ("S3: server CPU with private streams", "s3-cpu.png", s3_cpu, "S3"),
    ("S4: handshakes/s", "s4-rate.png", s4_rate, "S4"),
]


def write_all(data, out_dir):
    """Every plot whose scenario was measured, into out_dir; [(title, path)]."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for title, name, draw, scenario in PLOTS:
        if any(by(recs, scenario) for recs in data.values()):
            written.append((title, draw(data, os.path.join(out_dir, name))))
    return written
