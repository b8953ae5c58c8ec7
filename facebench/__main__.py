"""`python -m facebench` (also what `torchrun -m facebench` runs)."""

from facebench.cli import run

if __name__ == "__main__":
    run()
