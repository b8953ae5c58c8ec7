"""Class-sharded heads over 2 and 4 gloo processes equal the single-process head."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest
import torch

from facebench.heads import HEADS, build_head
from facebench.heads.distributed import class_slice

sys.path.insert(0, str(Path(__file__).parent))
from reference import reference_loss, reference_settings
from shard_workers import four_rank_worker, run_ranks

pytestmark = pytest.mark.slow  # one start of 4 processes: ~10 s of CPU

NUM_CLASSES, DIM, BATCH = 7, 4, 8  # 7 classes: slices of 4 + 3 (2 ranks), 2 + 2 + 2 + 1 (4 ranks)
# Beyond γ = 4 for every normalized head: settings away from the defaults, and MagFace's norm
# range brought to these small random embeddings.
NON_DEFAULT = {
    "bce_d": {"margin": 0.3, "neg_weight": 0.7},
    "bce_u": {"margin": 0.3, "neg_weight": 0.7},
    "sphereface2": {"margin_type": "angular"},
    "adaface": {"momentum": 0.3},
    "curricularface": {"momentum": 0.3},
    "magface": {"l_a": 0.5, "u_a": 3.0},
}
PARAMS = {
    name: {**({"scale": 4.0} if cls.normalized else {}), **NON_DEFAULT.get(name, {})}
    for name, cls in HEADS.items()
}


def single_head(name, state):
    """The one-process float64 head holding ``state``."""
    head = build_head(name, DIM, NUM_CLASSES, **PARAMS[name]).double()
    head.load_full_state_dict(state)
    return head


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """Global batch, head states and a tiny backbone, saved for the workers."""
    generator = torch.Generator().manual_seed(0)
    states = {}
    for name in PARAMS:
        state = build_head(name, DIM, NUM_CLASSES, **PARAMS[name]).double().full_state_dict()
        state["weight"] = torch.randn(NUM_CLASSES, DIM, generator=generator, dtype=torch.float64)
        if "bias" in state:
            state["bias"] = state["bias"] + torch.randn(state["bias"].shape, generator=generator)
        states[name] = state
    backbone = torch.nn.Linear(6, DIM).double()
    data = {
        "dim": DIM,
        "num_classes": NUM_CLASSES,
        "params": PARAMS,
        "states": states,
        "x": torch.randn(BATCH, DIM, generator=generator, dtype=torch.float64),
        "y": torch.tensor([0, 6, 3, 3, 4, 1, 6, 2]),
        "images": torch.randn(BATCH, 6, generator=generator, dtype=torch.float64),
        "backbone": backbone.state_dict(),
    }
    path = tmp_path_factory.mktemp("case") / "case.pt"
    torch.save(data, path)
    return data, path


@pytest.fixture(scope="module")
def ranks_output(case, tmp_path_factory):
    """One run of 4 gloo processes: ranks 0-1 as a 2-rank group, then all 4 (see shard_workers)."""
    out = tmp_path_factory.mktemp("ranks")
    run_ranks(4, four_rank_worker, str(case[1]), str(out))
    return out


@pytest.fixture(scope="module")
def two_ranks(ranks_output):
    return [torch.load(ranks_output / f"pair{r}.pt", weights_only=False) for r in range(2)]


def test_class_slices_are_contiguous_and_balanced():
    for num_classes, world in [(7, 2), (7, 4), (10, 3), (4, 4), (1000, 7)]:
        slices = [class_slice(num_classes, world, r) for r in range(world)]
        assert slices[0][0] == 0
        for (start, count), (next_start, _) in itertools.pairwise(slices):
            assert start + count == next_start
        assert sum(c for _, c in slices) == num_classes
        assert max(c for _, c in slices) - min(c for _, c in slices) <= 1
    assert [class_slice(7, 4, r) for r in range(4)] == [(0, 2), (2, 2), (4, 2), (6, 1)]


@pytest.mark.parametrize("name", list(PARAMS))
def test_two_ranks_equal_one_process(case, two_ranks, name):
    data, _ = case
    head = single_head(name, data["states"][name])
    x = data["x"].clone().requires_grad_(True)
    loss = head(x, data["y"])
    loss.backward()
    for rank, result in enumerate(two_ranks):
        r = result[name]
        torch.testing.assert_close(r["loss"], loss.detach())
        torch.testing.assert_close(r["x_grad"], x.grad.chunk(2)[rank])
        start = r["class_start"]
        local_weight = r["grads"]["weight"]
        torch.testing.assert_close(
            local_weight, head.weight.grad[start : start + len(local_weight)]
        )
        if head.bias is not None:
            full_bias_grad = head.bias.grad
            bias_grad = r["grads"]["bias"]
            if full_bias_grad.dim() == 1:
                full_bias_grad = full_bias_grad[start : start + len(bias_grad)]
            torch.testing.assert_close(bias_grad, full_bias_grad)
        torch.testing.assert_close(r["scores"], head.scores(data["x"]).chunk(2)[rank])
        expected_threshold = head.decision_threshold()
        if expected_threshold is None:
            assert r["threshold"] is None
        else:
            assert r["threshold"].units == expected_threshold.units
            assert r["threshold"].value == pytest.approx(expected_threshold.value, rel=1e-12)
        for key, value in head.full_state_dict().items():
            torch.testing.assert_close(r["state"][key], value)


@pytest.mark.parametrize("name", list(PARAMS))
def test_two_ranks_sampled_loss_equals_reference_on_the_union_of_samples(case, two_ranks, name):
    data, _ = case
    kept = torch.cat([r[name]["sampled_classes"] for r in two_ranks])
    # ceil(0.5 * 4) + ceil(0.5 * 3) = 4, unless the batch's classes need more
    assert set(data["y"].tolist()) <= set(kept.tolist())
    assert kept.tolist() == sorted(set(kept.tolist()))
    position = {c: i for i, c in enumerate(kept.tolist())}
    state = data["states"][name]
    bias = state.get("bias")
    if bias is not None and bias.dim() == 1:
        bias = bias[kept]
    settings = reference_settings(name, PARAMS[name], len(kept))
    sub_y = torch.tensor([position[c] for c in data["y"].tolist()])
    expected = reference_loss(settings, data["x"], sub_y, state["weight"][kept], bias)
    for result in two_ranks:
        torch.testing.assert_close(result[name]["sampled_loss"], expected)


def test_ddp_backbone_gradient_with_compensation_equals_one_process(case, two_ranks):
    data, _ = case
    backbone = torch.nn.Linear(6, DIM).double()
    backbone.load_state_dict(data["backbone"])
    head = single_head("bce_u", data["states"]["bce_u"])
    head(backbone(data["images"]), data["y"]).backward()
    for result in two_ranks:
        for name, param in backbone.named_parameters():
            torch.testing.assert_close(result["ddp_backbone_grads"][name], param.grad)
        torch.testing.assert_close(result["ddp_bias_grad"], head.bias.grad)


def test_bad_input_on_one_rank_raises_on_every_rank(two_ranks):
    assert "got 3 here and sizes from 3 to 4" in two_ranks[0]["unequal_batch_error"]
    assert "got 4 here and sizes from 3 to 4" in two_ranks[1]["unequal_batch_error"]
    assert two_ranks[1]["bad_label_error"] == "label 7 at index 1 is out of range [0, 7)"
    assert "another rank rejected its input" in two_ranks[0]["bad_label_error"]


def test_state_from_two_ranks_loads_into_one_and_four(case, two_ranks, ranks_output):
    data, _ = case
    states = torch.load(ranks_output / "states_from_2.pt", weights_only=False)
    four = [torch.load(ranks_output / f"four{r}.pt", weights_only=False) for r in range(4)]
    for name in PARAMS:
        for key in ("weight", "bias"):  # running statistics moved with the 2-rank step
            if key in states[name]:
                torch.testing.assert_close(states[name][key], data["states"][name][key])
        one = single_head(name, states[name])  # 2 ranks -> 1
        x = data["x"].clone().requires_grad_(True)
        loss = one(x, data["y"])
        loss.backward()
        if set(states[name]) <= {"weight", "bias"}:  # else the step starts from moved statistics
            torch.testing.assert_close(loss.detach(), two_ranks[0][name]["loss"])
        after = one.full_state_dict()
        for rank, result in enumerate(four):  # 2 ranks -> 4
            torch.testing.assert_close(result[name]["loss"], loss.detach())
            torch.testing.assert_close(result[name]["x_grad"], x.grad.chunk(4)[rank])
            for key, value in after.items():
                torch.testing.assert_close(result[name]["state"][key], value)
