"""No package imports upward: every import in facebench (lazy ones inside functions included)
points into its own package or to a lower layer of the map that opens docs/architecture.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "facebench"
MAP = ROOT / "docs" / "architecture.md"
MARKER = "<!-- layers:"  # the fenced block after it is the map
#: (source file, imported unit) pairs allowed to import upward: none.
KNOWN_UPWARD: set[tuple[str, str]] = set()


def declared_layers() -> dict[str, int]:
    """Unit (a sub-package, a top-level module, or ``facebench`` for the package's own
    ``__init__``) -> its layer number, from the map's lines ``N  unit unit ...  description``."""
    block = MAP.read_text(encoding="utf-8").split(MARKER, 1)[1].split("```", 2)[1]
    layers = {}
    for line in block.splitlines()[1:]:
        fields = re.split(r"\s{2,}", line.strip())
        if fields[0].isdigit():
            for unit in fields[1].split():
                assert unit not in layers, f"{unit} is in two layers of the map"
                layers[unit] = int(fields[0])
    return layers


def unit_of(parts: tuple[str, ...]) -> str:
    """The unit of module ``facebench.<parts>`` (``parts`` empty: the package itself)."""
    if parts in ((), ("__init__",)):
        return "facebench"
    head = parts[0]
    is_module = (PACKAGE / head).is_dir() or (PACKAGE / f"{head}.py").is_file()
    return head if is_module else "facebench"  # `from facebench import __version__`


def package_units() -> set[str]:
    return {unit_of(path.relative_to(PACKAGE).with_suffix("").parts) for path in modules()}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def imports(path: Path) -> list[tuple[int, tuple[str, ...]]]:
    """(line, parts after ``facebench.``) of every facebench import in ``path``."""
    own = ("facebench", *path.relative_to(PACKAGE).with_suffix("").parts)  # for relative imports
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [tuple(alias.name.split(".")) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = own[: len(own) - node.level] if node.level else ()
            module = (*base, *(node.module.split(".") if node.module else ()))
            names = [(*module, alias.name) if len(module) == 1 else module for alias in node.names]
        else:
            continue
        found += [(node.lineno, name[1:]) for name in names if name[0] == "facebench"]
    return found


def test_the_map_places_every_unit_of_the_package_once():
    layers = declared_layers()
    assert set(layers) == package_units(), (
        "docs/architecture.md's layer map and the package differ: "
        f"not in the map {sorted(package_units() - set(layers))}, "
        f"not in the package {sorted(set(layers) - package_units())}"
    )


def test_no_module_imports_its_own_layer_or_above():
    layers = declared_layers()
    upward = []
    for path in modules():
        source = unit_of(path.relative_to(PACKAGE).with_suffix("").parts)
        for line, parts in imports(path):
            target = unit_of(parts)
            known = (str(path.relative_to(ROOT)), target) in KNOWN_UPWARD
            if target != source and layers[target] >= layers[source] and not known:
                upward.append(
                    f"{path.relative_to(ROOT)}:{line} ({source}, layer {layers[source]}) imports "
                    f"facebench.{'.'.join(parts)} ({target}, layer {layers[target]})"
                )
    assert not upward, "\n".join(upward)


def test_the_check_sees_lazy_and_package_level_imports():
    """The parser on the forms the package uses: a lazy import in a function, `from facebench
    import module`, `import facebench.x.y`."""
    sample = PACKAGE / "eval" / "uniform_model.py"
    targets = {unit_of(parts) for _, parts in imports(sample)}
    assert {"embed", "models", "schema"} <= targets
    assert unit_of(("__version__",)) == "facebench" and unit_of(("heads", "base")) == "heads"
