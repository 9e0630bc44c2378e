"""A streams file whose sources need drivers that are not installed: one error names every
missing driver, its extra and the streams that need it, and the one pip line for all."""

from __future__ import annotations

import sys

import pytest

from dashstream.config.stream_specs import StreamConfigError, load_stream_file, missing_drivers_error
from producer.base import Driver

TWO = """\
[streams.orders_db]
source = "sql"
url = "postgresql://dashboard@127.0.0.1:5432/shop"
query = "SELECT 1 AS variable"

[streams.orders]
source = "redis"
url = "redis://127.0.0.1:6379/0"
channel = "orders"

[streams.office]
source = "random-walk"
"""


def refused(path) -> str:
    with pytest.raises(StreamConfigError) as error:
        load_stream_file(str(path))
    return str(error.value)


def test_every_missing_driver_is_named_in_one_error(tmp_path, monkeypatch):
    for module in ("psycopg2", "redis"):
        monkeypatch.setitem(sys.modules, module, None)  # what find_spec sees for a package not installed
    path = tmp_path / "streams.toml"
    path.write_text(TWO)
    assert refused(path) == (f"{path}: needs psycopg2 (dashstream[sql]) for 'orders_db', "
                             "redis (dashstream[redis]) for 'orders': pip install 'dashstream[sql,redis]'")


def test_a_driver_needed_by_several_streams_is_named_once_with_all_of_them(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)
    path = tmp_path / "streams.toml"
    path.write_text(TWO.replace("postgresql://dashboard@127.0.0.1:5432/shop", "sqlite:///x.db")
                    + '\n[streams.regions]\nsource = "redis"\nurl = "redis://h"\npattern = "orders.*"\n')
    assert refused(path) == (f"{path}: needs redis (dashstream[redis]) for 'orders', 'regions': "
                             "pip install 'dashstream[redis]'")


def test_the_pypi_name_is_shown_where_it_is_not_the_modules():
    error = missing_drivers_error("f.toml", [("sensors", Driver("zmq", "zmq", "pyzmq"))])
    assert str(error) == "f.toml: needs pyzmq (dashstream[zmq]) for 'sensors': pip install 'dashstream[zmq]'"


def test_other_errors_still_come_first_and_alone(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)
    path = tmp_path / "streams.toml"
    path.write_text(TWO + '\n[streams.bad]\nsource = "random-walk"\nmin_wait = -1\n')
    assert "stream 'bad', key 'min_wait'" in refused(path)


def test_with_every_driver_there_the_file_loads(tmp_path):
    pytest.importorskip("psycopg2")
    pytest.importorskip("redis")
    path = tmp_path / "streams.toml"
    path.write_text(TWO)
    assert [spec.name for spec in load_stream_file(str(path))] == ["orders_db", "orders", "office"]
