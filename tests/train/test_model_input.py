"""uint8 batches -> model input on the device: the same bits as the per-image float path it
replaced, for the conversion itself, for training and for embedding; DataLoader workers hand
over uint8 batches. The conversion is elementwise and correctly rounded, so its bits hold on any
CPU; training and embedding repeat bit for bit because both paths run in this one process, on
one kernel set (another kernel set gives other last bits to both)."""

import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from facebench.data.align import insightface_sample_faces
from facebench.data.collate import RowBatch, collate_images, read_batch
from facebench.data.images import InputConvention
from facebench.data.model_input import model_input
from facebench.data.packs import PackDataset
from facebench.data.synth.dataset import SynthConfig, write_synthetic_dataset
from facebench.embed import TorchEmbedder, embed_images
from facebench.errors import DataError
from facebench.models import build_backbone
from facebench.train import train

CONVENTIONS = [
    InputConvention(),
    InputConvention(color="BGR", mean=123.7, std=58.4),
    InputConvention(color="RGB", mean=0.0, std=255.0),
]


def per_image_input(rgb: np.ndarray, convention: InputConvention) -> torch.Tensor:
    """The path this replaced, one image at a time in numpy: colour order, HWC -> CHW, float32,
    subtract, divide."""
    x = rgb[..., ::-1] if convention.color == "BGR" else rgb
    x = np.ascontiguousarray(x.transpose(2, 0, 1)).astype(np.float32)
    x -= np.float32(convention.mean)
    x /= np.float32(convention.std)
    return torch.from_numpy(x)


def old_batch_input(batch, convention, flip=None, channels_last=False):
    """Slow reference for model_input: per-image floats stacked, then the trainer's old flip of
    the float batch."""
    images = torch.stack([per_image_input(x, convention) for x in batch.cpu().numpy()])
    images = images.to(batch.device)
    if flip is not None:
        images = torch.where(flip.to(batch.device)[:, None, None, None], images.flip(-1), images)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return images.contiguous(memory_format=layout)


@pytest.fixture(scope="module")
def synth_pack(tmp_path_factory):
    """A JPEG pack of synthetic 112x112 faces written by `facebench data synth`'s writer."""
    out = tmp_path_factory.mktemp("synth") / "pack"
    cfg = SynthConfig(
        identities=3,
        images_per_identity=4,
        test_images_per_identity=0,
        val_identities=2,
        val_images_per_identity=2,
        pairs=20,
    )
    write_synthetic_dataset(out, cfg)
    return out


@pytest.fixture(scope="module")
def real_faces(synth_pack):
    """uint8 (N, 112, 112, 3): the pack's faces through the DataLoader's collate, then the
    insightface sample faces."""
    data = PackDataset(str(synth_pack))
    batch, _ = default_collate([data[i] for i in range(len(data))])
    assert batch.dtype == torch.uint8 and batch.shape == (12, 112, 112, 3)
    return torch.cat([batch, torch.from_numpy(insightface_sample_faces(112))])


@pytest.mark.parametrize("convention", CONVENTIONS, ids=["default", "bgr", "unit"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_same_bits_as_the_per_image_path(real_faces, convention, channels_last):
    flip = torch.arange(len(real_faces)) % 3 == 0
    for mask in (None, flip):
        out = model_input(real_faces, convention, mask, channels_last)
        ref = old_batch_input(real_faces, convention, mask)
        assert out.dtype == torch.float32 and out.shape == (15, 3, 112, 112)
        assert torch.equal(out, ref)
        layout = torch.channels_last if channels_last else torch.contiguous_format
        assert out.is_contiguous(memory_format=layout)
    x = real_faces.double().permute(0, 3, 1, 2)
    x = x.flip(1) if convention.color == "BGR" else x
    exact = (x - convention.mean) / convention.std  # float64; float32 rounds mean and result
    # float32 rounds the mean, the difference and the quotient, each by at most 2**-24 relative:
    # in all under 2 * 2**-24 * (|x| + mean) / std <= 7.7e-7 (BGR: (255 + 123.7) / 58.4 = 6.5)
    np.testing.assert_allclose(model_input(real_faces, convention), exact, rtol=0, atol=1e-6)


def test_bad_batches_are_data_errors(real_faces):
    conv = InputConvention()
    with pytest.raises(DataError, match="expected uint8"):
        model_input(real_faces.float(), conv)
    with pytest.raises(DataError, match=r"shape \(N, H, W, 3\)"):
        model_input(real_faces.permute(0, 3, 1, 2), conv)
    with pytest.raises(DataError, match="the model expects 56x56"):
        model_input(real_faces, InputConvention(size=(56, 56)))


def test_workers_hand_over_the_same_uint8_batches(synth_pack):
    data = PackDataset(str(synth_pack))
    expected = default_collate([data[i] for i in range(len(data))])  # item by item
    for workers in (0, 2):
        loader = DataLoader(data, batch_size=5, num_workers=workers, collate_fn=collate_images)
        images, labels = (torch.cat(parts) for parts in zip(*loader, strict=True))
        assert images.dtype == torch.uint8 and labels.dtype == torch.int64
        assert torch.equal(images, expected[0]) and torch.equal(labels, expected[1])


def test_collate_stacks_lists_and_passes_row_batches_on(synth_pack):
    data = PackDataset(str(synth_pack))
    rows = data.__getitems__([3, 0, 7])
    assert isinstance(rows, RowBatch) and len(rows) == 3
    images, labels = collate_images(rows)
    assert images.data_ptr() == rows.images.ctypes.data == rows.batch.data_ptr()  # no copy
    stacked, same_labels = collate_images([data[i] for i in (3, 0, 7)])
    assert torch.equal(images, stacked) and torch.equal(labels, same_labels)
    assert labels.tolist() == [data[i][1] for i in (3, 0, 7)]


def test_a_batch_of_mixed_sizes_is_a_data_error():
    class Mixed:
        def __getitem__(self, index):
            return np.zeros((8 + index, 8, 3), np.uint8), index

    with pytest.raises(DataError, match="image 1 is 9x8, the first of its batch 8x8"):
        read_batch(Mixed(), [0, 1])


def _final_weights(run_dir):
    model = torch.load(run_dir / "model.pt", weights_only=False)
    return {**model["state_dict"], **model["head"]["state_dict"]}


@pytest.mark.parametrize("channels_last", [False, True])
def test_training_matches_the_per_image_path(
    recipe_file, data_root, tmp_path, monkeypatch, channels_last
):
    sets = ["train.max_steps=3", "train.accumulation=2", "eval.bins=[]"]
    sets.append(f"train.channels_last={channels_last}")
    runs = {}
    for name in ("uint8", "per_image"):
        if name == "per_image":
            monkeypatch.setattr("facebench.data.model_input.model_input", old_batch_input)
        runs[name] = train(
            recipe_file, tmp_path / name, data_root=data_root, overrides=sets, progress=False
        )
    assert runs["uint8"].losses == runs["per_image"].losses and len(runs["uint8"].losses) == 3
    new, old = (_final_weights(tmp_path / name) for name in ("uint8", "per_image"))
    assert all(torch.equal(new[k], old[k]) for k in old)


def test_workers_train_the_same_as_the_main_process(recipe_file, data_root, tmp_path):
    sets = ["train.max_steps=3", "eval.bins=[]"]
    losses = [
        train(
            recipe_file,
            tmp_path / f"w{workers}",
            data_root=data_root,
            overrides=[*sets, f"data.num_workers={workers}"],
            progress=False,
        ).losses
        for workers in (0, 2)
    ]
    assert losses[0] == losses[1]


@pytest.mark.parametrize("convention", CONVENTIONS[:2], ids=["default", "bgr"])
def test_embedding_matches_the_per_image_path(real_faces, convention, monkeypatch):
    torch.manual_seed(0)
    module = build_backbone("tiny_face", 16, widths=[8, 16], blocks=[1, 1]).eval()
    faces = real_faces.numpy()
    new = embed_images(TorchEmbedder(module, convention), faces, batch_size=4, progress=False)
    monkeypatch.setattr("facebench.embed.embedders.model_input", old_batch_input)
    old = embed_images(TorchEmbedder(module, convention), faces, batch_size=4, progress=False)
    assert np.array_equal(new, old)


def test_read_only_images_embed_without_a_warning(real_faces):
    module = build_backbone("tiny_face", 16, widths=[8, 16], blocks=[1, 1]).eval()
    faces = real_faces.numpy().copy()
    expected = TorchEmbedder(module).embed(faces)
    faces.setflags(write=False)  # as a memory-mapped file would be
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(TorchEmbedder(module).embed(faces), expected)


def test_embedder_feeds_channels_last_batches_when_asked(real_faces):
    module = build_backbone("tiny_face", 16, widths=[8, 16], blocks=[1, 1]).eval()
    seen = []
    module.register_forward_pre_hook(
        lambda _, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last))
    )
    faces = real_faces.numpy()
    plain = TorchEmbedder(module).embed(faces)
    nhwc = TorchEmbedder(module.to(memory_format=torch.channels_last), channels_last=True)
    # the layout changes only the order of each conv's float32 sums (at most 9 * 16 = 144
    # products: about sqrt(144) * 2**-24 = 7e-7 relative per layer); the embedding's entries are
    # below 1, so 1e-5 bounds the few layers (measured: 1.5e-8 on every kernel set)
    np.testing.assert_allclose(nhwc.embed(faces), plain, rtol=0, atol=1e-5)
    assert seen == [False, True]
