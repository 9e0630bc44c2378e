"""Entry point: ``python server.py --help``.

``monkey_patch`` must run before anything else is imported, so that sockets, ``time.sleep``
and ``threading`` are eventlet's green versions everywhere (the tutorial this grew from
slept with an unpatched ``time.sleep``: one client was served, the rest starved).
"""

import warnings

# eventlet is this project's chosen stack (see README); its import-time deprecation
# banner would only repeat that on every start.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import sys  # noqa: E402 - after monkey_patch on purpose
from pathlib import Path  # noqa: E402

from dashstream.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(Path(__file__).resolve().with_name("index.html")))
