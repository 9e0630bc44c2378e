"""Unit tests of the request pool (dashstream/request_pool.py): the limits, the turns
between addresses, the refusals, with a fake spawn that runs nothing until told."""

from __future__ import annotations

import pytest

from dashstream.server.request_pool import RequestPool


class Spawner:
    """Collects spawned functions; the test runs them (finishing the request)."""

    def __init__(self):
        self.started: list = []

    def __call__(self, function):
        self.started.append(function)

    def finish(self, index: int = 0) -> None:
        self.started.pop(index)()


def conn(address: str, port: int = 1000) -> list:
    return [(address, port), object(), "idle"]


def make(size=4, per_address=2, waiting_per_address=3, max_waiting=5):
    spawner, refused = Spawner(), []
    pool = RequestPool(size, per_address, waiting_per_address=waiting_per_address, max_waiting=max_waiting,
                       spawn=spawner, on_refused=refused.append)
    served: list = []
    return pool, spawner, refused, served


def request(pool, served, address, port=1000):
    state = conn(address, port)
    handle = pool.spawn(lambda conn_state: served.append(conn_state[0]), state)
    links = []
    handle.link(lambda h, tag: links.append(tag), "cleaned")
    return handle, links


def test_limits_per_address_and_in_all_then_waiting_in_turn():
    pool, spawner, refused, served = make()
    for port in range(3):
        request(pool, served, "10.0.0.1", port)  # two run, one waits (per address)
    request(pool, served, "10.0.0.2")
    request(pool, served, "10.0.0.3")  # the pool's fourth: all four slots are taken
    request(pool, served, "10.0.0.4")  # waits: the pool is full
    assert pool.running == 4 and pool.waiting == 2 and len(spawner.started) == 4
    assert pool.address_load("10.0.0.1") == (2, 1) and pool.address_load("10.0.0.4") == (0, 1)
    spawner.finish(0)  # one of 10.0.0.1's ends: the next in turn is 10.0.0.1's waiting one
    assert served == [("10.0.0.1", 0)] and pool.running == 4 and pool.waiting == 1
    spawner.finish(0)
    assert pool.address_load("10.0.0.4") == (1, 0) and pool.waiting == 0
    while spawner.started:
        spawner.finish()
    assert pool.running == 0 and pool.address_load("10.0.0.1") == (0, 0)
    assert sorted(served) == sorted([("10.0.0.1", 0), ("10.0.0.1", 1), ("10.0.0.1", 2), ("10.0.0.2", 1000),
                                     ("10.0.0.3", 1000), ("10.0.0.4", 1000)])
    assert refused == []


def test_a_waiting_address_does_not_go_before_others_that_wait():
    pool, spawner, refused, served = make(size=1, per_address=1)
    request(pool, served, "a")
    request(pool, served, "a", 1)
    request(pool, served, "b")
    request(pool, served, "a", 2)
    spawner.finish()  # a's first ends: a waited first, so a's next starts
    spawner.finish()  # it ends: then b starts (a went to the back of the line), not a's third
    spawner.finish()
    assert served == [("a", 1000), ("a", 1), ("b", 1000)]
    assert pool.address_load("a") == (1, 0)


def test_too_many_waiting_are_refused_and_cleaned_up_at_once():
    pool, spawner, refused, served = make(size=1, per_address=1, waiting_per_address=2, max_waiting=3)
    request(pool, served, "a")
    request(pool, served, "a", 1)
    request(pool, served, "a", 2)
    handle, links = request(pool, served, "a", 3)  # a's third waiting one: over its limit
    assert refused == ["a"] and links == ["cleaned"] and handle.done
    request(pool, served, "b")
    handle, links = request(pool, served, "c")  # the fourth waiting in all
    assert refused == ["a", "c"] and links == ["cleaned"]
    assert pool.waiting == 3


def test_links_run_when_the_request_ends_and_get_the_handle():
    pool, spawner, refused, served = make()
    handle, links = request(pool, served, "a")
    assert links == [] and not handle.done
    got = []
    handle.link(lambda h: got.append(h))
    spawner.finish()
    assert links == ["cleaned"] and handle.done and got == [handle]
    late = []
    handle.link(lambda h: late.append(h))  # linked after the end: runs at once
    assert late == [handle]


def test_an_address_at_its_limit_waits_while_others_take_the_free_slot():
    pool, spawner, refused, served = make(size=3, per_address=1)
    request(pool, served, "a")
    request(pool, served, "b")
    request(pool, served, "c")
    request(pool, served, "a", 1)  # waits: a is at its limit (and the pool is full)
    request(pool, served, "d")  # waits: the pool is full
    spawner.finish(2)  # c ends: a still has one running, so d goes first
    assert pool.address_load("a") == (1, 1) and pool.address_load("d") == (1, 0)
    spawner.finish(0)  # a's first ends: its waiting one starts
    assert pool.address_load("a") == (1, 0)


def test_defaults_and_addresses_that_are_not_tuples():
    pool = RequestPool(2, 1, spawn=lambda f: None)
    assert (pool.waiting_per_address, pool.max_waiting) == (1024, 8192)
    pool.spawn(lambda c: None, ["/run/socket", object(), "idle"])
    assert pool.address_load("/run/socket") == (1, 0)


def test_ipv6_addresses_of_one_64_share_a_limit():
    pool, spawner, refused, served = make(per_address=1)
    request(pool, served, "2001:db8::1")
    request(pool, served, "2001:db8::2")  # the same /64: waits
    assert pool.running == 1 and pool.waiting == 1


def test_a_request_that_fails_still_frees_its_slot():
    pool, spawner, refused, served = make(size=1)

    def broken(_conn_state):
        raise RuntimeError("boom")

    pool.spawn(broken, conn("a"))
    request(pool, served, "b")
    with pytest.raises(RuntimeError):
        spawner.finish()
    assert pool.running == 1 and pool.waiting == 0  # b got the slot


def test_bad_sizes_are_refused():
    for size, per in ((0, 1), (1, 0)):
        with pytest.raises(ValueError) as refused:
            RequestPool(size, per, spawn=lambda f: None)
        assert str(refused.value) == "size and per_address must be >= 1"
    assert RequestPool(1, 1, spawn=lambda f: None).waitall() is None
