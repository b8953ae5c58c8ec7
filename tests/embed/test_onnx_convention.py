"""External ONNX models: the input convention stored, read from the graph or assumed; options;
bad inputs."""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from facebench.data.images import InputConvention
from facebench.embed import OnnxEmbedder, load_embedder
from facebench.embed.onnx_convention import (
    CONVENTION_METADATA_KEY,
    detect_onnx_convention,
    graph_normalization,
)
from facebench.errors import ConfigError, ModelError

sys.path.insert(0, str(Path(__file__).parent))
from float32_forward import EPS32, float32_bound


def float32_error(rgb, mean, std, weight=None):
    """The float32 rounding allowed to onnxruntime's ``(x - mean) / std``, then a 1x1 conv by
    ``weight`` if given, then a spatial mean, of uint8 ``rgb``: :func:`float32_bound` of the
    same layers in torch. The normalization is a BatchNorm there, so its rounding is 2 eps of
    |x / std| + |mean / std|: that covers the float32 constants (eps/2 each) and up to two
    operations (eps/2 each, on operands no larger) of every layout below."""
    mean, std = np.broadcast_to(mean, 3), np.broadcast_to(std, 3)
    norm = torch.nn.BatchNorm2d(3, eps=0.0)
    norm.running_mean.copy_(torch.from_numpy(mean))
    norm.running_var.copy_(torch.from_numpy(std**2))
    layers = [norm]
    if weight is not None:
        conv = torch.nn.Conv2d(3, len(weight), 1, bias=False)
        conv.weight.data.copy_(torch.from_numpy(weight.reshape(len(weight), 3, 1, 1)))
        layers.append(conv)
    module = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    _, error = float32_bound(module.eval(), rgb.astype(np.float64).transpose(0, 3, 1, 2))
    return error


def pooled_model(path, shape=("N", 3, 112, 112), normalize_in_graph=False):
    """A tiny recognition-like graph: optional Sub/Mul (mxnet style), then spatial mean."""
    nodes, name = [], "data"
    inits = []
    if normalize_in_graph:
        inits = [
            helper.make_tensor("mean", TensorProto.FLOAT, [], [127.5]),
            helper.make_tensor("scale", TensorProto.FLOAT, [], [0.0078125]),
        ]
        nodes += [
            helper.make_node("Sub", ["data", "mean"], ["centred"], name="_minusscalar0"),
            helper.make_node("Mul", ["centred", "scale"], ["scaled"], name="_mulscalar0"),
        ]
        name = "scaled"
    nodes.append(helper.make_node("ReduceMean", [name], ["fc1"], axes=[2, 3], keepdims=0))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", 3])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize("in_graph", [False, True])
def test_mean_std_detection_agrees_with_insightface(tmp_path, in_graph):
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX

    path = pooled_model(tmp_path / "m.onnx", normalize_in_graph=in_graph)
    ours = detect_onnx_convention(path)
    theirs = ArcFaceONNX(model_file=path)
    assert (ours.mean, ours.std) == (theirs.input_mean, theirs.input_std)
    assert ours.size == (112, 112) and ours.color == "RGB"
    # the detected convention reproduces the model's output: per-channel means of (x - m) / s
    rgb = np.random.default_rng(0).integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)
    got = OnnxEmbedder(path).embed(rgb)
    expected = rgb.astype(np.float64).mean(axis=(1, 2))
    std = 128.0 if in_graph else 127.5
    expected = (expected - 127.5) / std
    assert np.all(np.abs(got - expected) <= float32_error(rgb, 127.5, std))


def test_options_override_detection_and_size_comes_from_graph(tmp_path):
    path = pooled_model(tmp_path / "m.onnx", shape=("N", 3, 128, 128))
    conv = detect_onnx_convention(path, color="BGR", mean=0.0, std=1.0)
    assert conv == InputConvention("BGR", 0.0, 1.0, (128, 128))
    rgb = np.zeros((1, 128, 128, 3), np.uint8)
    rgb[..., 0] = 200  # red in RGB: the model sees it as the last channel under BGR
    out = OnnxEmbedder(path, convention=conv).embed(rgb)
    np.testing.assert_allclose(out, [[0.0, 0.0, 200.0]])
    with pytest.raises(ModelError, match="input height is 128, not 112"):
        detect_onnx_convention(path, size=(112, 112))


@pytest.mark.parametrize(
    "shape,message",
    [
        (("N", 1, 112, 112), "3 channels"),
        (("N", 112, 112, 3), "3 channels"),
        (("N", 3, 112), "3 channels"),
    ],
)
def test_unexpected_inputs_raise_model_error(tmp_path, shape, message):
    path = tmp_path / "bad.onnx"
    if len(shape) == 3:
        graph = helper.make_graph(
            [helper.make_node("ReduceMean", ["data"], ["fc1"], axes=[2], keepdims=0)],
            "g",
            [helper.make_tensor_value_info("data", TensorProto.FLOAT, list(shape))],
            [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", 3])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.save(model, str(path))
    else:
        pooled_model(path, shape=shape)
    with pytest.raises(ModelError, match=message):
        OnnxEmbedder(str(path))


def test_load_embedder_dispatch_and_errors(tmp_path):
    path = pooled_model(tmp_path / "m.onnx")
    assert isinstance(load_embedder(path), OnnxEmbedder)
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelError, match=r"junk\.onnx"):
        load_embedder(str(tmp_path / "junk.onnx"))
    with pytest.raises(ModelError, match="not found"):
        load_embedder(str(tmp_path / "missing.pt"))
    (tmp_path / "m.bin").write_bytes(b"x")
    with pytest.raises(ModelError, match=r"\.pt\) or an ONNX"):
        load_embedder(str(tmp_path / "m.bin"))
    with pytest.raises(ConfigError, match="precision"):
        load_embedder(path, precision="int8")


# In-graph normalization read from the graph: each layout below normalizes 0..255 RGB pixels
# with NORM (per channel), then a 1x1 Conv (weights W) and a spatial mean give the embedding.
W = np.array([[1.0, -2.0, 0.5], [0.25, 1.0, -1.0], [2.0, 0.0, 1.0], [-1.0, 1.5, 0.0]])
IMAGENET_MEAN = np.array([123.675, 116.28, 103.53])
IMAGENET_STD = np.array([58.395, 57.12, 57.375])


def _const(name, values, shape=None):
    values = np.asarray(values, dtype=np.float32)
    shape = list(values.shape) if shape is None else shape
    return helper.make_tensor(name, TensorProto.FLOAT, shape, values.reshape(-1).tolist())


def normalization_layout(kind):
    """(nodes, initializers, output name, per-channel (mean, std) the graph applies)."""
    if kind == "sub_mul":
        inits = [_const("m", [127.5], []), _const("s", [1 / 128], [])]
        nodes = [
            helper.make_node("Sub", ["data", "m"], ["a"]),
            helper.make_node("Mul", ["a", "s"], ["x"]),
        ]
        return nodes, inits, "x", (127.5, 128.0)
    if kind == "add_negative_mul":
        inits = [
            _const("m", -IMAGENET_MEAN, [1, 3, 1, 1]),
            _const("s", 1 / IMAGENET_STD, [1, 3, 1, 1]),
        ]
        nodes = [
            helper.make_node("Add", ["m", "data"], ["a"]),  # constant first: Add commutes
            helper.make_node("Mul", ["a", "s"], ["x"]),
        ]
        return nodes, inits, "x", (IMAGENET_MEAN, IMAGENET_STD)
    if kind == "div":
        nodes = [helper.make_node("Div", ["data", "s"], ["x"])]
        return nodes, [_const("s", [255.0], [])], "x", (0.0, 255.0)
    if kind == "mul_then_sub":
        inits = [_const("s", [1 / 127.5], []), _const("one", [1.0], [])]
        nodes = [
            helper.make_node("Mul", ["data", "s"], ["a"]),
            helper.make_node("Sub", ["a", "one"], ["x"]),
        ]
        return nodes, inits, "x", (127.5, 127.5)
    if kind == "transpose":  # NHWC inside, per-channel constants of shape (3,)
        inits = [_const("m", IMAGENET_MEAN), _const("s", IMAGENET_STD)]
        nodes = [
            helper.make_node("Transpose", ["data"], ["nhwc"], perm=[0, 2, 3, 1]),
            helper.make_node("Sub", ["nhwc", "m"], ["a"]),
            helper.make_node("Div", ["a", "s"], ["b"]),
            helper.make_node("Transpose", ["b"], ["x"], perm=[0, 3, 1, 2]),
        ]
        return nodes, inits, "x", (IMAGENET_MEAN, IMAGENET_STD)
    if kind == "unit_range":  # constants for 0..1 inputs
        inits = [_const("m", [0.5], []), _const("s", [0.5], [])]
        nodes = [
            helper.make_node("Sub", ["data", "m"], ["a"]),
            helper.make_node("Div", ["a", "s"], ["x"]),
        ]
        return nodes, inits, "x", (127.5, 127.5)
    if kind == "quantized":  # int8 QDQ: (de)quantized input, constants and weights
        inits = [
            helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
            helper.make_tensor("zero_u8", TensorProto.UINT8, [], [0]),
            helper.make_tensor("s_q", TensorProto.INT8, [], [1]),
            helper.make_tensor("s_scale", TensorProto.FLOAT, [], [1 / 128]),
        ]
        nodes = [
            helper.make_node("QuantizeLinear", ["data", "one", "zero_u8"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "one", "zero_u8"], ["dq"]),
            helper.make_node(
                "Constant", [], ["m"], value=helper.make_tensor("v", TensorProto.FLOAT, [], [127.5])
            ),
            helper.make_node("DequantizeLinear", ["s_q", "s_scale"], ["s"]),
            helper.make_node("Sub", ["dq", "m"], ["a"]),
            helper.make_node("Mul", ["a", "s"], ["x"]),
        ]
        return nodes, inits, "x", (127.5, 128.0)
    assert kind == "none"
    return [], [], "data", None


def conv_model(path, kind):
    """The layout ``kind`` before a 1x1 Conv and a spatial mean; int8 weights when quantized."""
    nodes, inits, name, norm = normalization_layout(kind)
    weights = W.reshape(4, 3, 1, 1)
    if kind == "quantized":  # weights dequantized by the first node, as quantizers emit them
        inits += [
            helper.make_tensor("w_q", TensorProto.INT8, [4, 3, 1, 1], (weights * 4).reshape(-1)),
            helper.make_tensor("w_scale", TensorProto.FLOAT, [], [0.25]),
        ]
        nodes.insert(0, helper.make_node("DequantizeLinear", ["w_q", "w_scale"], ["w"]))
    else:
        inits.append(_const("w", weights))
    nodes += [
        helper.make_node("Conv", [name, "w"], ["c"]),
        helper.make_node("ReduceMean", ["c"], ["fc1"], axes=[2, 3], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", 4])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path), norm


@pytest.mark.parametrize(
    "kind",
    [
        "sub_mul",
        "add_negative_mul",
        "div",
        "mul_then_sub",
        "transpose",
        "unit_range",
        "quantized",
        "none",
    ],
)
def test_in_graph_normalization_is_read_and_the_embeddings_are_right(tmp_path, kind, caplog):
    path, norm = conv_model(tmp_path / f"{kind}.onnx", kind)
    with caplog.at_level("INFO", logger="facebench.embed.onnx_convention"):
        embedder = OnnxEmbedder(path)
    line = caplog.messages[-1]
    assert line.startswith(f"{path}: input RGB 112x112")
    in_graph = graph_normalization(onnx.load(path))
    if kind == "none":
        assert in_graph is None and "assumed: no normalization found" in line
        assert "--mean/--std/--color" in line
        mean, std = 127.5, 127.5  # insightface's default, fed by facebench
    else:
        assert "detected from the graph" in line
        assert in_graph.describe() in line
        mean, std = norm
        if kind == "unit_range":  # read as 0..1 constants: pixels fed / 255
            assert (in_graph.mean, in_graph.std) == ((0.5,), (0.5,))
            assert embedder.convention.std == 255.0
        else:
            # not exact: the graph stores float32 constants (2^-24 relative each) and reading
            # composes them in float64 (-shift / scale, 1 / scale: 2^-53 each), so a stored
            # 1 / std reads back as 1 / float32(1 / std): within EPS32 = 2^-23 relative
            np.testing.assert_allclose(
                np.broadcast_to(in_graph.mean, 3), np.broadcast_to(mean, 3), rtol=EPS32
            )
            np.testing.assert_allclose(
                np.broadcast_to(in_graph.std, 3), np.broadcast_to(std, 3), rtol=EPS32
            )
            assert (embedder.convention.mean, embedder.convention.std) == (0.0, 1.0)
    rgb = np.random.default_rng(1).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    channel_means = rgb.astype(np.float64).mean(axis=(1, 2))
    expected = ((channel_means - mean) / std) @ W.T
    error = float32_error(rgb, mean, std, W)
    assert np.all(np.abs(embedder.embed(rgb) - expected) <= error)


def test_insightface_rule_misreads_a_quantized_model(tmp_path):
    """The reason for reading the graph: insightface looks at node names, finds the weights'
    DequantizeLinear nodes first and feeds (x - 127.5) / 127.5 to a self-normalizing model."""
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX

    path, _ = conv_model(tmp_path / "q.onnx", "quantized")
    theirs = ArcFaceONNX(model_file=path)
    assert (theirs.input_mean, theirs.input_std) == (127.5, 127.5)
    assert (detect_onnx_convention(path).mean, detect_onnx_convention(path).std) == (0.0, 1.0)


def test_log_says_stored_or_given(tmp_path, caplog):
    path = pooled_model(tmp_path / "m.onnx")
    model = onnx.load(path)
    model.metadata_props.add(
        key=CONVENTION_METADATA_KEY, value=json.dumps(InputConvention("BGR", 0.0, 1.0).to_dict())
    )
    onnx.save(model, path)
    with caplog.at_level("INFO", logger="facebench.embed.onnx_convention"):
        assert detect_onnx_convention(path).color == "BGR"
        detect_onnx_convention(path, mean=127.5, std=127.5)
    stored, given = caplog.messages[-2:]
    assert stored.endswith(
        "BGR 112x112, fed 0..255 pixels as they are (stored by facebench export)"
    )
    assert "fed (x - 127.5) / 127.5 of 0..255 pixels (--mean --std given; otherwise stored" in given
