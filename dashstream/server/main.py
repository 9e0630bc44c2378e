"""The entry points: ``python server.py``, the ``dashstream`` command and ``python -m
dashstream``. Parse the configuration (exit 2 naming the bad option), set up logging, run
the server on the page given.

``monkey_patch`` must run before anything else is imported, so that sockets, ``time.sleep``
and ``threading`` are eventlet's green versions everywhere. The generated console script
imports this module first (``dashstream/__init__.py`` and ``dashstream/server/__init__.py``
import nothing), so the patch is its first statement and everything else comes after it.

Where the page is: the repository keeps one page, ``index.html`` at its top (``server.py``
serves that one). A built package carries a copy inside itself, ``dashstream/index.html``,
made by setup.py's build step; in a source checkout (or an editable install) there is no
copy, and the page is the checkout's own.
"""

from dashstream import runtime

runtime.monkey_patch()

import sys  # noqa: E402 - after monkey_patch on purpose
from pathlib import Path  # noqa: E402
from typing import Sequence  # noqa: E402

from dashstream.config.options import parse_config  # noqa: E402
from dashstream.ops.log_output import configure_logging  # noqa: E402
from dashstream.server.server import Server  # noqa: E402

PAGE = "index.html"
PACKAGE = Path(__file__).resolve().parent.parent  # dashstream/


def serve(index_path: Path, argv: Sequence[str] | None = None, prog: str = "python server.py") -> int:
    """Run the server on ``index_path``: ``server.py`` passes the ``index.html`` beside it,
    the installed command the copy shipped in the package."""
    config = parse_config(argv, prog=prog)  # exits 2 naming the bad option
    # After monkey_patch: the log writer is a real thread.
    configure_logging(config.log_level, config.log_format)
    return Server(config, index_path).run()


def installed_page() -> Path | None:
    """The page the ``dashstream`` command serves, or ``None`` if there is none."""
    for candidate in (PACKAGE / PAGE, PACKAGE.parent / PAGE):
        if candidate.is_file():
            return candidate
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """The ``dashstream`` console script: ``python server.py`` for an installed package."""
    page = installed_page()
    if page is None:
        print("dashstream: the page (index.html) is not installed with the package; reinstall dashstream "
              "(pip install .), or run python server.py from a checkout", file=sys.stderr)
        return 1
    return serve(page, argv, prog="dashstream")
