"""A ZeroMQ PUB process for tests: ``python tests/zmq_publisher.py tcp://127.0.0.1:PORT REPEAT``.

Binds, prints ``bound``, then sends the frames of each JSON list read from stdin (text
frames, UTF-8), repeating the latest every REPEAT seconds so that a subscriber that connects
late (ZeroMQ's slow joiner) still receives it. EOF on stdin ends it. Plain pyzmq, no eventlet:
this is the producer in another process that the zmq source subscribes to.
"""

import json
import sys
import threading

import zmq


def main() -> int:
    url, repeat = sys.argv[1], float(sys.argv[2])
    context = zmq.Context()
    socket = context.socket(zmq.PUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.bind(url)
    print("bound", flush=True)
    latest: list[bytes] | None = None
    lock = threading.Lock()
    stop = threading.Event()

    def repeater() -> None:
        while not stop.wait(repeat):
            with lock:
                if latest is not None:
                    socket.send_multipart(latest)

    thread = threading.Thread(target=repeater, daemon=True)
    thread.start()
    for line in sys.stdin:
        frames = [frame.encode() for frame in json.loads(line)]
        with lock:
            latest = frames
            socket.send_multipart(frames)
    stop.set()
    thread.join()
    socket.close()
    context.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
