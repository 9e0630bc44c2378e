"""``GET /metrics`` of a real server, read back with prometheus_client's own parser (what
the metrics say is tests/unit/test_metrics.py)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.test_metrics import value

pytestmark = pytest.mark.timeout(20)


def test_a_real_server_answers_metrics_that_prometheus_can_parse(start_server):
    import websocket

    from tests.support import http_request, scaled

    server = start_server("--metrics-token", "m3trics")
    assert http_request(server.http + "/metrics")[0] == 401
    ws = websocket.create_connection(server.ws + "/", timeout=scaled(5))
    try:
        ws.recv()
        status, headers, body = http_request(server.http + "/metrics", headers={"Authorization": "Bearer m3trics"})
        assert status == 200
        families = {family.name: family for family in text_string_to_metric_families(body.decode())}
        assert value(families, "dashstream_connections", transport="websocket") == 1
        assert value(families, "dashstream_sent_messages", "dashstream_sent_messages_total") >= 1
        assert value(families, "dashstream_stream_subscribers", stream="default") >= 0
    finally:
        ws.close()
