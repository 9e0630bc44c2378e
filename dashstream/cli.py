"""``python server.py`` and the ``dashstream`` command: parse the configuration, set up
logging, run the server."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from dashstream.config import parse_config
from dashstream.logs import configure_logging
from dashstream.serve import run


def main(index_path: Path, argv: Sequence[str] | None = None, prog: str = "python server.py") -> int:
    """``index_path`` comes from the entry point: ``server.py`` passes the ``index.html``
    beside it, the installed command the copy shipped in the package."""
    config = parse_config(argv, prog=prog)  # exits 2 naming the bad option
    # After monkey_patch (the entry points do that first): the writer is a real thread.
    configure_logging(config.log_level, config.log_format)
    return run(config, index_path)
