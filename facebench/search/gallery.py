"""A faiss gallery of L2-normalized embeddings (inner product = cosine) with identity labels."""

from __future__ import annotations

import sys

import numpy as np

from facebench.embedding_rows import row_norms, unit_rows
from facebench.errors import ConfigError, DataError
from facebench.search import gallery_file
from facebench.search.gallery_file import as_identities

#: The decision for a probe whose best cosine is not above the threshold.
UNKNOWN = "unknown"
_CHUNK = 65536


def _madvise_dontneed(address: int, size: int) -> None:
    """Unmap the resident pages of a shared file mapping from this process (Linux; the data
    stays in the kernel's page cache and reaches the file); a no-op where unsupported."""
    import ctypes
    import mmap

    if not hasattr(mmap, "MADV_DONTNEED") or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if libc.madvise(address, size, mmap.MADV_DONTNEED) != 0:
        raise OSError(ctypes.get_errno(), "madvise failed")


class Gallery:
    """Embeddings in a faiss index built from a factory string, with one identity per row."""

    def __init__(self, dim: int, factory: str = "Flat"):
        import faiss

        if int(dim) < 1:
            raise DataError(f"gallery: dimension must be positive, got {dim}")
        self.dim = int(dim)
        self.factory = factory
        try:
            self.index = faiss.index_factory(self.dim, factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise DataError(f"gallery: faiss cannot build factory {factory!r}") from exc
        #: Per row: its identity (integer identities) or the position of its identity in
        #: ``names`` (string identities); a read-only memory map (int32 or int64, as saved) in
        #: a loaded gallery.
        self.codes = np.zeros(0, dtype=np.int64)
        self.names: np.ndarray | None = None  # sorted distinct string identities
        self.lists_path: str | None = None  # the inverted-lists file of an on-disk IVF index
        self.device = "cpu"

    def to_device(self, device: str, shard: bool = False) -> None:
        """Move the index to ``device`` ("cpu" or "cuda": all visible GPUs, replicated, or
        ``shard``-ed across them); a ConfigError names what to install when faiss cannot."""
        from facebench.search import gpu

        gpu.check_device(device)
        if device == self.device:
            return
        if self.lists_path is not None:
            raise ConfigError("--device cuda: an on-disk gallery is searched on the CPU")
        self.index = gpu.to_gpus(self.index, shard) if device == "cuda" else gpu.to_cpu(self.index)
        self.device = device

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def _check(self, embeddings: np.ndarray, what: str) -> np.ndarray:
        """The rows (no copy) after checking their width and values (:func:`row_norms`)."""
        x = np.asarray(embeddings)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise DataError(
                f"{what}: embeddings of shape {x.shape} do not match the gallery dimension "
                f"{self.dim}"
            )
        row_norms(x, what)
        return x

    @staticmethod
    def _unit(x: np.ndarray) -> np.ndarray:
        """float32 copies of the rows divided by their L2 norms (:func:`unit_rows`)."""
        return unit_rows(x, "embeddings")

    def add(self, embeddings: np.ndarray, identities) -> None:
        """Append embeddings (normalized here) and their identities; trains IVF/PQ on first use."""
        x = self._check(embeddings, "gallery add")
        if not self.index.is_trained:
            self.train(x)
        chunks = (x[start : start + _CHUNK] for start in range(0, len(x), _CHUNK))
        self.add_chunks(chunks, identities, len(x))

    def add_chunks(self, chunks, identities, count: int) -> None:
        """Append ``count`` rows arriving as an iterable of arrays (e.g. streamed from files)
        with their identities; the index must be trained. Resident memory: one chunk."""
        ids = as_identities(identities, count)
        if len(self) and ids.dtype.kind != self._kind:
            held = "integers" if self.names is None else "strings"
            raise DataError(f"gallery add: identities are {ids.dtype}, the gallery holds {held}")
        if not self.index.is_trained:
            raise DataError(f"gallery: {self.factory!r} must be trained before adding")
        self._reserve_on_disk(count)
        added = 0
        for chunk in chunks:
            self.index.add(self._unit(self._check(chunk, "gallery add")))
            self._release_lists_pages()
            added += len(chunk)
        if added != count:
            raise DataError(f"gallery add: {added} embeddings arrived, {count} were announced")
        self._append_identities(ids, keep=len(self) > added)

    def _append_identities(self, ids: np.ndarray, keep: bool) -> None:
        """Codes of ``ids`` after those of the rows already held (``keep``), names merged."""
        if not keep:
            self.codes, self.names = np.zeros(0, dtype=np.int64), None
        if ids.dtype.kind == "i":
            self.codes = np.concatenate([self.codes, ids])
            return
        old = self.names if self.names is not None else np.zeros(0, dtype=str)
        names = np.union1d(old, ids)
        moved = np.searchsorted(names, old)[self.codes]
        self.codes = np.concatenate([moved, np.searchsorted(names, ids)])
        self.names = names

    @property
    def identities(self) -> np.ndarray:
        """The identity of every row (int64 or str); built on demand for string identities."""
        return self.codes.astype(np.int64) if self.names is None else self.names[self.codes]

    def identity_count(self) -> int:
        """How many distinct identities the gallery holds."""
        return len(self.names) if self.names is not None else len(np.unique(self.codes))

    def most_rows_of_one_identity(self) -> int:
        """The largest number of rows that share one identity (0 when empty)."""
        counts = np.unique(self.codes, return_counts=True)[1]
        return int(counts.max()) if len(counts) else 0

    def training_rows(self, total: int) -> int:
        """How many rows to train on: 64 per IVF list (k-means) and at least 16,384 (PQ's 256
        centroids per sub-quantizer want 39 x 256), at most ``total``."""
        import faiss

        try:
            nlist = faiss.extract_index_ivf(self.index).nlist
        except RuntimeError:
            nlist = 0
        return min(int(total), max(64 * nlist, 16384))

    def train(self, embeddings: np.ndarray) -> None:
        """Train the index (IVF centroids, PQ codebooks) on representative embeddings."""
        x = self._unit(self._check(embeddings, "gallery train"))
        try:
            self.index.train(x)
        except RuntimeError as exc:
            reason = str(exc).strip().splitlines()[-1]
            raise DataError(
                f"gallery: cannot train {self.factory!r} on {len(x)} embeddings ({reason})"
            ) from exc

    def set_search_params(self, params: str) -> None:
        """faiss search parameters such as ``"nprobe=16"`` (IVF) or ``"efSearch=64"`` (HNSW)."""
        import faiss

        space = faiss.GpuParameterSpace() if self.device == "cuda" else faiss.ParameterSpace()
        try:
            space.set_index_parameters(self.index, params)
        except RuntimeError as exc:
            raise DataError(
                f"gallery: bad search parameters {params!r} for {self.factory}"
            ) from exc

    def search(self, probes: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Top-k cosines ``(n, k)`` (descending) and identities ``(n, k)``, k capped at the size.

        Slots faiss leaves empty (approximate indexes) hold cosine -inf and identity -1 or "".
        """
        if len(self) == 0:
            raise DataError("gallery: the gallery is empty")
        x = self._unit(self._check(probes, "search"))
        k = max(1, min(int(k), len(self)))
        cosines, rows = self.index.search(x, k)
        found = rows >= 0
        codes = self.codes[np.where(found, rows, 0)]
        held = codes.astype(np.int64) if self.names is None else self.names[codes]
        identities = np.where(found, held, -1 if self.names is None else "")
        return np.where(found, cosines, -np.inf).astype(np.float32), identities

    @property
    def _kind(self) -> str:
        return "i" if self.names is None else "U"

    def identify(self, probes: np.ndarray, threshold: float) -> tuple[list, np.ndarray]:
        """Per probe: top-1 identity if its cosine > threshold, else UNKNOWN; and that cosine."""
        cosines, identities = self.search(probes, 1)
        return decide(cosines[:, 0], identities[:, 0], threshold), cosines[:, 0]

    def _on_disk_lists(self):
        import faiss

        ivf = faiss.extract_index_ivf(self.index)
        return faiss.downcast_InvertedLists(ivf.invlists)

    def store_lists_on_disk(self, path: str) -> None:
        """Keep the inverted lists of this (trained, empty) IVF index in the file ``path``,
        memory-mapped: only the lists a search visits are read."""
        import faiss

        try:
            ivf = faiss.extract_index_ivf(self.index)
        except RuntimeError as exc:
            raise DataError(f"--on-disk needs an IVF index, not {self.factory!r}") from exc
        if len(self):
            raise DataError("gallery: inverted lists move to disk before anything is added")
        lists = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, path)
        ivf.replace_invlists(lists, True)
        lists.this.disown()  # owned by the index now
        self.lists_path = path

    def _release_lists_pages(self) -> None:
        """Let go of the on-disk lists' pages this process has touched: they stay in the page
        cache, but resident memory no longer grows with the lists file as rows are added."""
        if self.lists_path is not None:
            lists = self._on_disk_lists()
            if lists.ptr is not None and lists.totsize:
                _madvise_dontneed(int(lists.ptr), lists.totsize)

    def _reserve_on_disk(self, count: int) -> None:
        """Grow the lists file once for ``count`` more rows (sparse, so unused space costs no
        disk) instead of faiss's repeated doubling (each one a remap and a printed line)."""
        if self.lists_path is None:
            return
        lists = self._on_disk_lists()
        entry = lists.code_size + 8  # code and int64 id
        need = 4 * (len(self) + count) * entry + 4 * lists.nlist * entry
        if lists.totsize < need:
            lists.update_totsize(need)

    def move_lists(self, path: str) -> None:
        """Continue an on-disk gallery in a copy of its lists file at ``path`` (for an atomic
        update: the original stays untouched until :meth:`save` renames the copy over it)."""
        import shutil

        shutil.copyfile(self.lists_path, path)
        lists = self._on_disk_lists()
        lists.filename = path
        lists.update_totsize(lists.totsize)  # remap the copy
        self.lists_path = path

    def save(self, path: str) -> None:
        """Write the gallery to one file (:mod:`facebench.search.gallery_file`). An on-disk
        gallery's index records :func:`~facebench.search.gallery_file.lists_path_of` ``path`` as
        its lists file: the caller puts the lists there (``facebench.search.service`` renames
        them with the index)."""
        from facebench.search import gpu

        lists_final = None
        if self.lists_path is not None:
            lists_final = gallery_file.lists_path_of(path)
            self._on_disk_lists().filename = lists_final  # the name the index file records
        index = gpu.to_cpu(self.index) if self.device == "cuda" else self.index
        stored = gallery_file.Stored(
            self.dim, self.factory, lists_final, self.codes, self.names, index
        )
        gallery_file.write(path, stored)
        self.lists_path = lists_final

    @classmethod
    def load(cls, path: str) -> Gallery:
        """Read a file written by :meth:`save` (or by format 1, identities in the header); the
        identities are memory-mapped. A corrupt or foreign file raises DataError."""
        stored = gallery_file.read(path)
        gallery = cls.__new__(cls)
        gallery.dim, gallery.factory, gallery.lists_path = stored.dim, stored.factory, stored.lists
        gallery.codes, gallery.names, gallery.index = stored.codes, stored.names, stored.index
        gallery.device = "cpu"
        return gallery


def decide(cosines: np.ndarray, identities: np.ndarray, threshold: float) -> list:
    """Per probe: its identity when the cosine is above ``threshold``, else :data:`UNKNOWN`."""
    return [
        ident.item() if cos > threshold else UNKNOWN
        for cos, ident in zip(np.asarray(cosines), np.asarray(identities), strict=True)
    ]
