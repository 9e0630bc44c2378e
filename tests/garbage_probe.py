"""``server.py`` with a window on the cyclic garbage collector, for
tests/server/test_request_garbage.py: a request's objects should be freed by reference
counting when it ends, not wait for a collection (BENCHMARKS.md, "No garbage a handshake").

``DASHSTREAM_GARBAGE_FILE`` names the file it writes. SIGUSR1 starts counting: it collects
what is garbage already, then keeps everything the collector frees from then on
(``gc.DEBUG_SAVEALL``) and writes ``{"counting": true}``. SIGUSR2 collects and writes the kept
objects' type names with their counts. A test aid only: never deployed.
"""

from dashstream import runtime

runtime.monkey_patch()  # first, as server.py does

import collections  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from dashstream.server.main import serve  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(os.environ["DASHSTREAM_GARBAGE_FILE"])


def _write(content: dict) -> None:
    partial = OUT.with_suffix(".partial")
    partial.write_text(json.dumps(content))
    partial.replace(OUT)  # whole, or not there


def start_counting(*_args) -> None:
    gc.collect()
    gc.garbage.clear()
    gc.set_debug(gc.DEBUG_SAVEALL)
    _write({"counting": True})


def report(*_args) -> None:
    gc.collect()
    kept = collections.Counter(type(found).__qualname__ for found in gc.garbage)
    gc.garbage.clear()
    _write({"counting": False, "kept": dict(kept)})


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, start_counting)
    signal.signal(signal.SIGUSR2, report)
    sys.exit(serve(ROOT / "index.html"))
