"""Entry point: ``python server.py --help``.

``monkey_patch`` must run before anything else is imported, so that sockets, ``time.sleep``
and ``threading`` are eventlet's green versions everywhere (the tutorial this grew from
slept with an unpatched ``time.sleep``: one client was served, the rest starved).
``dashstream.runtime`` is the one module below the server that knows eventlet.
"""

from dashstream import runtime

runtime.monkey_patch()

import sys  # noqa: E402 - after monkey_patch on purpose
from pathlib import Path  # noqa: E402

from dashstream.server.main import serve  # noqa: E402

if __name__ == "__main__":
    sys.exit(serve(Path(__file__).resolve().with_name("index.html")))
