"""Every recipe's head builds with its parameters; every loss fragment has every published set-up
and a synthetic recipe; the published recipes are what recipes/publish.py writes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from facebench.config import load_recipe
from facebench.heads import HEADS, build_head

RECIPE_DIR = Path(__file__).resolve().parents[2] / "recipes"
RECIPES = sorted(p for p in RECIPE_DIR.rglob("*.yaml") if "head" in load_recipe(p).to_dict())
LOSSES = sorted(p.stem for p in (RECIPE_DIR / "losses").glob("*.yaml"))
SETUPS = ("casia_r50", "ms1mv2_r100", "ms1mv3_r50", "glint360k_r100", "webface4m_r50")


def publisher():
    """recipes/publish.py as a module."""
    spec = importlib.util.spec_from_file_location("publish", RECIPE_DIR / "publish.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(RECIPE_DIR)))
def test_every_recipe_head_validates(path):
    recipe = load_recipe(path)
    head = build_head(recipe.head.name, 8, 10, **recipe.head.params)
    assert head.name == recipe.head.name


def test_every_loss_has_its_published_setups_and_a_synthetic_recipe():
    assert {"sphereface2", "adaface", "curricularface", "magface"} <= set(LOSSES)
    assert set(LOSSES) <= set(HEADS)
    names = {p.stem for p in RECIPE_DIR.glob("*.yaml")}
    for loss in LOSSES:
        assert load_recipe(RECIPE_DIR / "losses" / f"{loss}.yaml").head.name == loss
        for setup in SETUPS:
            assert f"{setup}_{loss}" in names
            assert load_recipe(RECIPE_DIR / f"{setup}_{loss}.yaml").head.name == loss
        assert load_recipe(RECIPE_DIR / "synth" / f"{loss}.yaml").head.name == loss


def test_published_recipes_are_up_to_date():
    publish = publisher()
    assert tuple(publish.SETUPS) == SETUPS
    assert publish.differences() == ([], [])
    assert publish.main(["--check"]) == 0
