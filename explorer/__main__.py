"""`python -m explorer` runs the command line (also under `torchrun -m explorer`)."""

import sys

from explorer.cli import main

sys.exit(main())
