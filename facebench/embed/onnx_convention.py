"""Input convention of ONNX recognition models: stored, detected or given."""

from __future__ import annotations

import json

from facebench.data.images import InputConvention
from facebench.errors import ModelError

#: Key of the ONNX metadata entry where facebench stores the input convention of its exports.
CONVENTION_METADATA_KEY = "facebench.input_convention"
#: Key of the ONNX metadata entry holding the backbone name of a facebench export.
MODEL_NAME_METADATA_KEY = "facebench.model_name"


def _load_graph(path: str):
    import onnx

    try:
        return onnx.load(path, load_external_data=False)
    except Exception as exc:  # protobuf DecodeError, OSError, ...
        raise ModelError(f"{path}: not a readable ONNX model ({exc})") from exc


def _graph_input_shape(path: str, model) -> list:
    """Shape of the first real graph input (ints, or None for symbolic axes)."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if not inputs:
        raise ModelError(f"{path}: the ONNX graph has no input")
    dims = inputs[0].type.tensor_type.shape.dim
    return [d.dim_value if d.dim_value > 0 else None for d in dims]


def insightface_mean_std(model) -> tuple[float, float]:
    """insightface's ArcFaceONNX rule: Sub and Mul among the first 8 nodes mean the graph
    normalizes itself (mxnet-converted models: mean 0, std 1); otherwise 127.5 / 127.5."""
    names = [node.name for node in model.graph.node[:8]]
    has_sub = any(n.startswith(("Sub", "_minus")) for n in names)
    has_mul = any(n.startswith(("Mul", "_mul")) for n in names)
    return (0.0, 1.0) if has_sub and has_mul else (127.5, 127.5)


def detect_onnx_convention(
    path: str,
    color: str | None = None,
    mean: float | None = None,
    std: float | None = None,
    size: tuple[int, int] | None = None,
) -> InputConvention:
    """The convention an ONNX model expects; options given here win over what is detected.

    Order: explicit options, then the convention facebench stored in the model's metadata, then
    insightface's detection (RGB, mean/std from the graph's first nodes, size from the input).
    """
    model = _load_graph(str(path))
    shape = _graph_input_shape(str(path), model)
    if len(shape) != 4 or shape[1] != 3:
        raise ModelError(
            f"{path}: expected an NCHW input with 3 channels, the model takes shape "
            f"{['?' if d is None else d for d in shape]}"
        )
    meta = {p.key: p.value for p in model.metadata_props}
    if CONVENTION_METADATA_KEY in meta:
        detected = InputConvention.from_dict(json.loads(meta[CONVENTION_METADATA_KEY]))
    else:
        d_mean, d_std = insightface_mean_std(model)
        height, width = shape[2] or 112, shape[3] or 112
        detected = InputConvention("RGB", d_mean, d_std, (height, width))
    conv = InputConvention(
        color=color or detected.color,
        mean=detected.mean if mean is None else float(mean),
        std=detected.std if std is None else float(std),
        size=tuple(size) if size else detected.size,
    )
    if conv.color not in ("RGB", "BGR"):
        raise ModelError(f"{path}: color must be RGB or BGR, got {conv.color!r}")
    for axis, (want, have) in enumerate(zip(shape[2:], conv.size, strict=True)):
        if want is not None and want != have:
            name = "height" if axis == 0 else "width"
            raise ModelError(f"{path}: the model's input {name} is {want}, not {have}")
    return conv


def check_onnx_input(path: str, shape: list, type_name: str, convention: InputConvention) -> None:
    """Raise ModelError unless the input is float NCHW, 3 channels, of the convention's size."""
    if type_name != "tensor(float)":
        raise ModelError(f"{path}: model input is {type_name}, expected tensor(float)")
    dims = [d if isinstance(d, int) else None for d in shape]
    if len(dims) != 4 or dims[1] != 3:
        raise ModelError(
            f"{path}: expected an NCHW input with 3 channels, the model takes shape {list(shape)}"
        )
    for want, have in zip(dims[2:], convention.size, strict=True):
        if want is not None and want != have:
            raise ModelError(
                f"{path}: the model takes {dims[2]}x{dims[3]} inputs, the convention says "
                f"{convention.size[0]}x{convention.size[1]}"
            )
