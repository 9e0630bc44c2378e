"""``redis+sentinel://`` URLs for --backplane: the Sentinels, the master's name, the database
and the master's password; every mistake named, the password never shown."""

from __future__ import annotations

import pytest

from dashstream.backplane import parse_backplane_url
from dashstream.backplane.sentinel import SentinelTarget, is_sentinel_url, parse_sentinel_url


def test_hosts_master_and_database():
    assert parse_sentinel_url("redis+sentinel://s1:26379,s2:26380,10.0.0.3/dash/2") == SentinelTarget(
        (("s1", 26379), ("s2", 26380), ("10.0.0.3", 26379)), "dash", 2)


def test_the_database_defaults_to_0_and_a_password_is_the_masters():
    target = parse_sentinel_url("redis+sentinel://:se%2Fcret@s1:26379/dash")
    assert (target.db, target.password, target.username) == (0, "se/cret", None)
    assert parse_sentinel_url("redis+sentinel://app:pw@s1/dash/").username == "app"


def test_a_user_without_a_password_and_a_password_with_colons():
    target = parse_sentinel_url("redis+sentinel://app@s1/dash")
    assert (target.username, target.password) == ("app", None)
    target = parse_sentinel_url("redis+sentinel://app:pa:ss@s1/dash")
    assert (target.username, target.password) == ("app", "pa:ss")


def test_ports_from_1_to_65535_and_host_names_as_written():
    assert parse_sentinel_url("redis+sentinel://XS1:1,s2:65535/m").sentinels == (("XS1", 1), ("s2", 65535))
    for port in ("0", "65536"):
        with pytest.raises(ValueError) as error:
            parse_sentinel_url(f"redis+sentinel://s1:{port}/m")
        assert str(error.value) == f"'redis+sentinel://s1:{port}/m': 's1:{port}' is not HOST:PORT of a Sentinel"


@pytest.mark.parametrize("database", ["2X", " 2", "X2"])
def test_the_database_is_digits_only(database):
    with pytest.raises(ValueError) as error:
        parse_sentinel_url(f"redis+sentinel://s1/dash/{database}")
    assert str(error.value).endswith(f"the last part is the database number, got {database!r}")


def test_ipv6_sentinels():
    assert parse_sentinel_url("redis+sentinel://[::1]:26379,[::1]/m").sentinels == (("::1", 26379), ("::1", 26379))


@pytest.mark.parametrize("url, says", [
    ("redis+sentinel:///dash/0", "names no Sentinel"),
    ("redis+sentinel://s1:26379", "names no master"),
    ("redis+sentinel://s1:26379//0", "names no master"),
    ("redis+sentinel://s1:notaport/dash", "'s1:notaport' is not HOST:PORT"),
    ("redis+sentinel://s1:70000/dash", "is not HOST:PORT"),
    ("redis+sentinel://s1/dash/zero", "the last part is the database number, got 'zero'"),
])
def test_mistakes_are_named(url, says):
    with pytest.raises(ValueError) as error:
        parse_sentinel_url(url)
    assert says in str(error.value)


def test_the_password_is_never_in_an_error():
    with pytest.raises(ValueError) as error:
        parse_sentinel_url("redis+sentinel://:hunter2@s1:bad/dash")
    assert str(error.value) == "'redis+sentinel://***@s1:bad/dash': 's1:bad' is not HOST:PORT of a Sentinel"


def test_the_backplane_option_takes_it_and_keeps_the_password_out_of_its_repr():
    pytest.importorskip("redis")
    url = parse_backplane_url("redis+sentinel://:hunter2@s1:26379,s2:26379/dash/0")
    assert is_sentinel_url(url) and str(url).endswith("/dash/0")
    assert "hunter2" not in repr(url)
    with pytest.raises(ValueError, match="names no master"):
        parse_backplane_url("redis+sentinel://s1:26379")
