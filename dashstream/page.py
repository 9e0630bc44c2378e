"""Where the dashboard page is, for the installed command.

The repository keeps one page, ``index.html`` at its top (``server.py`` serves that one).
A built package carries a copy inside itself, ``dashstream/index.html``, made by
setup.py's build step. In a source checkout (or an editable install) there is no copy,
and the page is the checkout's own.
"""

from __future__ import annotations

from pathlib import Path

PAGE = "index.html"
PACKAGE = Path(__file__).resolve().parent


def installed_page() -> Path | None:
    """The page the ``dashstream`` command serves, or ``None`` if there is none."""
    for candidate in (PACKAGE / PAGE, PACKAGE.parent / PAGE):
        if candidate.is_file():
            return candidate
    return None
