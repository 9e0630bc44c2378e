"""Reference peer: the least an eventlet server can do, a yardstick rather than a server.

Env: SHAPE=A|B  PORT=5055  RATE=<msgs/s>  BACKLOG=2048
  SHAPE=A  per-client green loop: eventlet.sleep(uniform(0, 2/RATE)), send  (RATE = mean msgs/s per client)
  SHAPE=B  one producer greenlet, RATE ticks/s, one pre-built frame sent to every client
           (a producer more than one tick late drops the missed ticks: no catch-up bursts)
  RATE=0   no messages (idle server)
Messages: {"variable": int, "seq": int, "ts": epoch-seconds float}

Green sockets and nothing else: no HTTP parser (the key is found in the first read), no
checks, no limits, no session object, no log line, TCP_NODELAY on. What dashstream costs
beyond this, on the same hub and the same interpreter, is what its own layers cost
(BENCHMARKS.md, "Floors"); it must never be deployed: it answers any bytes with a 101.
"""
import os
import warnings

warnings.filterwarnings("ignore")
import eventlet  # noqa: E402

eventlet.monkey_patch()

import base64  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402

SHAPE = os.environ.get("SHAPE", "B").upper()
PORT = int(os.environ.get("PORT", "5055"))
RATE = float(os.environ.get("RATE", "10"))
BACKLOG = int(os.environ.get("BACKLOG", "2048"))
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
clients = set()


def text_frame(text: str) -> bytes:
    payload = text.encode()
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


def private_loop(sock) -> None:
    high, seq = 2.0 / RATE, 0
    try:
        while sock in clients:
            seq += 1
            sock.sendall(text_frame(json.dumps({"variable": random.randint(0, 100), "seq": seq, "ts": time.time()})))
            eventlet.sleep(random.random() * high)
    except OSError:
        clients.discard(sock)


def broadcast_loop() -> None:
    interval, seq, next_at = 1.0 / RATE, 0, time.monotonic()
    while True:
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            eventlet.sleep(delay)
        else:
            next_at = time.monotonic()  # late: skip the missed ticks
            eventlet.sleep(0)
        seq += 1
        frame = text_frame(json.dumps({"variable": random.randint(0, 100), "seq": seq, "ts": time.time()}))
        for sock in list(clients):
            try:
                sock.sendall(frame)
            except OSError:
                clients.discard(sock)


def handle(sock) -> None:
    try:
        head = sock.recv(65536)
        start = head.find(b"Sec-WebSocket-Key:") + 18
        key = head[start:head.find(b"\r", start)].strip()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        clients.add(sock)
        if SHAPE == "A" and RATE > 0:
            eventlet.spawn_n(private_loop, sock)
        while sock.recv(65536)[:1] not in (b"", b"\x88"):  # anything until the close frame
            pass
        clients.discard(sock)
        sock.sendall(b"\x88\x02\x03\xe8")
    except OSError:
        pass
    finally:
        clients.discard(sock)
        sock.close()


def main() -> None:
    listener = eventlet.listen(("127.0.0.1", PORT), backlog=BACKLOG)
    if SHAPE == "B" and RATE > 0:
        eventlet.spawn_n(broadcast_loop)
    while True:
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        eventlet.spawn_n(handle, sock)


if __name__ == "__main__":
    main()
