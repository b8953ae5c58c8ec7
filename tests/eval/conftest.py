"""Synthetic verification pairs shared by the evaluation tests."""

import numpy as np
import pytest


def synthetic_pairs(n_pairs: int, dim: int = 16, seed: int = 0, noise: float = 1.0):
    """(2P, dim) embeddings and P labels: genuine pairs share a centre plus noise."""
    rng = np.random.default_rng(seed)
    issame = rng.random(n_pairs) < 0.5
    a = rng.normal(size=(n_pairs, dim))
    b = np.where(issame[:, None], a, rng.normal(size=(n_pairs, dim)))
    b = b + noise * rng.normal(size=(n_pairs, dim))
    emb = np.empty((2 * n_pairs, dim))
    emb[0::2], emb[1::2] = a, b
    return emb.astype(np.float32), issame


@pytest.fixture
def make_pairs():
    return synthetic_pairs
