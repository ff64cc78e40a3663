"""``python -m collector.cli``: the ``evalbox`` command."""

import sys

from collector.cli import main

sys.exit(main())
