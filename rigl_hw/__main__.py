"""`python -m rigl_hw` is the `rigl-hw` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
