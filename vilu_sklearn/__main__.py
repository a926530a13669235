"""``python -m vilu_sklearn benchmark``: same as the ``vilu-sklearn`` command."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
