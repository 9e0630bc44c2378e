from __future__ import annotations

import pytest

from tests.support import ServerProcess


@pytest.fixture
def start_server(request):
    """Start ``python server.py ARGS`` on a free port; every server is stopped after the test,
    and a failing test shows the server's output."""
    servers: list[ServerProcess] = []

    def start(*args: str, wait: bool = True, **kwargs) -> ServerProcess:
        server = ServerProcess(*args, **kwargs)
        servers.append(server)
        return server.start(wait=wait)

    yield start
    for server in servers:
        server.stop()
    failed = hasattr(request.node, "rep_call") and request.node.rep_call.failed
    for server in servers:
        if failed:
            print(f"--- server on port {server.port} ---\n{server.output()}")
        server.discard_log()


@pytest.fixture
def server(start_server) -> ServerProcess:
    return start_server()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)
