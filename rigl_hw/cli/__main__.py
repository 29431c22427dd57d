"""`python -m rigl_hw.cli` is the `rigl-hw` command (as `python -m rigl_hw` is)."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
