"""``python -m dashstream``: the same as the ``dashstream`` command."""

import sys

from dashstream.server.main import main  # first: it monkey-patches before anything else loads

sys.exit(main())
