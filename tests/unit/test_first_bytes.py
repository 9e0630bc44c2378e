"""``FirstBytes`` (server/request_pool.py): connections wait for their first bytes in a
watcher, not in the request pool; with a fake hub."""

from __future__ import annotations

from dashstream.server.request_pool import FirstBytes


class FakeHub:
    def __init__(self):
        self.watches: dict[int, object] = {}
        self.timers: list = []
        self.now = 100.0
        self.speaking: set[int] = set()  # filenos whose bytes are there at accept

    def monotonic(self):
        return self.now

    def has_bytes(self, sock):
        return sock.fileno() in self.speaking

    def watch_read(self, fileno, callback):
        self.watches[fileno] = callback
        return fileno

    def unwatch(self, handle):
        self.watches.pop(handle, None)

    def call_later(self, seconds, function):
        timer = Timer(seconds, function, self.now + seconds)
        self.timers.append(timer)
        return timer

    def readable(self, fileno):
        self.watches[fileno](fileno)

    def expire(self):
        """Run the next timer due, with the clock moved to its time."""
        for timer in list(self.timers):
            if not timer.cancelled:
                timer.cancelled = True
                self.now = max(self.now, timer.due)
                timer.function()
                return

    def pending(self):
        return [timer for timer in self.timers if not timer.cancelled]


class Timer:
    def __init__(self, seconds, function, due):
        self.seconds, self.function, self.due, self.cancelled = seconds, function, due, False

    def cancel(self):
        self.cancelled = True


class FakeSocket:
    def __init__(self, fileno):
        self._fileno = fileno
        self.closed = False

    def fileno(self):
        return -1 if self.closed else self._fileno

    def close(self):
        self.closed = True


def make(**kwargs):
    hub, ready = FakeHub(), []
    gate = FirstBytes(lambda sock, address: ready.append((sock, address)), timeout=10, io=hub, **kwargs)
    return gate, hub, ready


def test_a_connection_is_handed_on_when_its_first_bytes_come():
    gate, hub, ready = make()
    sock = FakeSocket(5)
    gate.add(sock, ("10.0.0.1", 1000))
    assert ready == [] and gate.waiting == 1 and gate.load("10.0.0.1") == 1
    assert hub.timers[0].seconds == 10
    hub.readable(5)
    assert ready == [(sock, ("10.0.0.1", 1000))] and gate.waiting == 0 and gate.load("10.0.0.1") == 0
    assert hub.watches == {} and not sock.closed
    hub.expire()  # the deadline of one that left closes nothing, and sets no new timer
    assert not sock.closed and gate.closed_silent == 0 and hub.pending() == []


def test_a_connection_that_has_spoken_at_accept_is_handed_on_at_once():
    gate, hub, ready = make()
    sock = FakeSocket(8)
    hub.speaking.add(8)
    gate.add(sock, ("10.0.0.1", 1000))
    assert ready == [(sock, ("10.0.0.1", 1000))] and gate.waiting == 0
    assert hub.watches == {} and hub.timers == []


def test_a_silent_connection_is_closed_at_the_deadline():
    gate, hub, ready = make()
    sock = FakeSocket(6)
    gate.add(sock, ("10.0.0.1", 1000))
    hub.expire()
    assert sock.closed and ready == [] and gate.closed_silent == 1 and gate.waiting == 0 and hub.watches == {}
    assert hub.pending() == []


def test_one_timer_closes_each_silent_connection_at_its_own_deadline():
    gate, hub, ready = make()
    first, second, third = FakeSocket(30), FakeSocket(31), FakeSocket(32)
    gate.add(first, ("10.0.0.1", 1))
    hub.now += 4
    gate.add(second, ("10.0.0.2", 1))
    hub.now += 3
    gate.add(third, ("10.0.0.3", 1))
    assert len(hub.pending()) == 1  # one timer for all three
    hub.readable(31)  # the second speaks in time
    hub.expire()  # t = 110: the first is due
    assert first.closed and not third.closed and hub.now == 110 and gate.closed_silent == 1
    assert [timer.due for timer in hub.pending()] == [117]  # the next deadline (the second left)
    hub.expire()
    assert third.closed and gate.closed_silent == 2 and gate.waiting == 0 and hub.pending() == []
    assert [sock for sock, _ in ready] == [second] and not second.closed
    gate.add(FakeSocket(33), ("10.0.0.4", 1))  # a new one after a quiet spell starts a timer again
    assert [timer.due for timer in hub.pending()] == [127]


def test_silent_connections_are_bounded_per_address_and_in_all():
    gate, hub, ready = make(per_address=2, total=3)
    socks = [FakeSocket(10 + index) for index in range(4)]
    for sock in socks[:3]:
        gate.add(sock, ("10.0.0.1", 1))
    assert socks[2].closed and gate.refused == 1 and gate.load("10.0.0.1") == 2
    gate.add(socks[3], ("2001:db8::1", 1))
    gate.add(FakeSocket(20), ("2001:db8::2", 1))  # the same /64: one client
    assert gate.waiting == 3 and gate.refused == 2
    hub.readable(10)
    assert gate.load("10.0.0.1") == 1 and len(ready) == 1


def test_a_socket_already_closed_is_dropped():
    gate, hub, ready = make()
    sock = FakeSocket(7)
    sock.close()
    gate.add(sock, ("10.0.0.1", 1))
    assert gate.waiting == 0 and hub.watches == {} and ready == []


def test_a_caller_that_read_the_first_bytes_says_so_and_the_socket_is_not_asked():
    gate, hub, ready = make()
    hub.has_bytes = None  # asking it would fail
    spoke, silent = FakeSocket(5), FakeSocket(6)
    gate.add(spoke, ("10.0.0.1", 1), ready=True)
    gate.add(silent, ("10.0.0.1", 2), ready=False)
    assert ready == [(spoke, ("10.0.0.1", 1))]
    assert gate.waiting == 1 and 6 in hub.watches  # the silent one waits as any other
    hub.readable(6)
    assert ready[-1] == (silent, ("10.0.0.1", 2)) and gate.waiting == 0
