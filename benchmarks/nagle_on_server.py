"""``server.py`` with Nagle's algorithm left on (no TCP_NODELAY on its connections), for the
README's Nagle comparison: ``benchmarks/harness_peer.py --entry benchmarks/nagle_on_server.py``.
A benchmark aid only: never deployed."""

import eventlet

eventlet.monkey_patch()  # first, as server.py does

import runpy  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashstream.server import serve  # noqa: E402

serve.CONNECTION_NODELAY = False  # read by serve.listen when it sets the listener's options

sys.argv[0] = str(ROOT / "server.py")
runpy.run_path(str(ROOT / "server.py"), run_name="__main__")
