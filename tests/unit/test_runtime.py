"""``dashstream.runtime`` against eventlet's real hub (no monkey patching: greenlets and the
hub work without it): the green threads that run one request after another, clearing a watch
on a descriptor about to be closed, and the millisecond wake-ups of the private walks. The
wake-ups' clock is frozen at the test's start where it matters which millisecond a sleep lands
in; the hub fires on its own clock, so a sleep still ends no earlier than asked."""

from __future__ import annotations

import socket

import eventlet
import eventlet.hubs
import greenlet
import pytest

from dashstream import runtime
from dashstream.runtime import MillisecondWakeups

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


def hub_timers() -> int:
    hub = eventlet.hubs.get_hub()
    return sum(1 for _, timer in hub.timers + hub.next_timers if not timer.called)


def frozen():
    """Wake-ups whose clock stays at the hub's time now; that time."""
    started = eventlet.hubs.get_hub().clock()
    return MillisecondWakeups(clock=lambda: started), started


def test_green_threads_due_in_one_millisecond_share_one_hub_timer_and_wake_in_order():
    wakeups, started = frozen()
    hub = eventlet.hubs.get_hub()
    woke = []

    def sleeper(name):
        wakeups.sleep(0.0054)
        woke.append((name, hub.clock()))

    before = hub_timers()
    threads = [eventlet.spawn(sleeper, name) for name in "abc"]
    eventlet.sleep(0)  # all three are asleep now
    assert hub_timers() - before == 1 and [len(due) for due in wakeups._due.values()] == [3]
    for thread in threads:
        thread.wait()
    assert [name for name, _ in woke] == ["a", "b", "c"]
    assert all(at >= started + 0.0054 for _, at in woke)  # never early
    assert wakeups._due == {}


def test_a_woken_thread_that_sleeps_again_switches_straight_to_the_next_of_its_millisecond():
    wakeups, _ = frozen()
    hub = eventlet.hubs.get_hub()
    names = {}
    switches = []

    def sleeper(name):
        names[greenlet.getcurrent()] = name
        wakeups.sleep(0.003)
        wakeups.sleep(0.003)  # after the first wake: into the millisecond after, all three again

    def trace(event, args):
        if event == "switch":
            origin, target = args
            switches.append((names.get(origin, "hub" if origin is hub.greenlet else "other"),
                             names.get(target, "hub" if target is hub.greenlet else "other")))

    threads = [eventlet.spawn(sleeper, name) for name in "abc"]
    eventlet.sleep(0)
    previous = greenlet.settrace(trace)
    try:
        for thread in threads:
            thread.wait()
    finally:
        greenlet.settrace(previous)
    # The first wake: the hub switches to a; a, asleep again, to b; b to c; c to the hub.
    first = switches.index(("hub", "a"))
    assert switches[first:first + 4] == [("hub", "a"), ("a", "b"), ("b", "c"), ("c", "hub")]
    assert ("a", "hub") not in switches[first:first + 4]


def test_a_thread_killed_by_another_of_its_millisecond_is_not_run_and_the_rest_are():
    wakeups, _ = frozen()
    woke = []
    threads = {}

    def sleeper(name):
        wakeups.sleep(0.004)
        woke.append(name)
        if name == "a":
            threads["b"].kill()  # b is due in this millisecond too, after a

    for name in "abc":
        threads[name] = eventlet.spawn(sleeper, name)
    eventlet.sleep(0)
    for name in "ac":
        threads[name].wait()
    assert woke == ["a", "c"] and threads["b"].dead and wakeups._due == {}


def test_each_millisecond_gets_its_own_timer_and_no_sleep_ends_early():
    wakeups, started = frozen()
    hub = eventlet.hubs.get_hub()
    woke = {}

    def sleeper(seconds):
        wakeups.sleep(seconds)
        woke[seconds] = hub.clock()

    before = hub_timers()
    threads = [eventlet.spawn(sleeper, seconds) for seconds in (0.0, 0.002, 0.0201)]
    eventlet.sleep(0)
    assert hub_timers() - before == 3 and len(wakeups._due) == 3
    for thread in threads:
        thread.wait()
    assert all(woke[seconds] >= started + seconds for seconds in woke) and len(woke) == 3
    # A sleep of 0 still ends on the next millisecond, after this one.
    assert woke[0.0] >= (int(started * 1000) + 1) / 1000


@pytest.mark.parametrize("seconds", [0.0, 0.0004, 0.001, 0.0031, 0.004])
def test_on_a_grid_of_two_milliseconds_a_sleep_ends_on_the_next_even_millisecond(seconds):
    hub = eventlet.hubs.get_hub()
    started = hub.clock()
    wakeups = MillisecondWakeups(clock=lambda: started, step_ms=2)
    woke = []

    def sleeper():
        wakeups.sleep(seconds)
        woke.append(hub.clock())

    thread = eventlet.spawn(sleeper)
    eventlet.sleep(0)
    [due] = wakeups._due
    deadline_ms = (started + seconds) * 1000
    assert due % 2 == 0 and deadline_ms < due <= deadline_ms + 2  # never early, at most 2 ms late
    thread.wait()
    assert woke[0] >= started + seconds and wakeups._due == {}


def test_the_default_walks_sleep_on_a_grid_of_five_milliseconds():
    assert runtime.sleep_on_millisecond.__self__._step_ms == 5
    assert runtime.sleep_on_millisecond is runtime.grid_sleep(5)


def test_walks_on_the_same_grid_share_one_set_of_wake_ups_and_other_grids_have_their_own():
    one, five = runtime.grid_sleep(1), runtime.grid_sleep(5)
    assert runtime.grid_sleep(1) is one and runtime.grid_sleep(5) is five
    assert one.__self__ is not five.__self__
    assert (one.__self__._step_ms, five.__self__._step_ms) == (1, 5)
    assert isinstance(runtime.grid_sleep(3).__self__, MillisecondWakeups)


def test_the_hubs_own_clock_is_used_when_none_is_given():
    wakeups = MillisecondWakeups()
    hub = eventlet.hubs.get_hub()
    asleep, woke = [], []

    def sleeper():
        asleep.append(hub.clock())
        wakeups.sleep(0.003)
        woke.append(hub.clock())

    eventlet.spawn(sleeper).wait()
    assert woke[0] - asleep[0] >= 0.003 and wakeups._due == {}


def test_a_greenlet_that_is_not_the_hubs_child_is_made_one_and_still_wakes():
    wakeups, started = frozen()
    hub = eventlet.hubs.get_hub()
    eventlet.spawn(wakeups.sleep, 0).wait()  # the wake-ups know their hub now
    main = greenlet.getcurrent()
    woke = []

    def body():
        wakeups.sleep(0.002)
        woke.append(hub.clock())
        main.switch("woke")

    child = greenlet.greenlet(body)  # its parent: this test's greenlet, not the hub
    assert child.switch() == "woke" and child.parent is hub.greenlet
    assert woke[0] >= started + 0.002
    child.parent = main  # so that ending it comes back here, not to the hub
    child.throw(greenlet.GreenletExit)
    assert child.dead


def test_a_killed_sleeper_leaves_its_millisecond_and_the_others_still_wake():
    wakeups, _ = frozen()
    woke = []

    def sleeper(name):
        wakeups.sleep(0.01)
        woke.append(name)

    doomed, kept = eventlet.spawn(sleeper, "doomed"), eventlet.spawn(sleeper, "kept")
    eventlet.sleep(0)
    doomed.kill()
    assert doomed.dead and [list(due) for due in wakeups._due.values()] == [[kept]]
    kept.wait()
    assert woke == ["kept"] and wakeups._due == {}


def test_a_failing_green_thread_does_not_keep_the_rest_of_its_millisecond_asleep():
    wakeups, _ = frozen()
    hub = eventlet.hubs.get_hub()
    woke = []

    def failing():
        wakeups.sleep(0.005)
        raise ValueError("a bug in one loop")

    def sleeper():
        wakeups.sleep(0.005)
        woke.append("after")

    # A bare greenlet (no GreenThread to catch its exception): the failure reaches the hub.
    bad = greenlet.greenlet(failing, parent=hub.greenlet)
    eventlet.spawn_n(bad.switch)
    good = eventlet.spawn(sleeper)
    eventlet.sleep(0)
    assert [len(due) for due in wakeups._due.values()] == [2]
    good.wait()
    assert woke == ["after"] and bad.dead


def test_the_hub_itself_may_not_sleep():
    wakeups = MillisecondWakeups()
    failed = []

    def in_the_hub():
        try:
            wakeups.sleep(0.001)
        except RuntimeError as error:
            failed.append(str(error))

    eventlet.hubs.get_hub().schedule_call_global(0, in_the_hub)
    eventlet.sleep(0.01)
    assert failed == ["do not call blocking functions from the mainloop"]


def test_the_private_walks_sleep_is_one_shared_set_of_wake_ups():
    assert isinstance(runtime.sleep_on_millisecond.__self__, MillisecondWakeups)
