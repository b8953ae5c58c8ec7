"""The study's old entry point: a thin alias of `facebench study` (facebench/cli/study.py).

python benchmarks/uniform_study.py --out study_out            # the Fashion-MNIST study
python benchmarks/uniform_study.py --quick --out /tmp/smoke   # CI smoke
"""

from __future__ import annotations

from facebench.cli import run
from facebench.cli.study import main

if __name__ == "__main__":
    run(main)
