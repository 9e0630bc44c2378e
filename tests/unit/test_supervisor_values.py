"""The supervisor's value path (streams/supervisor.py), the one every source now takes: the
field check, the log's refusal counted as a rejection, a quiet supervisor, a stop from within."""

from __future__ import annotations

import logging
import types

import pytest

from dashstream.messages import BadFields
from dashstream.streams.supervisor import Supervisor
from producer.base import DOWN, STALE, STARTING, UP, Health, Rejected, Source

pytestmark = pytest.mark.timeout(10)


class Listed(Source):
    kind = "listed"

    def __init__(self, events=()):
        self.events_ = list(events)
        self.closed = 0

    def events(self):
        yield from self.events_

    def close(self):
        self.closed += 1


def supervisor(source=None, **options):
    record = types.SimpleNamespace(values=[], health=[], rejected=[], threads=[])

    def spawn(function):
        record.threads.append(function)
        return types.SimpleNamespace(kill=lambda: None)

    made = Supervisor("office", source or Listed(), on_value=options.pop("on_value", record.values.append),
                      on_health=lambda *state: record.health.append(state), on_rejected=record.rejected.append,
                      spawn=spawn, sleep=lambda seconds: None, monotonic=lambda: 10.0, wall_clock=lambda: 1000.0,
                      **options)
    return made, record


def test_a_plain_dict_is_passed_as_it_is_and_any_other_mapping_as_a_checked_copy():
    made, record = supervisor()
    value = {"variable": 1}
    made._handle(value)
    assert record.values[0] is value
    made._handle(types.MappingProxyType({"variable": 2}))
    assert record.values[1] == {"variable": 2} and type(record.values[1]) is dict


@pytest.mark.parametrize("event, reason", [
    ({"value": 1}, "no 'variable' field"),
    ({"variable": 1, "seq": 4}, "field 'seq' is set by the server"),
    (types.MappingProxyType({"variable": 1, "ts": 4}), "field 'ts' is set by the server"),
])
def test_a_value_that_fails_the_field_check_is_rejected_not_passed(event, reason):
    made, record = supervisor()
    made._handle(event)
    assert record.values == [] and record.rejected == [reason] and made.rejected == 1


def test_a_value_the_log_cannot_encode_is_a_rejection_counted_once_and_the_source_stays_up(caplog):
    caplog.set_level(logging.WARNING, "dashstream.supervisor")

    def refuse(fields):
        raise BadFields("numbers must be finite")

    made, record = supervisor(on_value=refuse)
    made._handle({"variable": float("nan")})
    assert record.rejected == ["numbers must be finite"] and made.rejected == 1 and made.state == UP
    assert [r.getMessage() for r in caplog.records] == [
        "stream 'office': rejected a value (1 so far; logged at most once a minute): numbers must be finite"]


def test_a_value_brings_a_down_source_up_and_restarts_the_stale_clock_only_when_there_is_one():
    made, record = supervisor(stale_after=5.0)
    made._last_value = 0.0
    made._handle({"variable": 1})
    assert made.state == UP and made._last_value == 10.0 and record.health[-1] == (UP, "", 1000.0)
    clockless, _ = supervisor()
    clockless._last_value = 0.0
    clockless._handle({"variable": 1})
    assert clockless.state == UP and clockless._last_value == 0.0  # nothing reads it


def test_a_quiet_supervisor_logs_up_and_stale_at_debug_but_failures_as_always(caplog):
    caplog.set_level(logging.DEBUG, "dashstream.supervisor")
    made, _ = supervisor(announce=False, stale_after=1.0)
    made._handle(Health(UP))
    made._set(STALE, "no new value for 1 s")
    made._handle({"variable": 1})
    assert {r.levelno for r in caplog.records} == {logging.DEBUG}
    made._failed(RuntimeError("boom"))
    assert caplog.records[-1].levelno == logging.WARNING and made.state == DOWN
    loud, _ = supervisor()
    caplog.clear()
    loud._handle(Health(UP))
    loud._set(STALE, "no new value for 1 s")
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.WARNING]


def test_the_first_state_is_down_starting():
    made, record = supervisor()
    made.start()
    assert record.health == [(DOWN, STARTING, 1000.0)] and len(record.threads) == 1


def test_a_supervisor_stopped_by_its_own_value_ends_its_loop_after_that_value():
    source = Listed([Health(UP), {"variable": 1}, {"variable": 2}])
    made, record = supervisor(source)

    def stop_on_first(fields):
        record.values.append(fields)
        made.stop()

    made.on_value = stop_on_first
    made.start()
    record.threads[0]()  # returns: no second value, no retry
    assert record.values == [{"variable": 1}] and source.closed == 1


def test_a_broken_callback_is_logged_with_its_name_and_the_supervisor_goes_on(caplog):
    caplog.set_level(logging.ERROR, "dashstream.supervisor")

    def broken_health(state, reason, since):
        raise RuntimeError("bug")

    class Nameless:
        def __call__(self, reason):
            raise RuntimeError("bug")

    made, _ = supervisor()
    made.on_health = broken_health
    made.on_rejected = Nameless()
    made._handle(Health(UP))
    made._handle(Rejected("bad"))
    assert made.state == UP and made.rejected == 1
    assert [r.getMessage() for r in caplog.records] == ["stream 'office': broken_health failed",
                                                         "stream 'office': a callback failed"]
    assert all(record.exc_info for record in caplog.records)


def test_a_value_from_outside_brings_the_source_up_with_no_reason():
    made, record = supervisor()
    made._set(DOWN, "gone")
    made.note_value()
    made.note_value()
    assert record.health == [(DOWN, "gone", 1000.0), (UP, "", 1000.0)]


def test_the_shared_streams_supervisor_is_named_after_the_spec_and_uses_the_given_spawn_and_sleep(monkeypatch):
    from dashstream import runtime
    from dashstream.config.stream_specs import spec_from_table
    from dashstream.streams.stream import SharedStream
    from dashstream.streams.supervisor import source_supervisor

    spec = spec_from_table("w", {"source": "random-walk", "shared": True}, "test")
    stream = SharedStream("w", "random-walk")

    def spawn(function):
        raise AssertionError("not started here")

    def sleep(seconds):
        pass

    given = source_supervisor(spec, stream, spawn=spawn, sleep=sleep)
    assert (given.name, given.spawn, given.sleep) == ("w", spawn, sleep)
    default = source_supervisor(spec, stream)
    assert (default.spawn, default.sleep) == (runtime.spawn, runtime.sleep)
    assert default.on_rejected == stream.count_rejected and default.stale_after == spec.stale_after
