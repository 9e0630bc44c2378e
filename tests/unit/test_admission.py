"""Unit tests for ``dashstream.edge.admission`` and its options: pure logic, no server.

The 9 mutants left alive on purpose (mutmut 3.8.1, no test could tell them apart):
``address.split("%", 1)[0]`` with no limit or a limit of 2 (the first piece is the same);
``strict=None`` and ``popitem(last=None)`` for ``False`` (both only read for truth);
``_Bucket.refused`` starting at 1 or None instead of 0 (a new bucket holds ``burst`` >= 1
tokens, so its first take always admits and resets the count before anything reads it); and
``environ.get("QUERY_STRING", "")`` defaulting to None (twice: spelled out and left out) or
"XXXX" (``parse_qs`` of None is ``{}``, and "XXXX" names no ``token``)."""

from __future__ import annotations

import inspect

import pytest

from dashstream.config.options import parse_config
from dashstream.edge.admission import (
    CAPACITY_RETRY_AFTER,
    Admission,
    Capacity,
    HandshakeRateLimiter,
    OriginPattern,
    OriginPolicy,
    Refusal,
    check_token_text,
    client_key,
    presented_tokens,
    token_matches,
)
from dashstream.edge.forwarded import ProxyPolicy
from dashstream.ops.log_output import without_query

pytestmark = pytest.mark.timeout(10)


@pytest.fixture(autouse=True)
def cold_client_key_cache():
    """``client_key`` is cached for the life of the process: without this, a test that asks
    for an address some earlier test (or an earlier run in the same process, as mutmut's
    stats and clean runs before it forks each mutant) already asked for gets the cached
    answer and checks nothing."""
    client_key.cache_clear()
    yield
    client_key.cache_clear()


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- origins ------------------------------------------------------------------------------

ALLOWLIST = ("https://dash.example.com", "http://localhost:8080", "*.example.org", "https://*.secure.net", "null")


@pytest.mark.parametrize("origin, allowed", [
    ("https://dash.example.com", True),
    ("HTTPS://Dash.Example.COM", True),  # scheme and host are case-insensitive
    ("https://dash.example.com:443", True),  # the default port, spelled out
    ("http://dash.example.com", False),  # exact origins include the scheme
    ("https://dash.example.com:8443", False),
    ("https://dash.example.com.evil.com", False),
    ("https://evildash.example.com", False),
    ("http://localhost:8080", True),
    ("http://localhost", False),
    ("https://a.example.org", True),  # scheme-less wildcard: any scheme
    ("http://a.b.example.org", True),
    ("https://example.org", False),  # subdomains only
    ("https://badexample.org", False),
    ("https://a.example.org:8443", False),  # default port unless the pattern names one
    ("https://x.secure.net", True),
    ("http://x.secure.net", False),  # scheme-aware wildcard
    ("null", True),
    ("not an origin", False),
    ("", False),
])
def test_origin_allowlist(origin, allowed):
    assert OriginPolicy(ALLOWLIST).allows(origin) is allowed


def test_without_an_allowlist_every_origin_is_allowed():
    policy = OriginPolicy()
    assert policy.allows("https://anything.example") and policy.allows("null") and policy.allows(None)


def test_missing_origin_is_admitted_even_with_an_allowlist():
    # Browsers always send Origin; its absence means a non-browser client (see OriginPolicy).
    assert OriginPolicy(["https://dash.example.com"]).allows(None)


def test_null_is_only_admitted_when_listed():
    assert not OriginPolicy(["https://dash.example.com"]).allows("null")


@pytest.mark.parametrize("text, complaint", [
    ("*", "leave --allowed-origin out"),
    ("", "leave --allowed-origin out"),
    ("https://dash.example.com/", "no path"),
    ("https://dash.example.com/app", "no path"),
    ("dash.example.com", "needs its scheme"),
    ("https://", "not an origin"),
    ("https://*", "not an origin"),
    ("https://exa mple.com", "not an origin"),
    ("https://example.com:99999", "port out of range"),
])
def test_bad_origin_patterns_are_explained(text, complaint):
    with pytest.raises(ValueError, match=complaint):
        OriginPattern.parse(text)


def test_origin_pattern_complaints_read_in_full():
    with pytest.raises(ValueError) as wildcard:
        OriginPattern.parse("*")
    assert str(wildcard.value) == ("leave --allowed-origin out to allow every origin; "
                                   "give an origin like https://dash.example.com")
    with pytest.raises(ValueError) as broken:
        OriginPattern.parse("https://exa mple.com")
    assert str(broken.value) == ("not an origin: 'https://exa mple.com'; expected https://host[:port], "
                                 "*.example.com or null")


@pytest.mark.parametrize("port", ["0", "65536"])
def test_an_origin_port_outside_1_to_65535_is_refused(port):
    with pytest.raises(ValueError) as refused:
        OriginPattern.parse(f"https://dash.example.com:{port}")
    assert str(refused.value) == f"port out of range in 'https://dash.example.com:{port}'"


@pytest.mark.parametrize("port", [1, 65535])
def test_the_ends_of_the_port_range_are_origins(port):
    assert OriginPattern.parse(f"https://dash.example.com:{port}").port == port
    assert OriginPolicy([f"https://dash.example.com:{port}"]).allows(f"https://dash.example.com:{port}")


# --- token ----------------------------------------------------------------------------------


@pytest.mark.parametrize("query, authorization, expected", [
    ("token=abc", None, ["abc"]),
    ("seq=3&token=a%2Fb&epoch=x", None, ["a/b"]),
    ("", "Bearer abc", ["abc"]),
    ("", "bearer   abc ", ["abc"]),
    ("", "Basic YWJj", []),
    ("", "Bearer", []),
    ("token=", None, [""]),
    ("token=a&token=b", "Bearer c", ["a", "b", "c"]),
])
def test_presented_tokens(query, authorization, expected):
    assert presented_tokens(query, authorization) == expected


def test_token_matches_needs_an_exact_candidate():
    assert token_matches("s3cret", ["nope", "s3cret"])
    assert not token_matches("s3cret", ["s3cre", "s3crett", "S3CRET", ""])
    assert not token_matches("s3cret", [])
    assert not token_matches("s3cret", ["s3crét"])  # non-ASCII input is compared, not raised on
    assert token_matches("s3cret", ["s3cret", "nope"])  # a later miss does not undo a match


def test_a_token_must_be_printable_ascii_and_the_complaint_never_echoes_it():
    assert check_token_text("a-Z_0.9~!") == "a-Z_0.9~!"
    for bad in ("", "has space", "tab\t", "caf\u00e9", "new\nline"):
        with pytest.raises(ValueError) as refused:
            check_token_text(bad)
        assert str(refused.value) == "must be printable ASCII without spaces (e.g. secrets.token_urlsafe(24))"


# --- rate limiter ----------------------------------------------------------------------------


def test_rate_limiter_allows_a_burst_then_the_rate():
    clock = FakeClock()
    limiter = HandshakeRateLimiter(rate=2, burst=3, clock=clock)
    assert [limiter.take("10.0.0.1")[0] for _ in range(3)] == [0, 0, 0]
    wait = limiter.take("10.0.0.1")[0]
    assert wait == pytest.approx(0.5)
    assert limiter.take("10.0.0.2")[0] == 0  # another address has its own bucket
    clock.advance(0.5)
    assert limiter.take("10.0.0.1")[0] == 0
    assert limiter.take("10.0.0.1")[0] > 0


def test_a_refusal_after_a_partial_refill_waits_only_for_the_rest():
    clock = FakeClock()
    limiter = HandshakeRateLimiter(rate=2, burst=1, clock=clock)
    assert limiter.take("10.0.0.1") == (0.0, 0)
    clock.advance(0.25)  # half a token back
    wait, refusals = limiter.take("10.0.0.1")
    assert wait == pytest.approx(0.25) and refusals == 1


@pytest.mark.parametrize("rate, burst", [(0, 1), (-1, 1), (1, 0), (0, 0)])
def test_a_limiter_needs_a_positive_rate_and_a_burst_of_one_or_more(rate, burst):
    with pytest.raises(ValueError) as refused:
        HandshakeRateLimiter(rate=rate, burst=burst)
    assert str(refused.value) == "rate must be > 0 and burst >= 1"


def test_only_the_first_refusal_in_a_row_is_loud():
    clock = FakeClock()
    limiter = HandshakeRateLimiter(rate=1, burst=1, clock=clock)
    assert limiter.take("a") == (0, 0)
    assert [limiter.take("a")[1] for _ in range(3)] == [1, 2, 3]
    clock.advance(1)
    assert limiter.take("a") == (0, 0)
    assert limiter.take("a")[1] == 1
    admission = Admission(max_connections=10, handshake_rate=1, handshake_burst=1, clock=clock)
    admission.check(environ())
    assert [admission.check(environ()).quiet for _ in range(3)] == [False, True, True]


def test_refused_attempts_do_not_dig_a_deeper_hole():
    clock = FakeClock()
    limiter = HandshakeRateLimiter(rate=1, burst=1, clock=clock)
    limiter.take("a")[0]
    for _ in range(100):
        assert limiter.take("a")[0] == pytest.approx(1.0, abs=0.01)
    clock.advance(1.0)
    assert limiter.take("a")[0] == 0


def test_rate_limiter_forgets_idle_addresses():
    clock = FakeClock()
    limiter = HandshakeRateLimiter(rate=10, burst=50, clock=clock)
    for n in range(1000):
        limiter.take(f"10.0.{n // 256}.{n % 256}")[0]
    assert len(limiter) == 1000
    clock.advance(5.0)  # burst / rate: every bucket is full again, so it is forgotten
    limiter.take("192.0.2.1")[0]
    assert len(limiter) == 1


def test_past_the_cap_the_least_recently_used_address_is_forgotten():
    clock = FakeClock()
    limiter = HandshakeRateLimiter(rate=1, burst=1, max_clients=2, clock=clock)
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):  # each spends its one token
        assert limiter.take(address) == (0.0, 0)
    assert len(limiter) == 2
    assert limiter.take("10.0.0.3")[1] == 1  # the newest is remembered: refused
    assert limiter.take("10.0.0.1") == (0.0, 0)  # the oldest was forgotten: a fresh burst


def test_the_default_cap_is_100_000_addresses():
    # The default read from the signature, not by filling 100,000 buckets (10 s on a loaded
    # machine); the test above shows what the cap does.
    assert inspect.signature(HandshakeRateLimiter).parameters["max_clients"].default == 100_000


def test_rate_limiter_memory_has_a_hard_cap():
    clock = FakeClock()
    limiter = HandshakeRateLimiter(rate=1, burst=1, max_clients=100, clock=clock)
    for n in range(10_000):
        limiter.take(f"2001:db8:{n:x}::1")[0]
    assert len(limiter) == 100


@pytest.mark.parametrize("address, key", [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("fe80::1%eth0", "fe80::/64"),
    ("192.0.2.7%x", "192.0.2.7"),  # everything from the first '%' is a zone, dropped
    ("192.0.2.7%a%b", "192.0.2.7"),
    ("not-an-ip", "not-an-ip"),
])
def test_client_key(address, key):
    assert client_key(address) == key


# --- the whole check -----------------------------------------------------------------------


def environ(**fields) -> dict:
    return {"REMOTE_ADDR": "192.0.2.1", "QUERY_STRING": "", **fields}


def test_admission_order_and_answers():
    clock = FakeClock()
    admission = Admission(allowed_origins=["https://dash.example.com"], token="tok", max_connections=1,
                          handshake_rate=1, handshake_burst=4, clock=clock)
    refused = admission.check(environ(HTTP_ORIGIN="https://evil.example"))
    assert refused.status.startswith("403")
    refused = admission.check(environ(HTTP_ORIGIN="https://dash.example.com", QUERY_STRING="token=bad"))
    assert refused.status.startswith("401") and ("WWW-Authenticate", 'Bearer realm="dashstream"') in refused.headers
    assert admission.check(environ(QUERY_STRING="token=tok")) is None  # holds the only slot
    refused = admission.check(environ(HTTP_AUTHORIZATION="Bearer tok"))
    assert refused.status.startswith("503") and ("Retry-After", str(CAPACITY_RETRY_AFTER)) in refused.headers
    refused = admission.check(environ(HTTP_AUTHORIZATION="Bearer tok"))  # fifth attempt: over the burst
    assert refused.status.startswith("429") and refused.headers == (("Retry-After", "1"),)
    admission.release()
    clock.advance(1)
    assert admission.check(environ(HTTP_AUTHORIZATION="Bearer tok")) is None


def test_each_refusal_states_its_status_reason_and_headers():
    clock = FakeClock()
    admission = Admission(allowed_origins=["https://dash.example.com"], token="tok", max_connections=1,
                          handshake_rate=1, handshake_burst=5, clock=clock)
    assert admission.check(environ(HTTP_ORIGIN="https://evil.example")) == Refusal(
        "403 Forbidden", "this Origin may not open a WebSocket here")
    assert admission.check(environ()) == Refusal(
        "401 Unauthorized", "a valid token is needed: ?token=TOKEN or 'Authorization: Bearer TOKEN'",
        (("WWW-Authenticate", 'Bearer realm="dashstream"'),))
    assert admission.check(environ(QUERY_STRING="token=tok")) is None
    assert admission.check(environ(QUERY_STRING="token=tok")) == Refusal(
        "503 Service Unavailable", "the server is at its connection limit", (("Retry-After", "5"),))
    admission.check(environ())  # the fifth handshake spends the burst
    assert admission.check(environ()) == Refusal(
        "429 Too Many Requests", "too many WebSocket handshakes from your address", (("Retry-After", "1"),))


def test_the_default_handshake_burst_is_one():
    admission = Admission(max_connections=10, handshake_rate=1, clock=FakeClock())
    assert admission.check(environ()) is None
    assert admission.check(environ()).status == "429 Too Many Requests"


def test_a_trusted_client_is_not_rate_limited_but_one_behind_a_trusted_proxy_is():
    admission = Admission(max_connections=10, handshake_rate=1, handshake_burst=1,
                          proxies=ProxyPolicy(["192.0.2.1"]), clock=FakeClock())
    for _ in range(3):
        assert admission.check(environ()) is None  # 192.0.2.1 itself is trusted
    behind = {"HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    assert admission.check(environ(**behind)) is None
    assert admission.check(environ(**behind)).status == "429 Too Many Requests"


def test_without_a_proxy_policy_no_address_is_trusted():
    admission = Admission(max_connections=10, handshake_rate=1, handshake_burst=1, clock=FakeClock())
    assert admission.check(environ(REMOTE_ADDR="127.0.0.1")) is None
    assert admission.check(environ(REMOTE_ADDR="127.0.0.1")).status == "429 Too Many Requests"


def test_capacity_counts_every_slot_taken_and_given_back():
    capacity = Capacity(2)
    assert capacity.try_acquire() and capacity.try_acquire() and not capacity.try_acquire()
    assert capacity.in_use == 2
    capacity.release()
    assert capacity.in_use == 1
    assert capacity.try_acquire() and not capacity.try_acquire()
    for _ in range(3):
        capacity.release()
    assert capacity.in_use == 0  # an extra release never goes below zero


def test_refusals_hold_no_capacity():
    admission = Admission(token="tok", max_connections=1)
    for _ in range(5):
        assert admission.check(environ()).status.startswith("401")
    assert admission.check(environ(QUERY_STRING="token=tok")) is None


def test_without_query_cuts_every_query_string():
    line = "Bad request syntax ('GET /ws/x?token=s3cret&seq=1 HTTP/1.1 extra')"
    assert "s3cret" not in without_query(line)
    assert without_query(line) == "Bad request syntax ('GET /ws/x?… HTTP/1.1 extra')"


# --- options ---------------------------------------------------------------------------------


def test_allowed_origin_repeats_and_the_command_line_replaces_the_environment():
    env = {"DASHSTREAM_ALLOWED_ORIGIN": "https://a.example.com, *.example.org ,null"}
    assert parse_config([], env).allowed_origins == ("https://a.example.com", "*.example.org", "null")
    config = parse_config(["--allowed-origin", "https://b.example.com", "--allowed-origin", "null"], env)
    assert config.allowed_origins == ("https://b.example.com", "null")
    assert parse_config([], {}).allowed_origins == ()


def test_admission_defaults():
    config = parse_config([], {})
    assert (config.token, config.handshake_rate, config.handshake_burst, config.header_timeout) == (None, 50, 1000, 10)
    assert config.trusted_proxies == ("127.0.0.0/8", "::1/128")
    assert (config.certfile, config.keyfile) == (None, None)


@pytest.mark.parametrize("args, env, named", [
    (["--allowed-origin", "dash.example.com"], {}, "--allowed-origin"),
    (["--allowed-origin", "https://dash.example.com/"], {}, "--allowed-origin"),
    ([], {"DASHSTREAM_ALLOWED_ORIGIN": "https://ok.example.com,*"}, "DASHSTREAM_ALLOWED_ORIGIN"),
    (["--token", "has space"], {}, "--token"),
    (["--token", ""], {}, "--token"),
    (["--handshake-rate", "-1"], {}, "--handshake-rate"),
    (["--handshake-burst", "0"], {}, "--handshake-burst"),
    (["--header-timeout", "0"], {}, "--header-timeout"),
    (["--certfile", "/nonexistent/cert.pem", "--keyfile", "/nonexistent/key.pem"], {}, "--certfile"),
])
def test_bad_admission_options_exit_2_naming_the_option(args, env, named, capsys):
    with pytest.raises(SystemExit) as exited:
        parse_config(args, env)
    assert exited.value.code == 2
    assert named in capsys.readouterr().err


def test_a_bad_token_is_never_echoed(capsys):
    with pytest.raises(SystemExit):
        parse_config(["--token", "my secret"], {})
    assert "my secret" not in capsys.readouterr().err

