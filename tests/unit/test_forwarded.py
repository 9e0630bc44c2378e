"""``dashstream.forwarded``: --trusted-proxy ranges and the client behind a proxy (no I/O)."""

from __future__ import annotations

import ipaddress

import pytest

from dashstream.edge.forwarded import (
    DEFAULT_TRUSTED_PROXIES,
    Client,
    ProxyPolicy,
    parse_address,
    parse_network,
    rate_limited,
)

pytestmark = pytest.mark.timeout(10)

NGINX = "127.0.0.1"  # the default policy trusts loopback: a proxy on the same machine
OFFICE = "203.0.113.7"
EVIL = "198.51.100.66"


@pytest.fixture
def default() -> ProxyPolicy:
    return ProxyPolicy()


# --- parsing --trusted-proxy values --------------------------------------------------------


@pytest.mark.parametrize("text, network", [
    ("10.0.0.0/8", "10.0.0.0/8"),
    (" 192.168.1.0/24 ", "192.168.1.0/24"),
    ("10.1.2.3", "10.1.2.3/32"),
    ("10.1.2.3/32", "10.1.2.3/32"),
    ("0.0.0.0/0", "0.0.0.0/0"),
    ("::1", "::1/128"),
    ("2001:DB8::/32", "2001:db8::/32"),
    ("[2001:db8::5]", "2001:db8::5/128"),
    ("::ffff:10.0.0.1", "10.0.0.1/32"),
])
def test_trusted_proxy_values_parse_to_networks(text, network):
    assert parse_network(text) == ipaddress.ip_network(network)


@pytest.mark.parametrize("text, reason", [
    ("", "empty value; give an address or range such as 10.0.0.0/8 or ::1"),
    ("   ", "empty value"),
    ("localhost", "host names are not resolved"),
    ("10.0.0.0/33", "not an IP address or CIDR range"),
    ("10.0.0/8x", "not an IP address or CIDR range"),
    ("300.1.2.3", "not an IP address or CIDR range"),
    ("10.0.0.1/8", "did you mean 10.0.0.0/8?"),
    ("2001:db8::1/32", "did you mean 2001:db8::/32?"),
    ("fe80::1%eth0", "zone index"),
    ("unknown", "not an IP address"),
    ("10.0.0.1:80", "and a proxy is trusted whatever its port"),
    ("[10.0.0.1", "not an IP address"),
    ("10.0.0.1]", "not an IP address"),
])
def test_bad_trusted_proxy_values_are_refused_with_a_reason(text, reason):
    with pytest.raises(ValueError) as error:
        parse_network(text)
    assert reason in str(error.value)


def test_the_whole_reason_reads_as_the_command_line_prints_it():
    with pytest.raises(ValueError) as empty:
        parse_network("")
    assert str(empty.value) == "empty value; give an address or range such as 10.0.0.0/8 or ::1"
    with pytest.raises(ValueError) as name:
        parse_network("localhost")
    assert str(name.value) == ("not an IP address or CIDR range: 'localhost' (host names are not resolved, "
                               "and a proxy is trusted whatever its port)")


def test_the_default_trusts_loopback_only():
    policy = ProxyPolicy()
    assert [str(n) for n in policy.networks] == ["127.0.0.0/8", "::1/128"]
    assert DEFAULT_TRUSTED_PROXIES == ("127.0.0.0/8", "::1/128")
    for address in ("127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1"):
        assert policy.trusts(parse_address(address)), address
    for address in ("10.0.0.1", "::2", "128.0.0.1", "126.255.255.255"):
        assert not policy.trusts(parse_address(address)), address
    assert not policy.trusts(None)


def test_none_trusts_nobody_and_networks_may_be_given_parsed():
    assert ProxyPolicy(["none"]).networks == ()
    assert ProxyPolicy([" NONE "]).networks == ()
    assert ProxyPolicy(["none", "10.0.0.0/8"]).networks == (ipaddress.ip_network("10.0.0.0/8"),)
    assert ProxyPolicy([ipaddress.ip_network("10.0.0.0/8")]).trusts(parse_address("10.9.9.9"))
    with pytest.raises(ValueError):
        ProxyPolicy(["10.0.0.1/8"])


# --- addresses as proxies write them --------------------------------------------------------


@pytest.mark.parametrize("text, address", [
    ("1.2.3.4", "1.2.3.4"),
    (" 1.2.3.4 ", "1.2.3.4"),
    ("1.2.3.4:5678", "1.2.3.4"),
    ("2001:db8::1", "2001:db8::1"),
    ("2001:DB8:0:0::1", "2001:db8::1"),
    ("[2001:db8::1]", "2001:db8::1"),
    ("[2001:db8::1]:443", "2001:db8::1"),
    ("::ffff:1.2.3.4", "1.2.3.4"),
    ("[::ffff:1.2.3.4]:80", "1.2.3.4"),
    ("fe80::1%eth0", "fe80::1"),
    ("fe80::1%eth0%x", "fe80::1"),
    ("::1", "::1"),
])
def test_addresses_in_the_forms_proxies_write(text, address):
    assert str(parse_address(text)) == address


@pytest.mark.parametrize("text", [
    "", "unknown", "for=1.2.3.4", '"1.2.3.4"', "_hidden", "example.com", "1.2.3", "1.2.3.4.5",
    "[1.2.3.4]", "[1.2.3.4]:80", "[2001:db8::1", "2001:db8::1]:80", "[2001:db8::1]:", "1.2.3.4:",
    "1.2.3.4:123456", "1.2.3.4:x", "[2001:db8::1]:x", "1.2.3.4 5.6.7.8", "256.1.1.1", "::g",
    "[::1]:80:80", "x1.2.3.4:80",
])
def test_garbage_is_not_an_address(text):
    assert parse_address(text) is None


# --- resolving the client ---------------------------------------------------------------------


def test_headers_from_an_untrusted_peer_are_ignored_however_plausible(default):
    # A remote client forging its way past the rate limit or into the logs: not believed.
    for forged in (NGINX, "10.0.0.1", "127.0.0.1, 127.0.0.1", OFFICE):
        assert default.resolve(EVIL, forged, forged) == Client(EVIL, trusted=False, forwarded=False)
    assert default.client_address(EVIL, "1.1.1.1") == EVIL


def test_a_trusted_peer_without_headers_is_itself_the_client(default):
    assert default.resolve(NGINX) == Client(NGINX, trusted=True, forwarded=False)
    assert default.resolve("::1", "", "") == Client("::1", trusted=True)
    assert default.resolve("::ffff:127.0.0.1") == Client("127.0.0.1", trusted=True)


def test_one_proxy_forwards_its_client(default):
    assert default.resolve(NGINX, OFFICE) == Client(OFFICE, trusted=False, forwarded=True)


def test_the_right_most_untrusted_entry_wins_over_anything_the_client_wrote(default):
    # The client sent "X-Forwarded-For: 127.0.0.1, 10.9.9.9"; nginx appended its address.
    assert default.client_address(NGINX, f"127.0.0.1, 10.9.9.9, {EVIL}") == EVIL
    assert default.resolve(NGINX, f"127.0.0.1,{EVIL}").trusted is False


def test_several_trusted_proxies_are_walked_through():
    policy = ProxyPolicy(["127.0.0.1", "10.0.0.0/8"])
    # client -> edge proxy 10.0.0.5 -> 10.0.0.9 -> local nginx -> server
    assert policy.client_address(NGINX, f"forged, {OFFICE}, 10.0.0.5, 10.0.0.9") == OFFICE
    # the same, each hop writing its own header line
    assert policy.client_address(NGINX, ["forged", OFFICE, "10.0.0.5", "10.0.0.9"]) == OFFICE
    # an untrusted hop in the middle is where the walk ends
    assert policy.client_address(NGINX, f"{OFFICE}, 192.0.2.1, 10.0.0.9") == "192.0.2.1"


def test_when_every_entry_is_trusted_the_left_most_is_the_client():
    policy = ProxyPolicy(["127.0.0.1", "10.0.0.0/8"])
    assert policy.resolve(NGINX, "10.0.0.1, 10.0.0.2") == Client("10.0.0.1", trusted=True, forwarded=True)
    assert rate_limited(policy.resolve(NGINX, "10.0.0.1, 10.0.0.2")) is False


def test_an_unparsable_entry_stops_the_walk_at_the_last_address_vouched_for():
    policy = ProxyPolicy(["127.0.0.1", "10.0.0.0/8"])
    # the address it stops at stands in for a client nobody could name: never exempt
    assert policy.resolve(NGINX, f"{OFFICE}, unknown, 10.0.0.2") == Client("10.0.0.2", trusted=False, forwarded=True)
    assert policy.resolve(NGINX, f"{OFFICE}, for=192.0.2.1, 10.0.0.2").address == "10.0.0.2"
    # garbage right at the end: nothing is vouched for beyond the peer itself
    assert policy.resolve(NGINX, f"{OFFICE}, unknown") == Client(NGINX, trusted=False, forwarded=False)
    assert policy.resolve(NGINX, "for=192.0.2.1") == Client(NGINX, trusted=False, forwarded=False)
    assert rate_limited(policy.resolve(NGINX, "unknown"))


def test_empty_entries_and_header_lines_are_skipped(default):
    assert default.client_address(NGINX, f",{OFFICE},, ,") == OFFICE
    assert default.client_address(NGINX, ["", OFFICE, " "]) == OFFICE
    assert default.client_address(NGINX, [f"{EVIL}", "", OFFICE]) == OFFICE
    assert default.resolve(NGINX, " , ,") == Client(NGINX, trusted=True)
    assert default.resolve(NGINX, []) == Client(NGINX, trusted=True)


def test_ipv6_clients_and_proxies_with_and_without_brackets_and_ports(default):
    assert default.client_address("::1", "2001:db8::7") == "2001:db8::7"
    assert default.client_address("::1", "[2001:db8::7]:51234") == "2001:db8::7"
    assert default.client_address(NGINX, "[2001:db8::7], [::1]:8080") == "2001:db8::7"
    assert default.client_address("::ffff:127.0.0.1", "::ffff:203.0.113.7") == OFFICE
    assert default.client_address(NGINX, f"{OFFICE}:40000") == OFFICE
    # an IPv6 peer that is not trusted: its own address, normalised
    assert default.client_address("2001:DB8::1", OFFICE) == "2001:db8::1"


def test_x_real_ip_is_used_only_without_a_usable_x_forwarded_for(default):
    assert default.resolve(NGINX, None, OFFICE) == Client(OFFICE, trusted=False, forwarded=True)
    assert default.resolve(NGINX, " , ", f"[{'2001:db8::9'}]:1") == Client("2001:db8::9", forwarded=True)
    assert default.client_address(NGINX, "192.0.2.1", OFFICE) == "192.0.2.1"
    assert default.client_address(NGINX, None, OFFICE) == OFFICE
    assert default.client_address(NGINX, x_real_ip=OFFICE) == OFFICE
    assert default.resolve(NGINX, None, "unknown") == Client(NGINX, trusted=True)
    assert default.resolve(NGINX, None, "127.0.0.2") == Client("127.0.0.2", trusted=True, forwarded=True)
    # garbage in X-Forwarded-For does not fall back to X-Real-IP: the proxy did write a header
    assert default.resolve(NGINX, "unknown", OFFICE) == Client(NGINX, trusted=False)


def test_an_unparsable_peer_is_kept_as_it_is_and_trusted_by_nobody(default):
    assert default.resolve("", OFFICE) == Client("", trusted=False)
    assert default.resolve("/run/dashstream.sock", OFFICE) == Client("/run/dashstream.sock")


def test_trusting_nobody_ignores_every_header_and_exempts_nobody():
    policy = ProxyPolicy(["none"])
    client = policy.resolve(NGINX, OFFICE, OFFICE)
    assert client == Client(NGINX, trusted=False, forwarded=False)
    assert rate_limited(client)


def test_rate_limit_applies_to_forwarded_remote_clients_but_not_to_the_local_machine(default):
    assert rate_limited(default.resolve(NGINX)) is False  # a local benchmark or conformance suite
    assert rate_limited(default.resolve("::1")) is False
    assert rate_limited(default.resolve(NGINX, OFFICE)) is True  # a screen behind the local nginx
    assert rate_limited(default.resolve(EVIL)) is True  # a remote client, direct
    assert rate_limited(default.resolve(EVIL, NGINX)) is True  # ... claiming to be local


def test_from_environ_reads_the_wsgi_names(default):
    environ = {"REMOTE_ADDR": NGINX, "HTTP_X_FORWARDED_FOR": f"{EVIL}, {OFFICE}", "HTTP_X_REAL_IP": "192.0.2.9"}
    assert default.from_environ(environ) == Client(OFFICE, forwarded=True)
    assert default.from_environ({"REMOTE_ADDR": NGINX, "HTTP_X_REAL_IP": "192.0.2.9"}).address == "192.0.2.9"
    assert default.from_environ({}) == Client("")


def test_from_environ_works_the_client_out_once_per_request(default):
    environ = {"REMOTE_ADDR": NGINX, "HTTP_X_FORWARDED_FOR": OFFICE}
    first = default.from_environ(environ)
    environ["HTTP_X_FORWARDED_FOR"] = EVIL  # read once: what the request came with stands
    assert default.from_environ(environ) is first and first.address == OFFICE


# --- the option and the admission rule --------------------------------------------------------


def test_trusted_proxy_option_from_the_command_line_and_the_environment():
    from dashstream.config.options import parse_config

    assert parse_config([], {}).trusted_proxies == ("127.0.0.0/8", "::1/128")
    env = {"DASHSTREAM_TRUSTED_PROXY": "10.0.0.0/8, 192.0.2.7"}
    assert parse_config([], env).trusted_proxies == ("10.0.0.0/8", "192.0.2.7/32")
    # the command line replaces the environment's list, and the default
    assert parse_config(["--trusted-proxy", "::1"], env).trusted_proxies == ("::1/128",)
    assert parse_config(["--trusted-proxy", "none"], {}).trusted_proxies == ("none",)
    assert ProxyPolicy(parse_config(["--trusted-proxy", "none"], {}).trusted_proxies).networks == ()


def test_admission_limits_the_forwarded_client_and_exempts_the_local_machine():
    from dashstream.edge.admission import Admission

    now = [0.0]
    admission = Admission(max_connections=100, handshake_rate=1, handshake_burst=2,
                          proxies=ProxyPolicy(), clock=lambda: now[0])

    def status(peer: str, forwarded: str | None = None) -> str | None:
        environ = {"REMOTE_ADDR": peer, "QUERY_STRING": ""}
        if forwarded is not None:
            environ["HTTP_X_FORWARDED_FOR"] = forwarded
        refusal = admission.check(environ)
        if refusal is None:
            admission.release()
            return None
        return refusal.status

    # the local machine (a benchmark, a conformance suite, nginx's own health check): never limited
    assert [status(NGINX) for _ in range(50)] == [None] * 50
    # a screen behind the local nginx: limited by its own address, however nginx is shared
    assert [status(NGINX, OFFICE) for _ in range(3)] == [None, None, "429 Too Many Requests"]
    assert status(NGINX, "203.0.113.8") is None  # another office is not held back by this one
    # a remote client cannot forge its way out of the limit
    assert [status(EVIL, NGINX) for _ in range(3)] == [None, None, "429 Too Many Requests"]
    now[0] += 1.0
    assert status(NGINX, OFFICE) is None


def test_admission_without_a_proxy_policy_trusts_no_header_and_exempts_nobody():
    from dashstream.edge.admission import Admission

    admission = Admission(max_connections=100, handshake_rate=1, handshake_burst=1, clock=lambda: 0.0)
    assert admission.check({"REMOTE_ADDR": NGINX, "HTTP_X_FORWARDED_FOR": OFFICE}) is None
    assert admission.check({"REMOTE_ADDR": NGINX, "HTTP_X_FORWARDED_FOR": "192.0.2.1"}).status.startswith("429")


def test_a_peer_without_forwarding_headers_gets_the_same_client_each_time_and_the_store_is_bounded():
    policy = ProxyPolicy(["10.0.0.0/8"])
    first = policy.resolve("10.1.2.3")
    assert first == Client("10.1.2.3", trusted=True) and policy.resolve("10.1.2.3", "", "") is first
    assert policy.resolve("::ffff:192.0.2.1") == Client("192.0.2.1")  # normalised, as before
    forwarded = policy.resolve("10.1.2.3", "192.0.2.9")
    assert forwarded == Client("192.0.2.9", forwarded=True) and policy.resolve("10.1.2.3") is first
    for n in range(4096 - len(policy._direct) + 1):  # one more peer than it keeps
        policy.resolve(f"192.0.{n // 256}.{n % 256}")
    assert 1 <= len(policy._direct) <= 4096
    assert policy.resolve("10.1.2.3") == first
