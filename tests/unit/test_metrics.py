"""``dashstream.metrics``: what /metrics says, read back with prometheus_client's own parser."""

from __future__ import annotations

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from dashstream.edge.app import metrics_response
from dashstream.ops.metrics import LAG_BUCKETS, Metrics

pytestmark = pytest.mark.timeout(20)


def scrape(metrics: Metrics, accept: str | None = None) -> dict:
    body, content_type = metrics.render(accept)
    assert content_type.startswith("text/plain; version=0.0.4"), content_type
    return {family.name: family for family in text_string_to_metric_families(body.decode())}


def samples(family, name: str | None = None) -> dict:
    """{tuple of sorted label items: value} for the family's samples called ``name``."""
    wanted = name or family.name
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name == wanted}


def value(families: dict, family: str, sample: str | None = None, **labels) -> float:
    return samples(families[family], sample)[tuple(sorted(labels.items()))]


def test_a_fresh_server_reports_zeros_with_the_conventional_names_and_types():
    families = scrape(Metrics())
    counters = {"dashstream_sent_messages", "dashstream_sent_bytes", "dashstream_dropped_messages",
                "dashstream_slow_subscribers_closed", "dashstream_write_timeouts", "dashstream_keepalive_timeouts",
                "dashstream_closes_sent", "dashstream_refusals", "dashstream_publish_requests"}
    for name in counters:
        assert families[name].type == "counter", name
    for name in counters - {"dashstream_closes_sent", "dashstream_refusals", "dashstream_publish_requests"}:
        assert value(families, name, name + "_total") == 0, name
    assert families["dashstream_delivery_lag_seconds"].type == "histogram"
    assert value(families, "dashstream_delivery_lag_seconds", "dashstream_delivery_lag_seconds_count") == 0
    # the library's process collector: real values from /proc
    assert value(families, "process_resident_memory_bytes") > 0
    assert value(families, "process_open_fds") > 0
    # every dashstream name is in base units with the prefix
    for name in families:
        assert name.startswith(("dashstream_", "process_", "python_")), name


def test_counts_from_the_core_are_reported():
    metrics = Metrics(process=False)
    metrics.sent(100, 6_400)
    metrics.sent(1, 70)
    metrics.dropped(3)
    metrics.dropped()
    metrics.slow_closed()
    metrics.close_sent(1001)
    metrics.close_sent(1001)
    metrics.close_sent(1008)
    metrics.refused("429 Too Many Requests", "handshake")
    metrics.refused(404)
    metrics.refused("404 Not Found", "http")
    metrics.write_timeout()
    metrics.keepalive_timeout()
    metrics.keepalive_timeout()
    metrics.published("200 OK")
    metrics.published(401)
    families = scrape(metrics)
    assert value(families, "dashstream_sent_messages", "dashstream_sent_messages_total") == 101
    assert value(families, "dashstream_sent_bytes", "dashstream_sent_bytes_total") == 6_470
    assert value(families, "dashstream_dropped_messages", "dashstream_dropped_messages_total") == 4
    assert value(families, "dashstream_slow_subscribers_closed", "dashstream_slow_subscribers_closed_total") == 1
    assert value(families, "dashstream_write_timeouts", "dashstream_write_timeouts_total") == 1
    assert value(families, "dashstream_keepalive_timeouts", "dashstream_keepalive_timeouts_total") == 2
    assert samples(families["dashstream_closes_sent"], "dashstream_closes_sent_total") == {
        (("code", "1001"),): 2, (("code", "1008"),): 1}
    assert samples(families["dashstream_refusals"], "dashstream_refusals_total") == {
        (("kind", "handshake"), ("status", "429")): 1, (("kind", "http"), ("status", "404")): 2}
    assert samples(families["dashstream_publish_requests"], "dashstream_publish_requests_total") == {
        (("status", "200"),): 1, (("status", "401"),): 1}


def test_delivery_lag_is_a_cumulative_histogram_in_seconds():
    metrics = Metrics(process=False)
    metrics.delivery_lag(0.0005)
    metrics.delivery_lag(0.003, count=10)  # one fan-out pass to ten sockets
    metrics.delivery_lag(0.01)  # on a bucket's bound: counted in it (le = less or equal)
    metrics.delivery_lag(30.0)
    metrics.delivery_lag(-0.2)  # the clock stepped back: no negative lag
    family = scrape(metrics)["dashstream_delivery_lag_seconds"]
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    assert list(buckets) == [*(str(bound) for bound in LAG_BUCKETS), "+Inf"]
    assert (buckets["0.001"], buckets["0.0025"], buckets["0.005"], buckets["0.01"]) == (2, 2, 12, 13)
    assert (buckets["10.0"], buckets["+Inf"]) == (13, 14)
    total = samples(family, "dashstream_delivery_lag_seconds_sum")[()]
    assert total == pytest.approx(0.0005 + 0.03 + 0.01 + 30.0)
    assert samples(family, "dashstream_delivery_lag_seconds_count")[()] == 14


def test_a_fanout_pass_counts_its_deliveries_bytes_and_lag_in_one_call():
    from dashstream.messages import Entry

    entry = Entry("sales", 7, 1000.0, "e1", '{"variable":1}')
    metrics = Metrics(process=False, clock=lambda: 1000.004)
    metrics.fanout_pass(250, entry)
    metrics.fanout_pass(0, entry)  # nobody subscribed: nothing sent, no lag
    families = scrape(metrics)
    assert value(families, "dashstream_sent_messages", "dashstream_sent_messages_total") == 250
    assert value(families, "dashstream_sent_bytes", "dashstream_sent_bytes_total") == 250 * len(entry.frame)
    lag = families["dashstream_delivery_lag_seconds"]
    assert samples(lag, "dashstream_delivery_lag_seconds_count")[()] == 250
    buckets = {s.labels["le"]: s.value for s in lag.samples if s.name.endswith("_bucket")}
    assert (buckets["0.0025"], buckets["0.005"]) == (0, 250)


def test_a_private_delivery_counts_one_message_its_bytes_and_no_lag():
    from dashstream.messages import Entry

    entry = Entry("walk", 7, 1000.0, "e1", '{"variable":1}')
    metrics = Metrics(process=False, clock=lambda: 2000.0)  # never read: a private value has no lag
    metrics.private_delivery(entry)
    metrics.private_delivery(entry)
    families = scrape(metrics)
    assert value(families, "dashstream_sent_messages", "dashstream_sent_messages_total") == 2
    assert value(families, "dashstream_sent_bytes", "dashstream_sent_bytes_total") == 2 * len(entry.frame)
    lag = families["dashstream_delivery_lag_seconds"]
    buckets = {s.labels["le"]: s.value for s in lag.samples if s.name.endswith("_bucket")}
    assert buckets["0.001"] == 2 and buckets["+Inf"] == 2
    assert samples(lag, "dashstream_delivery_lag_seconds_sum")[()] == 0.0


@pytest.mark.parametrize("now", [999.0, float("nan")])
def test_a_fanout_pass_after_a_clock_step_back_counts_no_lag(now):
    from dashstream.messages import Entry

    entry = Entry("sales", 7, 1000.0, "e1", '{"variable":1}')
    metrics = Metrics(process=False, clock=lambda: now)
    metrics.fanout_pass(3, entry)
    lag = scrape(metrics)["dashstream_delivery_lag_seconds"]
    buckets = {s.labels["le"]: s.value for s in lag.samples if s.name.endswith("_bucket")}
    assert buckets["0.001"] == 3 and samples(lag, "dashstream_delivery_lag_seconds_sum")[()] == 0.0


def test_connections_and_streams_are_read_at_scrape_time_only():
    calls = []
    streams = [
        {"name": "sales", "subscribers": 12, "last_seq": 41, "last_ts": 1795319708.19, "state": "up"},
        {"name": "office", "subscribers": 0, "last_seq": 0, "last_ts": None, "state": "down"},
        {"name": "db", "subscribers": 3, "last_seq": 7, "last_ts": 1.5, "state": "stale"},
    ]

    def read_streams():
        calls.append("streams")
        return streams

    metrics = Metrics(process=False, connections=lambda: {"websocket": 15}, streams=read_streams)
    metrics.sent(1, 1)
    assert calls == []  # counting never touches the streams
    families = scrape(metrics)
    assert calls == ["streams"]
    assert samples(families["dashstream_connections"]) == {
        (("transport", "sse"),): 0, (("transport", "websocket"),): 15}
    assert families["dashstream_connections"].type == "gauge"
    assert samples(families["dashstream_stream_subscribers"]) == {
        (("stream", "sales"),): 12, (("stream", "office"),): 0, (("stream", "db"),): 3}
    assert value(families, "dashstream_stream_last_seq", stream="sales") == 41
    assert samples(families["dashstream_stream_last_message_timestamp_seconds"]) == {
        (("stream", "sales"),): 1795319708.19, (("stream", "db"),): 1.5}
    assert samples(families["dashstream_stream_source_up"]) == {
        (("stream", "sales"),): 1, (("stream", "office"),): 0, (("stream", "db"),): 0}
    state = samples(families["dashstream_stream_source_state"])
    assert {labels: v for labels, v in state.items() if v == 1} == {
        (("state", "up"), ("stream", "sales")): 1, (("state", "down"), ("stream", "office")): 1,
        (("state", "stale"), ("stream", "db")): 1}
    assert len(state) == 9  # every state of every stream, 0 for the others
    assert "dashstream_backplane_up" not in families  # no backplane configured


def test_streams_as_get_streams_describes_them_and_a_stream_without_a_state_is_up():
    metrics = Metrics(process=False, streams=lambda: [{"name": "default", "source": "random-walk",
                                                        "subscribers": 2, "last_seq": None}])
    families = scrape(metrics)
    assert value(families, "dashstream_stream_last_seq", stream="default") == 0
    assert value(families, "dashstream_stream_source_up", stream="default") == 1


def test_backplane_state_once_there_is_one():
    state = {"state": "up"}
    metrics = Metrics(process=False, backplane=lambda: state)
    assert value(scrape(metrics), "dashstream_backplane_up") == 1
    state["state"] = "down"
    families = scrape(metrics)
    assert value(families, "dashstream_backplane_up") == 0
    assert samples(families["dashstream_backplane_state"]) == {(("state", "down"),): 1, (("state", "up"),): 0}
    assert "dashstream_backplane_up" not in scrape(Metrics(process=False, backplane=lambda: None))


def test_log_lines_dropped_are_reported_when_known():
    families = scrape(Metrics(process=False, log_lines_dropped=lambda: 17))
    assert value(families, "dashstream_log_dropped_lines", "dashstream_log_dropped_lines_total") == 17


def test_openmetrics_when_the_scraper_asks_for_it():
    metrics = Metrics(process=False, streams=lambda: [{"name": "s", "subscribers": 1}])
    metrics.close_sent(1000)
    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0; charset=utf-8")
    assert content_type.startswith("application/openmetrics-text")
    families = {family.name: family for family in parse_openmetrics(body.decode())}
    assert samples(families["dashstream_closes_sent"], "dashstream_closes_sent_total") == {(("code", "1000"),): 1}
    assert body.decode().endswith("# EOF\n")


def test_each_metrics_object_has_its_own_registry():
    first, second = Metrics(process=False), Metrics(process=False)
    first.sent(5, 5)
    assert value(scrape(second), "dashstream_sent_messages", "dashstream_sent_messages_total") == 0


def test_the_endpoint_answers_get_and_head_and_asks_for_the_token_when_set():
    metrics = Metrics(process=False)
    status, headers, body = metrics_response({"REQUEST_METHOD": "GET"}, metrics, None)
    assert status == "200 OK" and dict(headers)["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"dashstream_sent_messages_total 0.0" in body
    assert metrics_response({"REQUEST_METHOD": "HEAD"}, metrics, None)[0] == "200 OK"
    status, headers, _ = metrics_response({"REQUEST_METHOD": "POST"}, metrics, None)
    assert status.startswith("405") and dict(headers)["Allow"] == "GET, HEAD"
    for authorization in (None, "Bearer wrong", "Basic s3cret", "s3cret", "Bearer ", "Bearer s3cret\udcff"):
        environ = {"REQUEST_METHOD": "GET"}
        if authorization is not None:
            environ["HTTP_AUTHORIZATION"] = authorization
        status, headers, body = metrics_response(environ, metrics, "s3cret")
        assert status.startswith("401") and "WWW-Authenticate" in dict(headers), authorization
        assert b"s3cret" not in body
    status, _, body = metrics_response({"REQUEST_METHOD": "GET", "HTTP_AUTHORIZATION": "bearer  s3cret "},
                                       metrics, "s3cret")
    assert status == "200 OK" and b"dashstream_" in body
