"""SphereFace2, AdaFace, CurricularFace and MagFace beyond the loop-reference loss tests: running
statistics, SphereFace2's bias initialisation and threshold, checkpoints, parameter errors."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from facebench.errors import ConfigError
from facebench.heads import build_head

sys.path.insert(0, str(Path(__file__).parent))
from reference import (
    adaface_stats,
    curricularface_t,
    reference_loss,
    reference_settings,
    sphereface2_bias_init,
)
from test_heads import make_batch


def test_adaface_running_statistics_follow_the_batch_norms():
    x, y, weight = make_batch()
    x = x * torch.linspace(0.5, 30.0, x.shape[0], dtype=torch.float64)[:, None]
    params = {"scale": 8.0, "momentum": 0.2}
    head = build_head("adaface", 4, 5, **params).double()
    with torch.no_grad():
        head.weight.copy_(weight)
    head(x, y)
    _, mean, std = adaface_stats(reference_settings("adaface", params, 5), x)
    assert head.norm_mean.item() == pytest.approx(mean, rel=1e-12)
    assert head.norm_std.item() == pytest.approx(std, rel=1e-12)
    head.eval()
    head(x, y)  # evaluation leaves them alone
    assert head.norm_mean.item() == pytest.approx(mean, rel=1e-12)


def test_adaface_margin_scaler_clips_at_both_ends():
    # μ = 2, σ = 0.5, h = 1: norms far from 2 give ẑ = ±1, the ones near 2 stay inside
    x, y, weight = make_batch()
    x = x / x.norm(dim=1, keepdim=True) * torch.tensor([0.5, 1.9, 2.1, 4.0, 9.0, 2.0])[:, None]
    params = {"scale": 8.0, "h": 1.0, "momentum": 0.01}
    head = build_head("adaface", 4, 5, **params).double()
    state = {"weight": weight, "norm_mean": torch.tensor(2.0), "norm_std": torch.tensor(0.5)}
    head.load_full_state_dict(state)
    xs = x.clone().requires_grad_(True)
    loss = head(xs, y)
    loss.backward()
    settings = reference_settings("adaface", params, 5, {"norm_mean": 2.0, "norm_std": 0.5})
    xr = x.clone().requires_grad_(True)
    expected = reference_loss(settings, xr, y, weight, None)
    expected.backward()
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(xs.grad, xr.grad, rtol=1e-8, atol=1e-10)


def test_curricularface_t_is_the_running_mean_of_target_cosines():
    x, y, weight = make_batch()
    params = {"momentum": 0.25}
    head = build_head("curricularface", 4, 5, **params).double()
    with torch.no_grad():
        head.weight.copy_(weight)
    head(x, y)
    expected = curricularface_t(reference_settings("curricularface", params, 5), x, y, weight)
    assert head.t.item() == pytest.approx(expected, rel=1e-12)
    head(x, y)  # a second step starts from the first one's t
    settings = reference_settings("curricularface", params, 5, {"t": expected})
    assert head.t.item() == pytest.approx(curricularface_t(settings, x, y, weight), rel=1e-12)


@pytest.mark.parametrize("margin_type", ["cosine", "angular", "multiplicative"])
def test_sphereface2_bias_starts_at_the_closed_form(margin_type):
    params = {"margin_type": margin_type, "scale": 30.0}
    head = build_head("sphereface2", 12, 10, **params).double()
    settings = reference_settings("sphereface2", params, 10)
    closed_form = sphereface2_bias_init(settings, 10)
    assert head.bias.item() == pytest.approx(closed_form, rel=1e-6)  # float32 parameter
    # the closed form zeroes the bias gradient when every cosine is 0 (its derivation)
    with torch.no_grad():
        head.bias.fill_(closed_form)
        head.weight.copy_(torch.eye(12, dtype=torch.float64)[:10])
    x = torch.zeros(3, 12, dtype=torch.float64)
    x[:, 10:] = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 2.0]], dtype=torch.float64)
    head(x, torch.tensor([0, 4, 9])).backward()
    assert abs(head.bias.grad.item()) < 1e-9


def test_sphereface2_defaults_are_the_papers():
    head = build_head("sphereface2", 4, 5)
    assert (head.scale, head.margin, head.pos_weight, head.t) == (40.0, 0.4, 0.7, 3.0)
    assert head.loss_weight == 50.0 and head.margin_type == "cosine"
    assert build_head("sphereface2", 4, 5, margin_type="multiplicative").margin == 1.5


def test_sphereface2_decision_threshold_is_where_the_logit_crosses_zero():
    head = build_head("sphereface2", 4, 5, scale=20.0, t=2.0).double()
    for bias in (-5.0, 0.0, 3.0, 18.0):
        with torch.no_grad():
            head.bias.fill_(bias)
        threshold = head.decision_threshold()
        assert threshold.units == "cosine"
        # z = r g(cos) − b without margin: zero at the reported cosine
        g = 2 * ((threshold.value + 1) / 2) ** 2 - 1
        assert 20.0 * g - bias == pytest.approx(0.0, abs=1e-9)
    with torch.no_grad():
        head.bias.fill_(25.0)  # b/r > 1: no cosine reaches it
    assert head.decision_threshold().value == 1.0


def test_magface_regulariser_gradient_pushes_norms_towards_its_minimum():
    # g(a) = 1/a + a/u_a² is smallest at a = u_a; alone (no classes to fit) it grows small norms
    head = build_head("magface", 4, 3, scale=1.0, l_m=0.0, u_m=0.0).double()
    x = torch.tensor([[20.0, 0.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    loss = head(x, torch.tensor([0]))
    loss.backward()
    # d/da of 35 (1/a + a/110²) at a = 20, plus the cross-entropy's (zero along x itself)
    expected = 35.0 * (-1 / 400 + 1 / 110**2)
    assert x.grad[0, 0].item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("name", ["adaface", "curricularface", "sphereface2", "magface"])
def test_checkpoint_round_trip_keeps_weights_and_running_statistics(name):
    x, y, weight = make_batch()
    x = 12 * x
    source = build_head(name, 4, 5, scale=8.0).double()
    with torch.no_grad():
        source.weight.copy_(weight)
    source(x, y)  # moves the running statistics off their start
    state = source.full_state_dict()
    target = build_head(name, 4, 5, scale=8.0).double()
    target.load_full_state_dict(state)
    for key, value in state.items():
        torch.testing.assert_close(target.full_state_dict()[key], value)
    assert target(x, y).item() == source(x, y).item()


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("sphereface2", {"scale": -40}, r"scale=-40 is outside the allowed range \(0, inf\)"),
        ("sphereface2", {"pos_weight": 1.0}, r"pos_weight=1\.0 is outside .* \(0, 1\)"),
        ("sphereface2", {"pos_weight": 0}, r"pos_weight=0 is outside .* \(0, 1\)"),
        ("sphereface2", {"t": 0.5}, r"t=0\.5 is outside the allowed range \[1, inf\)"),
        ("sphereface2", {"loss_weight": 0}, r"loss_weight=0 is outside"),
        ("sphereface2", {"margin_type": "C"}, "margin_type='C' must be one of cosine"),
        ("sphereface2", {"margin_type": "multiplicative", "margin": 0.4}, "must be >= 1"),
        ("adaface", {"h": -0.3}, r"h=-0\.3 is outside the allowed range \(0, inf\)"),
        ("adaface", {"momentum": 1.5}, r"momentum=1\.5 is outside the allowed range \(0, 1\]"),
        ("curricularface", {"margin": -0.5}, r"margin=-0\.5 is outside .* \[0, inf\)"),
        ("magface", {"u_a": 10.0}, "parameter u_a=10 must be > l_a=10"),
        ("magface", {"l_m": 0.9}, "parameter u_m=0.8 must be >= l_m=0.9"),
        ("magface", {"lambda_g": -1}, r"lambda_g=-1 is outside the allowed range \[0, inf\)"),
        ("magface", {"margin": 0.5}, "has no parameter 'margin'"),
    ],
)
def test_bad_parameters_name_head_parameter_and_range(name, params, message):
    with pytest.raises(ConfigError, match=f"^head '{name}'.*{message}") as error:
        build_head(name, 4, 5, **params)
    assert "\n" not in str(error.value)


def test_sphereface2_needs_two_classes():
    with pytest.raises(ConfigError, match="needs at least 2 classes"):
        build_head("sphereface2", 4, 1)


def test_new_heads_have_no_threshold_but_sphereface2():
    for name in ("adaface", "curricularface", "magface"):
        assert build_head(name, 4, 5).decision_threshold() is None
    assert math.isfinite(build_head("sphereface2", 4, 5).decision_threshold().value)
