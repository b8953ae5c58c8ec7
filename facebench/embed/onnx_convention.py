"""Input convention of ONNX recognition models: stored, detected or given."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np

from facebench.data.images import InputConvention
from facebench.errors import ModelError

#: Key of the ONNX metadata entry where facebench stores the input convention of its exports.
CONVENTION_METADATA_KEY = "facebench.input_convention"
#: Key of the ONNX metadata entry holding the backbone name of a facebench export.
MODEL_NAME_METADATA_KEY = "facebench.model_name"

log = logging.getLogger(__name__)


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


#: Nodes between the input and its normalization that leave pixel values as they are.
_PASS_THROUGH = {"Transpose", "Cast", "Identity", "QuantizeLinear", "DequantizeLinear"}
#: Element-wise arithmetic a normalization is made of.
_ARITHMETIC = {"Sub", "Add", "Mul", "Div"}


@dataclass(frozen=True)
class GraphNormalization:
    """``(x - mean) / std`` that a graph applies to its input, per channel (1 or 3 values)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    ops: tuple[str, ...]

    def unit_range(self) -> bool:
        """Whether the constants mean inputs in 0..1 (as torchvision's 0.485/0.229), not 0..255."""
        return max(self.mean) <= 1 and max(self.std) <= 1 and max(self.mean) > 0

    def describe(self) -> str:
        """``(x - 127.5) / 128`` or ``(x - (123.7, 116.3, 103.5)) / (58.4, 57.1, 57.4)``."""

        def fmt(values):
            text = ", ".join(f"{v:.4g}" for v in values)
            return text if len(values) == 1 else f"({text})"

        return f"(x - {fmt(self.mean)}) / {fmt(self.std)}"


def _constant(name: str, initializers: dict, producers: dict):
    """The value of tensor ``name`` if the graph fixes it (initializer, Constant node, or a
    Cast / Identity / Reshape / DequantizeLinear of one), else None."""
    from onnx import TensorProto, helper, numpy_helper

    if name in initializers:
        return numpy_helper.to_array(initializers[name]).astype(np.float64)
    node = producers.get(name)
    if node is None:
        return None
    if node.op_type == "Constant":
        value = helper.get_attribute_value(node.attribute[0]) if node.attribute else None
        if isinstance(value, TensorProto):
            value = numpy_helper.to_array(value)
        return None if value is None else np.asarray(value, dtype=np.float64)
    values = [_constant(i, initializers, producers) if i else None for i in node.input]
    if not values or values[0] is None:
        return None
    if node.op_type in ("Cast", "Identity", "Reshape", "Unsqueeze", "Squeeze"):
        return values[0]
    if node.op_type == "DequantizeLinear" and len(values) > 1 and values[1] is not None:
        zero = values[2] if len(values) > 2 and values[2] is not None else 0.0
        return (values[0] - zero) * values[1]  # scalar or per-axis scale of a per-channel value
    return None


def graph_normalization(model) -> GraphNormalization | None:
    """The normalization a graph applies to its input, read from the graph.

    Follows the first real input through layout, cast and (de)quantize nodes to the first
    arithmetic or Conv node, then composes the chain of Sub / Add / Mul / Div by constants
    (scalar or per channel, in any order) into ``(x - mean) / std``. None when the input
    reaches anything else first (no normalization in the graph).
    """
    initializers = {t.name: t for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    if not inputs:
        return None
    consumers, producers = {}, {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
        for name in node.output:
            producers[name] = node
    tensor, scale, shift, ops = inputs[0], np.ones(1), np.zeros(1), []
    while len(consumers.get(tensor, [])) == 1:
        node = consumers[tensor][0]
        if node.op_type in _PASS_THROUGH and node.input[0] == tensor:
            tensor = node.output[0]
            continue
        if node.op_type not in _ARITHMETIC or len(node.input) != 2:
            break
        first = node.input[0] == tensor
        value = _constant(node.input[1 if first else 0], initializers, producers)
        if (
            value is None
            or value.size not in (1, 3)
            or (not first and node.op_type in ("Sub", "Div"))
        ):
            break  # not a constant, not per channel, or c - x / c / x: no normalization
        value = value.reshape(-1)
        if node.op_type == "Sub":
            shift = shift - value
        elif node.op_type == "Add":
            shift = shift + value
        elif node.op_type == "Mul":
            scale, shift = scale * value, shift * value
        elif np.all(value != 0):  # Div
            scale, shift = scale / value, shift / value
        else:
            break
        ops.append(node.op_type)
        tensor = node.output[0]
    if not ops or np.any(scale == 0):
        return None
    mean, std = -shift / scale, 1.0 / scale
    mean, std = np.broadcast_arrays(mean, std)
    return GraphNormalization(tuple(map(float, mean)), tuple(map(float, std)), tuple(ops))


def detect_onnx_convention(
    path: str,
    color: str | None = None,
    mean: float | None = None,
    std: float | None = None,
    size: tuple[int, int] | None = None,
) -> InputConvention:
    """The convention an ONNX model expects; options given here win over what is detected.

    Order: explicit options, then the convention facebench stored in the model's metadata, then
    the graph: when it normalizes its input itself (:func:`graph_normalization`), raw pixels
    (0..255, or 0..1 when its constants are for that range); else insightface's default
    (127.5 / 127.5). RGB unless stored; size from the graph's input. Logs (INFO) one line
    saying which convention is used and where it came from.
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
        origin = "stored by facebench export"
    else:
        height, width = shape[2] or 112, shape[3] or 112
        in_graph = graph_normalization(model)
        if in_graph is None:
            detected = InputConvention("RGB", 127.5, 127.5, (height, width))
            origin = (
                "assumed: no normalization found in the graph, insightface's default; "
                "--mean/--std/--color override it"
            )
        else:
            pixels = 255.0 if in_graph.unit_range() else 1.0
            detected = InputConvention("RGB", 0.0, pixels, (height, width))
            origin = (
                f"detected from the graph, which normalizes its input itself: "
                f"{in_graph.describe()} ({' then '.join(in_graph.ops)}); RGB assumed, "
                "--color BGR overrides it"
            )
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
    given = [
        f"--{flag}"
        for flag, value in (("color", color), ("mean", mean), ("std", std), ("size", size))
        if value is not None
    ]
    if given:
        origin = f"{' '.join(given)} given; otherwise {origin}"
    log.info("%s: input %s", path, describe_convention(conv, origin))
    return conv


def describe_convention(conv: InputConvention, origin: str) -> str:
    """One line: channel order, size, the arithmetic applied to 0..255 pixels, and its origin."""
    height, width = conv.size
    if conv.mean == 0 and conv.std in (1, 255):
        fed = "0..255 pixels as they are" if conv.std == 1 else "pixels / 255 (0..1)"
    else:
        fed = f"(x - {conv.mean:g}) / {conv.std:g} of 0..255 pixels"
    return f"{conv.color} {height}x{width}, fed {fed} ({origin})"


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
