"""embed_images and TorchEmbedder against a per-image loop over the module."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facebench.data.images import InputConvention
from facebench.embed import TorchEmbedder, embed_images
from facebench.errors import DataError

sys.path.insert(0, str(Path(__file__).parent))
from float32_forward import EPS32, float64_forward


def reference_embedding(module, rgb, convention, flip_sum, normalize):
    """One image at a time in float64, normalization written out by hand: (embeddings, the
    float32 rounding allowed to each, from :func:`float64_forward`)."""
    rows, errors = [], []
    for image in rgb:
        views = [image, image[:, ::-1, :]] if flip_sum else [image]
        total, error = 0, 0
        for view in views:
            x = view.astype(np.float64)
            if convention.color == "BGR":
                x = x[..., ::-1]
            x = (x - convention.mean) / convention.std
            out, err = float64_forward(module, x.transpose(2, 0, 1)[None])
            total, error = total + out[0], error + err[0]  # the flip sum adds both errors
        if normalize:
            # dividing by the norm: each error over the norm, plus the norm's own error
            norm = np.sqrt((total**2).sum())
            total, error = (
                total / norm,
                (error + np.abs(total / norm) * np.linalg.norm(error)) / norm,
            )
        rows.append(total)
        errors.append(error + EPS32 * np.abs(total))  # and the float32 result's own rounding
    return np.array(rows), np.array(errors)


def assert_within(emb, reference):
    ref, error = reference
    assert np.all(np.abs(emb - ref) <= error), np.abs(emb - ref).max()


@pytest.mark.parametrize("flip_sum", [True, False])
@pytest.mark.parametrize("normalize", [True, False])
def test_matches_per_image_reference(tiny_backbone, faces, flip_sum, normalize):
    conv = InputConvention()
    emb = embed_images(
        TorchEmbedder(tiny_backbone, conv),
        faces,
        batch_size=2,
        flip_sum=flip_sum,
        normalize=normalize,
        progress=False,
    )
    assert emb.dtype == np.float32 and emb.shape == (5, 16)
    assert_within(emb, reference_embedding(tiny_backbone, faces, conv, flip_sum, normalize))
    if normalize:  # float32 rows divided by their float64 norm: 16 roundings of 2**-24 each
        norms = np.linalg.norm(emb.astype(np.float64), axis=1)
        np.testing.assert_allclose(norms, 1.0, rtol=0, atol=16 * 2**-24)


def test_bgr_convention_is_honoured(tiny_backbone, faces):
    conv = InputConvention(color="BGR", mean=100.0, std=50.0)
    emb = embed_images(TorchEmbedder(tiny_backbone, conv), faces, progress=False)
    assert_within(emb, reference_embedding(tiny_backbone, faces, conv, True, True))


def test_list_generator_and_array_agree(tiny_backbone, faces):
    embedder = TorchEmbedder(tiny_backbone)
    a = embed_images(embedder, faces, batch_size=3, progress=False)
    b = embed_images(embedder, list(faces), batch_size=1, progress=False)
    c = embed_images(embedder, (f for f in faces), batch_size=4, progress=False)
    # other batch sizes sum in another order: each within its float32 rounding of the float64
    # embedding, so within twice that of each other
    _, error = reference_embedding(tiny_backbone, faces, InputConvention(), True, True)
    assert np.all(np.abs(a - b) <= 2 * error) and np.all(np.abs(a - c) <= 2 * error)


def test_bf16_is_close_to_fp32(tiny_backbone, faces):
    fp32 = embed_images(TorchEmbedder(tiny_backbone), faces, progress=False)
    bf16 = embed_images(
        TorchEmbedder(tiny_backbone, amp_dtype=torch.bfloat16), faces, progress=False
    )
    cos = (fp32 * bf16).sum(axis=1)
    assert cos.min() > 0.99


def test_bad_images_raise_data_error(tiny_backbone, faces):
    embedder = TorchEmbedder(tiny_backbone)
    with pytest.raises(DataError, match="model expects 112x112"):
        embed_images(embedder, faces[:, :100], progress=False)
    with pytest.raises(DataError, match="image 1: size"):
        embed_images(embedder, [faces[0], faces[1, :100]], progress=False)
    with pytest.raises(DataError, match="uint8"):
        embed_images(embedder, faces.astype(np.float32), progress=False)
    with pytest.raises(DataError, match="no images"):
        embed_images(embedder, [], progress=False)


def test_flip_sum_is_invariant_to_a_horizontal_flip(tiny_backbone, faces):
    # the mirror image's flip-sum adds the same two views; a plain embedding differs
    embedder = TorchEmbedder(tiny_backbone)
    mirrored = faces[:, :, ::-1, :]
    assert not np.array_equal(mirrored, faces)
    a = embed_images(embedder, faces, progress=False)
    b = embed_images(embedder, mirrored, progress=False)
    # the same two views in the other order within the batch: each within its float32 rounding
    # of the float64 embedding, so within twice that of each other
    _, error = reference_embedding(tiny_backbone, faces, InputConvention(), True, True)
    assert np.all(np.abs(a - b) <= 2 * error)
    plain = embed_images(embedder, faces, flip_sum=False, progress=False)
    plain_mirrored = embed_images(embedder, mirrored, flip_sum=False, progress=False)
    assert np.abs(plain - plain_mirrored).max() > 1e-3


class _Fails(torch.nn.Module):
    def forward(self, x):
        raise RuntimeError("forward failed")


@pytest.mark.parametrize("training", [True, False])
def test_embedder_leaves_the_module_in_the_mode_it_found(tiny_backbone, faces, training):
    module = tiny_backbone.train(training)
    module.features[2].train(not training)  # a mixed state comes back module by module
    before = {name: m.training for name, m in module.named_modules()}
    stats = module.features[1].running_mean.clone()
    emb = TorchEmbedder(module).embed(faces)
    assert {name: m.training for name, m in module.named_modules()} == before
    assert torch.equal(module.features[1].running_mean, stats)  # ran in eval mode: untouched
    assert_within(emb[:1], reference_embedding(module, faces[:1], InputConvention(), False, False))

    failing = torch.nn.Sequential(tiny_backbone, _Fails()).train(training)
    with pytest.raises(RuntimeError, match="forward failed"):
        TorchEmbedder(failing).embed(faces)
    assert all(m.training == training for m in failing.modules())
