"""A faiss gallery of L2-normalized embeddings (inner product = cosine) with identity labels."""

from __future__ import annotations

import json
import os
import struct

import numpy as np

from facebench.embedding_rows import row_norms, unit_rows
from facebench.errors import ConfigError, DataError
from facebench.fileio import atomic_file

#: The decision for a probe whose best cosine is not above the threshold.
UNKNOWN = "unknown"

_MAGIC = b"FBGALLERY\x01"
_CHUNK = 65536


def as_identities(identities, count: int) -> np.ndarray:
    """Identities as an int64 or str array of length ``count``."""
    ids = np.asarray(identities)
    if ids.ndim != 1 or len(ids) != count:
        raise DataError(f"gallery: {count} embeddings but identities of shape {ids.shape}")
    if ids.dtype.kind in "iub":
        return ids.astype(np.int64)
    if ids.dtype.kind in "US":
        return ids.astype(str)
    if ids.dtype.kind == "f" and len(ids) and np.all(ids == np.round(ids)):
        return ids.astype(np.int64)
    raise DataError(f"gallery: identities must be integers or strings, got {ids.dtype}")


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
        self.identities = np.zeros(0, dtype=np.int64)
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
        if len(self) and ids.dtype.kind != self.identities.dtype.kind:
            raise DataError(
                f"gallery add: identities are {ids.dtype}, the gallery holds "
                f"{self.identities.dtype}"
            )
        if not self.index.is_trained:
            raise DataError(f"gallery: {self.factory!r} must be trained before adding")
        self._reserve_on_disk(count)
        added = 0
        for chunk in chunks:
            self.index.add(self._unit(self._check(chunk, "gallery add")))
            added += len(chunk)
        if added != count:
            raise DataError(f"gallery add: {added} embeddings arrived, {count} were announced")
        self.identities = np.concatenate([self.identities, ids]) if len(self) > added else ids

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
        identities = np.where(
            found, self.identities[np.where(found, rows, 0)], -1 if self._int_ids else ""
        )
        return np.where(found, cosines, -np.inf).astype(np.float32), identities

    @property
    def _int_ids(self) -> bool:
        return self.identities.dtype.kind == "i"

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
        """Write index and identities to one file (temporary name, then rename). An on-disk
        gallery's index records :func:`lists_path_of` ``path`` as its lists file: the caller
        puts the lists there (``facebench.search.service`` renames them with the index)."""
        import faiss

        from facebench.search import gpu

        lists_final = None
        if self.lists_path is not None:
            lists_final = lists_path_of(path)
            self._on_disk_lists().filename = lists_final  # the name the index file records
        header = json.dumps(
            {
                "dim": self.dim,
                "factory": self.factory,
                "count": len(self),
                "identities": self.identities.tolist(),
                "lists": lists_final,
            }
        ).encode()
        with atomic_file(path) as f:
            f.write(_MAGIC + struct.pack("<Q", len(header)) + header)
            index = gpu.to_cpu(self.index) if self.device == "cuda" else self.index
            faiss.write_index(index, faiss.PyCallbackIOWriter(f.write))
        self.lists_path = lists_final

    @classmethod
    def load(cls, path: str) -> Gallery:
        """Read a file written by :meth:`save`; a corrupt or foreign file raises DataError."""
        try:
            with open(path, "rb") as f:
                return cls._read(f, str(path))
        except OSError as exc:
            raise DataError(f"{path}: cannot open gallery index ({exc.strerror})") from exc

    @classmethod
    def _read(cls, f, path: str) -> Gallery:
        import faiss

        if f.read(len(_MAGIC)) != _MAGIC:
            raise DataError(f"{path}: not a facebench gallery index (bad magic bytes)")
        try:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
            dim, factory, identities = header["dim"], header["factory"], header["identities"]
            lists_path = header.get("lists")
        except (struct.error, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"{path}: corrupt gallery index (bad header)") from exc
        if lists_path is not None and not os.path.isfile(lists_path):
            raise DataError(
                f"{path}: its inverted lists file {lists_path} is missing (an on-disk gallery "
                "reads its lists from where it was built; rebuild it to move it)"
            )
        try:
            index = faiss.read_index(faiss.PyCallbackIOReader(f.read))
        except RuntimeError as exc:
            raise DataError(f"{path}: corrupt gallery index (faiss cannot read it back)") from exc
        if f.read(1):
            raise DataError(f"{path}: corrupt gallery index (bytes after the faiss index)")
        gallery = cls.__new__(cls)
        gallery.dim, gallery.factory, gallery.index = int(dim), factory, index
        gallery.identities = np.asarray(identities)
        gallery.lists_path, gallery.device = lists_path, "cpu"
        if gallery.identities.dtype.kind not in "iU":
            gallery.identities = gallery.identities.astype(np.int64)
        if index.d != gallery.dim or not (
            index.ntotal == header["count"] == len(gallery.identities)
        ):
            raise DataError(
                f"{path}: corrupt gallery index (index holds {index.ntotal} x {index.d}, header "
                f"says {header['count']} x {gallery.dim} with {len(gallery.identities)} identities)"
            )
        return gallery


def lists_path_of(index_path: str) -> str:
    """The inverted-lists file of an on-disk gallery: ``INDEX.ivfdata``, absolute."""
    return os.path.abspath(index_path) + ".ivfdata"


def decide(cosines: np.ndarray, identities: np.ndarray, threshold: float) -> list:
    """Per probe: its identity when the cosine is above ``threshold``, else :data:`UNKNOWN`."""
    return [
        ident.item() if cos > threshold else UNKNOWN
        for cos, ident in zip(np.asarray(cosines), np.asarray(identities), strict=True)
    ]
