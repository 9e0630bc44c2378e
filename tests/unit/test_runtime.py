"""``dashstream.runtime``: the green threads that run one request after another, and clearing
a watch on a descriptor about to be closed. Against eventlet's real hub (no monkey patching:
greenlets and the hub work without it)."""

from __future__ import annotations

import socket

import eventlet
import eventlet.hubs
import greenlet
import pytest

from dashstream import runtime

pytestmark = pytest.mark.timeout(30)


def settle() -> None:
    for _ in range(5):
        eventlet.sleep(0)


def test_a_worker_that_finished_runs_the_next_job_on_the_same_green_thread():
    workers = runtime.Workers(keep=4)
    ran: list = []
    workers.spawn_n(lambda tag: ran.append((tag, greenlet.getcurrent())), "a")
    settle()
    assert workers.idle == 1
    workers.spawn_n(lambda tag, more: ran.append((tag + more, greenlet.getcurrent())), "b", "!")
    settle()
    assert [tag for tag, _ in ran] == ["a", "b!"] and ran[0][1] is ran[1][1]
    assert workers.idle == 1


def test_jobs_that_overlap_get_workers_of_their_own_and_at_most_keep_stay():
    workers = runtime.Workers(keep=2)
    running: list = []

    def job():
        running.append(greenlet.getcurrent())
        eventlet.sleep(0.01)

    for _ in range(4):
        workers.spawn_n(job)
    settle()
    assert len(set(running)) == 4  # none waited for another
    eventlet.sleep(0.05)
    assert workers.idle == 2


def test_a_job_that_raises_is_reported_and_its_worker_goes_on(capsys):
    workers = runtime.Workers(keep=1)
    ran: list = []

    def broken():
        raise RuntimeError("job failed")

    workers.spawn_n(broken)
    settle()
    workers.spawn_n(ran.append, "after")
    settle()
    assert ran == ["after"] and workers.idle == 1
    assert "RuntimeError: job failed" in capsys.readouterr().err


def test_a_watch_cleared_before_close_leaves_nothing_in_the_hub():
    ours, theirs = socket.socketpair()
    try:
        fileno = ours.fileno()
        handle = runtime.watch_read(fileno, lambda _fileno: None)
        hub = eventlet.hubs.get_hub()
        assert fileno in hub.listeners[hub.READ]
        runtime.unwatch_closing(handle)
        runtime.unwatch_closing(None)  # nothing watched: nothing to do
        assert fileno not in hub.listeners[hub.READ]
    finally:
        ours.close()
        theirs.close()
    settle()  # the hub goes on without the closed descriptor
