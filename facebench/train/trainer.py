"""The training loop: backbone (DDP under torchrun) + class-sharded head, hooks around it.

One optimizer step = ``train.batch_size`` images over all processes, in ``train.accumulation``
micro-batches; every rank reads its share (see :mod:`facebench.train.sampling`), so the maths
of a step does not depend on the number of processes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from facebench import distributed as dist
from facebench.config import Recipe
from facebench.errors import ModelError
from facebench.train import build
from facebench.train.hooks import Hook
from facebench.train.precision import LossScaler, autocast_dtype

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a finished run gives back."""

    run_dir: Path
    model_path: Path | None
    steps: int
    losses: list[float]  # per optimizer step run by this call (from ``start_step`` on)
    start_step: int = 0
    learned_threshold: float | None = None
    metrics: dict = field(default_factory=dict)  # bin name -> last verification summary
    steps_per_epoch: int = 1  # optimizer steps per epoch (train.convergence groups losses by it)


class Trainer:
    """Builds data, backbone, head, optimizer, schedule and scaler from a recipe; runs steps."""

    def __init__(
        self,
        recipe: Recipe,
        run_dir: str | Path,
        ctx: dist.DistContext,
        *,
        data_root: str | Path | None = None,
        progress: bool = True,
    ):
        self.recipe, self.ctx, self.data_root = recipe, ctx, data_root
        self.run_dir = Path(run_dir)
        self.device = ctx.device
        t = recipe.train
        build.seed_everything(t.seed)
        self.dataset, self.convention = build.train_data(recipe, data_root)
        self.num_classes = self.dataset.pack.num_classes
        bins = build.bin_paths(recipe, data_root)
        if ctx.is_main:
            build.check_bins(bins)
        self.backbone, self.head, self.model = build.networks(recipe, ctx, self.num_classes)
        self.sampler, self.loader = build.loader(recipe, ctx, self.dataset)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.schedule_steps = max(1, int(t.epochs * self.steps_per_epoch))
        self.total_steps = min(self.schedule_steps, t.max_steps or self.schedule_steps)
        self.optimizer, self.scheduler = build.optimization(
            recipe, self.backbone, self.head, self.steps_per_epoch, self.schedule_steps
        )
        self.amp_dtype = autocast_dtype(t.amp, self.device)
        self.scaler = LossScaler(enabled=self.amp_dtype == torch.float16)
        self._sharded = build.sharded_head_params(self.head)

        self.step = 0
        self.losses: list[float] = []
        self.metrics: dict = {}  # bin name -> summary, set by the VerificationHook
        self.hooks: list[Hook] = build.standard_hooks(recipe, self.run_dir, bins, progress)

    # ---- the loop ------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Run training from ``self.step`` (0, or a restored checkpoint's) to the end; write
        model.pt; return a summary."""
        from facebench.models.artifact import save_model

        start = self.step
        for hook in self.hooks:
            hook.on_start(self)
        accumulation = self.recipe.train.accumulation
        while self.step < self.total_steps:
            epoch, in_epoch = divmod(self.step, self.steps_per_epoch)
            self.sampler.set_position(epoch, in_epoch)
            micro: list = []
            tick = time.perf_counter()
            for batch in self.loader:
                micro.append(batch)
                if len(micro) < accumulation:
                    continue
                info = self.train_step(micro)
                info["seconds"] = time.perf_counter() - tick
                info["images_per_s"] = info["images"] / max(info["seconds"], 1e-9)
                for hook in self.hooks:
                    hook.after_step(self, info)
                micro, tick = [], time.perf_counter()
                if self.step >= self.total_steps:
                    break
        for hook in self.hooks:
            hook.on_end(self)
        model_path = save_model(
            self.run_dir / "model.pt",
            self.recipe,
            self.backbone,
            self.head,
            self.convention,
            num_classes=self.num_classes,
            steps=self.step,
            write=self.ctx.is_main,
        )
        return TrainResult(
            run_dir=self.run_dir,
            model_path=model_path,
            steps=self.step,
            losses=self.losses,
            start_step=start,
            learned_threshold=self.learned_threshold(),
            metrics=self.metrics,
            steps_per_epoch=self.steps_per_epoch,
        )

    def train_step(self, micro_batches: list) -> dict:
        """One optimizer step over this rank's micro-batches (uint8 NHWC images and labels);
        returns the step's log fields."""
        from facebench.data.model_input import model_input
        from facebench.heads.distributed import compensate_ddp_averaging

        t = self.recipe.train
        self.model.train()
        self.head.train()
        self.optimizer.zero_grad(set_to_none=True)
        epoch, in_epoch = divmod(self.step, self.steps_per_epoch)
        parts = len(micro_batches)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        for index, (images, labels) in enumerate(micro_batches):
            flip = (
                self.sampler.flips(epoch, in_epoch, index) if self.recipe.data.random_flip else None
            )
            images = model_input(
                images.to(self.device, non_blocking=True), self.convention, flip, t.channels_last
            )
            labels = labels.to(self.device, non_blocking=True)
            last = index == parts - 1
            no_sync = getattr(self.model, "no_sync", None)
            sync = contextlib.nullcontext() if last or no_sync is None else no_sync()
            with sync:
                with torch.autocast(
                    self.device.type,
                    dtype=self.amp_dtype or torch.float32,
                    enabled=self.amp_dtype is not None,
                ):
                    embeddings = self.model(images)
                embeddings = compensate_ddp_averaging(embeddings, self.ctx.group)
                if self._any_nonfinite(embeddings):
                    # the head refuses non-finite input; a zero backward keeps DDP in step
                    (embeddings.nan_to_num() * 0).sum().backward()
                    loss_sum += math.nan
                    continue
                loss = self.head(embeddings, labels)
                (loss * (self.scaler.scale / parts)).backward()
            loss_sum += loss.detach().double()
        loss_value = float(loss_sum) / parts

        params = [p for p in self.optimizer_params() if p.grad is not None]
        self.scaler.unscale_(params)
        grad_norm = self._global_grad_norm(loss_value)
        skipped = not math.isfinite(grad_norm)
        if skipped:
            self._handle_nonfinite(loss_value)
            self.optimizer.zero_grad(set_to_none=True)
        else:
            if t.grad_clip:  # null or 0: no clipping
                coef = min(1.0, t.grad_clip / (grad_norm + 1e-6))
                if coef < 1.0:
                    torch._foreach_mul_([p.grad for p in params], coef)
            self.optimizer.step()
        self.scaler.update(overflow=skipped)
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        self.step += 1
        self.losses.append(loss_value)
        return {
            "step": self.step,
            "epoch": self.step / self.steps_per_epoch,
            "loss": loss_value,
            "lr": lr,
            "images": t.batch_size,
            "grad_norm": grad_norm if not skipped else None,
            "skipped": skipped,
        }

    def _any_nonfinite(self, embeddings: torch.Tensor) -> bool:
        """Whether any rank's embeddings hold NaN or inf (collective)."""
        bad = (~torch.isfinite(embeddings.detach())).any().double().reshape(1)
        return bool(self.ctx.all_reduce_sum(bad) > 0)

    def optimizer_params(self) -> list[torch.nn.Parameter]:
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    def _global_grad_norm(self, loss_value: float) -> float:
        """L2 norm of all gradients over all ranks (sharded head rows summed over ranks,
        replicated parameters counted once); NaN when the loss or any gradient is not finite."""
        sq = torch.zeros(2, dtype=torch.float64, device=self.device)
        sharded = torch.zeros(2, dtype=torch.float64, device=self.device)
        for p in self.optimizer_params():
            if p.grad is not None:
                target = sharded if id(p) in self._sharded else sq
                target[0] += p.grad.detach().double().pow(2).sum()
        sharded[1] = 0.0 if math.isfinite(loss_value) else 1.0
        self.ctx.all_reduce_sum(sharded)
        if sharded[1] > 0:
            return math.nan
        return math.sqrt(float(sq[0] + sharded[0]))

    def _handle_nonfinite(self, loss_value: float) -> None:
        """fp16 overflow: the scaler skips and backs off. Otherwise the guard stops or skips."""
        step = self.step + 1
        if self.scaler.enabled and math.isfinite(loss_value):
            log.info("step %d: gradient overflow at scale %g, skipped", step, self.scaler.scale)
            return
        what = f"loss {loss_value}" if not math.isfinite(loss_value) else "a non-finite gradient"
        if self.recipe.train.nonfinite == "stop":
            raise ModelError(
                f"step {step}: {what} (training diverged); the last checkpoint is kept. Lower "
                "optim.lr, set train.grad_clip, or set train.nonfinite=skip"
            )
        log.warning("step %d: %s, step skipped (train.nonfinite=skip)", step, what)

    # ---- what hooks call -----------------------------------------------------------------------
    def emit(self, record: dict) -> None:
        """Hand a log record to every hook."""
        for hook in self.hooks:
            hook.on_record(self, record)

    def learned_threshold(self) -> float | None:
        """The head's decision threshold (``head.decision_threshold()``), None if it has none."""
        threshold = self.head.decision_threshold()
        return None if threshold is None else threshold.value
