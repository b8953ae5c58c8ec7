"""Recipes: one schema (dataclasses), YAML files with ``extends:``, ``--set a.b=v`` overrides.

A recipe file may name one or more base files in ``extends:`` (paths relative to the file);
bases are merged in order, then the file itself, dictionaries deeply, everything else replaced.
Every file and every override is validated on its own, so an unknown or mistyped key is reported
with the file (or ``--set``) it came from. Data paths in recipe files are relative: they are
resolved against a data root given on the command line (``--data DIR``) or in the environment
variable ``FACEBENCH_DATA``, and may use ``${VAR}`` references to environment variables.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from facebench.errors import ConfigError

DATA_ENV = "FACEBENCH_DATA"
#: Face models use 128..1024; a larger value is a typo that would allocate a huge layer.
MAX_EMBEDDING_SIZE = 65536


def _choice(*values: str) -> dict:
    return {"choices": values}


@dataclass
class DataConfig:
    """The training pack and how it is read."""

    train: str = ""  # pack directory or .rec, relative to the data root
    random_flip: bool = True
    num_workers: int = field(default=2, metadata={"min": 0})


@dataclass
class ModelConfig:
    """The backbone (``facebench.models.build_backbone``)."""

    backbone: str = "iresnet50"
    embedding_size: int = field(default=512, metadata={"min": 1, "max": MAX_EMBEDDING_SIZE})
    options: dict = field(default_factory=dict)  # extra backbone keyword arguments


@dataclass
class HeadConfig:
    """The classification head (``facebench.heads.build_head``) and its parameters."""

    name: str = "bce_u"
    params: dict = field(default_factory=dict)  # scale, margin, neg_weight, sample_ratio, ...


@dataclass
class OptimConfig:
    """Optimizer: SGD (momentum) or AdamW."""

    name: str = field(default="sgd", metadata=_choice("sgd", "adamw"))
    lr: float = field(default=0.1, metadata={"min": 0.0})
    momentum: float = field(default=0.9, metadata={"min": 0.0})
    nesterov: bool = False
    weight_decay: float = field(default=5e-4, metadata={"min": 0.0})
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = field(default=1e-8, metadata={"min": 0.0})


@dataclass
class ScheduleConfig:
    """Learning-rate schedule, applied per optimizer step; epochs may be fractional."""

    name: str = field(default="poly", metadata=_choice("constant", "multistep", "poly", "cosine"))
    warmup_epochs: float = field(default=0.0, metadata={"min": 0.0})
    milestones: list[float] = field(default_factory=list)  # multistep: epochs where lr *= gamma
    gamma: float = 0.1
    power: float = 2.0  # poly: lr * (1 - progress) ** power
    min_lr: float = field(default=0.0, metadata={"min": 0.0})  # floor for poly and cosine


@dataclass
class TrainConfig:
    """The loop: sizes, precision, guards and how often to log and save."""

    epochs: float = field(default=20.0, metadata={"above": 0.0})
    max_steps: int | None = field(default=None, metadata={"min": 1})  # stop after N steps
    batch_size: int = field(default=512, metadata={"min": 1})  # global images per step
    accumulation: int = field(default=1, metadata={"min": 1})  # micro-batches per step
    grad_clip: float | None = None  # max global L2 norm of all gradients
    amp: str = field(default="none", metadata=_choice("none", "auto", "bf16", "fp16"))
    nonfinite: str = field(default="stop", metadata=_choice("stop", "skip"))
    sync_bn: bool = False  # SyncBatchNorm across ranks (CUDA only)
    channels_last: bool = False  # NHWC activations: faster convolutions (oneDNN CPUs, tensor cores)
    seed: int = 0
    log_every: int = field(default=50, metadata={"min": 1})
    checkpoint_every: int = field(default=0, metadata={"min": 0})  # steps; 0: each epoch
    keep_checkpoints: int = field(default=2, metadata={"min": 1})


@dataclass
class EvalConfig:
    """Periodic verification on bins (paths relative to the data root)."""

    bins: list[str] = field(default_factory=list)
    every: int = field(default=0, metadata={"min": 0})  # steps; 0: only at the end
    batch_size: int = field(default=256, metadata={"min": 1})


@dataclass
class OutputConfig:
    """What the run directory gets besides checkpoints and model.pt."""

    tensorboard: bool = True
    save_head: bool = True  # store the head in model.pt (for `facebench uniform`)


@dataclass
class Recipe:
    """A whole training recipe."""

    name: str = ""
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_dict(self) -> dict:
        """Plain nested dict (what ``recipe.yaml`` of a run holds)."""
        return dataclasses.asdict(self)


#: Recipe keys whose values are data paths (relative in recipe files, resolved at run time).
DATA_PATH_KEYS = ("data.train", "eval.bins")


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``5e-4`` as a float (YAML 1.1 wants ``5.0e-4``) and refuses
    a key given twice in one mapping (plain YAML keeps the last without a word)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"key {key!r} appears twice in one mapping (lines {seen[key] + 1} and "
                        f"{key_node.start_mark.line + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def parse_value(text: str) -> object:
    """A command-line value read as YAML (``0.05`` -> float, ``[16, 24]`` -> list, ``x`` -> str)."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return text


def load_recipe(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load a recipe file (following ``extends``), apply ``a.b=v`` overrides, validate."""
    merged = _load_merged(Path(path), chain=())
    for item in overrides:
        key, value = _split_override(item)
        nested = _nest(key, value)
        _validate(nested, f"--set {item}")
        merged = _merge_layer(merged, nested)
    merged.pop("extends", None)
    merged.setdefault("name", Path(path).stem)
    recipe = _build(Recipe, merged)
    _check_consistency(recipe, str(path))
    return recipe


def recipe_from_dict(data: dict, source: str = "<dict>") -> Recipe:
    """Validate a plain dict (e.g. a run's ``recipe.yaml``) into a :class:`Recipe`."""
    _validate(data, source)
    recipe = _build(Recipe, data)
    _check_consistency(recipe, source)
    return recipe


def save_recipe(recipe: Recipe, path: str | os.PathLike) -> None:
    """Write the resolved recipe as YAML (atomic: temporary file, then rename)."""
    from facebench.fileio import write_text

    write_text(path, yaml.safe_dump(recipe.to_dict(), sort_keys=False))


def resolve_data_path(value: str, data_root: str | os.PathLike | None, key: str) -> Path:
    """A recipe data path made usable: ``${VAR}`` expanded, relative paths joined to the root.

    The root is ``data_root`` if given, else ``$FACEBENCH_DATA``, else the current directory.
    """

    def expand(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in os.environ:
            raise ConfigError(f"recipe key {key!r}: environment variable {name} is not set")
        return os.environ[name]

    expanded = re.sub(r"\$\{(\w+)\}|\$(\w+)", expand, value)
    if not expanded:
        raise ConfigError(f"recipe key {key!r} is empty: name a pack (relative to the data root)")
    path = Path(expanded)
    if path.is_absolute():
        return path
    root = data_root if data_root is not None else os.environ.get(DATA_ENV) or "."
    return Path(root) / path


def _load_merged(path: Path, chain: tuple[Path, ...]) -> dict:
    """The merged raw dict of ``path`` and everything it extends, each file validated."""
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise ConfigError(f"{path}: recipe extends itself ({cycle})")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read recipe ({exc.strerror})") from exc
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{line} is not valid YAML ({problem})") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping, got {type(data).__name__}")
    _validate(data, str(path))
    _reject_absolute_data_paths(data, str(path))
    bases = data.get("extends", [])
    bases = [bases] if isinstance(bases, str) else bases
    merged: dict = {}
    for base in bases:
        merged = _merge_layer(merged, _load_merged(path.parent / base, (*chain, resolved)))
    own = {k: v for k, v in data.items() if k != "extends"}
    return _merge_layer(merged, own)


def _merge_layer(base: dict, top: dict) -> dict:
    """``top`` over ``base`` (deep merge). Head params belong to their head: when ``top`` names
    a different head than ``base`` did, the params inherited from ``base`` are dropped."""
    merged = _deep_merge(base, top)
    old, new = base.get("head"), top.get("head")
    both = isinstance(old, dict) and isinstance(new, dict)
    if both and old.get("name") not in (None, new.get("name", old.get("name"))):
        merged["head"]["params"] = dict(new.get("params") or {})
    return merged


def _deep_merge(base: dict, top: dict) -> dict:
    """``top`` over ``base``: nested dicts merged, other values replaced."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _split_override(item: str) -> tuple[str, object]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. optim.lr=0.05")
    key, text = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {item!r}: bad key {key!r}")
    return key, parse_value(text)


def _nest(dotted: str, value: object) -> dict:
    for part in reversed(dotted.split(".")):
        value = {part: value}
    return value  # type: ignore[return-value]


def _validate(data: dict, source: str, cls: type = Recipe, prefix: str = "") -> None:
    """Check keys and value types of a (partial) recipe dict; errors name ``source`` and key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'recipe'} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if cls is Recipe and key == "extends":
            ok = isinstance(value, str) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            )
            if not ok:
                raise ConfigError(f"{source}: 'extends' must be a path or a list of paths")
            continue
        if key not in fields:
            known = ", ".join(fields)
            raise ConfigError(f"{source}: unknown key {dotted!r} (known here: {known})")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            _validate(value, source, hint, f"{dotted}.")
            continue
        _check_type(value, hint, source, dotted)
        _check_finite(value, source, dotted)
        meta = fields[key].metadata
        if "choices" in meta and value not in meta["choices"]:
            raise ConfigError(
                f"{source}: {dotted} must be one of {', '.join(meta['choices'])}, got {value!r}"
            )
        if "min" in meta and value is not None and value < meta["min"]:
            raise ConfigError(f"{source}: {dotted} must be >= {meta['min']}, got {value!r}")
        if "above" in meta and value is not None and value <= meta["above"]:
            raise ConfigError(f"{source}: {dotted} must be > {meta['above']}, got {value!r}")
        if "max" in meta and value is not None and value > meta["max"]:
            raise ConfigError(f"{source}: {dotted} must be <= {meta['max']}, got {value!r}")


def _check_finite(value: object, source: str, key: str) -> None:
    """NaN and infinity are refused anywhere in a value (lists and dicts included)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{source}: {key} must be a finite number, got {value!r}")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, source, f"{key}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, source, f"{key}[{i}]")


def _check_type(value: object, hint: object, source: str, key: str) -> None:
    if not _matches(value, hint):
        name = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
        raise ConfigError(f"{source}: {key} must be {name}, got {value!r} ({type(value).__name__})")


def _matches(value: object, hint: object) -> bool:
    """Whether a YAML value fits a schema annotation (int is accepted for float)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)  # type: ignore[arg-type]


def _reject_absolute_data_paths(data: dict, source: str) -> None:
    for dotted in DATA_PATH_KEYS:
        section, key = dotted.split(".")
        value = data.get(section, {}).get(key)
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, str) and os.path.isabs(v):
                raise ConfigError(
                    f"{source}: {dotted} is an absolute path ({v!r}); recipes hold paths relative "
                    f"to the data root (--data DIR or ${DATA_ENV})"
                )


def _build(cls: type, data: dict) -> object:
    """Dataclass instance from an already validated dict (floats made floats)."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            value = _build(hint, value)
        elif hint is float or hint == (float | None):
            value = None if value is None else float(value)
        elif hint == list[float]:
            value = [float(v) for v in value]
        kwargs[key] = value
    return cls(**kwargs)


def _check_consistency(recipe: Recipe, source: str) -> None:
    """Checks that involve more than one key."""
    t = recipe.train
    if t.batch_size % t.accumulation:
        raise ConfigError(
            f"{source}: train.batch_size {t.batch_size} is not divisible by "
            f"train.accumulation {t.accumulation}"
        )
    if len(recipe.optim.betas) != 2:
        raise ConfigError(f"{source}: optim.betas must hold two numbers, got {recipe.optim.betas}")
    if recipe.schedule.name == "multistep" and not recipe.schedule.milestones:
        raise ConfigError(f"{source}: schedule.milestones is empty for the multistep schedule")
    if sorted(recipe.schedule.milestones) != recipe.schedule.milestones:
        raise ConfigError(f"{source}: schedule.milestones must be increasing")
