"""faiss indexes on GPUs: one CPU index cloned to every visible GPU, replicated or sharded.

Needs faiss's GPU build (``pip install faiss-gpu-cu12`` for CUDA 12, in place of ``faiss-cpu``);
``CUDA_VISIBLE_DEVICES`` picks the GPUs."""

from __future__ import annotations

from facebench.errors import ConfigError

DEVICES = ("cpu", "cuda")
INSTALL = "pip uninstall faiss-cpu && pip install faiss-gpu-cu12"


def check_device(device: str) -> None:
    """A one-line ConfigError unless ``device`` is usable: "cpu", or "cuda" with faiss's GPU
    build and at least one visible GPU."""
    import faiss

    if device not in DEVICES:
        raise ConfigError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cuda":
        if not hasattr(faiss, "StandardGpuResources"):
            raise ConfigError(
                f"--device cuda: this faiss ({faiss.__version__}) is the CPU build; "
                f"install the GPU build ({INSTALL}) on a machine with an NVIDIA GPU"
            )
        if faiss.get_num_gpus() < 1:
            raise ConfigError("--device cuda: faiss sees no GPU (check CUDA_VISIBLE_DEVICES)")


def to_gpus(index, shard: bool = False):
    """A GPU copy of a CPU index over all visible GPUs: each holds all rows (replicated:
    queries split between GPUs) or 1/n of them (``shard``: n times the capacity)."""
    import faiss

    options = faiss.GpuMultipleClonerOptions()
    options.shard = shard
    return faiss.index_cpu_to_all_gpus(index, co=options)


def to_cpu(index):
    """A CPU copy of an index made by :func:`to_gpus` (for saving)."""
    import faiss

    return faiss.index_gpu_to_cpu(index)
