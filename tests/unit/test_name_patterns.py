"""Every name and token pattern refuses a trailing newline: ``$`` also matches before a final
``\\n``, so ``?screen=lobby%0A`` used to be taken as the screen ``"lobby\\n"``."""

from __future__ import annotations

import pytest

from dashstream.config import dashboard, stream_specs, walls
from dashstream.edge import admission, forwarded, subscribe_query
from dashstream.edge.http import HTTPError
from producer import keys

CASES = [
    (subscribe_query.SCREEN_NAME, "lobby"),
    (walls.WALL_NAME, "sales"),
    (stream_specs.STREAM_NAME, "office"),
    (dashboard.CURRENCY, "EUR"),
    (dashboard.LOCALE, "de-CH"),
    (keys.ENV_NAME, "DATABASE_URL"),
    (admission._TOKEN_TEXT, "s3cret"),
    (admission._ORIGIN, "https://wall.example.com"),
    (admission._PATTERN, "*.example.com"),
    (forwarded._BRACKETED, "[::1]:8080"),
    (forwarded._V4_PORT, "10.0.0.1:8080"),
]


@pytest.mark.parametrize(("pattern", "good"), CASES, ids=[good for _, good in CASES])
def test_a_name_matches_and_the_same_name_with_a_newline_does_not(pattern, good):
    assert pattern.match(good)
    assert not pattern.match(good + "\n")


def test_a_screen_name_with_a_trailing_newline_is_refused():
    assert subscribe_query.screen_name({"screen": ["lobby"]}) == "lobby"
    with pytest.raises(HTTPError, match="screen= takes a screen's name"):
        subscribe_query.screen_name({"screen": ["lobby\n"]})
