"""`python -m reid` runs the `reid` command."""

import sys

from reid.cli import main

sys.exit(main())
