"""Bad input to heads: clear errors naming the value, never a silent wrong loss."""

from __future__ import annotations

import pytest
import torch

from facebench.errors import ConfigError, ModelError
from facebench.heads import build_head


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("sphereface", {}, "unknown head 'sphereface'"),
        ("cosface", {"neg_weight": 0.7}, "no parameter 'neg_weight'"),
        ("normsoftmax", {"margin": 0.2}, "no parameter 'margin'"),
        ("bce_zero", {"bias_init": 1.0}, "no parameter 'bias_init'"),
        ("bce_u", {"normalized": False, "margin": 0.4}, "margin=0.4 needs normalized=True"),
        ("softmax", {"scale": 64}, "scale=64 applies only to normalized=True"),
        ("bce_u", {"sample_ratio": 0}, "sample_ratio=0"),
        ("bce_u", {"sample_ratio": 1.5}, "sample_ratio=1.5"),
        ("bce_u", {"scale": "big"}, "scale='big' is not a number"),
        ("arcface", {"margin": float("nan")}, "margin=nan"),
        ("bce_d", {"normalized": "yes"}, "normalized='yes'"),
    ],
)
def test_bad_configuration_names_the_value(name, params, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        build_head(name, 4, 5, **params)


def test_bad_sizes():
    with pytest.raises(ConfigError, match="num_classes=0"):
        build_head("bce_u", 4, 0)
    with pytest.raises(ConfigError, match=r"embedding_size=4\.0"):
        build_head("bce_u", 4.0, 5)


@pytest.mark.parametrize("name", ["softmax", "arcface", "bce_u"])
def test_bad_batches_name_the_value(name):
    head = build_head(name, 4, 5)
    x, y = torch.randn(3, 4), torch.tensor([0, 4, 2])
    with pytest.raises(ModelError, match=r"label 5 at index 1 is out of range \[0, 5\)"):
        head(x, torch.tensor([0, 5, 2]))
    with pytest.raises(ModelError, match=r"label -1 at index 2"):
        head(x, torch.tensor([0, 1, -1]))
    with pytest.raises(ModelError, match=r"shape \(N, 4\), got \(3, 6\)"):
        head(torch.randn(3, 6), y)
    bad = x.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ModelError, match=r"embedding row 2 holds a non-finite value \(nan\)"):
        head(bad, y)
    bad[2, 1] = float("-inf")
    with pytest.raises(ModelError, match=r"row 2 .*-inf"):
        head.scores(bad)
    with pytest.raises(ModelError, match=r"integer class labels, got torch\.float32"):
        head(x, y.float())
    with pytest.raises(ModelError, match=r"labels of shape \(3,\), got \(2,\)"):
        head(x, y[:2])
    with pytest.raises(ModelError, match="empty batch"):
        head(x[:0], y[:0])


def test_bad_state_dicts():
    head = build_head("bce_d", 4, 5)
    state = head.full_state_dict()
    with pytest.raises(ModelError, match=r"'bias' has shape \(4,\), expected \(5,\)"):
        head.load_full_state_dict({**state, "bias": torch.zeros(4)})
    with pytest.raises(ModelError, match="keys"):
        build_head("cosface", 4, 5).load_full_state_dict(state)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("bce_u", {"margin_type": "arc"}, "margin_type='arc' must be one of cosine, angular"),
        ("bce_u", {"margin": -0.1}, r"margin=-0\.1 is outside the allowed range \[0, inf\)"),
        ("bce_d", {"margin": 0.5, "margin_type": "multiplicative"}, "must be >= 1 for margin_type"),
        ("cosface", {"scale": -64}, r"scale=-64 is outside the allowed range \(0, inf\)"),
        ("bce_u", {"neg_weight": 0}, r"neg_weight=0 is outside the allowed range \(0, inf\)"),
        ("bce_u", {"bias_init": True}, "bias_init=True is not a number"),
    ],
)
def test_errors_name_head_parameter_and_range(name, params, message):
    with pytest.raises(ConfigError, match=f"^head '{name}': parameter .*{message}"):
        build_head(name, 4, 5, **params)
