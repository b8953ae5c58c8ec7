"""A gallery larger than the memory it is built in: N x D embeddings in S shard files, an IVF-PQ
index built by streaming them (``facebench index build`` with several files and ``--on-disk``),
searched by 1,000 probes.

The shards (``.npy`` + sidecar identities, 4 rows per identity around a random centre) are
written chunk by chunk into a temporary folder. Build and search each run in a child process
through the CLI, which reports its wall time and peak resident set (``ru_maxrss``, which counts
the pages of memory-mapped files it touched); the build also reports the peak anonymous and
file-backed resident memory of each phase (:class:`PhaseMemory`). Probes are noisy copies of
rows of the first shards; recall@1 compares the index's top-1 row (over the whole gallery) with
the exact (brute-force) nearest row among those first rows (the "subset"; a probe's nearest row
lies there unless the noise carries it to another identity's rows, which then counts as a miss).

    python benchmarks/bench_gallery.py                        # 10M x 128, 10 shards
    python benchmarks/bench_gallery.py --rows 1000000 --factory IVF256,PQ32   # a smaller run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROWS_PER_IDENTITY = 4


def write_shards(folder: str, rows: int, dim: int, n_shards: int, seed: int = 0) -> list[str]:
    """``n_shards`` embedding files of ``rows`` clustered rows in total (identity = row // 4)."""
    from facebench.embed.io import SIDECAR_FORMAT, sidecar_path
    from facebench.fileio import write_json

    per = -(-rows // n_shards)
    per += -per % ROWS_PER_IDENTITY
    paths = []
    for s in range(n_shards):
        first, n = s * per, min(per, rows - s * per)
        path = os.path.join(folder, f"shard{s:02d}.npy")
        out = np.lib.format.open_memmap(path, "w+", np.float32, (n, dim))
        for a in range(0, n, 262144):
            b = min(n, a + 262144)
            rng = np.random.default_rng([seed, s, a])
            centres = rng.standard_normal(((b - a) // ROWS_PER_IDENTITY + 1, dim), np.float32)
            rows_id = np.arange(a, b) // ROWS_PER_IDENTITY - a // ROWS_PER_IDENTITY
            out[a:b] = centres[rows_id] + 0.5 * rng.standard_normal((b - a, dim), np.float32)
        out.flush()
        del out
        ids = (np.arange(first, first + n) // ROWS_PER_IDENTITY).tolist()
        meta = {"format": SIDECAR_FORMAT, "count": n, "dim": dim, "identities": ids}
        write_json(sidecar_path(path), meta)
        paths.append(path)
    return paths


def write_probes(folder: str, shard_paths: list[str], n_probes: int, subset: int) -> str:
    """Noisy copies of random rows among the first ``subset`` gallery rows."""
    from facebench.embed.io import save_embeddings

    rng = np.random.default_rng(1)
    first = np.load(shard_paths[0], mmap_mode="r")
    picks = np.sort(rng.choice(min(subset, len(first)), n_probes, replace=False))
    probes = first[picks] + 0.3 * rng.standard_normal((n_probes, first.shape[1]), np.float32)
    path = os.path.join(folder, "probes.npy")
    save_embeddings(path, probes, {"ids": picks.tolist()})
    return path


def exact_top1(shard_paths: list[str], probes: np.ndarray, subset: int) -> np.ndarray:
    """Global row of each probe's exact nearest row (cosine) among the first ``subset`` rows."""
    import faiss

    from facebench.search.shards import open_shards

    unit = probes / np.linalg.norm(probes, axis=1, keepdims=True)
    best = np.full(len(probes), -np.inf)
    row = np.zeros(len(probes), dtype=np.int64)
    first = 0
    for shard in open_shards(shard_paths):
        for start, chunk in shard.chunks(262144):
            if first + start >= subset:
                return row
            chunk = chunk[: subset - first - start]
            chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
            index = faiss.IndexFlatIP(chunk.shape[1])
            index.add(chunk)
            scores, rows = index.search(unit, 1)
            better = scores[:, 0] > best
            best[better] = scores[better, 0]
            row[better] = first + start + rows[better, 0]
        first += shard.rows
    return row


class PhaseMemory:
    """Peak anonymous and file-backed resident memory (``/proc/self/status``, sampled every 20
    ms by a thread) per phase of the build: the functions named in :data:`PHASES` mark them."""

    FIELDS = ("RssAnon", "RssFile")

    def __init__(self):
        self.phase = "import"
        self.peaks: dict[str, list[float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _now(self) -> list[float]:
        with open("/proc/self/status") as f:
            rows = dict(line.split(":", 1) for line in f)
        return [int(rows[k].split()[0]) / 2**20 for k in self.FIELDS]  # kB -> GiB

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.record()

    def record(self) -> None:
        now = self._now()
        peak = self.peaks.setdefault(self.phase, [0.0, 0.0, 0.0])
        peak[:] = [max(peak[0], now[0]), max(peak[1], now[1]), max(peak[2], sum(now))]

    def enter(self, phase: str) -> None:
        self.record()
        self.phase = phase
        self.record()

    def wrap(self, owner, name: str) -> None:
        """Make ``owner.name`` (a function or method) a phase of its own while it runs."""
        inner = getattr(owner, name)

        def marked(*args, **kwargs):
            outer = self.phase
            self.enter(name)
            try:
                return inner(*args, **kwargs)
            finally:
                self.enter(outer)

        setattr(owner, name, marked)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        self.record()
        return {k: [round(v, 3) for v in p] for k, p in self.peaks.items()}


#: The build's phases: (module, attribute, function or method) marked by :class:`PhaseMemory`.
PHASES = (
    ("facebench.search.service", None, "open_shards"),
    ("facebench.search.service", None, "_shard_identities"),
    ("facebench.search.service", None, "sample_rows"),
    ("facebench.search.gallery", "Gallery", "train"),
    ("facebench.search.service", None, "_stream_into"),
    ("facebench.search.gallery", "Gallery", "save"),
)


def mark_phases(memory: PhaseMemory) -> None:
    import importlib

    for module, cls, name in PHASES:
        owner = importlib.import_module(module)
        owner = getattr(owner, cls) if cls else owner
        if hasattr(owner, name):
            memory.wrap(owner, name)


def child(task: dict) -> None:
    """Run one task, print its result with wall seconds and peak RSS as JSON on the last line:
    ``cli`` runs a facebench command; ``search`` loads a gallery and searches the probes."""
    result = {}
    start = time.perf_counter()
    if task["kind"] == "cli":
        memory = PhaseMemory()
        from facebench.cli import main

        memory.enter("cli")
        mark_phases(memory)
        result["code"] = main(task["argv"])
        result["phases"] = memory.stop()
    else:
        from facebench.embedding_rows import unit_rows
        from facebench.search import Gallery

        gallery = Gallery.load(task["index"])
        gallery.set_search_params(f"nprobe={task['nprobe']}")
        result["load_seconds"] = time.perf_counter() - start
        probes = unit_rows(np.load(task["probes"]), task["probes"])
        searched = time.perf_counter()
        _, rows = gallery.index.search(probes, 1)
        result["search_seconds"] = time.perf_counter() - searched
        result["rows"] = rows[:, 0].tolist()
    result["seconds"] = time.perf_counter() - start
    result["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(result))


def run_child(task: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(task)], capture_output=True, text=True
    )
    if out.returncode != 0 or (task["kind"] == "cli" and '"code": 0' not in out.stdout):
        raise SystemExit(f"{task} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--factory", default="IVF1024,PQ32")
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument(
        "--subset",
        type=int,
        default=1_000_000,
        help="probes come from (and exact search covers) the first rows",
    )
    parser.add_argument("--folder", help="work folder (default: a temporary one, removed)")
    parser.add_argument(
        "--keep-shards",
        metavar="DIR",
        help="write the shards and probes into DIR and keep them; reuse them when present",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        start = time.perf_counter()
        data = args.keep_shards or folder
        os.makedirs(data, exist_ok=True)
        shards = [os.path.join(data, f"shard{s:02d}.npy") for s in range(args.shards)]
        probes_path = os.path.join(data, "probes.npy")
        if not (args.keep_shards and all(map(os.path.exists, [*shards, probes_path]))):
            shards = write_shards(data, args.rows, args.dim, args.shards)
            probes_path = write_probes(data, shards, args.probes, args.subset)
        size = sum(os.path.getsize(p) for p in shards) / 2**30
        print(f"{args.rows:,} x {args.dim} in {args.shards} shards ({size:.2f} GiB float32),")
        print(f"written in {time.perf_counter() - start:.0f} s", flush=True)
        index = os.path.join(folder, "gallery.index")
        argv = ["index", "build", "--embeddings", *shards, "--out", index, "--on-disk"]
        build = run_child({"kind": "cli", "argv": [*argv, "--factory", args.factory]})
        lists = os.path.getsize(index + ".ivfdata")
        used = os.stat(index + ".ivfdata").st_blocks * 512
        index_mib = os.path.getsize(index) / 2**20
        print(f"{args.factory} --on-disk: index file {index_mib:.1f} MiB, lists file")
        print(f"{lists / 2**30:.2f} GiB apparent, {used / 2**30:.2f} GiB on disk")
        print(f"build: {build['seconds']:.0f} s, peak RSS {build['peak_gib']:.2f} GiB")
        print("build phases, peak GiB resident (anonymous, file-backed, sum):")
        for phase, (anon, mapped, both) in build["phases"].items():
            print(f"  {phase:<18} {anon:6.2f} {mapped:6.2f} {both:6.2f}", flush=True)
        task = {"kind": "search", "index": index, "probes": probes_path, "nprobe": args.nprobe}
        search = run_child(task)
        want = exact_top1(shards, np.load(probes_path), args.subset)
        recall = float(np.mean(np.array(search["rows"]) == want))
        qps = args.probes / search["search_seconds"]
        print(
            f"search: load {search['load_seconds']:.1f} s, {args.probes} probes at "
            f"nprobe={args.nprobe} in {search['search_seconds']:.2f} s ({qps:.0f} QPS), "
            f"peak RSS {search['peak_gib']:.2f} GiB"
        )
        print(f"recall@1 against exact search over the first {args.subset:,} rows: {recall:.4f}")


if __name__ == "__main__":
    main()
