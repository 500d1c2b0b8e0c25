"""`python -m lab up|down|status [--json]`."""

import sys

from lab.cli import main

sys.exit(main())
