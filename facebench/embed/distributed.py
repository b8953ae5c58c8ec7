"""Distributed extraction: the ranks of a torchrun job each embed a contiguous shard of a source,
and rank 0 assembles the shards in source order.

Shard boundaries fall on multiples of the batch size, so every image is embedded in the same
batch as in one process and the assembled rows are the single-process ones. Each rank writes its
shard as a ``.npy`` into a scratch folder beside the output (on a file system every rank sees,
as the output itself); rank 0 streams the shards into the target block by block and removes the
folder. A :class:`~facebench.errors.FacebenchError` on any rank (a bad image in its shard) is
raised on every rank, so none waits for the others.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from facebench.distributed import DistContext, launched_by_torchrun, setup, teardown
from facebench.embed.extract import embed_images
from facebench.embed.io import assemble_rows, shards_shape, write_rows
from facebench.errors import ConfigError, DataError, FacebenchError
from facebench.fileio import scratch_dir, unstaged


@dataclass
class Sharding:
    """The ranks of one extraction, and the output path beside which their shards go."""

    ctx: DistContext
    near: str

    @property
    def is_main(self) -> bool:
        return self.ctx.is_main


@contextlib.contextmanager
def extraction_ranks(device: str, near: str) -> Iterator[tuple[str, Sharding | None]]:
    """``(this process's device, its Sharding)``. Under a torchrun of several processes: the
    process group of :func:`facebench.distributed.setup` (device ``cuda:LOCAL_RANK`` for CUDA),
    closed when the block ends. Otherwise ``(device, None)``: one process, as without torchrun."""
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        yield device, None
        return
    try:
        torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"device {device!r}: not a torch device (cpu, cuda, cuda:N)") from exc
    ctx = setup(device)
    try:
        yield str(ctx.device), Sharding(ctx, str(near))
    finally:
        teardown(ctx)


def shard_rows(count: int, rank: int, world_size: int, batch_size: int) -> range:
    """Rank ``rank``'s contiguous rows of ``count``: the ``batch_size`` batches split as evenly
    as ranks allow (the first ranks take one more), so no batch spans two ranks."""
    batches = -(-count // batch_size)
    share, extra = divmod(batches, world_size)
    first = rank * share + min(rank, extra)
    last = first + share + (rank < extra)
    return range(min(first * batch_size, count), min(last * batch_size, count))


def _all_gather(sharding: Sharding, value) -> list:
    values = [None] * sharding.ctx.world_size
    dist.all_gather_object(values, value, group=sharding.ctx.group)
    return values


def _raise_any(sharding: Sharding, error: FacebenchError | None) -> None:
    """Raise on every rank the first rank's error, when any rank had one."""
    first = next((e for e in _all_gather(sharding, error) if e is not None), None)
    if first is not None:
        raise first


def _from_main(sharding: Sharding, value):
    """Rank 0's ``value`` on every rank; raised on every rank when it is an error."""
    box = [value]
    dist.broadcast_object_list(box, src=0, group=sharding.ctx.group)
    if isinstance(box[0], FacebenchError):
        raise box[0]
    return box[0]


@contextlib.contextmanager
def _shared_scratch(sharding: Sharding) -> Iterator[str]:
    """A scratch folder made by rank 0 beside ``sharding.near``, its name sent to every rank;
    rank 0 removes it when its block ends."""
    if not sharding.is_main:
        yield _from_main(sharding, None)
        return
    with contextlib.ExitStack() as stack:
        try:
            folder = stack.enter_context(scratch_dir(sharding.near, ".shards"))
        except FacebenchError as exc:
            _from_main(sharding, exc)
        yield _from_main(sharding, folder)


def _write_shard(embedder, source, sharding: Sharding, folder: str, options: dict):
    """Embed this rank's rows of ``source`` into ``folder``: ``(shard path, row values)``, or
    ``(None, {})`` for a rank without rows."""
    ctx = sharding.ctx
    rows = shard_rows(len(source), ctx.rank, ctx.world_size, options["batch_size"])
    if not rows:
        return None, {}
    part = source.part(rows.start, rows.stop)
    progress = options["progress"] and ctx.is_main
    emb = embed_images(embedder, part, **{**options, "progress": progress})
    with unstaged():  # rank 0 reads it before the command's outputs are published
        shard = write_rows(os.path.join(folder, f"rank{ctx.rank:05d}.npy"), emb)
    return shard, part.row_values()


@contextlib.contextmanager
def embedded_shards(embedder, source, sharding: Sharding, **options) -> Iterator[list[str] | None]:
    """Every rank embeds its :func:`shard_rows` of ``source`` (options of
    :func:`~facebench.embed.extract.embed_images`) into a shard file. Rank 0 gets the shard
    paths in source order, and ``source`` takes every rank's row values (pack labels); other
    ranks get None. The shards are removed when the block ends."""
    options = {"batch_size": 64, "progress": True, **options}
    if options["batch_size"] < 1:
        raise DataError(f"batch size must be at least 1, got {options['batch_size']}")
    if len(source) == 0:
        raise DataError("no images to embed")
    with _shared_scratch(sharding) as folder:
        written, error = (None, {}), None
        try:
            written = _write_shard(embedder, source, sharding, folder, options)
        except FacebenchError as exc:
            error = exc
        _raise_any(sharding, error)
        gathered = [None] * sharding.ctx.world_size if sharding.is_main else None
        dist.gather_object(written, gathered, dst=0, group=sharding.ctx.group)
        if not sharding.is_main:
            yield None
            return
        parts = [(shard, values) for shard, values in gathered if shard is not None]
        names = parts[0][1]
        source.set_row_values({k: [x for _, values in parts for x in values[k]] for k in names})
        yield [shard for shard, _ in parts]


def embed_rows(embedder, source, sharding: Sharding | None = None, **options) -> np.ndarray | None:
    """:func:`~facebench.embed.extract.embed_images` of the whole ``source`` (same options).
    With ``sharding``, each rank embeds its shard: rank 0 gets every row in source order (the
    single-process result), the other ranks None."""
    if sharding is None:
        return embed_images(embedder, source, **options)
    with embedded_shards(embedder, source, sharding, **options) as shards:
        if shards is None:
            return None
        rows = np.empty(shards_shape(shards), dtype=np.float32)
        assemble_rows(shards, rows)
        return rows
