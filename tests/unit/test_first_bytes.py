"""``FirstBytes`` (server/request_pool.py): connections wait for their first bytes in a
watcher, not in the request pool; with a fake hub."""

from __future__ import annotations

from dashstream.server.request_pool import FirstBytes


class FakeHub:
    def __init__(self):
        self.watches: dict[int, object] = {}
        self.timers: list = []

    def watch_read(self, fileno, callback):
        self.watches[fileno] = callback
        return fileno

    def unwatch(self, handle):
        self.watches.pop(handle, None)

    def call_later(self, seconds, function):
        timer = Timer(seconds, function)
        self.timers.append(timer)
        return timer

    def readable(self, fileno):
        self.watches[fileno](fileno)

    def expire(self):
        for timer in list(self.timers):
            if not timer.cancelled:
                timer.cancelled = True
                timer.function()


class Timer:
    def __init__(self, seconds, function):
        self.seconds, self.function, self.cancelled = seconds, function, False

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
    assert hub.watches == {} and hub.timers[0].cancelled and not sock.closed


def test_a_silent_connection_is_closed_at_the_deadline():
    gate, hub, ready = make()
    sock = FakeSocket(6)
    gate.add(sock, ("10.0.0.1", 1000))
    hub.expire()
    assert sock.closed and ready == [] and gate.closed_silent == 1 and gate.waiting == 0 and hub.watches == {}


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
