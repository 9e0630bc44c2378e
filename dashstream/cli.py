"""``python server.py``: parse the configuration, build the streams, run the server."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Sequence

from dashstream.config import parse_config
from dashstream.serve import run
from dashstream.streams import streams_from_config

DEFAULT_INDEX = Path(__file__).resolve().parent.parent / "index.html"


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main(argv: Sequence[str] | None = None, index_path: Path | None = None) -> int:
    config = parse_config(argv)  # exits 2 naming the bad option
    configure_logging(config.log_level)
    return run(config, streams_from_config(config), Path(config.index_path or index_path or DEFAULT_INDEX))
