"""The one resume-point reader (edge/subscribe_query.py) and the bounds every form shares."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashstream.edge.http import HTTPError
from dashstream.edge.subscribe_query import (
    MAX_EPOCH_LENGTH,
    MAX_SEQ_DIGITS,
    BadResume,
    event_id_resume,
    parse_query,
    resume_point,
    resume_points,
    single_resume,
)
from dashstream.streams.log import Resume

GAP = Resume(-1, "")


def test_a_point_within_the_bounds():
    assert resume_point("e1", "41") == Resume(41, "e1")
    assert resume_point("e:with:colons", "0") == Resume(0, "e:with:colons")
    assert resume_point("e" * MAX_EPOCH_LENGTH, "9" * MAX_SEQ_DIGITS) == Resume(10 ** MAX_SEQ_DIGITS - 1,
                                                                                "e" * MAX_EPOCH_LENGTH)


@pytest.mark.parametrize("epoch, seq", [
    ("e", "\u00b2"), ("e", "\u0663"), ("e", "9" * (MAX_SEQ_DIGITS + 1)), ("e", "9" * 5000), ("e", ""),
    ("e", "-1"), ("e", "+1"), ("e", " 1"), ("e", "1_0"), ("", "1"), ("e" * (MAX_EPOCH_LENGTH + 1), "1"),
])
def test_a_point_outside_the_bounds_is_refused(epoch, seq):
    with pytest.raises(BadResume):
        resume_point(epoch, seq)


def test_a_point_outside_the_bounds_says_which_part():
    with pytest.raises(BadResume) as seq:
        resume_point("e", "1" * (MAX_SEQ_DIGITS + 1))
    assert str(seq.value) == "seq must be 1 to 18 digits 0-9"
    with pytest.raises(BadResume) as epoch:
        resume_point("e" * (MAX_EPOCH_LENGTH + 1), "1")
    assert str(epoch.value) == "epoch must be 1 to 64 characters"


def test_last_event_id_outside_the_bounds_is_the_gap_signal():
    assert event_id_resume("e1:7") == Resume(7, "e1")
    for bad in ("e:" + "9" * 5000, "e:\u00b2", "e" * 500 + ":1", "7", ":7", "e:"):
        assert event_id_resume(bad) == GAP, bad
    assert event_id_resume(None) is None and event_id_resume("  ") is None


def test_websocket_forms_outside_the_bounds_are_400():
    for query in ("seq=%C2%B2&epoch=e", "seq=" + "9" * 5000 + "&epoch=e", "seq=1&epoch=" + "e" * 65):
        with pytest.raises(HTTPError) as error:
            single_resume(parse_query(query))
        assert error.value.status == "400 Bad Request"
    for text in ("a:e:\u00b2", "a:e:" + "9" * 5000, "a:" + "e" * 65 + ":1", ":e:1"):
        with pytest.raises(HTTPError) as error:
            resume_points(text, ["a"])
        assert error.value.status == "400 Bad Request" and len(error.value.reason) < 300


@given(st.text(max_size=200))
def test_any_last_event_id_is_a_resume_or_the_gap_never_an_exception(text):
    result = event_id_resume(text)
    assert result is None or isinstance(result, Resume)


@given(st.text(max_size=200))
def test_any_resume_list_is_points_or_a_400_never_another_exception(text):
    try:
        resume_points(text, ["a", "b"])
    except HTTPError as error:
        assert error.status == "400 Bad Request"
