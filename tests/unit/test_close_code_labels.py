"""Close codes as metric labels come from a fixed set (ops/metrics.py)."""

from __future__ import annotations

from dashstream.ops.metrics import Metrics, close_code_label


def test_defined_codes_are_themselves_application_codes_one_label_per_range():
    assert [close_code_label(code) for code in (1000, 1001, 1008, 1011, 1014)] == \
        ["1000", "1001", "1008", "1011", "1014"]
    assert {close_code_label(code) for code in range(3000, 4000)} == {"3xxx"}
    assert {close_code_label(code) for code in range(4000, 5000)} == {"4xxx"}
    assert {close_code_label(code) for code in (0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535)} == {"other"}


def test_two_thousand_client_codes_make_two_series():
    metrics = Metrics()
    for code in range(3000, 5000):
        metrics.close_sent(code)
    text = metrics.render()[0].decode()
    series = [line for line in text.splitlines() if line.startswith("dashstream_closes_sent_total{")]
    assert sorted(series) == ['dashstream_closes_sent_total{code="3xxx"} 1000.0',
                              'dashstream_closes_sent_total{code="4xxx"} 1000.0']
