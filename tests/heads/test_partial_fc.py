"""Partial FC: r = 1 (and a sample holding every class) equals the full head; r < 1 equals the
reference on the sampled classes; gradients and optimizer updates touch only sampled rows."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from facebench.heads import HEADS, build_head
from facebench.heads.sampling import num_sampled_classes, sample_local_classes

sys.path.insert(0, str(Path(__file__).parent))
from reference import reference_loss, reference_settings

NUM_CLASSES, DIM = 20, 4


def setup_head(name, sample_ratio, seed=0):
    """A float64 head with random weight and bias, and a batch using a few classes."""
    generator = torch.Generator().manual_seed(seed)
    params = {"scale": 4.0} if name != "softmax" else {}
    head = build_head(name, DIM, NUM_CLASSES, sample_ratio=sample_ratio, **params).double()
    with torch.no_grad():
        head.weight.copy_(torch.randn(NUM_CLASSES, DIM, generator=generator))
        if head.bias is not None:
            head.bias.add_(torch.randn(head.bias.shape, generator=generator))
    x = torch.randn(5, DIM, generator=generator, dtype=torch.float64)
    y = torch.tensor([3, 17, 3, 8, 11])
    return head, x, y, params


def loss_and_grads(head, x, y):
    """Loss, embedding gradient and parameter gradients of one forward/backward."""
    head.zero_grad()
    xs = x.clone().requires_grad_(True)
    loss = head(xs, y)
    loss.backward()
    return loss.detach(), xs.grad, [p.grad.clone() for p in head.parameters()]


@pytest.mark.parametrize("name", list(HEADS))
def test_ratio_one_and_a_full_sample_equal_the_full_head(name):
    head, x, y, _ = setup_head(name, 1.0)
    start = head.full_state_dict()  # running statistics move with each training step
    full = loss_and_grads(head, x, y)
    # r = 0.96 keeps ceil(0.96 * 20) = 20 classes: the sampling path with every class.
    head.sample_ratio = 0.96
    head.load_full_state_dict(start)
    sampled = loss_and_grads(head, x, y)
    assert head.sampled_classes.tolist() == list(range(NUM_CLASSES))
    others = [sampled]
    if not list(head.buffers()):  # evaluation uses the statistics without updating them
        head.sample_ratio = 0.3
        head.eval()  # no sampling outside training
        others.append(loss_and_grads(head, x, y))
    for other in others:
        torch.testing.assert_close(other[0], full[0], rtol=0, atol=0)
        torch.testing.assert_close(other[1], full[1], rtol=0, atol=0)
        for a, b in zip(other[2], full[2], strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", list(HEADS))
def test_sampled_loss_equals_reference_on_the_sampled_classes(name):
    torch.manual_seed(5)
    head, x, y, params = setup_head(name, 0.4)
    loss, x_grad, grads = loss_and_grads(head, x, y)
    kept = head.sampled_classes
    assert kept.numel() == math.ceil(0.4 * NUM_CLASSES)
    assert set(y.tolist()) <= set(kept.tolist())
    assert kept.tolist() == sorted(set(kept.tolist()))

    position = {c: i for i, c in enumerate(kept.tolist())}
    sub_y = torch.tensor([position[c] for c in y.tolist()])
    sub_w = head.weight.detach()[kept].clone().requires_grad_(True)
    sub_b = None
    if head.bias is not None:
        bias = head.bias.detach()
        sub_b = (bias if bias.dim() == 0 else bias[kept]).clone().requires_grad_(True)
    xr = x.clone().requires_grad_(True)
    expected = reference_loss(reference_settings(name, params, len(kept)), xr, sub_y, sub_w, sub_b)
    expected.backward()
    torch.testing.assert_close(loss, expected.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(x_grad, xr.grad)

    weight_grad = grads[0]
    dropped = torch.ones(NUM_CLASSES, dtype=torch.bool)
    dropped[kept] = False
    assert torch.all(weight_grad[dropped] == 0)
    torch.testing.assert_close(weight_grad[kept], sub_w.grad)
    if sub_b is not None:
        bias_grad = grads[1]
        if bias_grad.dim() == 0:
            torch.testing.assert_close(bias_grad, sub_b.grad)
        else:
            assert torch.all(bias_grad[dropped] == 0)
            torch.testing.assert_close(bias_grad[kept], sub_b.grad)


def test_sgd_step_moves_only_sampled_rows_and_keeps_bias_aligned():
    torch.manual_seed(2)
    head, x, y, _ = setup_head("bce_d", 0.25)
    before = {n: p.detach().clone() for n, p in head.named_parameters()}
    optimizer = torch.optim.SGD(head.param_groups(0.0), lr=0.1)
    loss_and_grads(head, x, y)
    optimizer.step()
    kept = set(head.sampled_classes.tolist())
    for k in range(NUM_CLASSES):
        moved_w = not torch.equal(head.weight[k], before["weight"][k])
        moved_b = not torch.equal(head.bias[k], before["bias"][k])
        assert moved_w == (k in kept) and moved_b == (k in kept), k


def test_sampler_keeps_every_positive_even_beyond_the_quota():
    torch.manual_seed(0)
    positives = torch.tensor([9, 2, 9, 5, 7])
    kept = sample_local_classes(positives, num_local=10, num_sample=2)
    assert kept.tolist() == [2, 5, 7, 9]
    for _ in range(5):
        kept = sample_local_classes(positives, num_local=10, num_sample=6)
        assert kept.numel() == 6 and {2, 5, 7, 9} <= set(kept.tolist())
        assert kept.tolist() == sorted(set(kept.tolist()))


def test_sampler_draws_negatives_uniformly():
    torch.manual_seed(0)
    counts = torch.zeros(10)
    for _ in range(2000):
        counts[sample_local_classes(torch.tensor([0]), num_local=10, num_sample=4)] += 1
    assert counts[0] == 2000
    # each of the 9 others is kept with probability 3/9
    assert torch.all((counts[1:] / 2000 - 1 / 3).abs() < 0.04)


def test_num_sampled_classes_is_the_ceiling():
    assert num_sampled_classes(100, 0.1) == 10
    assert num_sampled_classes(101, 0.1) == 11
    assert num_sampled_classes(3, 0.01) == 1
    assert num_sampled_classes(7, 1.0) == 7
