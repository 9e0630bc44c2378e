from __future__ import annotations

import pytest

from tests.services import SourceProcess
from tests.support import ServerProcess


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


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        # The server's side of a failure: the log of every server still running, which
        # includes module-scoped servers shared with earlier tests.
        for server in sorted(ServerProcess.live, key=lambda server: server.port):
            report.sections.append((f"server on port {server.port}", server.output()[-30000:]))
