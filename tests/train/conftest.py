"""A tiny training set for the trainer tests: 8 classes of 32x32 patterned images and a bin."""

import numpy as np
import pytest
import torch

from facebench.data.bins import write_verification_bin
from facebench.data.images import encode_image
from facebench.data.packs import write_face_pack

CLASSES = 8
PER_CLASS = 8
SIZE = 32


def _image(rng: np.random.Generator, pattern: np.ndarray) -> np.ndarray:
    noisy = pattern + rng.normal(0, 25, pattern.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A data root holding ``tiny/`` (train pack) and ``tiny/val.bin`` (20 pairs)."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    patterns = rng.uniform(0, 255, (CLASSES + 4, SIZE, SIZE, 3))
    samples = [
        (label, encode_image(_image(rng, patterns[label]), ".png"))
        for label in range(CLASSES)
        for _ in range(PER_CLASS)
    ]
    write_face_pack(str(root / "tiny"), samples, (SIZE, SIZE))
    images, issame = [], []
    for fold in range(10):
        for same in (True, False):
            a = CLASSES + (fold % 4)
            b = a if same else CLASSES + ((fold + 1) % 4)
            images += [_image(rng, patterns[a]), _image(rng, patterns[b])]
            issame.append(same)
    write_verification_bin(str(root / "tiny" / "val.bin"), images, issame)
    return root


@pytest.fixture(scope="session")
def recipe_file(tmp_path_factory):
    """A CPU recipe for the tiny set: 64 images, batch 16 (4 steps per epoch)."""
    path = tmp_path_factory.mktemp("recipes") / "tiny.yaml"
    path.write_text(
        """
name: tiny
data: {train: tiny, random_flip: true, num_workers: 0}
model: {backbone: tiny_face, embedding_size: 16, options: {widths: [8, 16], blocks: [1, 1]}}
head: {name: bce_u, params: {scale: 16.0, margin: 0.1, neg_weight: 0.7}}
optim: {name: sgd, lr: 0.1, momentum: 0.9, weight_decay: 5e-4}
schedule: {name: cosine, warmup_epochs: 0.5}
train: {epochs: 3, batch_size: 16, log_every: 1, checkpoint_every: 0, keep_checkpoints: 5}
eval: {bins: [tiny/val.bin], every: 0, batch_size: 40}
output: {tensorboard: true}
"""
    )
    return path


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny tensors: one intra-op thread is faster, and far faster on a shared, loaded CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
