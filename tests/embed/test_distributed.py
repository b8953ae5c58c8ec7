"""Distributed extraction: `torchrun --nproc_per_node=2` (gloo, CPU) writes the same embeddings
file and the same verification reports as one process, and a bad image on one rank stops every
rank with one line and nothing written."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from facebench.cli import main
from facebench.data.bins import write_verification_bin
from facebench.data.images import InputConvention, encode_image
from facebench.data.packs import write_face_pack
from facebench.embed.distributed import shard_rows
from facebench.embed.io import assemble_rows, save_embedding_shards, save_embeddings, write_rows
from facebench.embed.sources import PackSource
from facebench.errors import DataError
from facebench.models import build_backbone
from facebench.models.artifact import save_model_artifact

SIZE, IMAGES, BATCH = 32, 22, 4  # 6 batches: rank 0 embeds rows 0-11, rank 1 rows 12-21


def _torchrun(argv, cwd):
    """``torchrun --standalone --nproc_per_node=2 -m facebench ARGV``, one thread a process."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd += ["-m", "facebench", *argv, "--no-progress"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A tiny model.pt, a pack of 22 images (6 identities) and a bin of 10 pairs."""
    root = tmp_path_factory.mktemp("dist")
    torch.manual_seed(0)
    kwargs = {"widths": [8, 8, 8], "embedding_size": 16}
    net = build_backbone("tiny_face", **kwargs).eval()
    save_model_artifact(
        root / "model.pt", net, "tiny_face", kwargs, InputConvention(size=(SIZE, SIZE))
    )
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(IMAGES, SIZE, SIZE, 3), dtype=np.uint8)
    encoded = [encode_image(image, ".png") for image in images]
    write_face_pack(str(root / "pack"), [(i // 4, e) for i, e in enumerate(encoded)], (SIZE, SIZE))
    write_verification_bin(str(root / "v.bin"), encoded[:20], [True, False] * 5)
    return root


@pytest.mark.parametrize("count", [0, 1, 3, 4, 5, 22, 64, 65])
@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_shards_split_whole_batches_evenly_in_order(count, world):
    batches = [range(s, min(s + BATCH, count)) for s in range(0, count, BATCH)]
    parts = [shard_rows(count, rank, world, BATCH) for rank in range(world)]
    assert [i for part in parts for i in part] == list(range(count))
    for part in parts:  # whole batches only
        assert all(set(b) <= set(part) or not set(b) & set(part) for b in batches)
    owned = [sum(1 for b in batches if b.start in part) for part in parts]
    assert max(owned) - min(owned) <= 1 and owned == sorted(owned, reverse=True)


def test_a_part_iterates_its_rows_and_reads_their_labels(workdir):
    whole = PackSource(str(workdir / "pack"))
    images = list(whole)
    part = whole.part(5, 13)
    assert len(part) == 8 and len(whole) == IMAGES
    assert all((a == b).all() for a, b in zip(list(part), images[5:13], strict=True))
    assert part.row_values() == {"labels": [i // 4 for i in range(5, 13)]}
    assert whole.labels == [i // 4 for i in range(IMAGES)]  # the whole source is unchanged
    assert list(part.part(2, 4).selected()) == [7, 8]


def test_two_processes_write_what_one_process_writes(workdir, capsys):
    model = str(workdir / "model.pt")
    common = ["--model", model, "--batch-size", str(BATCH), "--no-progress"]
    one_embed = ["embed", *common, "--pack", "pack", "--out", "one.npy"]
    one_verify = ["verify", *common, "--bin", "v.bin", "--out", "one"]
    cwd, threads = os.getcwd(), torch.get_num_threads()
    os.chdir(workdir)
    try:
        torch.set_num_threads(1)  # as each torchrun process
        assert main(one_embed) == 0 and main(one_verify) == 0
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
    capsys.readouterr()

    embed = _torchrun(["embed", *common[:-1], "--pack", "pack", "--out", "two.npy"], workdir)
    assert embed.returncode == 0, embed.stderr[-3000:]
    assert embed.stdout.count("22 x 16 embeddings") == 1  # rank 1 exits quietly
    # shard boundaries fall on batches, so every image is embedded in the same batch: equal bits
    assert np.array_equal(np.load(workdir / "two.npy"), np.load(workdir / "one.npy"))
    one, two = (json.loads((workdir / f"{n}.json").read_text()) for n in ("one", "two"))
    assert two["labels"] == [i // 4 for i in range(IMAGES)] and two == one

    verify = _torchrun(["verify", *common[:-1], "--bin", "v.bin", "--out", "two"], workdir)
    assert verify.returncode == 0, verify.stderr[-3000:]
    for name in ("v.json", "transfer.json"):
        assert (workdir / "two" / name).read_text() == (workdir / "one" / name).read_text()
    assert not [n for n in os.listdir(workdir) if ".fbtmp-" in n]  # the shards are gone


def test_a_bad_image_on_one_rank_stops_every_rank_with_one_line(workdir, tmp_path):
    files = []
    for i in range(10):  # the last batch (rank 1's) holds an image of the wrong size
        size = 20 if i == 9 else SIZE
        path = tmp_path / f"{i}.png"
        path.write_bytes(encode_image(np.full((size, size, 3), i, np.uint8), ".png"))
        files.append(str(path))
    (tmp_path / "list.txt").write_text("\n".join(files) + "\n")
    argv = ["embed", "--model", str(workdir / "model.pt"), "--list", "list.txt"]
    result = _torchrun([*argv, "--batch-size", str(BATCH), "--out", "bad.npy"], tmp_path)
    assert result.returncode != 0
    lines = [x for x in result.stderr.splitlines() if x.startswith("facebench: error: ")]
    assert lines and all(x == lines[0] for x in lines) and "9.png: image is 20x20" in lines[0]
    # each rank says it once (rank 1 found it, rank 0 was told; a rank left waiting would hang
    # the run instead). torchrun stops the other workers as soon as one exits, so on a loaded
    # machine rank 0 may be stopped before its line is out: one or two lines, never more.
    assert len(lines) in (1, 2)
    assert sorted(os.listdir(tmp_path)) == sorted(
        [*(os.path.basename(f) for f in files), "list.txt"]
    )


def test_shards_stream_into_the_file_save_embeddings_writes(tmp_path):
    rng = np.random.default_rng(1)
    parts = [rng.normal(size=(n, 8)).astype(np.float32) for n in (5, 3, 7)]
    shards = [write_rows(str(tmp_path / f"s{i}.npy"), p) for i, p in enumerate(parts)]
    whole = np.concatenate(parts)
    rows = np.empty_like(whole)
    assemble_rows(shards, rows, block_bytes=64)  # 2 rows a block: several blocks a shard
    assert np.array_equal(rows, whole)
    sidecar = {"ids": list(range(15))}
    save_embeddings(str(tmp_path / "one.npy"), whole, sidecar)
    save_embedding_shards(str(tmp_path / "two.npy"), shards, sidecar)
    for ext in ("npy", "json"):
        assert (tmp_path / f"two.{ext}").read_bytes() == (tmp_path / f"one.{ext}").read_bytes()


def test_shards_of_different_widths_are_refused_by_name(tmp_path):
    a = write_rows(str(tmp_path / "a.npy"), np.ones((2, 8), np.float32))
    b = write_rows(str(tmp_path / "b.npy"), np.ones((2, 4), np.float32))
    with pytest.raises(DataError, match=r"b\.npy: rows of 4 values, the shards before have 8"):
        save_embedding_shards(str(tmp_path / "out.npy"), [a, b], {})
    assert sorted(os.listdir(tmp_path)) == ["a.npy", "b.npy"]
