"""The harness's JSON lines, read back: one list of records per server, and the figures taken from them.

Stdlib only; report.py (the Markdown) and plots.py (the PNGs) both read through it, so a table and
its picture can never disagree. A record's ``run`` is the round it was measured in (compare.sh passes
``--first-run ROUND``), so the figures of one round are the ones to put side by side.
"""

from __future__ import annotations

import glob
import json
import os

CLIENT_BUSY = 80.0  # % of its core above which the load client may itself be the bottleneck


def load(path):
    """(meta records, measurement records) of one ``<label>.jsonl``."""
    recs, metas = [], []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            (metas if r.get("type") == "meta" else recs).append(r)
    return metas, recs


def load_dir(results, labels=()):
    """({label: records}, {label: metas}) of every ``*.jsonl`` in ``results``, in ``labels``' order if given."""
    data, metas = {}, {}
    for p in sorted(glob.glob(os.path.join(results, "*.jsonl"))):
        label = os.path.basename(p)[:-len(".jsonl")]
        metas[label], data[label] = load(p)
    if labels:
        data = {k: data[k] for k in labels if k in data}
    return data, metas


def by(recs, scenario):
    return [r for r in recs if r.get("scenario") == scenario and not r.get("error")]


def group(recs, key):
    out = {}
    for r in recs:
        out.setdefault(key(r), []).append(r)
    return out


def client(rec):
    return rec.get("client") or {}


def p99(rec):
    return (client(rec).get("lat_ms") or {}).get("p99")


def client_cpu(rec):
    """The load client's CPU % of its core: over the window where there is one, else over its whole run."""
    c = client(rec)
    v = c.get("client_cpu_pct_window")
    return v if v is not None else c.get("client_cpu_pct_total")


# ---------------------------------------------------------------------------- S2 ladders
def s2_ladders(recs):
    """{(conns, run): [step, ...]} in rate order; a step is a dict of the figures a ladder plot needs."""
    out = {}
    for (n, run), rs in sorted(group(by(recs, "S2"), lambda r: (r["conns"], r["run"])).items()):
        out[(n, run)] = [{"rate": r["rate"], "offered": n * r["rate"], "delivered": client(r).get("msgs_per_s"),
                          "ratio": client(r).get("delivered_ratio"), "p99": p99(r),
                          "server_cpu": r.get("server_cpu_pct"), "client_cpu": client_cpu(r),
                          "passed": bool(r.get("pass"))}
                         for r in sorted(rs, key=lambda r: r["rate"])]
    return out


def first_failing(steps):
    return next((s for s in steps if not s["passed"]), None)


def highest_sustained(steps):
    ok = [s for s in steps if s["passed"] and s["delivered"] is not None]
    return max(ok, key=lambda s: s["delivered"]) if ok else None


# ---------------------------------------------------------------------------- figures for the ratios
# Each returns {run: (value, mark)}; mark is "" or a footnote sign shown beside the value.
def s2_sustained_figure(recs):
    """The highest delivered/s of a passing step, at the largest N."""
    ladders = s2_ladders(recs)
    out = {}
    for (n, run), steps in ladders.items():
        best = highest_sustained(steps)
        if best and n == max(k[0] for k in ladders):
            out[run] = (best["delivered"], "")
    return out


def s2_ceiling_figure(recs):
    """Delivered/s at the ladder's first failing step; its last step, marked *, when none failed."""
    ladders = s2_ladders(recs)
    out = {}
    for (n, run), steps in ladders.items():
        if n != max(k[0] for k in ladders) or not steps:
            continue
        fail = first_failing(steps)
        step, mark = (fail, "") if fail else (steps[-1], "*")
        if step["delivered"] is not None:
            out[run] = (step["delivered"], mark)
    return out


def _largest_n(recs, scenario, value):
    rs = by(recs, scenario)
    if not rs:
        return {}
    n = max(r["conns"] for r in rs)
    return {r["run"]: (value(r), "") for r in rs if r["conns"] == n and value(r) is not None}


def s1_kib_figure(recs):
    return _largest_n(recs, "S1", lambda r: r.get("kib_per_conn"))


def s3_cpu_figure(recs):
    return _largest_n(recs, "S3", lambda r: r.get("server_cpu_pct"))


def s4_rate_figure(recs):
    return {r["run"]: (client(r).get("conns_per_s"), "") for r in by(recs, "S4")
            if client(r).get("conns_per_s") is not None}


def largest(recs, scenario):
    rs = by(recs, scenario)
    return max((r["conns"] for r in rs), default=None)


# (title, function, unit digits); the ratio is the reference's figure / the other server's, same round.
FIGURES = [
    ("S2 highest sustained deliveries/s", s2_sustained_figure, 0),
    ("S2 delivered/s at the first failing step", s2_ceiling_figure, 0),
    ("S1 KiB per idle connection", s1_kib_figure, 1),
    ("S3 server CPU %", s3_cpu_figure, 0),
    ("S4 handshakes/s", s4_rate_figure, 0),
]


def ratios(data, reference):
    """[(title, {label: {run: (value, mark, ratio or None)}})] with ratio = reference / label in the same run."""
    out = []
    ref = data.get(reference, [])
    for title, figure, _ in FIGURES:
        ref_fig = figure(ref)
        row = {}
        for label, recs in data.items():
            fig = figure(recs)
            cells = {}
            for run, (value, mark) in sorted(fig.items()):
                base = ref_fig.get(run, (None, ""))[0]
                ratio = base / value if label != reference and base is not None and value else None
                cells[run] = (value, mark, ratio)
            row[label] = cells
        out.append((title, row))
    return out
