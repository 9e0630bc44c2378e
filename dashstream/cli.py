"""``python server.py``: parse the configuration, build the streams, run the server."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Sequence

from dashstream.config import parse_config
from dashstream.serve import run
from dashstream.streams import streams_from_config


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main(index_path: Path, argv: Sequence[str] | None = None) -> int:
    """``index_path`` comes from ``server.py``, which sits beside ``index.html``: once the
    package is installed, ``dashstream/`` lives in site-packages, far from the page."""
    config = parse_config(argv)  # exits 2 naming the bad option
    configure_logging(config.log_level)
    return run(config, streams_from_config(config), index_path)
