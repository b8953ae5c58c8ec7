"""Schedules, the global-batch sampler, the loss scaler and checkpoint files."""

import itertools
import math
import random

import numpy as np
import pytest
import torch

from facebench.config import ScheduleConfig
from facebench.errors import ConfigError, ModelError
from facebench.train import checkpoint as ckpt
from facebench.train.optim import build_scheduler, lr_factor
from facebench.train.precision import LossScaler, autocast_dtype
from facebench.train.sampling import GlobalBatchSampler


def _reference_lr(name, step, base=0.1, warm=4, total=20, spe=5, milestones=(2, 3), power=2):
    """The schedules written out by hand for the cases tested below."""
    if step < warm:
        return base * (step + 1) / warm
    if name == "multistep":
        return base * 0.1 ** len([m for m in milestones if step >= m * spe])
    t = (step - warm) / (total - warm)
    if name == "poly":
        return base * (1 - t) ** power
    return base * (1 + math.cos(math.pi * t)) / 2


@pytest.mark.parametrize("name", ["multistep", "poly", "cosine"])
def test_schedules_with_warmup_match_the_written_out_formula(name):
    cfg = ScheduleConfig(name=name, warmup_epochs=0.8, milestones=[2.0, 3.0], power=2.0)
    layer = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    sched = build_scheduler(cfg, opt, 0.1, steps_per_epoch=5, total_steps=20)
    for step in range(20):
        assert opt.param_groups[0]["lr"] == pytest.approx(_reference_lr(name, step), abs=1e-12)
        opt.step()
        sched.step()


def test_poly_and_cosine_end_at_min_lr():
    for name in ("poly", "cosine"):
        cfg = ScheduleConfig(name=name, min_lr=0.001)
        assert lr_factor(cfg, 0.1, 100, 10, 100) * 0.1 == pytest.approx(0.001)
        assert lr_factor(cfg, 0.1, 0, 10, 100) == pytest.approx(1.0)


def _flat(lists):
    return list(itertools.chain.from_iterable(lists))


def _global_batches(world, accumulation, step, epoch=0, n=40, batch=8):
    """Per micro-batch: the union over ranks of what they read, in rank order; and flips."""
    samplers = [GlobalBatchSampler(n, batch, accumulation, r, world, seed=3) for r in range(world)]
    out = []
    for s in samplers:
        s.set_position(epoch, step)
    iters = [iter(s) for s in samplers]
    for micro in range(accumulation):
        indices = _flat(next(it) for it in iters)
        flips = torch.cat([s.flips(epoch, step, micro) for s in samplers])
        out.append((indices, flips.tolist()))
    return out


def test_a_step_reads_the_same_images_and_flips_whatever_the_world_size():
    for step in range(5):
        one = _global_batches(1, 1, step)
        for world, acc in ((2, 1), (4, 1), (2, 2), (1, 4)):
            parts = _global_batches(world, acc, step)
            assert _flat(p[0] for p in parts) == one[0][0]
            assert _flat(p[1] for p in parts) == one[0][1]


def test_each_epoch_is_a_new_permutation_and_a_position_resumes_it():
    s = GlobalBatchSampler(40, 8, 1, 0, 1, seed=0)
    s.set_position(0, 0)
    epoch0 = _flat(s)
    assert sorted(epoch0) == list(range(40)) and len(s) == 5
    s.set_position(1, 0)
    epoch1 = _flat(s)
    assert epoch1 != epoch0 and sorted(epoch1) == list(range(40))
    s.set_position(1, 3)
    assert _flat(s) == epoch1[24:] and len(s) == 2


def test_sampler_rejects_batches_that_do_not_split():
    with pytest.raises(ConfigError, match="divisible"):
        GlobalBatchSampler(100, 10, 2, 0, 3, seed=0)
    with pytest.raises(ConfigError, match="larger than the training set"):
        GlobalBatchSampler(5, 8, 1, 0, 1, seed=0)


def test_loss_scaler_backs_off_and_grows():
    scaler = LossScaler(enabled=True, init_scale=8.0, growth_interval=2)
    scaler.update(overflow=True)
    assert scaler.scale == 4.0
    scaler.update(overflow=False)
    scaler.update(overflow=False)
    assert scaler.scale == 8.0
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 16.0)
    scaler.unscale_([p])
    assert p.grad.tolist() == [2.0, 2.0, 2.0]
    other = LossScaler(enabled=True)
    other.load_state_dict(scaler.state_dict())
    assert other.scale == 8.0
    off = LossScaler(enabled=False)
    off.update(overflow=True)
    assert off.scale == 1.0


def test_autocast_dtype_per_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype("none", cpu) is None
    assert autocast_dtype("auto", cpu) == torch.bfloat16
    assert autocast_dtype("auto", cuda) == torch.float16
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        autocast_dtype("fp16", cpu)


def test_checkpoint_writes_atomically_and_keeps_the_newest(tmp_path, monkeypatch):
    directory = tmp_path / "ck"
    for step in (1, 2, 3):
        ckpt.save_checkpoint(ckpt.checkpoint_path(directory, step), {"step": step})
    ckpt.prune_checkpoints(directory, keep=2)
    assert [p.name for p in sorted(directory.iterdir())] == ["step_00000002.pt", "step_00000003.pt"]
    assert ckpt.load_checkpoint(ckpt.latest_checkpoint(directory))["step"] == 3

    def broken_save(obj, f):
        f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        ckpt.save_checkpoint(ckpt.checkpoint_path(directory, 3), {"step": 99})
    monkeypatch.undo()
    assert ckpt.load_checkpoint(ckpt.checkpoint_path(directory, 3))["step"] == 3
    assert sorted(p.name for p in directory.iterdir())[0] == "step_00000002.pt"
    assert len(list(directory.iterdir())) == 2  # no temporary file left behind


def test_bad_checkpoint_files_are_model_errors(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match=r"junk\.pt: not a readable checkpoint"):
        ckpt.load_checkpoint(tmp_path / "junk.pt")
    torch.save({"a": 1}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="not a facebench checkpoint"):
        ckpt.load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ModelError, match="not found"):
        ckpt.load_checkpoint(tmp_path / "none.pt")


def test_rng_states_round_trip_through_a_checkpoint(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    ckpt.save_checkpoint(tmp_path / "c.pt", {"rng": ckpt.rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    ckpt.set_rng_state(ckpt.load_checkpoint(tmp_path / "c.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_optimizer_state_round_trips_by_name():
    from facebench.heads import build_head

    torch.manual_seed(0)
    backbone, head = torch.nn.Linear(4, 6), build_head("bce_d", 6, 5)
    params = [*backbone.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=0.1)
    head(backbone(torch.randn(3, 4)), torch.tensor([0, 1, 4])).backward()
    opt.step()
    saved = ckpt.optimizer_state(opt, backbone, head)
    weights = ckpt.full_head_state(head)
    fresh_b, fresh_h = torch.nn.Linear(4, 6), build_head("bce_d", 6, 5)
    fresh_opt = torch.optim.AdamW([*fresh_b.parameters(), *fresh_h.parameters()], lr=0.1)
    ckpt.load_optimizer_state(fresh_opt, saved, fresh_b, fresh_h)
    ckpt.load_full_head_state(fresh_h, weights)
    fresh_params = [*fresh_b.parameters(), *fresh_h.parameters()]
    for p, q in zip(params, fresh_params, strict=True):
        for key, value in opt.state[p].items():
            torch.testing.assert_close(fresh_opt.state[q][key], value)
    torch.testing.assert_close(fresh_h.weight, head.weight)
