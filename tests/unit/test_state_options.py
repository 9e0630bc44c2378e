"""``--state`` and ``--state-flush`` in the one options table (``dashstream/config/options.py``)."""

from __future__ import annotations

import pytest

from dashstream.config.options import parse_config

pytestmark = pytest.mark.timeout(30)


def test_state_is_off_by_default_and_set_from_the_command_line_or_the_environment():
    assert (parse_config([], {}).state, parse_config([], {}).state_flush) == (None, 1.0)
    assert parse_config(["--state", "/var/lib/dashstream/state.db"], {}).state == "/var/lib/dashstream/state.db"
    config = parse_config([], {"DASHSTREAM_STATE": "/data/s.db", "DASHSTREAM_STATE_FLUSH": "0.25"})
    assert (config.state, config.state_flush) == ("/data/s.db", 0.25)


def test_an_empty_state_turns_off_what_the_environment_set():
    # The Docker image sets DASHSTREAM_STATE; `docker run -e DASHSTREAM_STATE=` undoes it.
    assert parse_config([], {"DASHSTREAM_STATE": ""}).state is None
    assert parse_config(["--state", ""], {"DASHSTREAM_STATE": "/data/s.db"}).state is None


def test_state_with_the_memory_backplane_is_fine_and_with_redis_refused(capsys):
    assert parse_config(["--state", "s.db", "--backplane", "memory://"], {}).state == "s.db"
    with pytest.raises(SystemExit) as exited:
        parse_config(["--state", "s.db", "--backplane", "redis://127.0.0.1:6379/0"], {})
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "python server.py: error: --state cannot be combined with --backplane: with a backplane Redis keeps every "
        "shared stream's numbering and history; drop one of the two")


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_a_flush_interval_must_be_a_positive_number(value, capsys):
    with pytest.raises(SystemExit):
        parse_config(["--state-flush", value], {})
    assert "argument --state-flush" in capsys.readouterr().err
