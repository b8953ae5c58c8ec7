"""Write the published recipes: one ``<set-up>_<loss>.yaml`` per set-up and loss fragment.

A set-up is a dataset fragment and a backbone fragment; each published recipe only extends
``datasets/<dataset>.yaml``, ``backbones/<backbone>.yaml`` and ``losses/<loss>.yaml``. So a new
fragment under ``losses/`` (or a new set-up below) is published on every set-up by running this:

    python recipes/publish.py           # write the missing or stale ones, remove orphans
    python recipes/publish.py --check   # exit 1 naming what is not up to date (tests run it)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facebench.fileio import write_text

RECIPE_DIR = Path(__file__).resolve().parent
#: set-up name -> (dataset fragment, backbone fragment)
SETUPS = {
    "casia_r50": ("casia", "r50"),
    "ms1mv2_r100": ("ms1mv2", "r100"),
    "ms1mv3_r50": ("ms1mv3", "r50"),
    "glint360k_r100": ("glint360k", "r100"),
    "webface4m_r50": ("webface4m", "r50"),
}
HEADER = "# written by recipes/publish.py from the fragments it extends; do not edit\n"


def losses() -> list[str]:
    """The loss fragments' names (``losses/*.yaml``), sorted."""
    return sorted(path.stem for path in (RECIPE_DIR / "losses").glob("*.yaml"))


def published() -> dict[str, str]:
    """File name -> text of every published recipe."""
    recipes = {}
    for setup, (dataset, backbone) in SETUPS.items():
        for loss in losses():
            name = f"{setup}_{loss}"
            recipes[f"{name}.yaml"] = (
                f"{HEADER}extends: [datasets/{dataset}.yaml, backbones/{backbone}.yaml, "
                f"losses/{loss}.yaml]\nname: {name}\n"
            )
    return recipes


def differences() -> tuple[list[str], list[str]]:
    """(published recipes missing or not as written here, recipe files of a set-up no loss
    fragment publishes any more)."""
    expected = published()
    stale = [
        name
        for name, text in expected.items()
        if not (RECIPE_DIR / name).is_file()
        or (RECIPE_DIR / name).read_text(encoding="utf-8") != text
    ]
    orphans = sorted(
        path.name
        for setup in SETUPS
        for path in RECIPE_DIR.glob(f"{setup}_*.yaml")
        if path.name not in expected
    )
    return stale, orphans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report only; exit 1 if not current")
    args = parser.parse_args(argv)
    stale, orphans = differences()
    if args.check:
        for name in stale:
            print(f"recipes/{name}: missing or edited; run python recipes/publish.py")
        for name in orphans:
            print(f"recipes/{name}: no loss fragment publishes it; run python recipes/publish.py")
        return 1 if stale or orphans else 0
    expected = published()
    for name in stale:
        write_text(RECIPE_DIR / name, expected[name])
    for name in orphans:
        (RECIPE_DIR / name).unlink()
    print(f"{len(stale)} written, {len(orphans)} removed, {len(expected)} published")
    return 0


if __name__ == "__main__":
    sys.exit(main())
