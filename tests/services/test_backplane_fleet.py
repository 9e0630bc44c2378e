"""Several instances, one set of streams, through a real redis-server (--backplane): shared
numbering and epoch, resume on another instance, any instance answering for all (publish,
reload, /streams), one producer per stream across the fleet (a lease), and Redis killed and
restarted with and without its data. Each test starts its own Redis and instances on free
ports and stops them, also when it fails (tests/fleet.py)."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

from tests.fleet import Fleet, Recorder, cpu_seconds, publish, ready, stream_info, streams
from tests.support import assert_refused_option, http_get, http_request, scaled, wait_until

pytestmark = pytest.mark.timeout(120)

PUBLISH = ("--stream", "sales=publish")
WALK = ("--stream", "office=random-walk:shared", "--min-wait", "0.02", "--max-wait", "0.06")
LEASE_TTL = 5.0  # redis_backplane.LEASE_TTL


@pytest.fixture
def fleet():
    """``fleet(*args, count=2, persist=False)``: Redis and instances, all stopped after the
    test (a failure shows the instances' logs: conftest.py)."""
    started: list[Fleet] = []

    def start(*args: str, count: int = 2, persist: bool = False) -> Fleet:
        made = Fleet(*args, count=count, persist=persist)
        started.append(made)
        return made.start()

    yield start
    for made in started:
        made.stop()


@pytest.fixture
def recorders():
    made: list[Recorder] = []

    def record(*args, **kwargs) -> Recorder:
        made.append(Recorder(*args, **kwargs))
        return made[-1]

    yield record
    for recorder in made:
        recorder.close()


def texts(recorder: Recorder) -> list[str]:
    return [json.dumps(message, sort_keys=True) for message in recorder.data]


# --- one log per stream --------------------------------------------------------------------------------


def test_a_publish_on_one_instance_reaches_the_other_with_the_same_seq_and_epoch(fleet, recorders):
    f = fleet(*PUBLISH)
    a, b = f.instances
    on_a, on_b = recorders(a.ws + "/ws/sales"), recorders(b.ws + "/ws/sales")
    answers = []
    for value, instance in enumerate([a, a, b, a, b]):
        status, _, body = publish(instance, "sales", {"variable": value, "unit": "orders"})
        assert status == 200, body
        answers.append(json.loads(body))
    on_a.wait_data(5)
    on_b.wait_data(5)
    assert texts(on_a) == texts(on_b)
    assert [(m["seq"], m["epoch"]) for m in on_b.data] == [(x["seq"], x["epoch"]) for x in answers]
    assert on_b.seqs() == [1, 2, 3, 4, 5] and len({m["epoch"] for m in on_b.data}) == 1
    assert [m["variable"] for m in on_b.data] == [0, 1, 2, 3, 4] and all(m["unit"] == "orders" for m in on_b.data)
    for instance in (a, b):
        info = stream_info(instance, "sales")
        assert (info["last_seq"], info["epoch"]) == (5, answers[0]["epoch"])


def test_a_subscriber_that_resumes_on_the_other_instance_gets_exactly_what_it_missed(fleet, recorders):
    f = fleet(*PUBLISH, "--history", "20")
    a, b = f.instances
    for value in range(3):
        publish(a, "sales", {"variable": value})
    first = recorders(a.ws + "/ws/sales")
    last = first.wait_data(1)[-1]  # the last value on connect
    assert last["seq"] == 3
    first.close()
    for value in range(3, 9):  # missed while away, published on both
        publish([a, b][value % 2], "sales", {"variable": value})
    epoch = last["epoch"]
    again = recorders(f"{b.ws}/ws/sales?seq=3&epoch={epoch}")
    again.wait_data(6)
    publish(a, "sales", {"variable": 9})
    again.wait_data(7)
    time.sleep(scaled(0.2))
    assert again.seqs() == [4, 5, 6, 7, 8, 9, 10]
    assert [m["variable"] for m in again.data] == list(range(3, 10))
    assert not any("gap" in m for m in again.data)
    # too far back for the history, or another epoch: the latest with the gap signal
    for value in range(10, 40):
        publish(a, "sales", {"variable": value})
    wait_until(lambda: stream_info(b, "sales")["last_seq"] == 40, message="b at seq 40")
    for query in (f"seq=5&epoch={epoch}", "seq=5&epoch=0123456789ab", f"seq=99&epoch={epoch}"):
        late = recorders(f"{b.ws}/ws/sales?{query}")
        message = late.wait_data(1)[0]
        assert (message["seq"], message.get("gap")) == (40, True), query
        late.close()


def test_a_resume_ahead_of_an_instances_tail_is_answered_from_redis(fleet, recorders):
    """The client saw seq N on A; B is asked before its tail has read N (a publish and a
    reconnect can race the tail): B reads Redis and owes exactly the rest."""
    f = fleet(*PUBLISH)
    a, b = f.instances
    publish(a, "sales", {"variable": 0})
    wait_until(lambda: stream_info(b, "sales")["last_seq"] == 1, message="b read seq 1")
    epoch = stream_info(a, "sales")["epoch"]
    # Freeze B (SIGSTOP) so its tail cannot read, publish 2..4 on A, then ask B for seq 3
    # the moment it runs again: its first answer comes before the tail's next read or after;
    # either way the answer must be exact.
    b.signal(signal.SIGSTOP)
    try:
        for value in range(1, 4):
            publish(a, "sales", {"variable": value})
    finally:
        b.signal(signal.SIGCONT)
    resumed = recorders(f"{b.ws}/ws/sales?seq=3&epoch={epoch}")
    resumed.wait_data(1)
    publish(a, "sales", {"variable": 4})
    resumed.wait_data(2)
    time.sleep(scaled(0.2))
    assert resumed.seqs() == [4, 5] and not any("gap" in m for m in resumed.data)


# --- any instance answers for all ------------------------------------------------------------------------


def test_reload_streams_and_health_answer_for_the_whole_fleet(fleet, recorders):
    f = fleet(*PUBLISH, *WALK)
    a, b = f.instances
    control_b = recorders(b.ws + "/ws/sales", control=True)
    plain_a = recorders(a.ws + "/ws/office")
    recorders(a.ws + "/ws/office")
    recorders(b.ws + "/ws/office", control=True)
    healths = [a.health(), b.health()]
    assert {h["instance"] for h in healths} == {streams(a)["instance"], streams(b)["instance"]}
    assert len({h["instance"] for h in healths}) == 2 and all(h["backplane"] == "up" for h in healths)

    def fleet_counts(instance, local):
        office = stream_info(instance, "office")
        return office["subscribers"] == 3 and office["local_subscribers"] == local and office

    # presence is written every 2 s: each instance sees the others' counts within that
    office = wait_until(lambda: fleet_counts(b, 1), timeout=10, message="3 office subscribers summed on B")
    wait_until(lambda: fleet_counts(a, 2), timeout=10, message="3 office subscribers summed on A")
    holder = office["producer"]
    assert holder in {h["instance"] for h in healths}
    assert stream_info(a, "office")["producer"] == holder
    assert sorted(streams(a)["instances"]) == sorted(h["instance"] for h in healths)
    assert streams(a)["backplane"]["state"] == "up" and "url" in streams(a)["backplane"]
    # exactly one instance runs the walk: /healthz counts producer loops
    assert sorted(h["producers"] for h in (a.health(), b.health())) == [0, 1]
    # POST /reload on A reaches B's control clients; A's plain client gets nothing
    status, _, body = http_request(a.http + "/reload", "POST", b"",
                                   {"Authorization": "Bearer fleet-token"})
    assert status == 200 and json.loads(body) == {"reloaded": 2}
    control_b.wait_control(lambda m: m == {"control": "reload"})
    time.sleep(scaled(0.3))
    assert plain_a.controls == []
    # the backplane's metrics
    metrics = http_get(b.http + "/metrics")[2].decode()
    assert "dashstream_backplane_up 1.0" in metrics


# --- one producer per stream across the fleet -------------------------------------------------------------


def one_walk(messages: list[dict]) -> None:
    """The sequence is one walk's: seq without a hole or a repeat, one epoch, and every step
    of the value within the walk's [1, 10] (two walks interleaved would jump back and forth)."""
    seqs = [m["seq"] for m in messages]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "hole or repeat in seq"
    assert len({m["epoch"] for m in messages}) == 1
    steps = [later["variable"] - earlier["variable"] for earlier, later in zip(messages, messages[1:])]
    odd = [(m["seq"], m["variable"], m["ts"]) for i, m in enumerate(messages[1:])
           if not 1 <= steps[i] <= 10 for m in messages[max(0, i - 2):i + 4]]
    assert all(1 <= step <= 10 for step in steps), f"not one walk: steps {sorted(set(steps))} around {odd}"


def holder_index(f: Fleet) -> int:
    holder = wait_until(lambda: stream_info(f.instances[0], "office").get("producer"), message="a lease holder")
    return next(index for index, instance in enumerate(f.instances) if instance.health()["instance"] == holder)


def test_when_the_lease_holder_is_killed_another_instance_runs_the_one_walk_within_the_ttl(fleet, recorders):
    f = fleet(*WALK, count=3)
    index = holder_index(f)
    holder = f.instances[index]
    survivors = [instance for i, instance in enumerate(f.instances) if i != index]
    watchers = [recorders(instance.ws + "/ws/office") for instance in survivors]
    watchers[0].wait_data(20)
    producing: list[int] = []
    sampling = threading.Event()

    def sample():  # walks running on the survivors, all along (the holder is gone at once)
        while not sampling.is_set():
            try:
                producing.append(sum(instance.health()["producers"] for instance in survivors))
            except (OSError, AssertionError):
                pass
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        killed_at = time.time()
        holder.signal(signal.SIGKILL)
        holder.wait()
        wait_until(lambda: sum(m["ts"] > killed_at for m in watchers[0].data) >= 20, timeout=20,
                   message="the walk to go on")
    finally:
        sampling.set()
        sampler.join(5)
    taken_over = next(m["ts"] for m in watchers[0].data if m["ts"] > killed_at)
    assert taken_over - killed_at < LEASE_TTL + scaled(1)
    one_walk(watchers[0].data)
    wait_until(lambda: watchers[1].seqs()[-1:] == watchers[0].seqs()[-1:], message="both watchers level")
    one_walk(watchers[1].data)
    assert producing and max(producing) == 1 and producing[-1] == 1, producing
    # who runs it now is one of the survivors, and every instance says so
    new_holder = stream_info(survivors[0], "office")["producer"]
    assert new_holder == stream_info(survivors[1], "office")["producer"]
    assert new_holder in {instance.health()["instance"] for instance in survivors}


def test_the_takeover_after_a_graceful_stop_is_immediate(fleet, recorders):
    f = fleet(*WALK, count=2)
    index = holder_index(f)
    other = f.instances[1 - index]
    watcher = recorders(other.ws + "/ws/office")
    watcher.wait_data(10)
    f.instances[index].signal(signal.SIGTERM)
    f.instances[index].wait()
    stopped = time.monotonic()
    count = len(watcher.data)
    watcher.wait_data(count + 5, timeout=5)
    # the lease was given back: no waiting for the TTL (values every 20-60 ms)
    gaps = []
    for earlier, later in zip(watcher.data, watcher.data[1:]):
        gaps.append(later["ts"] - earlier["ts"])
    assert max(gaps) < 1.5, max(gaps)
    assert time.monotonic() - stopped < LEASE_TTL
    one_walk(watcher.data)


def test_an_instance_that_fell_behind_skips_to_fresh_values_with_the_gap_signal(fleet, recorders):
    """Frozen for 2.5 s (SIGSTOP) while the walk goes on at another instance: on waking, the
    instance does not show its screens 2.5 s of stale values in a burst; it skips to the
    last second's and tells them (gap), and is live again at once."""
    f = fleet(*WALK)
    index = holder_index(f)
    behind = f.instances[1 - index]
    watcher = recorders(behind.ws + "/ws/office")
    watcher.wait_data(10)
    behind.signal(signal.SIGSTOP)
    try:
        time.sleep(scaled(2.5))
    finally:
        behind.signal(signal.SIGCONT)
    marked = wait_until(lambda: next((m for m in watcher.data if m.get("gap")), None), timeout=10,
                        message="the gap signal after the skip")
    after = watcher.data[watcher.data.index(marked):]
    skipped = marked["seq"] - watcher.data[watcher.data.index(marked) - 1]["seq"] - 1
    assert skipped > 5, skipped
    assert after[-1]["ts"] - marked["ts"] >= 0 and all(later["seq"] == earlier["seq"] + 1
                                                      for earlier, later in zip(after, after[1:]))
    wait_until(lambda: "fell 2" in behind.output() or "fell 3" in behind.output(), message="the line that says so")


# --- backplane outage ---------------------------------------------------------------------------------------


def outage(f: Fleet, recorders):
    a, b = f.instances
    control = recorders(b.ws + "/ws/sales", control=True)
    data = recorders(a.ws + "/ws/sales")
    for value in range(3):
        assert publish(a, "sales", {"variable": value})[0] == 200
    data.wait_data(3)
    control.wait_data(3)
    epoch = data.data[-1]["epoch"]
    cpu_before = [cpu_seconds(instance.proc.pid) for instance in (a, b)]
    f.redis.kill()
    down = control.wait_control(lambda m: m.get("control") == "backplane" and m["state"] == "down")
    assert down["reason"] and down["since"] > 0
    status, headers, body = publish(a, "sales", {"variable": 99})
    assert status == 503 and headers.get("Retry-After") and b"backplane" in body
    assert http_request(a.http + "/reload", "POST", b"", {"Authorization": "Bearer fleet-token"})[0] == 503
    for instance in (a, b):
        status, _, body = http_get(instance.http + "/readyz")
        assert status == 503 and "backplane down" in json.loads(body)["reason"]
        assert instance.health()["backplane"] == "down"  # /healthz stays 200: it is about the process
    # a screen that connects now is told at once, and still gets the last value
    late = recorders(b.ws + "/ws/sales", control=True)
    assert late.wait_data(1)[0]["seq"] == 3
    late.wait_control(lambda m: m.get("control") == "backplane" and m["state"] == "down")
    time.sleep(scaled(3))  # three seconds of outage: retries, not a busy loop
    for instance, before in zip((a, b), cpu_before):
        assert cpu_seconds(instance.proc.pid) - before < 1.0
        assert instance.proc.poll() is None
    f.redis.restart()  # on the same port; with the data only if it persists (RedisServer)
    control.wait_control(lambda m: m.get("control") == "backplane" and m["state"] == "up", timeout=15)
    wait_until(lambda: ready(a) and ready(b), message="both ready again")
    status, _, body = publish(b, "sales", {"variable": 100})
    assert status == 200, body
    answer = json.loads(body)
    data.wait_data(4)
    control.wait_data(4)
    for instance in (a, b):
        lines = instance.output().splitlines()
        down = [line for line in lines if "WARNING dashstream.backplane" in line and "is down" in line]
        assert len(down) == 1, down  # the outage is told once, not once per retry
        assert len(lines) < 40, lines
    return epoch, answer, data, control


def test_redis_restarted_with_its_data_the_numbering_goes_on_without_a_gap(fleet, recorders):
    f = fleet(*PUBLISH, persist=True)
    epoch, answer, data, control = outage(f, recorders)
    assert (answer["seq"], answer["epoch"]) == (4, epoch)
    for recorder in (data, control):
        assert recorder.seqs() == [1, 2, 3, 4] and "gap" not in recorder.data[-1]


def test_redis_restarted_empty_starts_a_new_epoch_and_screens_get_the_gap_signal(fleet, recorders):
    f = fleet(*PUBLISH)
    epoch, answer, data, control = outage(f, recorders)
    assert answer["seq"] == 1 and answer["epoch"] != epoch
    for recorder in (data, control):
        last = recorder.data[-1]
        assert (last["seq"], last["epoch"], last.get("gap")) == (1, answer["epoch"], True)
    # a screen resuming with the old epoch gets the gap signal too
    resumed = Recorder(f"{f.instances[1].ws}/ws/sales?seq=3&epoch={epoch}")
    try:
        message = resumed.wait_data(1)[0]
        assert (message["seq"], message.get("gap")) == (1, True)
    finally:
        resumed.close()


def test_a_redis_that_stops_answering_is_noticed_within_the_socket_timeout(fleet, recorders):
    """SIGSTOP: the connection stays open but nothing comes back. The tail's XREAD BLOCK
    (2 s) has a socket timeout above it (5 s): down within that, not after a minute of
    redis-py retries; a publish meanwhile fails within the command timeout (3 s)."""
    f = fleet(*PUBLISH)
    a, b = f.instances
    control = recorders(b.ws + "/ws/sales", control=True)
    publish(a, "sales", {"variable": 1})
    control.wait_data(1)
    f.redis.proc.send_signal(signal.SIGSTOP)
    try:
        frozen = time.monotonic()
        started = time.monotonic()
        status, headers, body = publish(a, "sales", {"variable": 2})
        assert status == 503 and headers.get("Retry-After") and time.monotonic() - started < 4
        # the command is in Redis's socket buffer: it may still run, and the answer says so
        assert b"may or may not have been published" in body
        control.wait_control(lambda m: m.get("control") == "backplane" and m["state"] == "down", timeout=10)
        assert time.monotonic() - frozen < 8
    finally:
        f.redis.proc.send_signal(signal.SIGCONT)
    control.wait_control(lambda m: m.get("control") == "backplane" and m["state"] == "up", timeout=15)
    wait_until(lambda: publish(a, "sales", {"variable": 3})[0] == 200, message="publishing again")
    wait_until(lambda: control.data[-1]["variable"] == 3, message="the value after the outage")
    seqs = control.seqs()
    assert seqs == list(range(1, len(seqs) + 1)) and not any("gap" in m for m in control.data)


def test_a_stream_whose_keys_vanish_under_a_connected_tail_restarts_with_the_gap_signal(fleet, recorders):
    """FLUSHALL (or the keys' TTL) while the instances stay connected: the tail would wait
    for ids above its cursor forever; the append script tells it the epoch is new."""
    f = fleet(*PUBLISH)
    a, b = f.instances
    watcher = recorders(b.ws + "/ws/sales")
    for value in range(5):
        publish(a, "sales", {"variable": value})
    watcher.wait_data(5)
    assert f.redis.command("FLUSHALL") == "OK"
    status, _, body = publish(a, "sales", {"variable": 5})
    assert status == 200 and json.loads(body)["seq"] == 1
    message = watcher.wait_data(6)[-1]
    assert (message["seq"], message.get("gap"), message["variable"]) == (1, True, 5)
    publish(a, "sales", {"variable": 6})
    assert watcher.wait_data(7)[-1]["seq"] == 2


def test_the_lease_holder_stops_producing_while_redis_is_away_and_one_instance_resumes_after(fleet, recorders):
    f = fleet(*WALK, persist=True)
    a, b = f.instances
    watcher = recorders(a.ws + "/ws/office")
    watcher.wait_data(10)
    f.redis.kill()
    wait_until(lambda: a.health()["producers"] + b.health()["producers"] == 0, message="no walk while Redis is away")
    count = len(watcher.data)
    time.sleep(scaled(0.5))
    assert len(watcher.data) == count  # the screen keeps its last value; nothing new is made up
    f.redis.restart()
    watcher.wait_data(count + 10, timeout=20)
    one_walk(watcher.data)
    assert a.health()["producers"] + b.health()["producers"] == 1


@pytest.mark.browser
def test_the_page_says_when_the_backplane_is_down_and_keeps_its_value(fleet, page):
    f = fleet(*PUBLISH, persist=True)
    a, b = f.instances
    publish(a, "sales", {"variable": 41})
    page.goto(b.http + "/?stream=sales")
    page.wait_for_function("document.getElementById('variable').textContent === '41'")
    f.redis.kill()
    page.wait_for_selector("#backplane:not([hidden])", timeout=scaled(10) * 1000)
    assert page.text_content("#backplane").startswith("server cannot reach its data backplane since ")
    assert page.text_content("#variable") == "41" and page.evaluate("document.body.dataset.state") == "live"
    from tests.browser import snapshot

    snapshot(page, "backplane-down")
    f.redis.restart()
    page.wait_for_selector("#backplane", state="hidden", timeout=scaled(15) * 1000)
    wait_until(lambda: publish(a, "sales", {"variable": 42})[0] == 200, message="publishing again")
    page.wait_for_function("document.getElementById('variable').textContent === '42'")
    assert page.is_hidden("#gap")


# --- options -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, named", [
    (["--backplane", "http://127.0.0.1:6379/0"], "--backplane"),
    (["--backplane", "redis://127.0.0.1:6379/x"], "--backplane"),
])
def test_a_bad_backplane_url_exits_2_naming_the_option(args, named):
    assert_refused_option(args, named)


def test_an_instance_started_while_redis_is_away_serves_and_joins_when_it_comes(start_server, recorders):
    from tests.services import RedisServer

    redis = RedisServer()
    try:
        server = start_server(*PUBLISH, "--publish-token", "fleet-token", "--backplane", redis.url)
        assert http_get(server.http + "/readyz")[0] == 503
        watcher = recorders(server.ws + "/ws/sales", control=True)
        watcher.wait_control(lambda m: m.get("control") == "backplane" and m["state"] == "down")
        redis.start()
        watcher.wait_control(lambda m: m.get("control") == "backplane" and m["state"] == "up", timeout=15)
        assert publish(server, "sales", {"variable": 1})[0] == 200
        assert watcher.wait_data(1)[0]["seq"] == 1
    finally:
        redis.stop()
