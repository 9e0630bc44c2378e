"""Helpers of the page tests: Debian's chromium driven by Playwright (the fixtures ``browser``,
``page``, ``problems`` and ``after_page`` are in tests/conftest.py).

Every test that uses ``page`` saves a screenshot under ``test-artifacts/`` and fails on any
console error, uncaught exception or unhandled promise rejection, except what a test
declares it expects (``problems.allow``), e.g. the browser's own "WebSocket connection ...
failed" lines when it takes a server away on purpose.

One console error is expected everywhere: a served page asks for ``/dashboard.json`` to
decide between the wall and the single view, and a server without a dashboard answers 404,
which Chromium logs as "Failed to load resource". Only that exact line for that exact path
is let through (``is_layout_404``); a 404 anywhere else still fails the test.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

from tests.support import ARTIFACTS, ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGE_FILE = ROOT / "index.html"

# Runs before the page's own script: records every socket URL and every message the page
# receives (an independent count to check the chart against) and unhandled rejections.
RECORDER = """
(() => {
  window.__sockets = [];
  window.__received = [];
  window.__rejections = [];
  window.addEventListener("unhandledrejection", (e) => window.__rejections.push(String(e.reason)));
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      window.__sockets.push(String(url));
      window.__lastSocket = this;
      this.addEventListener("message", (e) => window.__received.push(e.data));
    }
  };
})();
"""

SOCKET_FAILED = re.compile(r"^WebSocket connection to '.*' failed")
LAYOUT_404 = "Failed to load resource: the server responded with a status of 404 (Not Found)"


def is_layout_404(message) -> bool:
    """The documented answer of a server without a dashboard: the page falls back to the single view."""
    return message.text == LAYOUT_404 and urlsplit(message.location.get("url", "")).path == "/dashboard.json"


class Problems:
    """Console errors, page errors and rejections seen during a test."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.allowed: list[re.Pattern] = []

    def allow(self, pattern: re.Pattern) -> None:
        self.allowed.append(pattern)

    def unexpected(self) -> list[str]:
        return [line for line in self.seen if not any(p.search(line.split(": ", 1)[1]) for p in self.allowed)]

    def watch(self, page) -> None:
        page.on("console", lambda message: message.type == "error" and not is_layout_404(message)
                and self.seen.append(f"console.error: {message.text}"))
        page.on("pageerror", lambda error: self.seen.append(f"pageerror: {error}"))


def snapshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def received(page) -> list[dict]:
    """The data messages the page received (control messages, which every connect now
    brings, are in ``received_all``)."""
    return [message for message in received_all(page) if isinstance(message, dict) and "variable" in message]


def received_all(page) -> list:
    return [json.loads(data) for data in page.evaluate("window.__received")]


def sockets(page) -> list[str]:
    return page.evaluate("window.__sockets")


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
