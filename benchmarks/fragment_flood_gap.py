"""How long a flood of unfinished fragmented messages holds the hub from everything else.

    python benchmarks/fragment_flood_gap.py

100 connections each send a text message in 4,000 two-byte fragments, unfinished (32 KB of
masked 8-byte frames), then a ping; a websocket-client subscriber on the 10-50 ms shared
random walk of tests/server/test_hostile_clients.py records when each value arrives. Prints
how long the flood took to be read (every pong back) and the watcher's largest gap inside it.
Figures before and after the frame budget (protocol/frames.py, FRAMES_PER_PASS): BENCHMARKS.md,
"A flood of unfinished fragments".
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import websocket  # websocket-client, from the test extra

from tests.server.test_hostile_clients import WATCHED, frame, raw_upgrade, read_frame, text
from tests.support import ServerProcess


def main() -> None:
    server = ServerProcess(*WATCHED).start()
    try:
        watcher = websocket.create_connection(server.ws + "/ws/office", timeout=20)
        arrivals: list[float] = []
        done = threading.Event()

        def watch() -> None:
            try:
                while not done.is_set():
                    watcher.recv()
                    arrivals.append(time.monotonic())
            except websocket.WebSocketException:
                pass  # closed at the end

        threading.Thread(target=watch, daemon=True).start()
        clients = [raw_upgrade(server.port, "/echo")[0] for _ in range(100)]
        fragments = b"".join([text(b"xy", fin=False)] + [frame(0x0, b"xy", fin=False)] * 3999)
        began = time.monotonic()
        for sock in clients:
            sock.sendall(fragments + frame(0x9, b"read?"))  # the pong says all was read
        for sock in clients:
            buffer = bytearray()
            while (got := read_frame(sock, buffer)) is not None and got[0] != 0xA:
                pass
        ended = time.monotonic()
        time.sleep(0.5)  # the watcher's next value after the flood ends its last gap
        done.set()
        window = [t for t in arrivals if began - 0.2 <= t <= ended + 0.3]
        gaps = [b - a for a, b in zip(window, window[1:])]
        print(f"flood read in {ended - began:.2f} s; watcher values in it: {len(window)}; "
              f"largest gap {max(gaps, default=float('nan')):.3f} s")
        for sock in clients:
            sock.close()
        watcher.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
