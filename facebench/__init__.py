"""facebench: open-set face recognition benchmark suite.

Stages (one sub-package each): data -> models + heads -> train -> embed -> eval / search -> report.
"""

__version__ = "0.1.0"
