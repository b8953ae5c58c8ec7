"""Recipes: every shipped recipe loads; extends, overrides, validation and data paths."""

import dataclasses
import typing
from pathlib import Path

import pytest

from facebench.config import (
    Recipe,
    load_recipe,
    parse_value,
    recipe_from_dict,
    resolve_data_path,
    save_recipe,
)
from facebench.errors import ConfigError
from facebench.models import backbone_options, list_backbones
from facebench.models.options import BackboneOptions

RECIPE_DIR = Path(__file__).resolve().parent.parent / "recipes"
RECIPES = sorted(RECIPE_DIR.rglob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_recipe_in_the_repository_loads(path):
    recipe = load_recipe(path)
    assert recipe.name
    assert not Path(recipe.data.train).is_absolute()


def test_published_setups_exist_for_every_loss():
    names = {p.stem for p in RECIPES}
    for setup in ("casia_r50", "ms1mv2_r100", "ms1mv3_r50", "glint360k_r100", "webface4m_r50"):
        for loss in ("bce_u", "arcface", "cosface", "softmax"):
            assert f"{setup}_{loss}" in names
    glint = load_recipe(RECIPE_DIR / "glint360k_r100_bce_u.yaml")
    assert glint.model.backbone == "iresnet100"
    assert glint.head.params == {
        "sample_ratio": 0.1,
        "scale": 64.0,
        "margin": 0.4,
        "neg_weight": 0.7,
        "bias_weight_decay": True,
    }
    assert glint.optim.weight_decay == 1e-4 and glint.train.epochs == 20.0


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_extends_chains_relative_to_each_file_and_merges_deeply(tmp_path):
    _write(tmp_path / "base.yaml", "optim: {lr: 0.1, weight_decay: 5e-4}\ntrain: {epochs: 20}\n")
    _write(tmp_path / "mid" / "data.yaml", "extends: ../base.yaml\ndata: {train: packs/x}\n")
    _write(tmp_path / "loss.yaml", "head: {name: cosface, params: {scale: 64, margin: 0.4}}\n")
    top = _write(
        tmp_path / "top.yaml",
        "extends: [mid/data.yaml, loss.yaml]\noptim: {lr: 0.05}\nhead: {params: {margin: 0.35}}\n",
    )
    r = load_recipe(top)
    assert r.name == "top"
    assert r.optim.lr == 0.05 and r.optim.weight_decay == 5e-4  # deep merge; 5e-4 is a float
    assert isinstance(r.optim.weight_decay, float)
    assert r.train.epochs == 20.0 and isinstance(r.train.epochs, float)
    assert r.data.train == "packs/x"
    assert r.head.name == "cosface" and r.head.params == {"scale": 64, "margin": 0.35}


def test_switching_head_drops_the_old_heads_params(tmp_path):
    base = _write(tmp_path / "a.yaml", "head: {name: bce_u, params: {neg_weight: 0.7}}\n")
    top = _write(tmp_path / "b.yaml", f"extends: {base.name}\nhead: {{name: arcface}}\n")
    assert load_recipe(top).head.params == {}
    assert load_recipe(base, ["head.name=arcface"]).head.params == {}
    assert load_recipe(base, ["head.params.margin=0.2"]).head.params == {
        "neg_weight": 0.7,
        "margin": 0.2,
    }


def test_overrides_are_typed_yaml_values(tmp_path):
    path = _write(tmp_path / "r.yaml", "schedule: {name: multistep, milestones: [16, 24]}\n")
    r = load_recipe(
        path,
        [
            "optim.lr=0.05",
            "schedule.milestones=[10, 20.5]",
            "train.max_steps=7",
            "head.params.normalized=false",
            "train.grad_clip=null",
            "eval.bins=[a.bin]",
        ],
    )
    assert r.optim.lr == 0.05 and r.schedule.milestones == [10.0, 20.5]
    assert r.train.max_steps == 7 and r.head.params == {"normalized": False}
    assert r.train.grad_clip is None and r.eval.bins == ["a.bin"]
    assert parse_value("5e-4") == 5e-4 and parse_value("abc") == "abc"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("optim: {lrr: 0.1}\n", "unknown key 'optim.lrr'"),
        ("optimizer: {lr: 0.1}\n", "unknown key 'optimizer'"),
        ("optim: {lr: fast}\n", "optim.lr must be float, got 'fast'"),
        ("train: {batch_size: 1.5}\n", "train.batch_size must be int"),
        ("train: {amp: fp32}\n", "train.amp must be one of none, auto, bf16, fp16"),
        ("train: {batch_size: 0}\n", "train.batch_size must be >= 2 (allowed: [2, 1048576])"),
        ("optim: 3\n", "optim must be a mapping"),
        ("data: {train: /abs/pack}\n", "data.train is an absolute path"),
        ("eval: {bins: [lfw.bin, /data/cfp.bin]}\n", "eval.bins is an absolute path"),
        ("train: {batch_size: 10, accumulation: 3}\n", "not divisible by train.accumulation 3"),
        ("schedule: {name: multistep}\n", "schedule.milestones is empty"),
        ("optim: [\n", "is not valid YAML"),
        ("extends: missing.yaml\n", "missing.yaml: cannot read recipe"),
    ],
)
def test_bad_recipes_name_the_file_and_the_key(tmp_path, text, message):
    path = _write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    assert message in str(info.value)
    assert "bad.yaml" in str(info.value) or "missing.yaml" in str(info.value)


def test_bad_key_in_a_base_names_the_base(tmp_path):
    _write(tmp_path / "base.yaml", "train: {epochz: 3}\n")
    top = _write(tmp_path / "top.yaml", "extends: base.yaml\n")
    with pytest.raises(ConfigError, match=r"base\.yaml: unknown key 'train\.epochz'"):
        load_recipe(top)


def test_bad_overrides_name_the_override(tmp_path):
    path = _write(tmp_path / "r.yaml", "")
    with pytest.raises(ConfigError, match=r"--set optim\.lrr=1: unknown key 'optim\.lrr'"):
        load_recipe(path, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_recipe(path, ["optim.lr"])
    # an absolute path is fine from the command line
    assert load_recipe(path, ["data.train=/mnt/faces_emore"]).data.train == "/mnt/faces_emore"


def test_extends_cycle_is_an_error(tmp_path):
    _write(tmp_path / "a.yaml", "extends: b.yaml\n")
    _write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError, match="extends itself"):
        load_recipe(tmp_path / "a.yaml")


def test_data_paths_resolve_against_flag_then_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEBENCH_DATA", "/env/root")
    assert resolve_data_path("faces_emore", "/flag", "data.train") == Path("/flag/faces_emore")
    assert resolve_data_path("faces_emore", None, "data.train") == Path("/env/root/faces_emore")
    monkeypatch.setenv("PACKS", "/p")
    assert resolve_data_path("${PACKS}/lfw.bin", "/flag", "eval.bins") == Path("/p/lfw.bin")
    monkeypatch.delenv("FACEBENCH_DATA")
    assert resolve_data_path("x", None, "data.train") == Path("x")
    with pytest.raises(ConfigError, match="NOPE is not set"):
        resolve_data_path("${NOPE}/x", None, "data.train")


def test_saved_recipe_round_trips(tmp_path):
    recipe = load_recipe(RECIPE_DIR / "ms1mv2_r100_arcface.yaml", ["optim.lr=0.02"])
    save_recipe(recipe, tmp_path / "recipe.yaml")
    assert load_recipe(tmp_path / "recipe.yaml") == recipe
    assert recipe_from_dict(recipe.to_dict()) == recipe


def _fields(cls):
    """(dotted key, field, annotation) of every leaf of a schema dataclass."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            for key, sub, hint in _fields(hints[f.name]):
                yield f"{f.name}.{key}", sub, hint
        else:
            yield f.name, f, hints[f.name]


def test_every_number_of_the_schema_has_a_stated_range():
    numbers = [int, float, int | None, float | None, list[int], list[float]]
    for cls in (Recipe, BackboneOptions):
        for key, f, hint in _fields(cls):
            if hint in numbers:
                assert {"min", "above"} & set(f.metadata), key
                assert {"max", "below"} & set(f.metadata), key


def test_every_backbone_option_is_in_the_schema():
    schema = {f.name for f in dataclasses.fields(BackboneOptions)} | {"embedding_size"}
    for name in list_backbones():
        assert set(backbone_options(name)) <= schema, name
