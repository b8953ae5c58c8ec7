"""The --device / --gpu-shard options shared by the commands that run faiss."""

from __future__ import annotations


def add_faiss_device_arguments(parser) -> None:
    """Add ``--device`` (cpu, cuda) and ``--gpu-shard`` to ``parser``."""
    from facebench.search.gpu import DEVICES, INSTALL

    parser.add_argument(
        "--device",
        default="cpu",
        choices=DEVICES,
        help=f"faiss on the CPU or on all visible GPUs (needs faiss's GPU build: {INSTALL})",
    )
    parser.add_argument(
        "--gpu-shard",
        action="store_true",
        help="with --device cuda: split the index over the GPUs instead of copying it to each",
    )
