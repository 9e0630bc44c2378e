"""``server.py`` with Nagle's algorithm left on (no TCP_NODELAY on WebSockets), for the
README's Nagle comparison: ``benchmarks/harness_peer.py --entry benchmarks/nagle_on_server.py``.
A benchmark aid only: never deployed."""

import eventlet

eventlet.monkey_patch()  # first, as server.py does

import runpy  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashstream.edge.upgrade import WebSocketEndpoint  # noqa: E402

_init = WebSocketEndpoint.__init__


def _with_nagle(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    self.nodelay = False


WebSocketEndpoint.__init__ = _with_nagle
sys.argv[0] = str(ROOT / "server.py")
runpy.run_path(str(ROOT / "server.py"), run_name="__main__")
