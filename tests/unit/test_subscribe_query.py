"""Unit tests of which streams a connection asks for (dashstream/edge/subscribe_query.py); the
resume points' bounds: test_resume_points.py.

The two mutants left alive on purpose (mutmut 3.8.1, 215 of 217 killed): ``wants_control``'s
default ``["0"]`` as ``["XX0XX"]``, neither of which is a yes, and ``parse_query``'s shortcut
for an empty query string turned off (``parse_qs("")`` is ``{}`` too: the shortcut only saves
its work)."""

from __future__ import annotations

import pytest

from dashstream.edge.http import HTTPError
from dashstream.edge.subscribe_query import (
    event_id_resume,
    multi_stream_targets,
    parse_query,
    recent_count,
    resume_points,
    screen_name,
    single_resume,
    stream_names,
    wants_control,
)
from dashstream.streams.log import MAX_STREAMS, Resume

KNOWN = ["a", "b", "c", "default"]


def refused(function, *args) -> HTTPError:
    with pytest.raises(HTTPError) as caught:
        function(*args)
    return caught.value


def test_control_flag():
    assert wants_control(parse_query("control=1")) and wants_control(parse_query("control=true"))
    assert wants_control(parse_query("control=YES"))
    assert not wants_control(parse_query("")) and not wants_control(parse_query("control=0"))
    assert not wants_control(parse_query("control=on"))


def test_screen_name():
    assert screen_name(parse_query("")) is None and screen_name(parse_query("control=1")) is None
    assert screen_name(parse_query("screen=lobby")) == "lobby"
    assert screen_name(parse_query("screen=Hall_2-b&screen=other")) == "Hall_2-b"  # the first one
    assert screen_name(parse_query("screen=" + "x" * 64)) == "x" * 64  # not configured: still accepted
    for bad in ("", "a%20b", "x" * 65, "caf%C3%A9", "lo.bby"):
        error = refused(screen_name, parse_query("screen=" + bad))
        assert error.status == "400 Bad Request"
        assert error.reason.startswith("screen= takes a screen's name (1-64 letters, digits, '_' or '-'), got ")
    too_long = refused(screen_name, parse_query("screen=" + "y" * 200)).reason
    assert too_long.endswith(", got " + repr("y" * 80))  # the name echoed cut to 80 characters
    assert refused(screen_name, parse_query("screen=a%20b")).reason.endswith("got 'a b'")


def test_single_resume():
    assert single_resume(parse_query("")) is None
    assert single_resume(parse_query("seq=41&epoch=e1")) == Resume(41, "e1")
    assert single_resume(parse_query("seq=0&epoch=e1")) == Resume(0, "e1")
    for bad in ("seq=4", "epoch=e1", "seq=x&epoch=e1"):
        error = refused(single_resume, parse_query(bad))
        assert (error.status, error.reason) == ("400 Bad Request", "resume needs both seq (an integer) and epoch"), bad
    for bad in ("seq=-1&epoch=e1", "seq=1&epoch="):
        error = refused(single_resume, parse_query(bad))
        assert error.reason == "resume needs both seq (an integer >= 0) and epoch", bad


def test_stream_names():
    assert stream_names("a,b,c", KNOWN) == ["a", "b", "c"]
    assert stream_names(" a , b ", KNOWN) == ["a", "b"]
    assert stream_names(",".join(["a"]), KNOWN) == ["a"]
    unknown = refused(stream_names, "a,nope", KNOWN)
    assert (unknown.status, unknown.reason) == ("404 Not Found", "no stream named 'nope'")
    twice = refused(stream_names, "a,b,a", KNOWN)
    assert (twice.status, twice.reason) == ("400 Bad Request", "a stream is named twice in streams=")
    for bad in ("", "a,", ",a", "a,,b"):
        error = refused(stream_names, bad, KNOWN)
        assert (error.status, error.reason) == (
            "400 Bad Request", "streams= needs a comma-separated list of stream names, e.g. streams=a,b"), bad


def test_at_most_max_streams():
    many = [f"s{i}" for i in range(MAX_STREAMS + 1)]
    assert len(stream_names(",".join(many[:MAX_STREAMS]), many)) == MAX_STREAMS
    error = refused(stream_names, ",".join(many), many)
    assert error.status.startswith("400") and str(MAX_STREAMS) in error.reason


def test_resume_points():
    assert resume_points("", ["a"]) == {}
    assert resume_points("a:e1:5,b:e:2:7", ["a", "b"]) == {"a": Resume(5, "e1"), "b": Resume(7, "e:2")}
    for bad, word in [("a:e1", "NAME:EPOCH:SEQ"), ("a::5", "NAME:EPOCH:SEQ"), (":e:5", "NAME:EPOCH:SEQ"),
                      ("a:e:x", "NAME:EPOCH:SEQ"), ("a:e:-1", "NAME:EPOCH:SEQ"), ("c:e:1", "not in streams="),
                      ("a:e:1,a:e:2", "twice")]:
        error = refused(resume_points, bad, ["a", "b"])
        assert error.status.startswith("400") and word in error.reason, bad


def test_multi_stream_targets():
    query = parse_query("streams=b,a&resume=a:E:3")
    assert multi_stream_targets(query, KNOWN) == [("b", None), ("a", Resume(3, "E"))]
    assert multi_stream_targets(parse_query("streams=a"), KNOWN) == [("a", None)]  # no resume= at all
    missing = refused(multi_stream_targets, parse_query("x=1"), KNOWN)
    assert (missing.status, missing.reason) == ("400 Bad Request",
                                                "/ws needs ?streams=a,b,c (or connect to /ws/NAME for one stream)")
    # A blank streams= is a bad list, not a missing one (blank values are kept).
    assert "comma-separated" in refused(multi_stream_targets, parse_query("streams="), KNOWN).reason


def test_event_id_resume():
    assert event_id_resume(None) is None and event_id_resume("  ") is None
    assert event_id_resume("e1:41") == Resume(41, "e1")
    assert event_id_resume(" e:1:41 ") == Resume(41, "e:1")
    for junk in ("41", "e1:", "e1:x", ":5"):
        assert event_id_resume(junk) == Resume(-1, ""), junk  # a resume that cannot be honoured


@pytest.mark.parametrize("query, count", [("", 1), ("history=1", 1), ("history=100", 100), ("history=5000", 5000)])
def test_history_query(query, count):
    assert recent_count(parse_query(query)) == count


@pytest.mark.parametrize("text", ["0", "-3", "ten", "", "2.5"])
def test_a_bad_history_query_is_refused_with_its_reason(text):
    with pytest.raises(HTTPError) as refused:
        recent_count(parse_query("history=" + text))
    assert refused.value.status == "400 Bad Request"
    assert refused.value.reason == (f"history= takes how many recent entries to send (an integer >= 1), "
                                    f"got {text!r}")


def test_a_single_resume_says_which_bound_it_broke():
    cases = [
        ("seq=" + "1" * 19 + "&epoch=e1", "resume needs both seq (an integer >= 0) and epoch: "
                                          "seq must be 1 to 18 digits 0-9"),
        ("seq=1&epoch=" + "e" * 65, "resume needs both seq (an integer >= 0) and epoch: "
                                    "epoch must be 1 to 64 characters"),
        ("seq=x&epoch=" + "e" * 64, "resume needs both seq (an integer) and epoch"),  # the epoch is fine
        ("seq=-x&epoch=e1", "resume needs both seq (an integer) and epoch"),  # not a negative number
        ("seq=-12&epoch=e1", "resume needs both seq (an integer >= 0) and epoch"),
    ]
    for query, reason in cases:
        error = refused(single_resume, parse_query(query))
        assert (error.status, error.reason) == ("400 Bad Request", reason), query


def test_a_bad_resume_item_is_named_up_to_80_characters():
    error = refused(resume_points, ":e:5", ["a"])
    assert error.reason == "resume= takes NAME:EPOCH:SEQ items, got ':e:5' (no stream name)"
    long = "n" * 100
    error = refused(resume_points, long + ":e", [long])
    assert error.reason == f"resume= takes NAME:EPOCH:SEQ items, got {'n' * 80!r} (seq must be 1 to 18 digits 0-9)"
    error = refused(resume_points, long + ":e:1", ["a"])
    assert error.reason == f"resume= names {'n' * 80!r}, which is not in streams="
    error = refused(resume_points, f"{long}:e:1,{long}:e:2", [long])
    assert error.reason == f"resume= names {'n' * 80!r} twice"
