"""dashstream.supervisor with fakes: no eventlet, no clock, no waiting.

The supervisor takes spawn, sleep, the clocks and the random generator as arguments; here
spawn only records the loop, the test runs it on its own thread of control, sleep records
each pause and moves a fake clock, and a scripted source says what happens when.
"""

from __future__ import annotations

import logging
import random

import pytest

from dashstream.streams.supervisor import (
    BURST,
    MAX_REASON,
    RATE,
    REJECT_LOG_INTERVAL,
    SLICE,
    Backoff,
    Pacing,
    Supervisor,
    describe_error,
)
from producer.base import DOWN, STALE, UP, Health, Rejected, Source

pytestmark = pytest.mark.timeout(10)

WALL = 1_800_000_000.0


class StopLoop(BaseException):
    """Ends a loop under test (a BaseException, as GreenletExit is: the supervisor lets it through)."""


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL + self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Advance:
    """In a script: time passes inside the source (a query, a wait for a message)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class Thread:
    def __init__(self, function) -> None:
        self.function = function
        self.killed = False

    def kill(self) -> None:
        self.killed = True


class ScriptedSource(Source):
    """Each call of events() plays the next run: events are yielded, Advance moves the
    clock, an exception is raised; a run that reaches its end returns (which the
    supervisor counts as a failure too)."""

    kind = "scripted"

    def __init__(self, clock: Clock, runs: list[list], secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.clock = clock
        self.runs = list(runs)
        self.closed = 0
        self._secrets = secrets

    def events(self):
        if not self.runs:
            raise StopLoop
        for step in self.runs.pop(0):
            if isinstance(step, Advance):
                self.clock.advance(step.seconds)
            elif isinstance(step, BaseException):
                raise step
            else:
                yield step

    def close(self) -> None:
        self.closed += 1

    @property
    def secrets(self):
        return self._secrets


class Harness:
    """A supervisor wired to fakes, recording everything it reports."""

    def __init__(self, runs: list[list], stale_after: float | None = None, rng_value: float = 0.5,
                 secrets: tuple[str, ...] = (), max_sleeps: int = 50, source: Source | None = None,
                 **options) -> None:
        self.clock = Clock()
        self.source = source or ScriptedSource(self.clock, runs, secrets)
        self.values: list[dict] = []
        self.health: list[tuple[str, str, float]] = []
        self.rejected: list[str] = []
        self.sleeps: list[float] = []
        self.threads: list[Thread] = []
        self.max_sleeps = max_sleeps
        rng = random.Random()
        rng.random = lambda: rng_value  # type: ignore[method-assign]
        self.supervisor = Supervisor(
            "office", self.source, on_value=self.values.append,
            on_health=lambda state, reason, since: self.health.append((state, reason, since)),
            on_rejected=self.rejected.append, stale_after=stale_after, spawn=self.spawn, sleep=self.sleep,
            monotonic=self.clock.monotonic, wall_clock=self.clock.wall,
            backoff=options.pop("backoff", None) or Backoff(rng=rng), **options)

    def spawn(self, function) -> Thread:
        thread = Thread(function)
        self.threads.append(thread)
        return thread

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if len(self.sleeps) >= self.max_sleeps:
            raise StopLoop
        self.clock.advance(seconds)

    def run(self) -> "Harness":
        """start(), then run the source's loop until the script ends."""
        self.supervisor.start()
        with pytest.raises(StopLoop):
            self.threads[0].function()
        return self

    @property
    def states(self) -> list[tuple[str, str]]:
        return [(state, reason) for state, reason, _ in self.health]


# --- states --------------------------------------------------------------------------------


def test_starts_down_then_up_when_the_source_connects_and_values_reach_on_value():
    h = Harness([[Health(UP), {"variable": 1}, Advance(1), {"variable": 2, "unit": "x"}, StopLoop()]]).run()
    assert h.states == [(DOWN, "starting"), (UP, "")]
    assert h.values == [{"variable": 1}, {"variable": 2, "unit": "x"}]
    assert h.health[0][2] == WALL + 100.0  # since: when the state began (wall clock)
    assert h.supervisor.status() == {"state": UP, "reason": "", "since": WALL + 100.0, "rejected": 0}


def test_a_value_alone_also_means_up():
    h = Harness([[{"variable": 1}, StopLoop()]]).run()
    assert h.states == [(DOWN, "starting"), (UP, "")]


def test_a_failure_is_down_with_its_text_the_source_is_closed_and_run_again_after_a_pause():
    h = Harness([[Health(UP), Advance(2), ConnectionError("Error 111 connecting to 127.0.0.1:6379.")],
                 [Health(UP), {"variable": 5}, StopLoop()]], rng_value=0.5).run()
    assert h.states == [(DOWN, "starting"), (UP, ""), (DOWN, "Error 111 connecting to 127.0.0.1:6379."), (UP, "")]
    assert h.health[2][2] == WALL + 102.0  # since: when it failed
    assert h.source.closed == 1
    assert h.sleeps == [0.5]  # the first retry: uniform in [0, 1 s)
    assert h.values == [{"variable": 5}]


def test_a_source_that_ends_is_a_failure_too():
    h = Harness([[Health(UP)], [StopLoop()]]).run()
    assert h.states[-1] == (DOWN, "the source ended")
    assert h.sleeps and h.source.closed == 1


def test_health_down_from_the_source_is_its_state_without_a_retry_and_up_clears_it():
    h = Harness([[Health(UP), {"variable": 1}, Health(DOWN, "the query returned no rows"),
                  Health(DOWN, "the query returned no rows"), Health(UP), StopLoop()]]).run()
    assert h.states == [(DOWN, "starting"), (UP, ""), (DOWN, "the query returned no rows"), (UP, "")]
    assert h.sleeps == [] and h.source.closed == 0


def test_a_changed_reason_is_reported_but_since_stays_when_the_state_does_not_change():
    h = Harness([[Health(DOWN, "a"), Advance(5), Health(DOWN, "b"), StopLoop()]]).run()
    assert h.states == [(DOWN, "starting"), (DOWN, "a"), (DOWN, "b")]
    assert h.health[1][2] == h.health[2][2] == WALL + 100.0


def test_an_unknown_event_is_a_failure_naming_it():
    h = Harness([["junk"], [StopLoop()]]).run()
    assert h.states[-1][0] == DOWN and "'junk'" in h.states[-1][1]
    h = Harness([[Health(STALE)], [StopLoop()]]).run()
    assert h.states[-1][0] == DOWN and "Health(state='stale'" in h.states[-1][1]


def test_passwords_are_scrubbed_from_every_reason():
    h = Harness([[Health(DOWN, "auth failed for s3cret"), ValueError("bad url redis://:s3cret@host")],
                 [StopLoop()]], secrets=("s3cret",)).run()
    assert [reason for _, reason in h.states[1:]] == ["auth failed for ***", "bad url redis://:***@host"]


# --- backoff -------------------------------------------------------------------------------


def test_retries_back_off_exponentially_to_the_cap_forever():
    h = Harness([[ConnectionError("refused")]] * 9 + [[StopLoop()]], rng_value=0.999).run()
    assert [round(delay, 2) for delay in h.sleeps] == [1.0, 2.0, 4.0, 7.99, 15.98, 29.97, 29.97, 29.97, 29.97]
    assert h.source.closed == 9
    # The same failure again and again is one state change, not nine.
    assert h.states == [(DOWN, "starting"), (DOWN, "refused")]


def test_a_run_that_produced_a_value_starts_the_backoff_again():
    h = Harness([[ConnectionError("x")], [ConnectionError("x")], [ConnectionError("x")],
                 [{"variable": 1}, ConnectionError("x")], [StopLoop()]], rng_value=0.999).run()
    assert [round(delay) for delay in h.sleeps] == [1, 2, 4, 1]


def test_a_run_that_stayed_up_long_enough_starts_the_backoff_again_and_a_short_one_does_not():
    h = Harness([[ConnectionError("x")], [ConnectionError("x")],
                 [Health(UP), Advance(29.9), ConnectionError("x")],  # up, but not for stable_after
                 [Health(UP), Advance(30.0), ConnectionError("x")],  # up for stable_after: reset
                 [StopLoop()]], rng_value=0.999).run()
    assert [round(delay) for delay in h.sleeps] == [1, 2, 4, 1]


def test_health_down_during_a_run_forgets_that_it_was_up():
    h = Harness([[ConnectionError("x")], [ConnectionError("x")],
                 [Health(UP), Advance(20), Health(DOWN, "no rows"), Health(UP), Advance(20), ConnectionError("x")],
                 [StopLoop()]], rng_value=0.999).run()
    assert [round(delay) for delay in h.sleeps] == [1, 2, 4]  # 20 s + 20 s is not 30 s up


def test_backoff_windows_floor_and_reset():
    rng = random.Random()
    rng.random = lambda: 0.0  # type: ignore[method-assign]
    backoff = Backoff(first=1.0, cap=30.0, floor=0.05, rng=rng)
    assert [backoff.window() for _ in range(1)] == [1.0]
    assert backoff.next_delay() == 0.05  # never zero: no busy loop
    assert backoff.window() == 2.0
    for _ in range(20):
        backoff.next_delay()
    assert backoff.window() == 30.0 and backoff.failures == 5  # stops counting at the cap
    backoff.reset()
    assert backoff.window() == 1.0 and backoff.failures == 0


def test_backoff_jitter_is_spread_over_the_whole_window():
    backoff = Backoff(rng=random.Random(7))
    delays = []
    for _ in range(200):
        backoff.reset()
        delays.append(backoff.next_delay())
    assert min(delays) < 0.1 and max(delays) > 0.9 and all(0.05 <= delay < 1.0 for delay in delays)


# --- stale ---------------------------------------------------------------------------------


def test_stale_after_silence_and_up_again_with_the_next_value():
    h = Harness([], stale_after=10.0)
    h.supervisor.start()
    watcher = h.threads[1]
    assert watcher.function and h.supervisor.state == DOWN
    assert h.supervisor.check_stale() == 10.0  # not up: nothing to watch
    h.supervisor._handle(Health(UP))
    h.clock.advance(4)
    assert h.supervisor.check_stale() == 6.0  # due in six seconds
    h.clock.advance(6)
    assert h.supervisor.check_stale() == 10.0
    assert h.states[-1] == (STALE, "no new value for 10 s")
    assert h.health[-1][2] == WALL + 110.0
    h.supervisor._handle(Health(UP))  # connected is not a value: still stale
    assert h.supervisor.state == STALE
    h.clock.advance(1)
    h.supervisor._handle({"variable": 3})
    assert h.states[-1] == (UP, "") and h.values == [{"variable": 3}]
    h.clock.advance(9.5)
    assert h.supervisor.check_stale() == pytest.approx(0.5)
    assert h.supervisor.state == UP


def test_the_stale_clock_waits_at_least_the_floor():
    h = Harness([], stale_after=10.0)
    h.supervisor.start()
    h.supervisor._handle(Health(UP))
    h.clock.advance(9.999)
    assert h.supervisor.check_stale() == 0.05


def test_up_again_after_an_outage_restarts_the_stale_clock():
    h = Harness([], stale_after=10.0)
    h.supervisor.start()
    h.supervisor._handle({"variable": 1})
    h.supervisor._set(DOWN, "gone")
    h.clock.advance(60)
    h.supervisor._handle(Health(UP))
    h.clock.advance(5)
    assert h.supervisor.check_stale() == 5.0 and h.supervisor.state == UP


def test_the_stale_watcher_loops_on_check_stale():
    h = Harness([], stale_after=2.0, max_sleeps=4)
    h.supervisor.start()
    h.supervisor._handle(Health(UP))
    with pytest.raises(StopLoop):
        h.threads[1].function()
    assert h.sleeps == [2.0, 2.0, 2.0, 2.0]
    assert (STALE, "no new value for 2 s") in h.states


def test_no_stale_watcher_without_stale_after():
    h = Harness([])
    h.supervisor.start()
    assert len(h.threads) == 1


# --- rejected values -----------------------------------------------------------------------


def test_rejected_values_are_counted_passed_on_and_logged_at_most_once_a_minute(caplog):
    caplog.set_level(logging.WARNING, "dashstream.supervisor")
    h = Harness([[Health(UP), Rejected("malformed JSON"), {"no": "variable"}, {"variable": 1, "seq": 4},
                  Advance(REJECT_LOG_INTERVAL - 1), Rejected("again"), Advance(1), Rejected("a minute later"),
                  {"variable": 2}, StopLoop()]]).run()
    assert h.rejected == ["malformed JSON", "no 'variable' field", "field 'seq' is set by the server", "again",
                          "a minute later"]
    assert h.supervisor.rejected == 5 and h.supervisor.status()["rejected"] == 5
    assert h.values == [{"variable": 2}] and h.supervisor.state == UP
    logged = [record.getMessage() for record in caplog.records if "rejected" in record.getMessage()]
    assert len(logged) == 2
    assert "(1 so far" in logged[0] and "malformed JSON" in logged[0]
    assert "(5 so far" in logged[1] and "a minute later" in logged[1]


def test_rejections_without_an_on_rejected_callback_are_still_counted():
    h = Harness([[Rejected("x"), StopLoop()]])
    h.supervisor.on_rejected = None
    h.run()
    assert h.supervisor.rejected == 1 and h.rejected == []


# --- nothing escapes -----------------------------------------------------------------------


def test_a_failing_callback_is_logged_and_the_source_goes_on(caplog):
    h = Harness([[Health(UP), {"variable": 1}, {"variable": 2}, StopLoop()]])

    def broken(fields):
        raise RuntimeError("stream bug")

    h.supervisor.on_value = broken
    h.run()
    assert h.supervisor.state == UP and h.sleeps == []
    assert sum("failed" in record.getMessage() for record in caplog.records if record.exc_info) == 2


def test_a_failing_close_is_logged_and_the_retries_go_on(caplog):
    h = Harness([[ValueError("x")], [ValueError("x")], [StopLoop()]])

    def broken_close():
        raise OSError("close failed s3cret")

    h.source.close = broken_close
    h.source._secrets = ("s3cret",)
    h.run()
    assert len(h.sleeps) == 2
    messages = [record.getMessage() for record in caplog.records]
    assert any("closing source scripted failed: close failed ***" in message for message in messages)


def test_a_source_whose_describe_fails_still_gets_its_log_line(caplog):
    caplog.set_level(logging.INFO, "dashstream.supervisor")
    h = Harness([[Health(UP), StopLoop()]])
    h.source.describe = lambda: 1 / 0
    h.run()
    assert any("source ScriptedSource is up" in record.getMessage() for record in caplog.records)


def test_failures_are_logged_as_warnings_once_per_reason_and_up_as_info(caplog):
    caplog.set_level(logging.DEBUG, "dashstream.supervisor")
    Harness([[ValueError("a")], [ValueError("a")], [ValueError("b")], [Health(UP), ValueError("a")],
             [StopLoop()]]).run()
    failures = [(record.levelno, record.getMessage().rsplit(": ", 1)[1])
                for record in caplog.records if "failed" in record.getMessage()]
    assert failures == [(logging.WARNING, "a"), (logging.DEBUG, "a"), (logging.WARNING, "b"), (logging.WARNING, "a")]
    assert [record.levelno for record in caplog.records if record.getMessage().endswith("is up")] == [logging.INFO]
    assert any(record.getMessage().startswith("stream 'office': retrying in ") for record in caplog.records)


def test_a_stale_stream_is_logged_as_a_warning(caplog):
    h = Harness([], stale_after=1.0)
    h.supervisor.start()
    h.supervisor._handle(Health(UP))
    h.clock.advance(1)
    h.supervisor.check_stale()
    assert any(record.levelno == logging.WARNING and "is stale: no new value for 1 s" in record.getMessage()
               for record in caplog.records)


# --- stopping ------------------------------------------------------------------------------


def test_stop_kills_both_loops_and_closes_the_source():
    h = Harness([], stale_after=5.0)
    h.supervisor.start()
    h.supervisor.stop()
    assert [thread.killed for thread in h.threads] == [True, True]
    assert h.source.closed == 1
    # A loop that was still running ends at its next step without another run or report.
    before = list(h.health)
    h.threads[0].function()
    h.threads[1].function()
    assert h.health == before and h.source.runs == []


def test_a_failure_after_stop_is_not_reported():
    h = Harness([])

    class Late(ScriptedSource):
        def events(inner):
            h.supervisor.stop()
            raise ConnectionError("closed under us")
            yield  # pragma: no cover - a generator

    h = Harness([], source=Late(Clock(), []))
    h.supervisor.start()
    h.threads[0].function()
    assert h.states == [(DOWN, "starting")] and h.sleeps == []


def test_events_after_stop_are_not_handled():
    h = Harness([[{"variable": 1}, {"variable": 2}, StopLoop()]])

    def stop_on_first(fields):
        h.values.append(fields)
        h.supervisor.stop()

    h.supervisor.on_value = stop_on_first
    h.supervisor.start()
    h.threads[0].function()
    assert h.values == [{"variable": 1}]


def test_a_thread_handle_that_fails_to_die_does_not_stop_the_stop(caplog):
    h = Harness([], stale_after=5.0)
    h.supervisor.start()

    def refuse():
        raise RuntimeError("no")

    h.threads[0].kill = refuse
    h.supervisor.stop()
    assert h.threads[1].killed and h.source.closed == 1


# --- passive sources (publish) -------------------------------------------------------------


class Passive(Source):
    kind = "publish"
    passive = True


def test_a_passive_source_is_up_at_once_runs_no_loop_and_goes_stale_without_publishes():
    h = Harness([], stale_after=30.0, source=Passive())
    h.supervisor.start()
    assert h.states == [(UP, "")]
    assert len(h.threads) == 1  # the stale clock only
    h.clock.advance(30)
    h.supervisor.check_stale()
    assert h.supervisor.state == STALE
    h.supervisor.note_value()
    assert h.supervisor.state == UP
    h.clock.advance(29)
    assert h.supervisor.check_stale() == 1.0


# --- describe_error ------------------------------------------------------------------------


def test_describe_error_is_one_line_of_bounded_length():
    assert describe_error(ValueError("a\n  b\tc ")) == "a b c"
    assert describe_error(TimeoutError()) == "TimeoutError"
    assert len(describe_error(ValueError("x" * 1000))) == MAX_REASON == 300


# --- log lines name the stream -------------------------------------------------------------


def test_every_log_line_names_the_stream_and_the_source(caplog):
    caplog.set_level(logging.DEBUG, "dashstream.supervisor")
    h = Harness([[Health(UP), Rejected("bad"), {"variable": 1}, ValueError("boom")], [StopLoop()]],
                stale_after=1.0)

    def broken(fields):
        raise RuntimeError("stream bug")

    def broken_close():
        raise OSError("cannot close")

    h.supervisor.on_value = broken
    h.source.close = broken_close
    h.run()
    h.supervisor._handle(Health(UP))
    h.clock.advance(1)
    h.supervisor.check_stale()
    h.threads[1].kill = lambda: 1 / 0
    h.supervisor.stop()
    assert [record.getMessage() for record in caplog.records] == [
        "stream 'office': source scripted is up",
        "stream 'office': rejected a value (1 so far; logged at most once a minute): bad",
        "stream 'office': broken failed",
        "stream 'office': source scripted failed: boom",
        "stream 'office': closing source scripted failed: cannot close",
        "stream 'office': retrying in 0.50 s",
        "stream 'office': source scripted is up",
        "stream 'office': source scripted is stale: no new value for 1 s",
        "stream 'office': could not stop a source thread",
        "stream 'office': closing source scripted failed: cannot close",
    ]


def test_a_callback_without_a_name_is_called_a_callback_in_the_log(caplog):
    class Callable:
        def __call__(self, fields):
            raise RuntimeError("x")

    h = Harness([[{"variable": 1}, StopLoop()]])
    h.supervisor.on_value = Callable()
    h.run()
    assert "stream 'office': a callback failed" in [record.getMessage() for record in caplog.records]


# --- pacing: a fast source never holds the hub, and its newest value wins -------------------


def test_a_paced_loop_gives_the_hub_a_turn_after_each_slice_of_work():
    # Each value costs 0.5 ms of the source's time (parsing a buffered message): after a
    # 2 ms slice without a switch, the loop sleeps 0 (the hub's turn), so every few values.
    steps = [Health(UP)] + [step for n in range(10) for step in (Advance(SLICE / 4), {"variable": n})]
    h = Harness([[*steps, StopLoop()]], paced=True).run()
    assert h.values == [{"variable": n} for n in range(10)]  # within the burst: all published
    assert h.sleeps.count(0) == 2  # after values 3 and 7 (4 x 0.5 ms each)


def test_an_unpaced_loop_keeps_its_hot_path_without_turns():
    steps = [step for n in range(10) for step in (Advance(SLICE), {"variable": n})]
    h = Harness([[*steps, StopLoop()]]).run()
    assert 0 not in h.sleeps and len(h.values) == 10


def test_values_past_the_burst_are_coalesced_and_the_newest_is_published_when_the_rate_allows():
    coalesced = []
    steps = [{"variable": n} for n in range(BURST + 50)]
    h = Harness([[*steps, StopLoop()]], paced=True, on_coalesced=lambda: coalesced.append(1)).run()
    # The burst passes whole; the 50 after it arrive within the same instant: one waits,
    # 49 are replaced by a newer one (counted), and the flusher publishes the newest.
    assert h.values == [{"variable": n} for n in range(BURST)]
    assert h.supervisor.coalesced == len(coalesced) == 49
    flusher = h.threads[-1]
    flusher.function()
    assert h.sleeps[-1] == pytest.approx(1 / RATE)  # waited for one token
    assert h.values[-1] == {"variable": BURST + 49}
    assert h.supervisor._flusher is None


def test_while_a_value_waits_for_the_flusher_newer_ones_replace_it_in_order():
    h = Harness([[*[{"variable": n} for n in range(BURST + 1)], StopLoop()]], paced=True).run()
    assert len(h.values) == BURST and h.supervisor.coalesced == 0  # one waits, none replaced yet
    h.clock.advance(1.0)  # the bucket is full again, but the flusher has not run: the order holds
    h.supervisor._handle({"variable": "newer"})
    assert len(h.values) == BURST and h.supervisor.coalesced == 1
    h.threads[-1].function()
    assert h.values[-1] == {"variable": "newer"}


def test_pacing_refills_at_the_rate_up_to_the_burst():
    clock = Clock()
    pacing = Pacing(clock.monotonic, rate=10.0, burst=2)
    assert pacing.take() and pacing.take() and not pacing.take()
    assert pacing.wait() == pytest.approx(0.1)
    clock.advance(0.1)
    assert pacing.take() and not pacing.take()
    clock.advance(100.0)
    assert pacing.take() and pacing.take() and not pacing.take()  # never more than the burst
