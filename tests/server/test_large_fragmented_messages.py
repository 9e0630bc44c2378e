"""The fragment bound follows --max-message-size: with a raised limit, a 4 MiB message in
64-byte fragments (Autobahn 9.3.1 / 9.4.1) is echoed whole; with the default, 4,096
fragments stay the most a message may have."""

from __future__ import annotations

import pytest

from tests.server.raw_clients import RawWebSocket
from tests.support import scaled
from tests.ws_frames import fragmented

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("opcode", [0x1, 0x2])
def test_four_mebibytes_in_64_byte_fragments_with_a_raised_limit(start_server, opcode):
    server = start_server("--max-message-size", str(4 << 20), "--frame-timeout", "30")
    client = RawWebSocket(server.port, "/echo")
    client.sock.settimeout(scaled(60))
    try:
        payload = b"*" * (4 << 20)
        client.send(fragmented(opcode, payload, 64))
        kind, echoed = client.read_frame()
        assert (kind, len(echoed)) == (opcode, len(payload))
    finally:
        client.close()


def test_the_default_limit_keeps_4096_fragments(start_server):
    server = start_server()
    client = RawWebSocket(server.port, "/echo")
    try:
        client.send(fragmented(0x1, b"a" * 5000, 1))
        code, reason = client.read_until_close()
        assert code == 1009 and b"4096 fragments" in reason
    finally:
        client.close()
