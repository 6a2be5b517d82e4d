"""``python -m diffmm``: the same command line as the ``diffmm`` entry point."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
