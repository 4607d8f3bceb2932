"""``python -m tomoconsensus ...``: the same command line as the ``tomoconsensus`` script."""

import sys

from tomoconsensus.cli import main

if __name__ == "__main__":
    sys.exit(main())
