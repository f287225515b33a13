"""``python -m accounting``: the ``dp-budget`` command line."""

import sys

from accounting.cli import main

sys.exit(main())
