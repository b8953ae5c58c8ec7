"""Batch memory in one process: reused once nothing holds the last batch made from it, never
while a tensor, view or numpy array over that batch lives."""

import gc

import torch

from facebench.data.collate import RecycledMemory, batch_tensor

SHAPE = (4, 3, 3, 3)


def test_memory_is_reused_only_after_every_holder_is_gone():
    memory = RecycledMemory()
    first = torch.from_numpy(memory.array(SHAPE))
    address = first.data_ptr()
    second = torch.from_numpy(memory.array(SHAPE))
    assert second.data_ptr() != address  # the first is still held
    rows, pixels = first[1:], first.numpy()
    del first
    assert torch.from_numpy(memory.array(SHAPE)).data_ptr() != address  # a view holds it
    del rows
    assert torch.from_numpy(memory.array(SHAPE)).data_ptr() != address  # numpy holds it
    del pixels
    gc.collect()
    third = torch.from_numpy(memory.array(SHAPE))
    assert third.data_ptr() == address
    assert torch.from_numpy(memory.array((2, *SHAPE[1:]))).data_ptr() != address


def test_at_most_keep_spares_are_kept():
    memory = RecycledMemory(keep=2)
    batches = [memory.array(SHAPE) for _ in range(4)]
    del batches
    assert len(memory.spares) == 2


def test_batches_in_one_process_recycle_and_stay_intact():
    held = batch_tensor(SHAPE)
    held.fill_(7)
    for value in range(3):
        other = batch_tensor(SHAPE)
        assert other.data_ptr() != held.data_ptr()
        other.fill_(value)
        del other
    assert bool((held == 7).all())
