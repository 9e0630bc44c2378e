"""``GET /status``, the operator's page: the token rule of /metrics, and Chromium showing each
source state (up, stale, source down, starting) with its words and colours, the last value,
subscribers, and the messages per minute once it has reloaded itself."""

from __future__ import annotations

import pytest

from tests.support import ARTIFACTS, http_get, http_request, publish, scaled, wait_until

pytestmark = pytest.mark.timeout(90)

TOKEN, METRICS = "pub", "peek"
STREAMS = """\
[streams.sales]
source = "publish"

[streams.quiet]
source = "publish"
stale_after = 1

[streams.office]
source = "random-walk"
shared = true
min_wait = 0.05
max_wait = 0.1

[streams.orders]
source = "sql"
url = "sqlite:missing/orders.db"
query = "SELECT 1 AS variable"
interval = 0.5
"""
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run"]


@pytest.fixture
def status_server(start_server, tmp_path):
    config = tmp_path / "streams.toml"
    config.write_text(STREAMS)
    return start_server("--config", str(config), "--publish-token", TOKEN, "--metrics-token", METRICS)


def test_status_needs_the_metrics_token_as_a_header_or_in_the_query(status_server):
    base = status_server.http + "/status"
    assert http_get(base)[0] == 401
    assert http_get(base + "?token=wrong")[0] == 401
    assert http_request(base, headers={"Authorization": f"Bearer {METRICS}"})[0] == 200
    status, headers, body = http_get(f"{base}?token={METRICS}")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'<meta http-equiv="refresh"' in body and b"<script" not in body
    assert http_request(base + f"?token={METRICS}", "POST", b"")[0] == 405


@pytest.mark.browser
def test_the_page_shows_every_state_in_words_and_colour(status_server):
    from playwright.sync_api import sync_playwright

    assert publish(status_server.http, "sales", {"variable": 42}, TOKEN)[0] == 200
    assert publish(status_server.http, "quiet", {"variable": 7}, TOKEN)[0] == 200
    wait_until(lambda: b'data-stream="quiet" data-state="stale"' in http_get(
        f"{status_server.http}/status?token={METRICS}")[2], timeout=10, message="quiet goes stale")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{status_server.http}/status?token={METRICS}", wait_until="load")

            def row(name: str):
                return page.locator(f'tr[data-stream="{name}"]')

            def colour(name: str) -> str:
                return row(name).locator("td.state b").evaluate("b => getComputedStyle(b).color")

            assert row("sales").get_attribute("data-state") == "up"
            assert row("sales").locator('[data-field="state"] b').text_content() == "UP"
            assert row("sales").locator('[data-field="value"]').text_content() == "42"
            assert colour("sales") == "rgb(61, 220, 132)"
            assert row("quiet").locator('[data-field="state"] b').text_content() == "STALE"
            assert colour("quiet") == "rgb(255, 176, 32)"
            orders = row("orders")
            assert orders.get_attribute("data-state") == "down"
            assert orders.locator('[data-field="state"] b').text_content() == "SOURCE DOWN"
            assert "unable to open database file" in orders.locator('[data-field="state"] small').text_content()
            assert colour("orders") == "rgb(255, 107, 107)"
            assert row("default").locator("td.name small").text_content().endswith("private")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "status-page.png"))
            # It reloads itself; after a reload the walk has a rate (it sends 10-20 a second).
            page.wait_for_function(
                "() => { const c = document.querySelector('tr[data-stream=\"office\"] [data-field=\"rate\"]');"
                " return c && c.textContent !== '-' && parseFloat(c.textContent) > 100; }",
                timeout=scaled(20) * 1000)
            assert not errors, errors
        finally:
            browser.close()
