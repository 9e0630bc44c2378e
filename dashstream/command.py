"""The ``dashstream`` console script (and ``python -m dashstream``): ``python server.py``
for an installed package, serving the page shipped inside it.

``monkey_patch`` must run before anything else is imported, so that sockets, ``time.sleep``
and ``threading`` are eventlet's green versions everywhere (see server.py). The generated
console script imports this module first (``dashstream/__init__.py`` imports nothing), so
the patch comes right after the ``warnings`` filter below, and everything else is imported
inside ``main``.
"""

import warnings

# eventlet is this project's chosen stack; its import-time deprecation banner would only
# repeat that on every start.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()


def main(argv=None) -> int:
    import sys

    from dashstream.cli import main as serve
    from dashstream.page import installed_page

    page = installed_page()
    if page is None:
        print("dashstream: the page (index.html) is not installed with the package; reinstall dashstream "
              "(pip install .), or run python server.py from a checkout", file=sys.stderr)
        return 1
    return serve(page, argv, prog="dashstream")
