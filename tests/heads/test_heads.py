"""Every head against the slow reference (loss and gradient), gradcheck, scores, thresholds."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from torch.func import functional_call

from facebench.heads import HEADS, DecisionThreshold, build_head

sys.path.insert(0, str(Path(__file__).parent))
from reference import reference_loss, reference_settings

CASES = [
    ("softmax", {}),
    ("softmax", {"normalized": True, "scale": 8.0}),
    ("normsoftmax", {"scale": 8.0}),
    ("cosface", {"scale": 8.0, "margin": 0.35}),
    ("arcface", {"scale": 8.0}),
    ("arcface", {"scale": 8.0, "margin": 1.2}),
    ("bce_d", {"scale": 8.0, "margin": 0.3, "neg_weight": 0.7}),
    ("bce_u", {"scale": 8.0, "margin": 0.3, "neg_weight": 0.7}),
    ("bce_u", {"scale": 8.0, "margin": 0.5, "margin_type": "angular", "neg_weight": 0.7}),
    ("bce_u", {"scale": 8.0, "margin": 1.2, "margin_type": "angular"}),
    ("bce_d", {"scale": 8.0, "margin": 1.5, "margin_type": "multiplicative"}),
    ("bce_u", {"normalized": False, "bias_init": 0.5}),
    ("bce_d", {"normalized": False}),
    ("bce_zero", {"scale": 8.0, "margin": 0.2}),
    ("bce_zero", {"normalized": False}),
    ("bce_u", {}),
    ("sphereface2", {"scale": 8.0}),
    ("sphereface2", {"scale": 8.0, "margin_type": "angular", "margin": 0.5, "pos_weight": 0.6}),
    ("sphereface2", {"scale": 8.0, "margin_type": "multiplicative", "t": 2.5}),
    ("adaface", {"scale": 8.0}),
    ("adaface", {"scale": 8.0, "margin": 0.6, "h": 1.0, "momentum": 0.5}),
    ("curricularface", {"scale": 8.0}),
    ("curricularface", {"scale": 8.0, "margin": 1.2, "momentum": 0.3}),
    ("magface", {"scale": 8.0}),
    ("magface", {"scale": 8.0, "l_a": 1.0, "u_a": 3.0, "l_m": 0.3, "u_m": 0.9, "lambda_g": 2.0}),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in params.items())}" for name, params in CASES]


def make_batch(num_classes=5, dim=4, batch=6, seed=0, dtype=torch.float64):
    """Random embeddings, labels covering repeats, and one sample pointing away from its class."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(num_classes, dim, generator=generator, dtype=dtype)
    x = torch.randn(batch, dim, generator=generator, dtype=dtype)
    y = torch.randint(0, num_classes, (batch,), generator=generator)
    x[0] = -weight[y[0]] + 0.05 * x[0]  # θ_y near π: the ArcFace fallback branch
    return x, y, weight


def head_and_params(name, params, num_classes, weight, seed=1):
    """A float64 head with the given weight and a random non-trivial bias."""
    head = build_head(name, weight.shape[1], num_classes, **params).double()
    with torch.no_grad():
        head.weight.copy_(weight)
        if head.bias is not None:
            generator = torch.Generator().manual_seed(seed)
            head.bias.add_(torch.randn(head.bias.shape, generator=generator, dtype=torch.float64))
    return head


@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_loss_and_gradients_match_the_loop_reference(name, params):
    x, y, weight = make_batch()
    head = head_and_params(name, params, 5, weight)
    xs = x.clone().requires_grad_(True)
    loss = head(xs, y)
    loss.backward()

    settings = reference_settings(name, params, 5)
    xr = x.clone().requires_grad_(True)
    wr = weight.clone().requires_grad_(True)
    br = None if head.bias is None else head.bias.detach().clone().requires_grad_(True)
    expected = reference_loss(settings, xr, y, wr, br)
    expected.backward()

    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(xs.grad, xr.grad, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(head.weight.grad, wr.grad, rtol=1e-8, atol=1e-10)
    if br is not None:
        torch.testing.assert_close(head.bias.grad, br.grad, rtol=1e-8, atol=1e-10)


def test_arcface_test_batch_exercises_both_branches():
    x, y, weight = make_batch()
    cos = torch.nn.functional.cosine_similarity(x, weight[y], dim=1)
    assert (cos <= math.cos(math.pi - 0.5)).any() and (cos > math.cos(math.pi - 0.5)).any()


def test_arcface_gradient_is_not_detached():
    # cos(θ + m) has derivative cos m + sin m · cos θ / sin θ wrt cos θ, not the constant 1.
    head = build_head("arcface", 2, 2, scale=1.0, margin=0.5).double()
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    angle = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    x = torch.stack([torch.cos(angle), torch.sin(angle)])[None]
    head(x, torch.tensor([0])).backward()
    # L = log(e^{cos(θ+m)} + e^{sin θ}) − cos(θ+m); dL/dθ by hand:
    a, b = math.cos(1.5), math.sin(1.0)
    p = math.exp(a) / (math.exp(a) + math.exp(b))
    expected = (p - 1) * (-math.sin(1.5)) + (1 - p) * math.cos(1.0)
    assert angle.grad.item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("name", "params"),
    [(n, {"scale": 2.0, **({"margin": 0.3} if n in ("bce_u", "bce_d") else {})}) for n in HEADS]
    + [("softmax", {}), ("bce_u", {"normalized": False})],
)
def test_float64_gradcheck(name, params):
    if name in ("sphereface2", "adaface"):
        # by design: SphereFace2's gradient is that of r·cos θ, AdaFace's norm enters detached
        pytest.skip("the gradient is not that of the forward value (checked by the reference)")
    if name == "softmax" and "scale" in params:
        params = {"normalized": True, **params}
    x, y, weight = make_batch(num_classes=4, dim=3, batch=3, seed=3)
    head = head_and_params(name, params, 4, weight)
    head.eval()  # running statistics (AdaFace, CurricularFace) stay put between the calls
    names = [n for n, _ in head.named_parameters()]

    def loss(xx, *tensors):
        return functional_call(head, dict(zip(names, tensors, strict=True)), (xx, y))

    inputs = [x.clone().requires_grad_(True)]
    inputs += [p.detach().clone().requires_grad_(True) for p in head.parameters()]
    assert torch.autograd.gradcheck(loss, inputs, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_scores_are_the_biased_unmargined_class_scores(name, params):
    x, _, weight = make_batch()
    head = head_and_params(name, params, 5, weight)
    settings = reference_settings(name, params, 5)
    for i in range(x.shape[0]):
        for k in range(5):
            value = torch.dot(x[i], weight[k])
            if settings["normalized"]:
                value = value / (x[i].norm() * weight[k].norm())
            bias = 0.0 if head.bias is None else head.bias.reshape(-1)[k % head.bias.numel()]
            expected = settings["scale"] * value - bias
            torch.testing.assert_close(head.scores(x)[i, k], expected.detach())


def test_decision_threshold_is_the_unified_bias_over_scale():
    threshold = build_head("bce_u", 4, 100).decision_threshold()
    assert threshold.value == pytest.approx(math.log(1000) / 64) and threshold.units == "cosine"
    assert build_head("bce_u", 4, 100, scale=32, bias_init=8.0).decision_threshold().value == 0.25
    linear = build_head("bce_u", 4, 5, normalized=False, bias_init=0.3).decision_threshold()
    assert linear == DecisionThreshold(pytest.approx(0.3), "w.x")
    # per-class biases are K thresholds, not one; no bias, no threshold
    for name in ("softmax", "bce_d", "normsoftmax", "cosface", "arcface", "bce_zero"):
        assert build_head(name, 4, 5).decision_threshold() is None


def test_bce_zero_has_no_bias_and_default_bias_is_log_10k():
    assert build_head("bce_zero", 4, 5).bias is None
    assert build_head("bce_d", 4, 85742).bias[0].item() == pytest.approx(13.661, abs=1e-3)


def test_param_groups_follow_bias_weight_decay():
    with_decay = build_head("bce_u", 4, 5).param_groups(5e-4)
    assert [g["weight_decay"] for g in with_decay] == [5e-4, 5e-4]
    without = build_head("bce_d", 4, 5, bias_weight_decay=False).param_groups(5e-4)
    assert [g["weight_decay"] for g in without] == [5e-4, 0.0]
    assert without[1]["params"][0] is not without[0]["params"][0]
    assert len(build_head("cosface", 4, 5).param_groups(0.1)) == 1


def test_loss_is_float32_under_autocast():
    x, y, weight = make_batch(dtype=torch.float32)
    head = build_head("bce_u", 4, 5, scale=8.0)
    with torch.no_grad():
        head.weight.copy_(weight)
    low = x.to(torch.bfloat16)
    plain = head(low.float(), y)  # bf16 -> float32 is exact
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = head(low, y)
    # the head leaves autocast: the same float32 arithmetic on the same values, in this process
    assert autocast.dtype == torch.float32 and autocast.item() == plain.item()


def test_full_state_dict_round_trips_single_process():
    source = build_head("bce_d", 4, 5)
    target = build_head("bce_d", 4, 5)
    target.load_full_state_dict(source.full_state_dict())
    x, y, _ = make_batch(dtype=torch.float32)
    assert target(x, y).item() == source(x, y).item()


def test_spec_rebuilds_the_same_head():
    head = build_head("bce_d", 4, 5, scale=16.0, margin=0.2, sample_ratio=0.5)
    spec = head.spec
    assert spec == {
        "name": "bce_d",
        "embedding_size": 4,
        "num_classes": 5,
        "params": {"scale": 16.0, "margin": 0.2, "sample_ratio": 0.5},
    }
    again = build_head(spec["name"], spec["embedding_size"], spec["num_classes"], **spec["params"])
    again.load_full_state_dict(head.full_state_dict())
    x, y, _ = make_batch(dtype=torch.float32)
    head.eval(), again.eval()
    assert again(x, y).item() == head(x, y).item()
