"""ONNX export: onnxruntime vs PyTorch, insightface compatibility, no file left on failure."""

import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facebench.data.align import insightface_sample_faces
from facebench.data.images import InputConvention
from facebench.embed import OnnxEmbedder, TorchEmbedder, embed_images, export
from facebench.embed.export import check_images, export_onnx
from facebench.errors import ModelError
from facebench.models import build_backbone

sys.path.insert(0, str(Path(__file__).parent))
from float32_forward import assert_both_within


@pytest.fixture(scope="module")
def real_faces():
    return insightface_sample_faces()


@pytest.fixture(scope="module")
def tiny_face():
    torch.manual_seed(0)
    module = build_backbone("tiny_face", 32, widths=(8, 16, 16)).eval()
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
    return module


def test_export_matches_torch_on_any_batch_and_loads_in_insightface(
    tmp_path, tiny_face, real_faces
):
    from insightface.model_zoo import get_model
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX

    path = str(tmp_path / "m.onnx")
    result = export_onnx(tiny_face, path, real_faces, name="tiny_face")
    assert result["max_abs_diff"] <= 1e-4 and os.listdir(tmp_path) == ["m.onnx"]

    batch = np.concatenate([real_faces, real_faces[:, :, ::-1]])  # 6 images: a batch never exported
    assert OnnxEmbedder(path).name == "tiny_face"  # from the file's metadata
    ours = OnnxEmbedder(path).embed(batch)
    ref = TorchEmbedder(tiny_face).embed(batch)
    assert_both_within(ours, ref, tiny_face, batch)

    model = get_model(path, providers=["CPUExecutionProvider"])
    assert isinstance(model, ArcFaceONNX) and model.taskname == "recognition"
    assert (model.input_mean, model.input_std, model.input_size) == (127.5, 127.5, (112, 112))
    bgr = [cv2.cvtColor(im, cv2.COLOR_RGB2BGR) for im in batch]  # insightface takes cv2 images
    assert_both_within(model.get_feat(bgr), ref, tiny_face, batch)


def test_other_training_convention_is_adapted_to_insightface_input(tmp_path, tiny_face, real_faces):
    conv = InputConvention(color="BGR", mean=0.0, std=255.0)
    path = str(tmp_path / "bgr.onnx")
    export_onnx(tiny_face, path, real_faces, convention=conv)
    onnx_emb = embed_images(OnnxEmbedder(path), real_faces, progress=False)
    torch_emb = embed_images(TorchEmbedder(tiny_face, conv), real_faces, progress=False)
    assert_both_within(
        onnx_emb, torch_emb, tiny_face, real_faces, conv, flip_sum=True, normalize=True
    )
    assert OnnxEmbedder(path).convention == InputConvention()


def test_failed_export_leaves_no_file(tmp_path, tiny_face, real_faces, monkeypatch):
    with pytest.raises(ModelError, match="nothing written"):
        export_onnx(tiny_face, str(tmp_path / "m.onnx"), real_faces, tolerance=-1.0)
    assert os.listdir(tmp_path) == []

    def refuse(path, size):
        raise ModelError(f"{path}: insightface does not load it as a recognition model")

    monkeypatch.setattr(export, "_insightface_check", refuse)
    with pytest.raises(ModelError, match="recognition model"):
        export_onnx(tiny_face, str(tmp_path / "m.onnx"), real_faces)
    assert os.listdir(tmp_path) == []


def test_check_images_default_to_aligned_insightface_photos():
    faces = check_images(InputConvention(size=(224, 224)))
    assert faces.shape == (3, 224, 224, 3) and faces.dtype == np.uint8
    big = cv2.resize(insightface_sample_faces()[0], (224, 224), interpolation=cv2.INTER_LINEAR)
    assert np.abs(faces[0].astype(float) - big).mean() < 3.0  # Tom Hanks, re-aligned at 224
    # sizes the template cannot align to: the 112-px crops resized, so any model can be checked
    for size in ((56, 56), (112, 96)):
        faces = check_images(InputConvention(size=size))
        small = cv2.resize(insightface_sample_faces()[0], size[::-1], interpolation=cv2.INTER_AREA)
        assert faces.shape == (3, *size, 3) and np.array_equal(faces[0], small)


def test_input_insightface_cannot_route_exports_for_onnxruntime_only(tmp_path, tiny_face):
    faces = np.random.default_rng(0).integers(0, 256, (3, 56, 56, 3), dtype=np.uint8)
    path = str(tmp_path / "small.onnx")
    result = export_onnx(tiny_face, path, faces, InputConvention(size=(56, 56)))
    assert result["insightface"] is False and os.listdir(tmp_path) == ["small.onnx"]
    conv = InputConvention(size=(56, 56))
    ours = OnnxEmbedder(path).embed(faces)
    assert_both_within(ours, TorchEmbedder(tiny_face, conv).embed(faces), tiny_face, faces, conv)
