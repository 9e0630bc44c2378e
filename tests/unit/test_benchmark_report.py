"""benchmarks/harness/report.py and plots.py on recorded JSON lines (bench_records/: one quick run of
`bash benchmarks/compare.sh --quick` on the development machine, paths replaced by /clone).

The report must keep what the method needs: ratios taken within one round, the S2 ladder's first
failing step with what it delivered, the load client's CPU in every row, the machine's facts; the
plots must render. No server, no subprocess: the harness's own run is tests/services/.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[2] / "benchmarks" / "harness"
RECORDED = Path(__file__).resolve().parent / "bench_records"
LABELS = ["dashstream", "websockets", "eventlet", "c-epoll"]


@pytest.fixture
def harness(monkeypatch):
    """The harness's modules, imported as its scripts import each other (from their own folder)."""
    monkeypatch.syspath_prepend(str(HARNESS))
    import records
    import report
    return records, report


@pytest.fixture
def two_rounds(tmp_path):
    """The recorded round, and a second one in which dashstream delivered half as much in S2."""
    for label in LABELS:
        lines = (RECORDED / f"{label}.jsonl").read_text().splitlines()
        second = []
        for line in lines:
            rec = json.loads(line)
            if rec.get("type") != "meta":
                rec["run"] = 2
                if label == "dashstream" and rec["scenario"] == "S2":
                    rec["client"]["msgs_per_s"] /= 2
            second.append(json.dumps(rec))
        (tmp_path / f"{label}.jsonl").write_text("\n".join(lines + second) + "\n")
    shutil.copy(RECORDED / "versions.json", tmp_path)
    return tmp_path


def recorded_s2(label, rate, key="msgs_per_s"):
    for line in (RECORDED / f"{label}.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("scenario") == "S2" and rec["rate"] == rate:
            return rec["client"][key]
    raise AssertionError(f"{label} has no S2 step at R={rate}")


def table(text, heading):
    """The rows (cells split) of the first table after `heading`, without its header lines."""
    lines = text[text.index(heading):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_ratios_are_taken_within_the_same_round(harness, two_rounds):
    records, _ = harness
    data, _ = records.load_dir(str(two_rounds), LABELS)
    ceiling = dict(records.ratios(data, "dashstream"))["S2 delivered/s at the first failing step"]
    dash, websockets = recorded_s2("dashstream", 50), recorded_s2("websockets", 50)
    assert ceiling["websockets"][1] == (websockets, "", pytest.approx(dash / websockets))
    assert ceiling["websockets"][2] == (websockets, "", pytest.approx(dash / 2 / websockets))
    assert ceiling["dashstream"][1][2] is None  # no ratio of the reference to itself


def test_the_first_failing_step_is_reported_with_what_it_delivered(harness, two_rounds):
    records, report = harness
    data, metas = records.load_dir(str(two_rounds), LABELS)
    text = report.build(data, metas, str(two_rounds), reference="dashstream")
    rows = {row[0]: row for row in table(text, "## S2 broadcast")}
    first_failing = rows["websockets"][-1]
    assert first_failing.startswith(f"R=50: {recorded_s2('websockets', 50):,.0f}, 0.44, 215.5")
    # eventlet failed at its first step: no sustained figure, but the step it failed at is there
    assert rows["eventlet"][2] == "- / -" and rows["eventlet"][-1].startswith("R=10: 2,594")


def test_every_row_gives_the_load_clients_cpu(harness, two_rounds):
    records, report = harness
    data, metas = records.load_dir(str(two_rounds), LABELS)
    text = report.build(data, metas, str(two_rounds))
    for heading, column in (("## S1 idle", -1), ("## S3 per-client", -3), ("## S4 handshake", -2)):
        rows = table(text, heading)
        assert rows, heading
        for row in rows:
            assert row[column].split()[0].replace(".", "").isdigit(), (heading, row)
    for row in table(text, "**dashstream**, N = 300"):
        assert row[-2].isdigit(), row


def test_the_report_names_the_machine_and_marks_noise(harness, two_rounds):
    records, report = harness
    data, metas = records.load_dir(str(two_rounds), LABELS)
    text = report.build(data, metas, str(two_rounds), reference="dashstream", notes="Node ws peer skipped: x\n")
    for fact in ("- cpu: AMD EPYC", "- cores: 2", "- kernel: ", "- eventlet: 0.41.3", "- websockets: 17.4"):
        assert fact in text
    assert "- Node ws peer skipped: x" in text
    assert "(noise " in text  # the recorded run shared the machine with other work


def test_plots_render_one_png_per_question(harness, two_rounds, tmp_path):
    pytest.importorskip("matplotlib")
    records, _ = harness
    import plots
    data, _ = records.load_dir(str(two_rounds), LABELS)
    written = plots.write_all(data, str(tmp_path / "plots"))
    names = sorted(Path(path).name for _, path in written)
    assert names == ["s1-memory.png", "s2-delivered.png", "s2-p99.png", "s3-cpu.png", "s4-rate.png"]
    for _, path in written:
        assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert Path(path).stat().st_size > 10_000  # not an empty canvas
