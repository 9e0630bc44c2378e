"""A PostgreSQL query past its ``timeout`` is cancelled by PostgreSQL (statement_timeout):
the stream is down with the reason, the server answers meanwhile, and it is retried."""

from __future__ import annotations

import json

import pytest

from tests.services import PostgresServer
from tests.support import http_get, wait_until

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def postgres():
    server = PostgresServer().start()
    yield server
    server.cleanup()


def test_a_query_over_its_timeout_is_down_with_postgres_reason(postgres, start_server, tmp_path):
    config = tmp_path / "streams.toml"
    config.write_text(f"""
[streams.slow]
source = "sql"
url = "{postgres.url}"
query = "SELECT 1 AS variable FROM pg_sleep(5)"
interval = 0.2
timeout = 0.5
""")
    server = start_server("--config", str(config))

    def slow() -> dict:
        _, _, body = http_get(server.http + "/streams")
        described = json.loads(body)
        described = described["streams"] if isinstance(described, dict) else described
        return next(stream for stream in described if stream["name"] == "slow")

    down = wait_until(lambda: (lambda s: s if "statement timeout" in s["reason"] else None)(slow()), timeout=15,
                      message="the stream down with PostgreSQL's statement timeout")
    assert down["state"] == "down"
    assert server.health()["status"] == "ok"
