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
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from facebench.errors import ConfigError
from facebench.models.options import BackboneOptions
from facebench.validate import validate

DATA_ENV = "FACEBENCH_DATA"
#: Face models use 128..1024; a larger value is a typo that would allocate a huge layer.
MAX_EMBEDDING_SIZE = 65536
#: Bounds on counts of epochs and steps: far past any run, yet refuse a typo's 1e300.
MAX_EPOCHS = 100_000
MAX_STEPS = 10**9
#: numpy's seeds are 32-bit; torch's and Python's accept these too.
MAX_SEED = 2**32 - 1
#: A recipe is a few hundred bytes; YAML nested deeper than this is not a recipe.
MAX_RECIPE_BYTES = 1 << 20
MAX_YAML_DEPTH = 20


def _choice(*values: str) -> dict:
    return {"choices": values}


@dataclass
class DataConfig:
    """The training pack and how it is read."""

    train: str = ""  # pack directory or .rec, relative to the data root
    random_flip: bool = True
    num_workers: int = field(default=2, metadata={"min": 0, "max": 256})


@dataclass
class ModelConfig:
    """The backbone (``facebench.models.build_backbone``)."""

    backbone: str = "iresnet50"
    embedding_size: int = field(default=512, metadata={"min": 1, "max": MAX_EMBEDDING_SIZE})
    # extra backbone keyword arguments
    options: dict = field(default_factory=dict, metadata={"schema": BackboneOptions})


@dataclass
class HeadConfig:
    """The classification head (``facebench.heads.build_head``) and its parameters."""

    name: str = "bce_u"
    params: dict = field(default_factory=dict)  # scale, margin, neg_weight, sample_ratio, ...


@dataclass
class OptimConfig:
    """Optimizer: SGD (momentum) or AdamW."""

    name: str = field(default="sgd", metadata=_choice("sgd", "adamw"))
    lr: float = field(default=0.1, metadata={"above": 0.0, "max": 10.0})
    momentum: float = field(default=0.9, metadata={"min": 0.0, "below": 1.0})
    nesterov: bool = False
    weight_decay: float = field(default=5e-4, metadata={"min": 0.0, "below": 1.0})
    betas: list[float] = field(
        default_factory=lambda: [0.9, 0.999], metadata={"min": 0.0, "below": 1.0, "length": 2}
    )
    eps: float = field(default=1e-8, metadata={"above": 0.0, "max": 1.0})


@dataclass
class ScheduleConfig:
    """Learning-rate schedule, applied per optimizer step; epochs may be fractional."""

    name: str = field(default="poly", metadata=_choice("constant", "multistep", "poly", "cosine"))
    warmup_epochs: float = field(default=0.0, metadata={"min": 0.0, "max": MAX_EPOCHS})
    # multistep: epochs where lr *= gamma
    milestones: list[float] = field(
        default_factory=list, metadata={"above": 0.0, "max": MAX_EPOCHS, "increasing": True}
    )
    gamma: float = field(default=0.1, metadata={"above": 0.0, "max": 1.0})  # multistep factor
    power: float = field(default=2.0, metadata={"above": 0.0, "max": 100.0})  # poly: (1 - p)**power
    min_lr: float = field(default=0.0, metadata={"min": 0.0, "max": 10.0})  # poly/cosine floor


@dataclass
class TrainConfig:
    """The loop: sizes, precision, guards and how often to log and save."""

    epochs: float = field(default=20.0, metadata={"above": 0.0, "max": MAX_EPOCHS})
    # stop after N steps
    max_steps: int | None = field(default=None, metadata={"min": 1, "max": MAX_STEPS})
    # global images per step; BatchNorm needs >= 2 images in each micro-batch
    batch_size: int = field(default=512, metadata={"min": 2, "max": 2**20})
    # micro-batches per step
    accumulation: int = field(default=1, metadata={"min": 1, "max": 2**19})
    # max global L2 norm of all gradients; null or 0: no clipping
    grad_clip: float | None = field(default=None, metadata={"min": 0.0, "max": 1e6})
    amp: str = field(default="none", metadata=_choice("none", "auto", "bf16", "fp16"))
    nonfinite: str = field(default="stop", metadata=_choice("stop", "skip"))
    sync_bn: bool = False  # SyncBatchNorm across ranks (CUDA only)
    channels_last: bool = False  # NHWC activations: faster convolutions (oneDNN CPUs, tensor cores)
    seed: int = field(default=0, metadata={"min": 0, "max": MAX_SEED})
    log_every: int = field(default=50, metadata={"min": 1, "max": MAX_STEPS})
    # steps; 0: each epoch
    checkpoint_every: int = field(default=0, metadata={"min": 0, "max": MAX_STEPS})
    keep_checkpoints: int = field(default=2, metadata={"min": 1, "max": 1000})


@dataclass
class EvalConfig:
    """Periodic verification on bins (paths relative to the data root)."""

    bins: list[str] = field(default_factory=list)
    # steps; 0: only at the end
    every: int = field(default=0, metadata={"min": 0, "max": MAX_STEPS})
    batch_size: int = field(default=256, metadata={"min": 1, "max": 2**16})


@dataclass
class OutputConfig:
    """What the run directory gets besides checkpoints and model.pt."""

    tensorboard: bool = True
    save_head: bool = True  # store the head in model.pt (for `facebench uniform`)


@dataclass
class Recipe:
    """A whole training recipe."""

    name: str = field(default="", metadata={"file_name": True})  # default run folder runs/NAME
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
    """SafeLoader that also reads ``5e-4`` as a float (YAML 1.1 wants ``5.0e-4``), refuses a key
    given twice in one mapping (plain YAML keeps the last without a word), refuses aliases
    (``*name``: self-references and "billion laughs") and nesting deeper than MAX_YAML_DEPTH."""

    depth = 0

    def compose_node(self, parent, index):
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in recipes; write the value out", mark
            )
        if self.depth >= MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", mark
            )
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

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
    merged, origins = _load_merged(Path(path), chain=())
    for item in overrides:
        key, value = _split_override(item)
        nested = _nest(key, value)
        source = f"--set {item}"
        _validate(nested, source)
        merged = _merge_layer(merged, nested)
        _set_origins(origins, nested, source)
    merged.pop("extends", None)
    merged.setdefault("name", Path(path).stem)
    recipe = _build(Recipe, merged)
    _check_consistency(recipe, origins, str(path))
    return recipe


def recipe_from_dict(data: dict, source: str = "<dict>") -> Recipe:
    """Validate a plain dict (e.g. a run's ``recipe.yaml``) into a :class:`Recipe`."""
    _validate(data, source)
    recipe = _build(Recipe, data)
    _check_consistency(recipe, {}, source)
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


def _load_merged(path: Path, chain: tuple[Path, ...]) -> tuple[dict, dict[str, str]]:
    """The merged raw dict of ``path`` and everything it extends, each file validated, and the
    file each leaf key (``train.seed``) came from."""
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise ConfigError(f"{path}: recipe extends itself ({cycle})")
    data = _read_yaml(path)
    _validate(data, str(path))
    _reject_absolute_data_paths(data, str(path))
    bases = data.get("extends", [])
    bases = [bases] if isinstance(bases, str) else bases
    merged: dict = {}
    origins: dict[str, str] = {}
    for base in bases:
        layer, layer_origins = _load_merged(path.parent / base, (*chain, resolved))
        merged = _merge_layer(merged, layer)
        for key, source in layer_origins.items():
            origins.pop(key, None)
            origins[key] = source
    own = {k: v for k, v in data.items() if k != "extends"}
    _set_origins(origins, own, str(path))
    return _merge_layer(merged, own), origins


def _read_yaml(path: Path) -> dict:
    """The mapping in recipe file ``path``: UTF-8 text of at most MAX_RECIPE_BYTES, YAML."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_RECIPE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read recipe ({exc.strerror})") from exc
    if len(raw) > MAX_RECIPE_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_RECIPE_BYTES} bytes; not a recipe")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "save the recipe as UTF-8"
        ) from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{line} is not valid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping, got {type(data).__name__}")
    return data


def _set_origins(origins: dict[str, str], layer: dict, source: str) -> None:
    """Record ``source`` as where each leaf key of ``layer`` was last set (kept in that order)."""
    for key in _leaf_keys(layer):
        origins.pop(key, None)
        origins[key] = source


def _leaf_keys(data: dict, prefix: str = "") -> list[str]:
    """Dotted keys of the non-mapping values in ``data`` (``{"a": {"b": 1}}`` -> ``["a.b"]``)."""
    keys = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            keys += _leaf_keys(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


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


def _validate(data: dict, source: str) -> None:
    """Check the keys and values of a (partial) recipe dict (``facebench.validate``)."""
    validate(data, source, Recipe, extra={"extends": _check_extends})


def _check_extends(value: object, source: str) -> None:
    ok = isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    )
    if not ok:
        raise ConfigError(f"{source}: 'extends' must be a path or a list of paths")


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


def _check_consistency(recipe: Recipe, origins: dict[str, str], default: str) -> None:
    """Checks that involve more than one key, and the backbone and head with their options
    (built on the meta device: nothing is allocated). Each error names where the keys involved
    were set: ``origins`` maps leaf keys to their file or ``--set``; ``default`` for the rest."""

    def where(*keys: str) -> str:
        found = [
            src for k, src in origins.items() if any(k == p or k.startswith(f"{p}.") for p in keys)
        ]
        return " and ".join(dict.fromkeys(found)) or default

    t, optim, schedule = recipe.train, recipe.optim, recipe.schedule
    if t.batch_size % t.accumulation:
        raise ConfigError(
            f"{where('train.batch_size', 'train.accumulation')}: train.batch_size "
            f"{t.batch_size} is not divisible by train.accumulation {t.accumulation}"
        )
    if t.batch_size // t.accumulation < 2:
        raise ConfigError(
            f"{where('train.batch_size', 'train.accumulation')}: train.batch_size "
            f"{t.batch_size} / train.accumulation {t.accumulation} leaves "
            f"{t.batch_size // t.accumulation} image per micro-batch; BatchNorm needs at least 2"
        )
    if schedule.name == "multistep" and not schedule.milestones:
        raise ConfigError(
            f"{where('schedule.name', 'schedule.milestones')}: schedule.milestones is empty for "
            "the multistep schedule"
        )
    if schedule.min_lr > optim.lr:
        raise ConfigError(
            f"{where('schedule.min_lr', 'optim.lr')}: schedule.min_lr {schedule.min_lr:g} must "
            f"be <= optim.lr {optim.lr:g}"
        )
    if optim.name == "sgd" and optim.nesterov and optim.momentum == 0:
        raise ConfigError(
            f"{where('optim.nesterov', 'optim.momentum')}: optim.nesterov needs optim.momentum > 0"
        )
    _check_model(recipe, where("model"), where("head"))


def _check_model(recipe: Recipe, model_source: str, head_source: str) -> None:
    """The backbone with its options (a parameter budget included) and the head with its
    parameters, as ``build_backbone`` and ``build_head`` check them, before anything is built."""
    import torch

    from facebench.heads import build_head
    from facebench.models.registry import check_backbone

    model = recipe.model
    try:
        check_backbone(model.backbone, model.embedding_size, model.options)
    except ConfigError as exc:
        raise ConfigError(f"{model_source}: {exc}") from None
    try:
        with torch.device("meta"):
            build_head(recipe.head.name, model.embedding_size, 2, **recipe.head.params)
    except ConfigError as exc:
        raise ConfigError(f"{head_source}: {exc}") from None
