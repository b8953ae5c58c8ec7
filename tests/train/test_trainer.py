"""The trainer on one process: learning, exact resume, guards, the run directory."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facebench.cli import main
from facebench.config import load_recipe
from facebench.errors import ConfigError, ModelError
from facebench.train import train
from facebench.train.hooks import Hook

sys.path.insert(0, str(Path(__file__).parent))
from float64 import train_in_float64


def _run(recipe_file, data_root, out, *sets, **kw):
    return train(recipe_file, out, data_root=data_root, overrides=list(sets), progress=False, **kw)


def _logged_losses(run_dir):
    lines = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in lines if "loss" in r and "bin" not in r}


@pytest.mark.parametrize(
    "head",
    [
        "bce_u",
        "{name: arcface, params: {scale: 16.0, margin: 0.2}}",
        "{name: cosface, params: {scale: 16.0, margin: 0.2}}",
        "{name: softmax, params: {normalized: false}}",
    ],
)
def test_a_few_steps_reduce_the_loss(recipe_file, data_root, tmp_path, head):
    sets = ["train.epochs=5", "schedule.name=constant", "schedule.warmup_epochs=0"]
    if head != "bce_u":
        sets.append(f"head={head}")
    result = _run(recipe_file, data_root, tmp_path / "run", *sets, "eval.bins=[]")
    losses = result.losses
    assert len(losses) == 20 and all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-4:]) < 0.7 * np.mean(losses[:4])


class _Interrupt(Hook):
    """Simulates a crash (Ctrl-C) right after step ``at``."""

    def __init__(self, at):
        self.at = at

    def after_step(self, trainer, info):
        if info["step"] == self.at:
            raise KeyboardInterrupt


def test_interrupted_and_resumed_run_gives_the_same_losses(recipe_file, data_root, tmp_path):
    # flips, Partial FC sampling, accumulation and momentum all have to be restored exactly:
    # in one process on one kernel set, the resumed steps repeat the uninterrupted ones bit for bit
    sets = [
        "train.accumulation=2",
        "train.checkpoint_every=3",
        "head.params.sample_ratio=0.5",
        "eval.bins=[]",
    ]
    full = _run(recipe_file, data_root, tmp_path / "full", *sets)
    assert full.steps == 12
    with pytest.raises(KeyboardInterrupt):
        _run(recipe_file, data_root, tmp_path / "cut", *sets, hooks=[_Interrupt(8)])
    resumed = _run(recipe_file, data_root, tmp_path / "cut", *sets, resume=True)
    assert resumed.start_step == 6
    assert resumed.losses == full.losses[6:]
    # the log was cut back to the checkpoint before the resumed steps were appended
    logged = _logged_losses(tmp_path / "cut")
    assert sorted(logged) == list(range(1, 13))
    assert [logged[s] for s in range(1, 13)] == full.losses
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "cut" / "model.pt", weights_only=True)["state_dict"]
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_run_directory_holds_model_log_tensorboard_and_reports(recipe_file, data_root, tmp_path):
    from facebench.models.artifact import load_head_from_artifact, load_model_artifact

    run = tmp_path / "run"
    result = _run(recipe_file, data_root, run, "train.max_steps=4")
    assert result.steps == 4 and result.model_path == run / "model.pt"
    assert load_recipe(run / "recipe.yaml").head.name == "bce_u"
    records = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    train_rec = [r for r in records if "bin" not in r]
    assert [r["step"] for r in train_rec] == [1, 2, 3, 4]
    assert all(isinstance(r["learned_threshold"], float) for r in train_rec)
    (val,) = [r for r in records if r.get("bin") == "val"]
    assert 0 <= val["accuracy_10fold_mean"] <= 1 and 0 <= val["global_accuracy"] <= 1
    assert result.metrics["val"]["global_accuracy"] == val["global_accuracy"]
    written = json.loads((run / "reports" / "val.json").read_text())
    assert written["pairs"] == 20 and written["global_accuracy"] == val["global_accuracy"]
    assert list((run / "tb").glob("events.out.tfevents.*"))
    module, info = load_model_artifact(run / "model.pt")
    assert info["metadata"]["learned_threshold"] == pytest.approx(result.learned_threshold)
    assert info["metadata"]["learned_threshold_units"] == "cosine"
    assert module(torch.zeros(2, 3, 32, 32)).shape == (2, 16)
    head = load_head_from_artifact(run / "model.pt")
    assert head.scores(torch.randn(3, 16)).shape == (3, 8)


def test_training_writes_the_report_facebench_verify_writes(recipe_file, data_root, tmp_path):
    # the same function scores the live backbone and the saved model: same fields, same values
    run = tmp_path / "run"
    _run(recipe_file, data_root, run, "train.max_steps=3", "output.tensorboard=false")
    out = tmp_path / "verify"
    bin_path = str(data_root / "tiny" / "val.bin")
    argv = ["verify", "--model", str(run / "model.pt"), "--bin", bin_path, "--out", str(out)]
    assert main([*argv, "--batch-size", "40"]) == 0
    for name in ("val.json", "transfer.json"):
        trained = json.loads((run / "reports" / name).read_text())
        verified = json.loads((out / name).read_text())
        assert trained == verified
    assert trained["kind"] == "transfer" and verified["sources"]["val"]["global"]["val"]


def test_existing_run_needs_resume_and_resume_needs_a_checkpoint(recipe_file, data_root, tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint"):
        _run(recipe_file, data_root, tmp_path / "new", resume=True)
    _run(recipe_file, data_root, tmp_path / "run", "train.max_steps=1", "eval.bins=[]")
    with pytest.raises(ConfigError, match="already holds a run"):
        _run(recipe_file, data_root, tmp_path / "run", "train.max_steps=1")


class _Poison(Hook):
    """Puts NaN into the first backbone weight after step 2."""

    def after_step(self, trainer, info):
        if info["step"] == 2:
            with torch.no_grad():
                next(trainer.backbone.parameters()).fill_(float("nan"))


def test_nonfinite_loss_stops_with_the_step_or_is_skipped(recipe_file, data_root, tmp_path):
    sets = ["train.max_steps=5", "eval.bins=[]"]
    with pytest.raises(ModelError, match=r"step 3: loss nan"):
        _run(recipe_file, data_root, tmp_path / "stop", *sets, hooks=[_Poison()])
    result = _run(
        recipe_file, data_root, tmp_path / "skip", *sets, "train.nonfinite=skip", hooks=[_Poison()]
    )
    assert result.steps == 5
    records = [json.loads(x) for x in (tmp_path / "skip" / "log.jsonl").read_text().splitlines()]
    assert [r["skipped_steps"] for r in records] == [0, 0, 1, 1, 1]


class _Snapshot(Hook):
    def on_start(self, trainer):
        self.before = [p.detach().clone() for p in trainer.optimizer_params()]
        self.params = trainer.optimizer_params()


def test_gradient_clipping_bounds_the_update(recipe_file, data_root, tmp_path):
    clip, lr = 1e-3, 1.0
    snap = _Snapshot()
    sets = ["train.max_steps=1", "eval.bins=[]", f"train.grad_clip={clip}", f"optim.lr={lr}"]
    sets += ["optim.momentum=0", "optim.weight_decay=0", "schedule.name=constant"]
    sets += ["schedule.warmup_epochs=0"]
    _run(recipe_file, data_root, tmp_path / "run", *sets, hooks=[snap])
    pairs = zip(snap.params, snap.before, strict=True)
    moved = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in pairs))
    # each updated weight is rounded to float32, by up to 2**-24 of its size: the update's norm
    # moves by at most 2**-24 * |w| (|w|: the norm of all weights) out of lr * clip = 1e-3
    size = torch.sqrt(sum((b**2).sum() for b in snap.before))
    assert float(moved) == pytest.approx(lr * clip, rel=float(2**-24 * size / (lr * clip)))


class _ForwardDtypes(Hook):
    """Records the dtype of every backbone output of the training steps."""

    def on_start(self, trainer):
        self.dtypes = set()
        self.handle = trainer.backbone.register_forward_hook(
            lambda module, args, out: self.dtypes.add(out.dtype)
        )

    def on_end(self, trainer):
        self.handle.remove()


def test_bf16_autocast_runs_the_backbone_in_bf16_close_to_fp32(recipe_file, data_root, tmp_path):
    # the first step sees the same weights and images: the loss moves by bf16 rounding only
    sets = ["train.max_steps=1", "eval.bins=[]"]
    fp32 = _run(recipe_file, data_root, tmp_path / "fp32", *sets)
    seen = _ForwardDtypes()
    bf16 = _run(recipe_file, data_root, tmp_path / "bf16", *sets, "train.amp=bf16", hooks=[seen])
    assert seen.dtypes == {torch.bfloat16}
    assert bf16.losses[0] != fp32.losses[0]  # not float32 in disguise
    # bf16 keeps 8 significant bits: each activation rounds by up to 2**-9 = 2e-3; the loss,
    # a mean over the batch, moves by less than five such roundings (measured: 2e-4 relative)
    assert bf16.losses[0] == pytest.approx(fp32.losses[0], rel=1e-2)


def test_adamw_first_step_moves_every_weight_by_the_learning_rate(recipe_file, data_root, tmp_path):
    # Adam's first step: m = g, v = g^2 (bias-corrected), so each weight with a gradient moves
    # by lr * g / (|g| + eps), i.e. by lr; SGD would move it by lr * g.
    lr, snap = 1e-3, _Snapshot()
    sets = ["train.max_steps=1", "eval.bins=[]", "optim.name=adamw", f"optim.lr={lr}"]
    sets += ["optim.weight_decay=0", "schedule.name=constant", "schedule.warmup_epochs=0"]
    _run(recipe_file, data_root, tmp_path / "run", *sets, hooks=[snap])
    moved = torch.cat(
        [(p.detach() - b).abs().flatten() for p, b in zip(snap.params, snap.before, strict=True)]
    )
    assert float(moved.max()) <= lr * 1.001  # float32 rounding of the weights
    assert float((moved > 0.99 * lr).double().mean()) > 0.9


def test_cli_trains_and_reports_bad_recipes_in_one_line(recipe_file, data_root, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", str(recipe_file), "--data", str(data_root), "--out", str(out), "--no-progress"]
    assert main([*argv, "--set", "train.max_steps=1", "--set", "eval.bins=[]"]) == 0
    assert (out / "model.pt").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"extends: {recipe_file}\noptim: {{lrr: 0.1}}\n")
    assert main(["train", str(bad), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"facebench: error: {bad}: unknown key 'optim.lrr' (known here: name, lr, "
        "momentum, nesterov, weight_decay, betas, eps)"
    ]


@pytest.fixture
def float64_training():
    """Models, heads and model input in float64 (the trainer feeds float32 otherwise)."""
    undo = train_in_float64()
    yield
    undo()


def test_channels_last_gives_the_same_first_loss(recipe_file, data_root, tmp_path):
    # Step 1 runs the same weights on the same batch: only the order of each conv's float32 sums
    # changes with the layout. Each conv output sums at most 9 * 16 = 144 products, a relative
    # error of about sqrt(144) * 2**-24 = 7e-7 per layer; 1e-5 bounds it over the tiny net's
    # layers, the head and the loss, and catches any real difference (a wrong layout is O(1)).
    sets = ["train.max_steps=1", "eval.bins=[]", "output.tensorboard=false"]
    plain = _run(recipe_file, data_root, tmp_path / "plain", *sets)
    nhwc = _run(recipe_file, data_root, tmp_path / "nhwc", *sets, "train.channels_last=true")
    np.testing.assert_allclose(nhwc.losses, plain.losses, rtol=1e-5)


def test_channels_last_trains_the_same_model_in_nhwc_layout(
    recipe_file, data_root, tmp_path, float64_training
):
    # Over steps, SGD with momentum amplifies the layouts' different rounding: in float32 from
    # 1e-7 at step 2 to 2e-4 relative at step 6 on some kernel sets (x2000). So the training is
    # compared in float64, where rounding of 1e-16 grown as much stays below 1e-12 (measured:
    # 1.3e-14 under ATEN_CPU_CAPABILITY=default and avx2); rtol=1e-9 still catches any
    # real difference. The saved model then loads and embeds like any other.
    from facebench.models.artifact import load_model_artifact

    sets = ["train.max_steps=6", "eval.bins=[]", "output.tensorboard=false"]
    plain = _run(recipe_file, data_root, tmp_path / "plain", *sets)
    nhwc = _run(recipe_file, data_root, tmp_path / "nhwc", *sets, "train.channels_last=true")
    np.testing.assert_allclose(nhwc.losses, plain.losses, rtol=1e-9)
    a, _ = load_model_artifact(tmp_path / "plain" / "model.pt")
    b, _ = load_model_artifact(tmp_path / "nhwc" / "model.pt")
    assert next(a.parameters()).dtype == torch.float64  # trained and saved in float64
    x = torch.randn(2, 3, 32, 32)
    unit = torch.nn.functional.normalize
    torch.testing.assert_close(unit(b(x)), unit(a(x)), rtol=0, atol=1e-9)


class _LayoutProbe(Hook):
    """Records whether the (k > 1) conv weights and the training batches are NHWC."""

    def __init__(self):
        self.weights, self.batches = [], []

    def on_start(self, trainer):
        convs = [
            m.weight
            for m in trainer.backbone.modules()
            if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)  # 1x1: both layouts
        ]
        self.weights = [w.is_contiguous(memory_format=torch.channels_last) for w in convs]
        trainer.backbone.register_forward_pre_hook(self._look)

    def _look(self, module, args):
        if module.training:  # evaluation batches may come in either layout
            self.batches.append(args[0].is_contiguous(memory_format=torch.channels_last))


@pytest.mark.parametrize("channels_last", [False, True])
def test_channels_last_puts_weights_and_batches_in_nhwc(
    recipe_file, data_root, tmp_path, channels_last
):
    probe = _LayoutProbe()
    sets = ["train.max_steps=2", "eval.bins=[]", f"train.channels_last={channels_last}"]
    _run(recipe_file, data_root, tmp_path / "run", *sets, hooks=[probe])
    assert probe.weights and set(probe.weights) == {channels_last}
    assert probe.batches and set(probe.batches) == {channels_last}
