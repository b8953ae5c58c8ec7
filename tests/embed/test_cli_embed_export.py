"""`facebench embed` and `facebench export` end to end, and their one-line errors (exit 2)."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from facebench.cli import main
from facebench.data.align import insightface_sample_faces
from facebench.data.bins import write_verification_bin
from facebench.data.images import DEFAULT_CONVENTION, InputConvention, encode_image
from facebench.data.packs import FacePack, write_face_pack
from facebench.embed import TorchEmbedder, embed_images
from facebench.models import build_backbone
from facebench.models.artifact import save_model_artifact

sys.path.insert(0, str(Path(__file__).parent))
from float32_forward import assert_both_within


def saved_module(workdir):
    """The tiny_face that ``workdir``'s model.pt holds, in eval mode."""
    module = build_backbone("tiny_face", 16, widths=(8, 8, 16))
    module.load_state_dict(torch.load(workdir / "model.pt", weights_only=True)["state_dict"])
    return module.eval()


def pack_images(workdir):
    """The pack's images (lossless PNG: the arrays written), in key order."""
    pack = FacePack(str(workdir / "pack"))
    return np.stack([pack.read_image(int(k)) for k in pack.image_keys])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A tiny model.pt, a 6-image pack (3 identities) and a 2-pair bin from real faces."""
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    model = build_backbone("tiny_face", 16, widths=(8, 8, 16))
    save_model_artifact(
        root / "model.pt", model, "tiny_face", {"widths": [8, 8, 16]}, DEFAULT_CONVENTION
    )
    faces = insightface_sample_faces()
    images = np.concatenate([faces, np.clip(faces.astype(int) + 20, 0, 255).astype(np.uint8)])
    order = [0, 3, 1, 4, 2, 5]
    write_face_pack(
        str(root / "pack"),
        [(i // 2, encode_image(images[k], ".png")) for i, k in enumerate(order)],
        (112, 112),
    )
    write_verification_bin(
        str(root / "v.bin"), [encode_image(images[k]) for k in order[:4]], [True, False]
    )
    return root


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def error_line(argv, capsys):
    code, _, err = run([*argv, "--no-progress"] if argv[0] == "embed" else argv, capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facebench: error: "), err
    return lines[0]


def test_embed_pack_writes_npy_and_sidecar_matching_the_library(workdir, capsys):
    out = workdir / "pack_emb.npy"
    code, text, _ = run(
        [
            "embed",
            "--model",
            str(workdir / "model.pt"),
            "--pack",
            str(workdir / "pack"),
            "--out",
            str(out),
            "--batch-size",
            "4",
        ],
        capsys,
    )
    assert code == 0 and "6 x 16 embeddings" in text
    emb = np.load(out)
    side = json.loads((workdir / "pack_emb.json").read_text())
    assert emb.dtype == np.float32 and emb.shape == (6, 16)
    assert side["labels"] == [0, 0, 1, 1, 2, 2] and side["ids"] == [1, 2, 3, 4, 5, 6]
    assert side["model"] == "tiny_face" and side["flip_sum"] and side["normalized"]
    assert side["input_convention"] == DEFAULT_CONVENTION.to_dict()
    module, rgb = saved_module(workdir), pack_images(workdir)
    ref = embed_images(TorchEmbedder(module), rgb, progress=False)
    assert_both_within(emb, ref, module, rgb, flip_sum=True, normalize=True)


def test_embed_bin_folder_list_and_options(workdir, capsys):
    code, _, _ = run(
        [
            "embed",
            "--model",
            str(workdir / "model.pt"),
            "--bin",
            str(workdir / "v.bin"),
            "--out",
            str(workdir / "bin.npy"),
            "--no-flip-sum",
            "--no-normalize",
            "--precision",
            "bf16",
        ],
        capsys,
    )
    side = json.loads((workdir / "bin.json").read_text())
    assert code == 0 and side["pairs"] == 2 and not side["flip_sum"] and not side["normalized"]
    assert np.load(workdir / "bin.npy").shape == (4, 16)

    folder = workdir / "faces"
    for name, face in zip(["ann", "bob", "bob"], insightface_sample_faces(), strict=True):
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / f"{len(os.listdir(folder / name))}.png").write_bytes(
            encode_image(face, ".png")
        )
    code, _, _ = run(
        [
            "embed",
            "--model",
            str(workdir / "model.pt"),
            "--folder",
            str(folder),
            "--out",
            str(workdir / "folder.npy"),
        ],
        capsys,
    )
    side = json.loads((workdir / "folder.json").read_text())
    assert code == 0 and side["identities"] == ["ann", "bob", "bob"] and side["labels"] == [0, 1, 1]

    (workdir / "list.txt").write_text("faces/bob/1.png bob\n# comment\nfaces/ann/0.png ann\n")
    code, _, _ = run(
        [
            "embed",
            "--model",
            str(workdir / "model.pt"),
            "--list",
            str(workdir / "list.txt"),
            "--out",
            str(workdir / "list.npy"),
        ],
        capsys,
    )
    listed = np.load(workdir / "list.npy")  # bob/1 and ann/0 in a batch of 2, not 3
    rgb = insightface_sample_faces()[[2, 0]]
    assert_both_within(
        listed,
        np.load(workdir / "folder.npy")[[2, 0]],
        saved_module(workdir),
        rgb,
        flip_sum=True,
        normalize=True,
    )


def test_export_of_a_model_the_insightface_zoo_cannot_load_says_what_to_do(tmp_path, capsys):
    model = build_backbone("tiny_face", 16, widths=(8, 8, 16))
    conv = InputConvention(size=(56, 56))
    save_model_artifact(tmp_path / "m56.pt", model, "tiny_face", {"widths": [8, 8, 16]}, conv)
    onnx_path = tmp_path / "m56.onnx"
    code, text, err = run(
        ["export", "--model", str(tmp_path / "m56.pt"), "--onnx", str(onnx_path)], capsys
    )
    assert code == 0, err
    assert "on 3 real images" in text and onnx_path.is_file()  # the sample photos, resized
    note = text.strip().splitlines()[-1]
    assert "insightface's model zoo cannot load it" in note and "56x56" in note
    assert f"--model {onnx_path}" in note


def test_export_then_embed_with_onnx_matches_torch(workdir, capsys):
    onnx_path = workdir / "m.onnx"
    code, text, _ = run(
        [
            "export",
            "--model",
            str(workdir / "model.pt"),
            "--onnx",
            str(onnx_path),
            "--pack",
            str(workdir / "pack"),
        ],
        capsys,
    )
    assert code == 0 and "on 6 real images: max abs difference" in text
    code, _, _ = run(
        [
            "embed",
            "--model",
            str(onnx_path),
            "--pack",
            str(workdir / "pack"),
            "--out",
            str(workdir / "onnx_emb.npy"),
        ],
        capsys,
    )
    torch_emb = workdir / "torch_emb.npy"
    run(
        [
            "embed",
            "--model",
            str(workdir / "model.pt"),
            "--pack",
            str(workdir / "pack"),
            "--out",
            str(torch_emb),
        ],
        capsys,
    )
    assert_both_within(
        np.load(workdir / "onnx_emb.npy"),
        np.load(torch_emb),
        saved_module(workdir),
        pack_images(workdir),
        flip_sum=True,
        normalize=True,
    )


def test_bad_inputs_give_one_line_errors(workdir, capsys):
    model = str(workdir / "model.pt")
    (workdir / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (workdir / "bad_list.txt").write_text("broken.jpg\n")
    line = error_line(
        [
            "embed",
            "--model",
            model,
            "--list",
            str(workdir / "bad_list.txt"),
            "--out",
            str(workdir / "x.npy"),
        ],
        capsys,
    )
    assert "broken.jpg: image does not decode" in line

    small = workdir / "small"
    small.mkdir()
    (small / "a.png").write_bytes(encode_image(np.zeros((100, 90, 3), np.uint8), ".png"))
    line = error_line(
        ["embed", "--model", model, "--folder", str(small), "--out", str(workdir / "x.npy")], capsys
    )
    assert "a.png: image is 100x90, the model expects 112x112" in line

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 112, 112])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
    )
    gray = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    gray.ir_version = 8
    onnx.save(gray, str(workdir / "gray.onnx"))
    line = error_line(
        [
            "embed",
            "--model",
            str(workdir / "gray.onnx"),
            "--pack",
            str(workdir / "pack"),
            "--out",
            str(workdir / "x.npy"),
        ],
        capsys,
    )
    assert "gray.onnx: expected an NCHW input with 3 channels" in line

    line = error_line(
        # tolerance 0: onnxruntime and torch never agree to the last bit over a whole network
        ["export", "--model", model, "--onnx", str(workdir / "fail.onnx"), "--tolerance", "0"],
        capsys,
    )
    assert "nothing written" in line
    assert not [p for p in os.listdir(workdir) if "fail" in p]
    assert not os.path.exists(workdir / "x.npy") and not os.path.exists(workdir / "x.json")
