"""What a training run is built from its recipe: data, backbone, head, loader, optimizer and
hooks.

Called in this order by :class:`facebench.train.trainer.Trainer`, after seeding, so the random
start of a run (weights, head rows) depends only on the recipe's seed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
from pathlib import Path

import numpy as np
import torch

from facebench import distributed as dist
from facebench.config import Recipe, resolve_data_path
from facebench.errors import ConfigError
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
from facebench.train.sampling import GlobalBatchSampler


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train_data(recipe: Recipe, data_root: str | Path | None):
    """The training pack (uint8 images; flips and floats happen on the device) and its input
    convention."""
    from facebench.data.images import InputConvention
    from facebench.data.packs import PackDataset

    pack_path = resolve_data_path(recipe.data.train, data_root, "data.train")
    dataset = PackDataset(str(pack_path))
    return dataset, InputConvention(size=_image_size(dataset))


def bin_paths(recipe: Recipe, data_root: str | Path | None) -> list[str]:
    """The recipe's verification bins, resolved against the data root."""
    return [str(resolve_data_path(b, data_root, "eval.bins")) for b in recipe.eval.bins]


def check_bins(paths: list[str]) -> None:
    """Read and decode every eval bin once, so a missing or bad bin is an error before a
    model is built or a run file written (not at the end of training)."""
    from facebench.embed.sources import BinSource

    for path in paths:
        for _ in BinSource(path):
            pass


def networks(recipe: Recipe, ctx: dist.DistContext, num_classes: int):
    """(backbone, head, model) on the run's device; ``model`` is the backbone wrapped in DDP
    when there are several processes, the head holds this rank's class slice."""
    from facebench.heads import build_head
    from facebench.models import build_backbone

    t, device = recipe.train, ctx.device
    backbone = build_backbone(
        recipe.model.backbone, recipe.model.embedding_size, **recipe.model.options
    ).to(device)
    if t.sync_bn and ctx.world_size > 1:
        backbone = torch.nn.SyncBatchNorm.convert_sync_batchnorm(backbone)
    memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
    backbone = backbone.to(memory_format=memory_format)
    head_args = (recipe.head.name, recipe.model.embedding_size, num_classes)
    if ctx.group is None:
        head = build_head(*head_args, **recipe.head.params)
    else:
        # initialise the slices from the one-process head, so the start (and the RNG
        # stream after it) does not depend on the world size
        rng = torch.get_rng_state()
        head = build_head(*head_args, **recipe.head.params, process_group=ctx.group)
        torch.set_rng_state(rng)
        whole = build_head(*head_args, **recipe.head.params)
        head.load_full_state_dict(ckpt.full_head_state(whole))
        del whole
    head = head.to(device)
    model = backbone
    if ctx.world_size > 1:
        ids = [device.index] if device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(backbone, device_ids=ids)
    return backbone, head, model


def loader(recipe: Recipe, ctx: dist.DistContext, dataset):
    """(sampler, DataLoader): this rank's share of each global batch, workers that die with
    the training process."""
    from facebench.data.collate import collate_images

    t = recipe.train
    sampler = GlobalBatchSampler(
        len(dataset), t.batch_size, t.accumulation, ctx.rank, ctx.world_size, t.seed
    )
    data_loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_images,
        num_workers=recipe.data.num_workers,
        pin_memory=ctx.device.type == "cuda",
        persistent_workers=recipe.data.num_workers > 0,
        worker_init_fn=functools.partial(die_with_parent, os.getpid()),
    )
    return sampler, data_loader


def optimization(recipe: Recipe, backbone, head, steps_per_epoch: int, schedule_steps: int):
    """(optimizer, learning-rate scheduler) of the backbone and the head."""
    optimizer = build_optimizer(recipe.optim, backbone, head)
    scheduler = build_scheduler(
        recipe.schedule, optimizer, recipe.optim.lr, steps_per_epoch, schedule_steps
    )
    return optimizer, scheduler


def standard_hooks(recipe: Recipe, run_dir: Path, bins: list[str], progress: bool) -> list[Hook]:
    """Progress bar, verification, log records, JSONL log, checkpoints (and TensorBoard)."""
    t = recipe.train
    hooks: list[Hook] = [
        ProgressHook(progress),
        VerificationHook(recipe.eval.every, bins, recipe.eval.batch_size),
        LogRecordsHook(t.log_every),
        JsonlHook(run_dir / "log.jsonl"),
        CheckpointHook(t.checkpoint_every),
    ]
    if recipe.output.tensorboard:
        hooks.append(TensorBoardHook(run_dir / "tb"))
    return hooks


def sharded_head_params(head: torch.nn.Module) -> set[int]:
    """ids of head parameters that hold only this rank's rows (collective): those whose full
    (all-class) shape differs from the local one."""
    full = ckpt.full_head_state(head)
    return {
        id(p)
        for name, p in head.named_parameters()
        if name in full and tuple(full[name].shape) != tuple(p.shape)
    }


@contextlib.contextmanager
def recipe_named(source: str):
    """Prefix ``source`` to ConfigErrors that do not name it yet."""
    try:
        yield
    except ConfigError as exc:
        if str(exc).startswith(source):
            raise
        raise ConfigError(f"{source}: {exc}") from exc


def _image_size(dataset) -> tuple[int, int]:
    """(H, W) of the pack's images: its property file, else its first image."""
    prop = dataset.pack.property
    if prop is not None:
        return int(prop[1]), int(prop[2])
    rgb = dataset.pack.read_image(int(dataset.pack.image_keys[0]))
    return int(rgb.shape[0]), int(rgb.shape[1])
