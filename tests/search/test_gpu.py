"""--device cuda: GPU faiss where it exists (same top-k as the CPU), one line where it does not."""

import os

import faiss
import numpy as np
import pytest

from facebench.cli import main
from facebench.embed.io import save_embeddings
from facebench.search import Gallery

HAS_GPU = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


@pytest.fixture
def gallery_files(tmp_path):
    x = np.random.default_rng(0).normal(size=(300, 24)).astype(np.float32)
    save_embeddings(str(tmp_path / "g.npy"), x, {"identities": (np.arange(300) // 3).tolist()})
    save_embeddings(
        str(tmp_path / "p.npy"), x[::10] + 0.05, {"identities": list(range(0, 100, 10)) * 3}
    )
    return tmp_path


@pytest.mark.skipif(HAS_GPU, reason="faiss's GPU build is installed and sees a GPU")
def test_cuda_without_gpu_faiss_is_one_line(gallery_files, capsys):
    t = gallery_files
    commands = [
        ["index", "build", "--embeddings", str(t / "g.npy"), "--out", str(t / "g.index")],
        [
            "identify",
            "--gallery",
            str(t / "g.npy"),
            "--probes",
            str(t / "p.npy"),
            "--out",
            str(t / "r"),
        ],
    ]
    for argv in commands:
        assert main([*argv, "--device", "cuda"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("facebench: error: --device cuda") and "\n" not in err
        assert "pip install faiss-gpu" in err or "sees no GPU" in err
    assert main([*commands[0]]) == 0
    before = sorted(os.listdir(t))
    search = ["search", "--index", str(t / "g.index"), "--embeddings", str(t / "p.npy")]
    search += ["--threshold", "0.5", "--out", str(t / "s.json"), "--device", "cuda"]
    assert main(search) == 2
    assert capsys.readouterr().err.startswith("facebench: error: --device cuda")
    assert sorted(os.listdir(t)) == before


@pytest.mark.skipif(not HAS_GPU, reason="needs faiss's GPU build and a GPU")
@pytest.mark.parametrize("shard", [False, True])
def test_gpu_flat_search_equals_cpu(shard):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5000, 64)).astype(np.float32)
    probes = x[::50] + 0.1 * rng.normal(size=(100, 64)).astype(np.float32)
    cpu, gpu = Gallery(64), Gallery(64)
    gpu.to_device("cuda", shard)
    for g in (cpu, gpu):
        g.add(x, np.arange(5000))
    cos_cpu, ids_cpu = cpu.search(probes, 10)
    cos_gpu, ids_gpu = gpu.search(probes, 10)
    np.testing.assert_array_equal(ids_gpu, ids_cpu)
    # two float32 inner-product kernels on unit rows (d = 64): each within 64 * 2**-24 of the
    # exact cosine (|terms| add up to at most 1), so within 2 * 64 * 2**-24 = 7.6e-6 of each other
    np.testing.assert_allclose(cos_gpu, cos_cpu, rtol=0, atol=128 * 2**-24)
