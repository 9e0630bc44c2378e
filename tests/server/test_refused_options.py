"""Options refused by the real ``python server.py``: it exits 2 at once, naming the option
(or the variable, or the file and the key), without a traceback. The rules themselves are
unit tests (tests/unit/test_dashboard.py, tests/unit/test_forwarded.py, ...)."""

from __future__ import annotations

import pytest

from tests.support import assert_refused_option


def test_a_bad_dashboard_stops_the_server_with_exit_2(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[streams.orders]\nsource = "publish"\n\n[dashboard]\n\n[[dashboard.tiles]]\n'
                      'stream = "orders"\nwarn = 9\ncrit = 3\n')
    assert_refused_option(["--config", str(config)], f"{config}: [dashboard] tile 1 ('orders'), key 'crit'")
    config.write_text('[streams.orders]\nsource = "publish"\n\n[dashbord]\n')
    assert_refused_option(["--config", str(config)], "unknown top-level key 'dashbord'")


@pytest.mark.parametrize("args, env, named", [
    (["--trusted-proxy", "10.0.0.1/8"], {}, "did you mean 10.0.0.0/8"),
    (["--trusted-proxy", "proxy.local"], {}, "--trusted-proxy"),
    (["--trusted-proxy", "none", "--trusted-proxy", "10.0.0.0/8"], {}, "--trusted-proxy none"),
    ([], {"DASHSTREAM_TRUSTED_PROXY": "10.0.0.0/33"}, "DASHSTREAM_TRUSTED_PROXY"),
])
def test_bad_trusted_proxy_options_exit_2_naming_the_option(args, env, named):
    assert_refused_option(args, named, env)
