"""`python -m explorer.cli` runs the command line, as `python -m explorer` does."""

import sys

from explorer.cli import main

sys.exit(main())
