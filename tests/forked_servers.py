"""The suite's servers, forked from a process that has already imported them.

``python server.py`` spends about 0.55 s of CPU importing eventlet, dashstream and the stdlib
parts they need before it serves anything (``/usr/bin/time python -c "from dashstream import
runtime; runtime.monkey_patch(); import dashstream.server.main"``: 0.54-0.59 s, three runs), and
the suite starts about 300 servers on a 2-core machine that its browsers already saturate.
So each test process keeps one *warm* process (this file run as a script) that has imported
them once, and ``ServerProcess`` asks it for a fork per server.

Each child is ``python server.py ARGS`` in every other respect: its own argv, environment and
working directory, stdout and stderr into the server's log, stdin from /dev/null, server.py
run by ``runpy`` as ``__main__`` (its own ``monkey_patch()`` included, which a second time
changes nothing), a fresh eventlet hub (the warm process's epoll instance is never shared: two
children registering sockets in one kernel epoll would be woken for each other's) and fresh
seeds for the random generators the imports made. What a fork cannot be stays a subprocess
(``ServerProcess`` decides): another Python, another server.py, or an environment whose
differences act while Python and eventlet start (``PYTHON*``, ``EVENTLET_*``, ``LD_*``).
``DASHSTREAM_TEST_FORK=0`` makes every server a subprocess.

The warm process is the parent of its forks, so it reaps them: ``ForkedProcess.poll`` asks it.
A fork's pid stays its own until that poll has reaped it, so signals never reach a stranger.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

# Environment variables that act before the server's own code runs (the interpreter's, the
# dynamic linker's, eventlet's at import): a server whose environment differs in one of these
# from the warm process's cannot be its fork.
STARTUP_PREFIXES = ("PYTHON", "EVENTLET", "LD_")


def startup_environment(env: dict) -> dict:
    return {key: value for key, value in env.items() if key.startswith(STARTUP_PREFIXES)}


class WarmProcess:
    """One per test process and Python: forks servers on request, and reaps them."""

    def __init__(self, python: str, env: dict, cwd: Path):
        self.python = python
        self.startup = startup_environment(env)
        self._lock = threading.Lock()  # one request and its answer at a time
        self._proc = subprocess.Popen([python, __file__], cwd=cwd, env=env, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, bufsize=1)
        ready = self._proc.stdout.readline()
        if ready.strip() != "warm":
            raise RuntimeError(f"the warm server process did not start: {ready!r}")

    def can_fork(self, python: str, env: dict) -> bool:
        return self._proc.poll() is None and python == self.python and startup_environment(env) == self.startup

    def _ask(self, request: dict):
        with self._lock:
            self._proc.stdin.write(json.dumps(request) + "\n")
            answer = self._proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"the warm server process ended (exit {self._proc.poll()})")
        return json.loads(answer)

    def fork(self, argv: list[str], env: dict, cwd: Path, log: str) -> "ForkedProcess":
        pid = self._ask({"op": "fork", "argv": argv, "env": env, "cwd": str(cwd), "log": log})
        return ForkedProcess(self, pid, argv)

    def reap(self, pid: int) -> int | None:
        return self._ask({"op": "reap", "pid": pid})

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()  # EOF: it exits
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc.stdout.close()


class ForkedProcess:
    """What ``ServerProcess`` uses of ``subprocess.Popen``, for a fork of the warm process."""

    def __init__(self, warm: WarmProcess, pid: int, args: list[str]):
        self._warm = warm
        self.pid = pid
        self.args = args
        self.returncode: int | None = None
        # Readable once the process has ended (reaped or not), for any process, not only a child.
        self._pidfd = os.pidfd_open(pid)

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._pidfd], [], [], 0)[0]:
            self.returncode = self._warm.reap(self.pid)
            if self.returncode is not None:
                os.close(self._pidfd)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout)
            select.select([self._pidfd], [], [], left)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:  # not reaped: the pid is still this process's
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


_warm: dict[str, WarmProcess] = {}
_warm_lock = threading.Lock()


def warm_process(python: str, env: dict, cwd: Path) -> WarmProcess:
    with _warm_lock:
        if python not in _warm:
            _warm[python] = WarmProcess(python, env, cwd)
        return _warm[python]


def close_warm_processes() -> None:
    for warm in _warm.values():
        warm.close()
    _warm.clear()


# --- the warm process ------------------------------------------------------------------------


def _serve_forks() -> None:
    launched_with = dict(os.environ)
    from dashstream import runtime

    runtime.monkey_patch()
    import dashstream.server.main  # noqa: F401 - what every server imports first

    # Requests come on stdin, answers go on stdout; the children get their own fds 0-2.
    requests = os.fdopen(os.dup(0), "r")
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    control = [requests.fileno(), answers.fileno()]
    # What the imports set for themselves (runtime's EVENTLET_NO_GREENDNS default): each fork's
    # environment gets it too, as the same imports would have set it there.
    set_by_imports = {key: value for key, value in os.environ.items() if key not in launched_with}
    print("warm", file=answers)
    for line in requests:
        request = json.loads(line)
        if request["op"] == "fork":
            pid = os.fork()
            if pid == 0:
                _become_server(request, control, set_by_imports)  # never returns
            answer = pid
        else:  # reap: asked until it answers an exit status (ForkedProcess keeps it)
            done, status = os.waitpid(request["pid"], os.WNOHANG)
            answer = os.waitstatus_to_exitcode(status) if done else None
        print(json.dumps(answer), file=answers)


def _become_server(request: dict, control: list[int], set_by_imports: dict) -> None:
    code = 1
    try:
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        for fd in (*control, log, null):
            os.close(fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in any python
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update({**set_by_imports, **request["env"]})
        _fresh_hub()
        _reseed_random_generators()
        import runpy

        server = request["argv"][1]
        sys.argv = request["argv"][1:]
        sys.path[0] = str(Path(server).resolve().parent)  # as `python server.py` has it
        try:
            runpy.run_path(server, run_name="__main__")
            code = 0
        except SystemExit as exit_:
            code = _exit_code(exit_.code)
    except BaseException:  # noqa: BLE001 - as the interpreter would: a traceback and exit 1
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        import atexit

        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - nothing is left to tell
                pass
        os._exit(code)


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _reseed_random_generators() -> None:
    """Every ``random.Random`` the imports made (``streams/stream.py``'s for the private walks'
    waits, as well as the module's own) would otherwise hold the warm process's state, copied:
    every fork would draw the same numbers. The stdlib reseeds only its own instance at a fork."""
    import gc
    import random

    for generator in gc.get_objects():
        if isinstance(generator, random.Random):
            generator.seed()


def _fresh_hub() -> None:
    import eventlet.hubs

    old = eventlet.hubs._threadlocal.__dict__.pop("hub", None)
    if old is not None and hasattr(old, "poll"):
        old.poll.close()  # the warm process's epoll: this fork gets its own from get_hub()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # pytest's Ctrl-C is for the tests, which stop it
    _serve_forks()
