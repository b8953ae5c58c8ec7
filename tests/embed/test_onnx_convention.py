"""External ONNX models: convention detection as insightface does it, options, bad inputs."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from facebench.data.images import InputConvention
from facebench.embed import OnnxEmbedder, load_embedder
from facebench.embed.onnx_convention import detect_onnx_convention
from facebench.errors import ConfigError, ModelError


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
    expected = (expected - 127.5) / 128.0 if in_graph else (expected - 127.5) / 127.5
    np.testing.assert_allclose(got, expected, atol=1e-4)


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
