"""The SQLite file examples/office.toml reads: ``python examples/office_db.py`` makes
``examples/office.db`` (beside this script) with a few visitors signed in, if it is not
there yet; ``python examples/office_db.py --arrive NAME`` signs one more in, and
``--leave NAME`` signs one out. The wall's "Visitors" tile follows within its interval.

Standard library only: the example runs on the bare install (``pip install .``).
"""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

DATABASE = Path(__file__).resolve().with_name("office.db")
FIRST_VISITORS = ("Ada", "Grace", "Linus")


def create(path: Path = DATABASE) -> bool:
    """Make the file with its table and first visitors; ``False`` if it was already there."""
    if path.exists():
        return False
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE visitors (name TEXT NOT NULL, arrived_at TEXT NOT NULL DEFAULT "
                   "(datetime('now')), left_at TEXT)")
        db.executemany("INSERT INTO visitors (name) VALUES (?)", [(name,) for name in FIRST_VISITORS])
    return True


def arrive(name: str, path: Path = DATABASE) -> None:
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO visitors (name) VALUES (?)", (name,))


def leave(name: str, path: Path = DATABASE) -> None:
    with sqlite3.connect(path) as db:
        db.execute("UPDATE visitors SET left_at = datetime('now') WHERE rowid = (SELECT min(rowid) FROM visitors "
                   "WHERE name = ? AND left_at IS NULL)", (name,))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arrive", metavar="NAME", help="sign a visitor in")
    parser.add_argument("--leave", metavar="NAME", help="sign a visitor out")
    args = parser.parse_args(argv)
    made = create()
    if args.arrive:
        arrive(args.arrive)
    if args.leave:
        leave(args.leave)
    print(f"{DATABASE}: {'created' if made else 'there'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
