"""The training loop: backbone (DDP under torchrun) + class-sharded head, hooks around it.

One optimizer step = ``train.batch_size`` images over all processes, in ``train.accumulation``
micro-batches; every rank reads its share (see :mod:`facebench.train.sampling`), so the maths
of a step does not depend on the number of processes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from facebench import distributed as dist
from facebench import schema
from facebench.config import Recipe, load_recipe, resolve_data_path, save_recipe
from facebench.errors import ConfigError, ModelError, WriteError
from facebench.fileio import exclusive
from facebench.procs import die_with_parent
from facebench.train import checkpoint as ckpt
from facebench.train.hooks import (
    CheckpointHook,
    Hook,
    JsonlHook,
    LogRecordsHook,
    ProgressHook,
    TensorBoardHook,
    VerificationHook,
)
from facebench.train.optim import build_optimizer, build_scheduler
from facebench.train.precision import LossScaler, autocast_dtype
from facebench.train.sampling import GlobalBatchSampler

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


def train(
    recipe: Recipe | str | Path,
    run_dir: str | Path,
    *,
    data_root: str | Path | None = None,
    device: str = "cpu",
    resume: bool = False,
    overrides: list[str] | tuple[str, ...] = (),
    hooks: list[Hook] | tuple[Hook, ...] = (),
    progress: bool = True,
    recipe_file: str | None = None,
) -> TrainResult:
    """Train ``recipe`` (a :class:`Recipe` or a recipe file) into ``run_dir``.

    Under torchrun this is one rank of a DDP run. ``hooks`` are added after the standard ones.
    ``recipe_file`` (default: ``recipe`` when it is a path) names the recipe in errors about
    its values found while building the run (batch size, head, backbone, data paths).
    """
    if not isinstance(recipe, Recipe):
        recipe_file = recipe_file or str(recipe)
        recipe = load_recipe(recipe, overrides)
    elif overrides:
        raise ConfigError("overrides apply to recipe files; edit the Recipe object instead")
    resume_point(Path(run_dir), resume)  # before any work
    ctx = dist.setup(device)
    try:
        with _claimed(Path(run_dir), ctx.is_main):
            with _recipe_named(recipe_file or f"recipe {recipe.name!r}"):
                trainer = Trainer(recipe, run_dir, ctx, data_root=data_root, progress=progress)
            trainer.hooks.extend(hooks)
            return trainer.fit(resume=resume)
    finally:
        dist.teardown(ctx)


def resume_point(run_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from (None for a new run); ConfigError for ``resume`` without a
    checkpoint, or for a folder that already holds a run when not resuming."""
    latest = ckpt.latest_checkpoint(run_dir / "checkpoints")
    if resume and latest is None:
        raise ConfigError(f"{run_dir}: --resume, but no checkpoint in {run_dir / 'checkpoints'}")
    if not resume and (latest is not None or (run_dir / "model.pt").exists()):
        raise ConfigError(
            f"{run_dir}: already holds a run; pass --resume to continue it or choose another --out"
        )
    return latest


@contextlib.contextmanager
def _claimed(run_dir: Path, is_main: bool):
    """The main process holds an OS lock on the run folder for the whole run, so a second
    ``train`` on it is refused; a run that fails before its first checkpoint removes the folder
    it created."""
    if not is_main:
        yield
        return
    existed = run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"{run_dir}: cannot create the run folder ({exc.strerror})") from exc
    with exclusive(run_dir, wait=False, what="run folder"):
        try:
            yield
        except BaseException:
            if not existed and ckpt.latest_checkpoint(run_dir / "checkpoints") is None:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise


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
        from facebench.data.collate import collate_images
        from facebench.data.images import InputConvention
        from facebench.data.packs import PackDataset
        from facebench.heads import build_head
        from facebench.models import build_backbone

        self.recipe, self.ctx, self.data_root = recipe, ctx, data_root
        self.run_dir = Path(run_dir)
        self.device = ctx.device
        t = recipe.train
        _seed_everything(t.seed)

        pack_path = resolve_data_path(recipe.data.train, data_root, "data.train")
        self.dataset = PackDataset(str(pack_path))  # uint8 images; flips and floats on the device
        self.convention = InputConvention(size=_image_size(self.dataset))
        self.num_classes = self.dataset.pack.num_classes
        if ctx.is_main:
            self._check_bins()

        self.backbone = build_backbone(
            recipe.model.backbone, recipe.model.embedding_size, **recipe.model.options
        ).to(self.device)
        if t.sync_bn and ctx.world_size > 1:
            self.backbone = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.backbone)
        self.memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
        self.backbone = self.backbone.to(memory_format=self.memory_format)
        head_args = (recipe.head.name, recipe.model.embedding_size, self.num_classes)
        if ctx.group is None:
            self.head = build_head(*head_args, **recipe.head.params)
        else:
            # initialise the slices from the one-process head, so the start (and the RNG
            # stream after it) does not depend on the world size
            rng = torch.get_rng_state()
            self.head = build_head(*head_args, **recipe.head.params, process_group=ctx.group)
            torch.set_rng_state(rng)
            whole = build_head(*head_args, **recipe.head.params)
            self.head.load_full_state_dict(ckpt.full_head_state(whole))
            del whole
        self.head = self.head.to(self.device)
        self.model = self.backbone
        if ctx.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.backbone, device_ids=ids)

        self.sampler = GlobalBatchSampler(
            len(self.dataset), t.batch_size, t.accumulation, ctx.rank, ctx.world_size, t.seed
        )
        self.loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=self.sampler,
            collate_fn=collate_images,
            num_workers=recipe.data.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=recipe.data.num_workers > 0,
            worker_init_fn=functools.partial(die_with_parent, os.getpid()),
        )
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.schedule_steps = max(1, int(t.epochs * self.steps_per_epoch))
        self.total_steps = min(self.schedule_steps, t.max_steps or self.schedule_steps)

        self.optimizer = build_optimizer(recipe.optim, self.backbone, self.head)
        self.scheduler = build_scheduler(
            recipe.schedule,
            self.optimizer,
            recipe.optim.lr,
            self.steps_per_epoch,
            self.schedule_steps,
        )
        self.amp_dtype = autocast_dtype(t.amp, self.device)
        self.scaler = LossScaler(enabled=self.amp_dtype == torch.float16)
        self._sharded = _sharded_head_params(self.head)

        self.step = 0
        self.losses: list[float] = []
        self.metrics: dict = {}  # bin name -> summary, set by the VerificationHook
        self.hooks: list[Hook] = [
            ProgressHook(progress),
            VerificationHook(recipe.eval.every, self._bin_paths(), recipe.eval.batch_size),
            LogRecordsHook(t.log_every),
            JsonlHook(self.run_dir / "log.jsonl"),
            CheckpointHook(t.checkpoint_every),
        ]
        if recipe.output.tensorboard:
            self.hooks.append(TensorBoardHook(self.run_dir / "tb"))

    # ---- the loop ------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainResult:
        """Run (or continue) training to the end; write model.pt; return a summary."""
        self._prepare_run_dir(resume)
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
        model_path = self.save_model()
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

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/step_N.pt`` (collective: every rank takes part, rank 0 writes)."""
        payload = {
            "step": self.step,
            "world_size": self.ctx.world_size,
            "recipe": self.recipe.to_dict(),
            "backbone": {k: v.cpu() for k, v in self.backbone.state_dict().items()},
            "head": ckpt.full_head_state(self.head),
            "optimizer": ckpt.optimizer_state(self.optimizer, self.backbone, self.head),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": ckpt.rng_state(),
        }
        directory = self.run_dir / "checkpoints"
        path = ckpt.checkpoint_path(directory, self.step)
        if self.ctx.is_main:
            ckpt.save_checkpoint(path, payload)
            ckpt.prune_checkpoints(directory, self.recipe.train.keep_checkpoints)
        self.ctx.barrier()
        return path

    def load_checkpoint(self, path: Path) -> None:
        """Restore everything :meth:`save_checkpoint` wrote, at this run's world size."""
        payload = ckpt.load_checkpoint(path)
        try:
            self.backbone.load_state_dict(payload["backbone"])
            optim_state = payload["optimizer"]
            ckpt.load_optimizer_state(self.optimizer, optim_state, self.backbone, self.head)
            ckpt.load_full_head_state(self.head, payload["head"])
        except (RuntimeError, KeyError) as exc:
            raise ModelError(f"{path}: does not fit this recipe's model ({exc})") from exc
        self.scheduler.load_state_dict(payload["scheduler"])
        self.scaler.load_state_dict(payload["scaler"])
        ckpt.set_rng_state(payload["rng"])
        self.step = int(payload["step"])
        log.info(
            "resumed %s at step %d (saved by %d process(es))",
            path,
            self.step,
            payload["world_size"],
        )

    def _check_bins(self) -> None:
        """Read and decode every eval bin once, so a missing or bad bin is an error before a
        model is built or a run file written (not at the end of training)."""
        from facebench.embed.sources import BinSource

        for path in self._bin_paths():
            for _ in BinSource(path):
                pass

    def _bin_paths(self) -> list[str]:
        """The recipe's verification bins, resolved against the data root."""
        return [
            str(resolve_data_path(b, self.data_root, "eval.bins")) for b in self.recipe.eval.bins
        ]

    def save_model(self) -> Path | None:
        """``RUN_DIR/model.pt``: backbone, input convention, learned threshold and (optionally)
        the head's full state, loadable without the recipe (collective)."""
        from facebench.models.artifact import save_model_artifact

        head = None
        if self.recipe.output.save_head:
            spec = dict(getattr(self.head, "spec", {}))
            head = {
                "name": self.recipe.head.name,
                "embedding_size": self.recipe.model.embedding_size,
                "num_classes": self.num_classes,
                "params": spec.get("params", dict(self.recipe.head.params)),
                "state_dict": ckpt.full_head_state(self.head),
            }
        threshold = self.head.decision_threshold()
        if not self.ctx.is_main:
            return None
        self.backbone.eval()
        kwargs = {"embedding_size": self.recipe.model.embedding_size, **self.recipe.model.options}
        metadata = {
            "recipe": self.recipe.name,
            "head": self.recipe.head.name,
            schema.LEARNED_THRESHOLD: None if threshold is None else threshold.value,
            schema.LEARNED_THRESHOLD_UNITS: None if threshold is None else threshold.units,
            "steps": self.step,
            "num_classes": self.num_classes,
        }
        path = self.run_dir / "model.pt"
        save_model_artifact(
            path,
            self.backbone,
            self.recipe.model.backbone,
            kwargs,
            self.convention,
            metadata=metadata,
            head=head,
        )
        return path

    def _prepare_run_dir(self, resume: bool) -> None:
        """Create the run directory, or find the checkpoint to resume from."""
        latest = resume_point(self.run_dir, resume)
        if latest is not None:
            self.load_checkpoint(latest)
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_recipe(self.recipe, self.run_dir / "recipe.yaml")
        self.ctx.barrier()


@contextlib.contextmanager
def _recipe_named(source: str):
    """Prefix ``source`` to ConfigErrors that do not name it yet."""
    try:
        yield
    except ConfigError as exc:
        if str(exc).startswith(source):
            raise
        raise ConfigError(f"{source}: {exc}") from exc


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _image_size(dataset) -> tuple[int, int]:
    """(H, W) of the pack's images: its property file, else its first image."""
    prop = dataset.pack.property
    if prop is not None:
        return int(prop[1]), int(prop[2])
    rgb = dataset.pack.read_image(int(dataset.pack.image_keys[0]))
    return int(rgb.shape[0]), int(rgb.shape[1])


def _sharded_head_params(head: torch.nn.Module) -> set[int]:
    """ids of head parameters that hold only this rank's rows (collective): those whose full
    (all-class) shape differs from the local one."""
    full = ckpt.full_head_state(head)
    return {
        id(p)
        for name, p in head.named_parameters()
        if name in full and tuple(full[name].shape) != tuple(p.shape)
    }
