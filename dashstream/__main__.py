"""``python -m dashstream``: the same as the ``dashstream`` command."""

from dashstream.command import main  # first: it monkey-patches before anything else loads

import sys  # noqa: E402

sys.exit(main())
