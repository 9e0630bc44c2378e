"""``server.py`` with eventlet 0.41.3's byte-by-byte unmasking put back, for the "before"
figures of ``unmask_latency.py --unmask eventlet``. A benchmark aid only: never deployed."""

import eventlet

eventlet.monkey_patch()  # first, as server.py does

import runpy  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eventlet.websocket import RFC6455WebSocket  # noqa: E402

import dashstream.protocol  # noqa: E402

dashstream.protocol.xor_mask = (
    lambda data, mask, offset=0: RFC6455WebSocket._apply_mask(bytes(data), mask, offset=offset))
runpy.run_path(str(ROOT / "server.py"), run_name="__main__")
