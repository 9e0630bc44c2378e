"""Fixtures shared by every folder of tests, and the folder markers.

The folder a test lives in says what it needs, and gives it its marker (registered in
pyproject.toml), so ``pytest -m unit`` runs the tests that start nothing:

* ``unit/``: no subprocess, no server, no network service;
* ``server/``: a real ``python server.py`` (a fork of a warm one: tests/forked_servers.py) and real clients;
* ``browser/``: the page in Debian's chromium through Playwright;
* ``services/``: real redis-server, PostgreSQL, nginx, a Docker build replay or a venv install.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import CHROMIUM, CHROMIUM_ARGS, RECORDER, Problems
from tests.services import SourceProcess
from tests.support import ARTIFACTS, ServerProcess, scaled

TESTS = Path(__file__).resolve().parent
FOLDER_MARKERS = ("unit", "server", "browser", "services")


# Modules whose module-scoped fixtures are expensive: on several workers (tests/run.sh) each
# runs whole on one worker, so its chromium, its replayed image (a venv and a pip install),
# its wheel and venv or its PostgreSQL cluster is made once, not once per worker. Every other
# test is scheduled on its own. (This is what ``xdist_group`` marks would do with
# ``--dist loadgroup``, but pytest 9.2's structured node ids make xdist 3.8 ignore them
# silently: pytest-dev/pytest-xdist#1386.)
ONE_WORKER_MODULES = frozenset({
    *(f"tests/browser/{path.name}" for path in (TESTS / "browser").glob("test_*.py")),
    "tests/services/test_dockerfile.py",
    "tests/services/test_install_wheel.py",
    "tests/services/test_source_sql.py",
    "tests/services/test_sources_end_to_end.py",
})


def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` with ONE_WORKER_MODULES as groups (the largest go out first)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class ModuleFixtureScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER_MODULES else super()._split_scope(nodeid)

    return ModuleFixtureScheduling(config, log)


def pytest_collection_modifyitems(items):
    for item in items:
        path = item.path.resolve()
        folder = path.relative_to(TESTS).parts[0] if path.is_relative_to(TESTS) else None
        if folder in FOLDER_MARKERS:
            item.add_marker(folder)


@pytest.fixture
def start_server():
    """Start ``python server.py ARGS`` on a free port; every server is stopped after the test
    (a failing test shows its output: see pytest_runtest_makereport)."""
    servers: list[ServerProcess] = []

    def start(*args: str, wait: bool = True, **kwargs) -> ServerProcess:
        server = ServerProcess(*args, **kwargs)
        servers.append(server)
        return server.start(wait=wait)

    yield start
    for server in servers:
        server.stop()
        server.discard_log()


@pytest.fixture
def server(start_server) -> ServerProcess:
    return start_server()


@pytest.fixture
def run_sources():
    """Start ``tests/source_runner.py`` with some streams (see ``SourceProcess``); every runner
    is stopped after the test, and one that does not stop on SIGTERM fails it."""
    processes: list[SourceProcess] = []

    def run(streams: dict, **kwargs) -> SourceProcess:
        process = SourceProcess(streams, **kwargs)
        processes.append(process)
        return process

    yield run
    for process in processes:
        process.stop()


@pytest.fixture(scope="module")
def browser():
    # Imported here: a run of the unit tests loads no Playwright.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def problems() -> Problems:
    return Problems()


@pytest.fixture
def after_page() -> list:
    """Stops to run once the page is closed: a server the page talks to, stopped while the
    page is still open, makes it reconnect and log refused connections. (``page`` depends
    on this fixture, so this teardown runs after the page's.)"""
    stops: list = []
    yield stops
    for stop in reversed(stops):
        stop()


@pytest.fixture
def page(browser, problems, request, after_page):
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    context.add_init_script(RECORDER)
    page = context.new_page()
    page.set_default_timeout(scaled(10) * 1000)
    problems.watch(page)
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    prefix = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    shot = ARTIFACTS / f"{prefix}-{request.node.name}.png"
    try:
        problems.seen.extend(f"unhandledrejection: {r}" for r in page.evaluate("window.__rejections || []"))
        page.screenshot(path=str(shot))
    finally:
        context.close()
    assert shot.stat().st_size > 0
    assert not problems.unexpected(), problems.unexpected()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        # The server's side of a failure: the log of every server still running, which
        # includes module-scoped servers shared with earlier tests.
        for server in sorted(ServerProcess.live, key=lambda server: server.port):
            report.sections.append((f"server on port {server.port}", server.output()[-30000:]))


def pytest_sessionfinish(session):
    # The warm processes the servers were forked from (tests/forked_servers.py); they would
    # also end on their own when this process's pipes to them close.
    from tests.forked_servers import close_warm_processes

    close_warm_processes()
    # The servers' log files (support.ServerProcess), those no fixture discarded included.
    ServerProcess.remove_logs()
