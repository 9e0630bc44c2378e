"""Unit tests of permessage-deflate negotiation and the codec (dashstream/deflate.py)."""

from __future__ import annotations

import zlib

import pytest

from dashstream.protocol.deflate import DeflateParams, Deflater, Inflater, negotiate, parse_extensions
from dashstream.protocol.frames import Violation


def test_extension_header_parsing():
    assert parse_extensions("permessage-deflate; client_max_window_bits, x-other; a=1; B = \"2\" , ,") == [
        ("permessage-deflate", [("client_max_window_bits", None)]), ("x-other", [("a", "1"), ("b", '"2"')])]


@pytest.mark.parametrize("offer, params", [
    ("permessage-deflate", DeflateParams()),
    ("PerMessage-Deflate; client_max_window_bits", DeflateParams()),
    ("permessage-deflate; client_max_window_bits=10", DeflateParams(client_max_window_bits=10)),
    ("permessage-deflate; server_max_window_bits=12; server_no_context_takeover",
     DeflateParams(server_no_context_takeover=True, server_max_window_bits=12)),
    ("permessage-deflate; client_no_context_takeover", DeflateParams(client_no_context_takeover=True)),
    ("permessage-deflate; server_max_window_bits=\"9\"", DeflateParams(server_max_window_bits=9)),
    ("permessage-deflate; server_max_window_bits=8", DeflateParams(server_max_window_bits=9)),
    ("permessage-deflate; client_max_window_bits=15; server_max_window_bits=15", DeflateParams()),
    (", permessage-deflate; client_max_window_bits=8", DeflateParams(client_max_window_bits=9)),
    ("x-webkit-deflate-frame, permessage-deflate; bogus, permessage-deflate; client_max_window_bits=9",
     DeflateParams(client_max_window_bits=9)),  # the first acceptable offer
])
def test_acceptable_offers(offer, params):
    assert negotiate(offer) == params


@pytest.mark.parametrize("offer", [None, "", "x-other", "permessage-deflate; client_max_window_bits=abc",
                                   "permessage-deflate; server_max_window_bits",
                                   "permessage-deflate; server_max_window_bits=16",
                                   "permessage-deflate; server_max_window_bits=7",
                                   "permessage-deflate; server_max_window_bits=010",
                                   "permessage-deflate; server_no_context_takeover=1",
                                   "permessage-deflate; client_no_context_takeover=yes", "permessage-deflate; bogus",
                                   "permessage-deflate; client_max_window_bits=15; client_max_window_bits=15"])
def test_offers_that_are_declined(offer):
    assert negotiate(offer) is None


@pytest.mark.parametrize("offer, reason", [
    ("permessage-deflate; server_max_window_bits", "needs a value"),
    ("permessage-deflate; client_max_window_bits=16", "window bits must be 8-15, got '16'"),
    ("permessage-deflate; a; a", "a given twice"),
    ("permessage-deflate; zz; yy", "unknown parameter yy"),
    ("permessage-deflate; client_no_context_takeover=1", "client_no_context_takeover takes no value"),
])
def test_a_declined_offer_says_why_at_debug(caplog, offer, reason):
    with caplog.at_level("DEBUG", logger="dashstream.http"):
        assert negotiate(offer) is None
    assert caplog.messages == [f"permessage-deflate offer declined: {reason}"]


def test_responses():
    assert DeflateParams().response() == "permessage-deflate"
    assert DeflateParams(True, True, 10, 11).response() == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=10; client_max_window_bits=11")


def client_compress(messages, reset=False):
    compressor = zlib.compressobj(wbits=-15)
    out = []
    for message in messages:
        if reset:
            compressor = zlib.compressobj(wbits=-15)
        data = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        out.append(data[:-4])
    return out


@pytest.mark.parametrize("reset", [False, True])
def test_inflater_keeps_or_resets_the_client_context(reset):
    inflater = Inflater(DeflateParams(client_no_context_takeover=reset))
    messages = [b"hello hello hello", b"hello hello hello again", b"x" * 1000]
    for message, payload in zip(messages, client_compress(messages, reset)):
        assert inflater.decompress(payload, 10_000) + inflater.finish(10_000) == message


def test_inflater_never_yields_more_than_allowed():
    inflater = Inflater(DeflateParams())
    (payload,) = client_compress([b"\0" * 100_000])
    with pytest.raises(Violation) as too_big:
        inflater.decompress(payload, 1000)
    assert (too_big.value.code, too_big.value.reason) == (1009, "message too big after decompression")
    with pytest.raises(Violation):  # a limit of 0 is "nothing", not zlib's "no limit"
        Inflater(DeflateParams()).decompress(client_compress([b"ab" * 10])[0], 0)
    assert Inflater(DeflateParams()).decompress(client_compress([b"ab" * 10])[0], 20) == b"ab" * 10


@pytest.mark.parametrize("reset", [False, True])
def test_deflater_output_is_read_back_by_a_client(reset):
    deflater = Deflater(DeflateParams(server_no_context_takeover=reset, server_max_window_bits=10))
    client = zlib.decompressobj(wbits=-10)
    for message in (b"first message first message", b"first message again", "κόσμε".encode() * 40):
        compressed = deflater.compress(message)
        assert not compressed.endswith(b"\x00\x00\xff\xff")
        if reset:
            client = zlib.decompressobj(wbits=-10)
        assert client.decompress(compressed + b"\x00\x00\xff\xff") == message
    # With context takeover the second of two equal messages is smaller.
    keeper = Deflater(DeflateParams())
    first, second = keeper.compress(b"abcdefgh" * 20), keeper.compress(b"abcdefgh" * 20)
    assert len(second) < len(first)
