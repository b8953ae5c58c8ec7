"""`python -m facebench` (also what `torchrun -m facebench` runs)."""

import sys

from facebench.cli import main

if __name__ == "__main__":
    sys.exit(main())
