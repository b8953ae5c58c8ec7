"""`facebench verify` end to end on tiny bins: model and embeddings routes, bad input."""

import json

import numpy as np
import pytest
import torch

from facebench.cli import main
from facebench.data.bins import write_verification_bin
from facebench.data.images import InputConvention
from facebench.embed import embed_images, load_embedder
from facebench.models import build_backbone
from facebench.models.artifact import save_model_artifact

SIZE = 32


def make_bin(path, n_pairs, seed, issame=None):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(n_pairs, SIZE, SIZE, 3))
    other = rng.integers(0, 256, size=(n_pairs, SIZE, SIZE, 3))
    if issame is None:
        issame = rng.random(n_pairs) < 0.5
    noise = rng.integers(-30, 30, size=base.shape)
    second = np.where(issame[:, None, None, None], base + noise, other)
    images = np.empty((2 * n_pairs, SIZE, SIZE, 3), np.uint8)
    images[0::2], images[1::2] = base, np.clip(second, 0, 255)
    write_verification_bin(path, list(images), issame)
    return images, issame


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.manual_seed(0)
    kwargs = {"widths": [8, 8, 8], "embedding_size": 16}
    net = build_backbone("tiny_face", **kwargs).eval()
    path = tmp_path_factory.mktemp("model") / "model.pt"
    conv = InputConvention(size=(SIZE, SIZE))
    save_model_artifact(path, net, "tiny_face", kwargs, conv)
    return str(path)


def test_model_and_embeddings_routes_agree(tmp_path, model_path, capsys, caplog):
    images, _ = make_bin(tmp_path / "a.bin", 40, seed=1)
    make_bin(tmp_path / "b.bin", 30, seed=2)
    out = tmp_path / "out"
    argv = ["verify", "--model", model_path, "--bin", str(tmp_path / "a.bin"), "--no-progress"]
    with caplog.at_level("INFO"):
        assert main([*argv, "--bin", str(tmp_path / "b.bin"), "--out", str(out)]) == 0
    text, err = capsys.readouterr()
    # one summary line per bin, in percent, printed once (not also logged), and no bar
    lines = text.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["a", "b", f"reports in {out}"]
    assert not [m for m in caplog.messages if "10-fold" in m] and "%|" not in err
    report = json.loads((out / "a.json").read_text())
    for field in ("accuracy_10fold_mean", "val_at_far_1e-3", "global_threshold", "tar_at_far"):
        assert field in report
    assert report["pairs"] == 40
    transfer = json.loads((out / "transfer.json").read_text())
    assert set(transfer["sources"]["a"]["global"]) == {"a", "b"}

    emb = embed_images(load_embedder(model_path), images, progress=False)
    np.save(tmp_path / "a.npy", emb)
    out2 = tmp_path / "out2"
    argv = ["verify", "--embeddings", str(tmp_path / "a.npy"), "--bin", str(tmp_path / "a.bin")]
    assert main([*argv, "--out", str(out2)]) == 0
    again = json.loads((out2 / "a.json").read_text())
    for key in ("accuracy_10fold_mean", "global_accuracy", "auc", "eer"):
        assert again[key] == pytest.approx(report[key], abs=1e-12)


def one_line_error(capsys, argv, pattern):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("facebench: error:") and "\n" not in err
    assert pattern in err


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    make_bin(tmp_path / "a.bin", 20, seed=3)
    make_bin(tmp_path / "same.bin", 20, seed=4, issame=np.ones(20, bool))
    base = ["verify", "--bin", str(tmp_path / "a.bin"), "--out", str(tmp_path / "o")]
    np.save(tmp_path / "short.npy", np.ones((39, 8), np.float32))
    one_line_error(capsys, [*base, "--embeddings", str(tmp_path / "short.npy")], "39 embeddings")
    nan = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    nan[5, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    one_line_error(capsys, [*base, "--embeddings", str(tmp_path / "nan.npy")], "not finite")
    np.save(tmp_path / "ok.npy", np.nan_to_num(nan))
    argv = ["verify", "--bin", str(tmp_path / "same.bin"), "--out", str(tmp_path / "o")]
    one_line_error(capsys, [*argv, "--embeddings", str(tmp_path / "ok.npy")], "both genuine")
    one_line_error(capsys, base, "exactly one of --model or --embeddings")


def test_convention_options_only_for_onnx(tmp_path, model_path, capsys):
    make_bin(tmp_path / "a.bin", 20, seed=6)
    argv = ["verify", "--model", model_path, "--bin", str(tmp_path / "a.bin"), "--mean", "0"]
    one_line_error(capsys, [*argv, "--out", str(tmp_path / "o")], "apply to ONNX models")


def test_unknown_onnx_layout_is_one_line_error(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    # an NHWC model: (N, 32, 32, 3) -> flatten
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["y"])],
        "nhwc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", SIZE, SIZE, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", SIZE * SIZE * 3])],
    )
    onnx.save(helper.make_model(graph), tmp_path / "nhwc.onnx")
    make_bin(tmp_path / "a.bin", 20, seed=5)
    argv = ["verify", "--model", str(tmp_path / "nhwc.onnx"), "--bin", str(tmp_path / "a.bin")]
    one_line_error(capsys, [*argv, "--out", str(tmp_path / "o")], "NCHW")
