"""MXNet RecordIO without mxnet: record framing, the ``'<IfQQ'`` header, and keyed ``.idx`` access.

A record on disk is ``uint32 magic, uint32 lrec, payload, zero padding to 4 bytes`` with
``lrec = cflag << 29 | length``. Payloads holding the magic word at a 4-aligned offset are split
into parts (cflag 1 first, 2 middle, 3 last) with that magic word left out, exactly as dmlc-core
writes them. The ``.idx`` file maps integer keys to the byte offset of a record's first part.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import struct
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import numpy as np

from facebench.errors import DataError
from facebench.fileio import atomic_file, staged, write_text

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_FRAME = struct.Struct("<II")
_HEADER = struct.Struct("<IfQQ")
#: frame and header of a one-part record, read in one go (``IndexedRecordReader.simple_records``)
_FRAMED_HEADER = struct.Struct("<II" + _HEADER.format[1:])
_LENGTH_MASK = (1 << 29) - 1
#: a one-part record of a header with two labels and no image (``label_pairs``)
_LABEL_PAIR_RECORD = np.dtype(
    [("magic", "<u4"), ("lrec", "<u4"), ("flag", "<u4"), ("label", "<f4"), ("id", "<u8"),
     ("id2", "<u8"), ("labels", "<f4", 2)]
)  # fmt: skip
# A key table is a dense array when keys fill at least this share of their range, else a dict.
_DENSE_FILL = 0.25
_INT64_LIMIT = 1 << 63

Label = float | np.ndarray


class IRHeader(NamedTuple):
    """The record header: ``flag`` (number of float labels), ``label`` (scalar or array), ids.

    A named tuple: one is made per image read, and it builds in half the time of a frozen
    dataclass."""

    flag: int
    label: Label
    id: int = 0
    id2: int = 0


def pack_record(header: IRHeader, image_bytes: bytes = b"") -> bytes:
    """Payload for ``header`` + ``image_bytes``; array labels set ``flag`` to their count."""
    if np.ndim(header.label) == 0:
        head = _HEADER.pack(0, float(header.label), header.id, header.id2)
        return head + bytes(image_bytes)
    labels = np.asarray(header.label, dtype="<f4").ravel()
    head = _HEADER.pack(labels.size, 0.0, header.id, header.id2)
    return head + labels.tobytes() + bytes(image_bytes)


def unpack_record(
    payload: bytes | np.ndarray, source: str = "<record>"
) -> tuple[IRHeader, bytes | np.ndarray]:
    """Split a payload into its header (array label when ``flag > 0``) and the image bytes (of
    the payload's type: a uint8 array payload gives a view of it)."""
    if len(payload) < _HEADER.size:
        raise DataError(f"{source}: payload of {len(payload)} bytes is shorter than the header")
    flag, label, id1, id2 = _HEADER.unpack_from(payload)
    start = _HEADER.size
    if flag == 0:
        return IRHeader(0, label, id1, id2), payload[start:]
    end = start + 4 * flag
    if end > len(payload):
        raise DataError(f"{source}: header announces {flag} labels but the payload is too short")
    labels = np.frombuffer(payload, dtype="<f4", count=flag, offset=start).copy()
    return IRHeader(flag, labels, id1, id2), payload[end:]


def frame_record(payload: bytes) -> bytes:
    """The on-disk bytes of one record, split into parts where the payload holds the magic word."""
    data = bytes(payload)
    if len(data) > _LENGTH_MASK:
        raise DataError(f"record payload of {len(data)} bytes exceeds the 2^29-1 byte limit")
    parts = []
    start = 0
    pos = data.find(_MAGIC_BYTES)
    while pos != -1:
        if pos % 4 == 0 and pos + 4 <= (len(data) // 4) * 4:
            parts.append(data[start:pos])
            start = pos + 4
            pos = data.find(_MAGIC_BYTES, start)
        else:
            pos = data.find(_MAGIC_BYTES, pos + 1)
    parts.append(data[start:])
    out = []
    for i, part in enumerate(parts):
        cflag = 0 if len(parts) == 1 else 1 if i == 0 else 3 if i == len(parts) - 1 else 2
        out.append(_FRAME.pack(MAGIC, (cflag << 29) | len(part)))
        out.append(part)
    out.append(b"\0" * (-len(data) % 4))
    return b"".join(out)


def read_index(idx_path: str) -> tuple[np.ndarray, np.ndarray]:
    """Keys and offsets (int64 arrays, file order) of a ``key<TAB>offset`` index file."""
    try:
        with open(idx_path, "rb") as f:
            text = f.read()
    except FileNotFoundError as exc:
        raise DataError(f"{idx_path}: index file is missing") from exc
    except OSError as exc:
        raise DataError(f"{idx_path}: cannot read index ({exc.strerror})") from exc
    if not text.strip():
        raise DataError(f"{idx_path}: index file holds no records (empty or truncated)")
    try:
        table = np.loadtxt(io.BytesIO(text), dtype=np.int64, ndmin=2, comments=None)
        if table.shape[1] != 2:
            raise ValueError("not two columns")
    except (ValueError, OverflowError):
        table = _parse_index_lines(text.splitlines(), idx_path)
    if (table < 0).any():
        row, column = (int(i[0]) for i in np.nonzero(table < 0))
        what = "offset" if column else "key"
        raise DataError(f"{idx_path}: key {table[row, 0]} has negative {what} {table[row, column]}")
    return table[:, 0].copy(), table[:, 1].copy()


def _parse_index_lines(lines: list[bytes], idx_path: str) -> np.ndarray:
    """Slow line-by-line parse that names the first bad line."""
    rows = []
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) != 2:
                raise ValueError
            row = (int(fields[0]), int(fields[1]))
        except ValueError:
            raise DataError(
                f"{idx_path}: line {number}: expected 'key<TAB>offset', got {line[:60]!r}"
            ) from None
        if not all(-_INT64_LIMIT <= x < _INT64_LIMIT for x in row):
            raise DataError(f"{idx_path}: line {number}: number out of range in {line[:60]!r}")
        rows.append(row)
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


class _KeyTable:
    """Key -> (offset, end) lookup in O(1): dense arrays over the key range, or a dict when
    sparse. A record's ``end`` is the next greater offset in the index (the file size for the
    last): its frames must lie before it."""

    def __init__(self, keys: np.ndarray, offsets: np.ndarray, size: int, source: str):
        starts = np.sort(offsets)
        ends = np.append(starts, size)[np.searchsorted(starts, offsets, side="right")]
        self.low = int(keys.min()) if keys.size else 0
        span = int(keys.max()) - self.low + 1 if keys.size else 0
        self.dense = None
        self.dense_end = None
        self.sparse = None
        if keys.size == 0 or keys.size >= _DENSE_FILL * span:
            self.dense = np.full(span, -1, dtype=np.int64)
            self.dense[keys - self.low] = offsets
            self.dense_end = np.full(span, -1, dtype=np.int64)
            self.dense_end[keys - self.low] = ends
            distinct = int(np.count_nonzero(self.dense >= 0))
        else:
            spans = zip(offsets.tolist(), ends.tolist(), strict=True)
            self.sparse = dict(zip(keys.tolist(), spans, strict=True))
            distinct = len(self.sparse)
        if distinct != keys.size:
            ordered = np.sort(keys)
            duplicate = int(ordered[1:][ordered[1:] == ordered[:-1]][0])
            raise DataError(f"{source}: key {duplicate} appears more than once")

    def spans(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(offsets, ends)`` int64 arrays of ``keys`` (int64 array, all in the table)."""
        if self.sparse is not None:
            pairs = np.array([self.sparse[k] for k in keys.tolist()], np.int64).reshape(-1, 2)
            return pairs[:, 0], pairs[:, 1]
        return self.dense[keys - self.low], self.dense_end[keys - self.low]

    def missing(self, keys: np.ndarray) -> int | None:
        """The first of ``keys`` (int64 array) that has no offset, or None."""
        if self.sparse is not None:
            return next((k for k in keys.tolist() if k not in self.sparse), None)
        i = keys - self.low
        inside = (i >= 0) & (i < len(self.dense))
        absent = ~inside
        absent[inside] = self.dense[i[inside]] < 0
        return int(keys[np.argmax(absent)]) if absent.any() else None

    def get(self, key: int) -> int:
        """The offset of ``key`` or -1."""
        return self.span(key)[0]

    def span(self, key: int) -> tuple[int, int]:
        """``(offset, end)`` of ``key``'s record, or ``(-1, -1)``."""
        if self.sparse is not None:
            return self.sparse.get(key, (-1, -1))
        i = key - self.low
        if 0 <= i < len(self.dense):
            return self.dense.item(i), self.dense_end.item(i)
        return -1, -1


class IndexedRecordReader:
    """Random access to a ``.rec`` by the keys of its ``.idx``; safe in DataLoader workers.

    The file is memory-mapped lazily in each process (records are sliced out of the page cache
    without a system call per read) and the map is dropped when pickled, so a reader handed to
    worker processes maps the file again there.
    """

    def __init__(self, rec_path: str, idx_path: str | None = None):
        self.rec_path = str(rec_path)
        self.idx_path = str(idx_path) if idx_path else os.path.splitext(self.rec_path)[0] + ".idx"
        if not os.path.isfile(self.rec_path):
            raise DataError(f"{self.rec_path}: record file is missing")
        keys, offsets = read_index(self.idx_path)
        self.size = os.path.getsize(self.rec_path)
        past = offsets > self.size - _FRAME.size  # not offsets + 8: that overflows near 2^63
        if past.any():
            row = int(np.argmax(past))
            raise DataError(
                f"{self.idx_path}: key {keys[row]} has offset {offsets[row]} past the end of "
                f"{self.rec_path} ({self.size} bytes)"
            )
        #: keys in index-file order (which need not be key order)
        self.keys = keys
        self._table = _KeyTable(keys, offsets, self.size, self.idx_path)
        self._map = None
        self._bytes = None
        self._pid = None

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: int) -> bool:
        return self._table.get(int(key)) >= 0

    def missing(self, keys: np.ndarray) -> int | None:
        """The first of ``keys`` that is not in the index, or None."""
        return self._table.missing(np.asarray(keys, dtype=np.int64))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_map": None, "_bytes": None, "_pid": None}

    def __del__(self):
        self.close()

    def close(self) -> None:
        """Unmap this process's view of the file (it maps again on the next read)."""
        mapped, self._map, self._bytes = getattr(self, "_map", None), None, None
        if mapped is not None and self._pid == os.getpid():
            with contextlib.suppress(BufferError):  # a view still held: unmapped when freed
                mapped.close()

    def _mapped(self) -> mmap.mmap:
        """This process's read-only map of the ``.rec`` (made on first use)."""
        if self._map is None or self._pid != os.getpid():
            try:
                with open(self.rec_path, "rb") as f:
                    self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError) as exc:  # ValueError: the file became empty
                reason = getattr(exc, "strerror", None) or str(exc)
                raise DataError(f"{self.rec_path}: cannot map ({reason})") from exc
            self._bytes = np.frombuffer(self._map, dtype=np.uint8)
            self._pid = os.getpid()
        return self._map

    def offset(self, key: int) -> int:
        """Byte offset of ``key``'s record; DataError for a key not in the index."""
        return self._span(key)[0]

    def _span(self, key: int) -> tuple[int, int]:
        """``(offset, end)`` of ``key``'s record (see :class:`_KeyTable`); DataError for a key
        not in the index."""
        offset, end = self._table.span(int(key))
        if offset < 0:
            raise DataError(f"{self.rec_path}: key {key} is not in {self.idx_path}")
        return offset, end

    def read(self, key: int) -> bytes:
        """The payload of record ``key`` (multi-part records joined)."""
        return self.read_at(*self._span(key), key)

    def read_at(self, offset: int, end: int | None = None, key: int | None = None) -> bytes:
        """The payload of the record whose first part starts at byte ``offset``; its frames
        must end by byte ``end`` (the next record's offset; default the end of the file)."""
        data = self._mapped()
        end = len(data) if end is None else end
        parts = []
        pos = offset
        while True:
            if pos + _FRAME.size > end:
                raise self._overrun(offset, key, pos, end)
            magic, lrec = _FRAME.unpack_from(data, pos)
            if magic != MAGIC:
                raise DataError(
                    f"{self._where(offset, key)}: wrong magic word 0x{magic:08X} at byte {pos} "
                    "(expected 0xCED7230A)"
                )
            cflag, length = lrec >> 29, lrec & _LENGTH_MASK
            expected = (0, 1) if not parts else (2, 3)
            if cflag not in expected:
                raise DataError(
                    f"{self._where(offset, key)}: unexpected part flag {cflag} at byte {pos}"
                )
            stop = pos + _FRAME.size + length
            if stop > end:
                raise self._overrun(offset, key, pos, end, length)
            parts.append(data[pos + _FRAME.size : stop])
            if cflag in (0, 3):
                return parts[0] if len(parts) == 1 else _MAGIC_BYTES.join(parts)
            pos = stop + (-length % 4)

    def _overrun(
        self, offset: int, key: int | None, pos: int, end: int, length: int | None = None
    ) -> DataError:
        """The error for a record whose frame or part (``length`` bytes at byte ``pos``) runs
        past byte ``end``: the end of the file, or the next record (a damaged length field)."""
        where = self._where(offset, key)
        size = len(self._bytes)
        if end >= size:
            if length is None:
                return DataError(f"{where}: truncated record (file ends at byte {size})")
            return DataError(
                f"{where}: truncated record ({length} bytes announced at byte {pos}, "
                f"{size - pos - _FRAME.size} present)"
            )
        announced = "a frame" if length is None else f"{length} bytes"
        return DataError(
            f"{where}: {announced} at byte {pos} would run into the next record at byte {end} "
            "(a damaged length field)"
        )

    def payload_view(self, key: int) -> np.ndarray:
        """The payload of record ``key`` as uint8: a view into the map, no copy, when the record
        is one part; multi-part records and every error go through :meth:`read_at`."""
        offset, limit = self._span(key)
        data = self._mapped()
        if offset + _FRAME.size <= limit:
            magic, lrec = _FRAME.unpack_from(data, offset)
            start = offset + _FRAME.size
            end = start + (lrec & _LENGTH_MASK)
            if magic == MAGIC and lrec >> 29 == 0 and end <= limit:
                return self._bytes[start:end]
        return np.frombuffer(self.read_at(offset, limit, key), dtype=np.uint8)

    def simple_records(
        self, keys: Iterable[int], suffix: bytes = b""
    ) -> Iterator[tuple[int, float, np.ndarray | None]]:
        """``(key, scalar label, image bytes)`` per key, read in place from the map for the usual
        record: one part within its room in the file (before the next record), a scalar label
        (flag 0), a header id that is the key or 0, and image bytes ending in ``suffix``. For
        any other key or record the image is None: read it with :meth:`record_view`, which
        checks it fully and names what is wrong. The batch reader's fast path: one struct read
        per record (measured faster than numpy over the whole batch once decoding has filled
        the caches)."""
        data = self._mapped()
        whole = self._bytes
        lookup = self._table.span
        unpack = _FRAMED_HEADER.unpack_from
        for key in keys:
            offset, limit = lookup(key)
            if 0 <= offset <= limit - _FRAMED_HEADER.size:
                magic, lrec, flag, label, id1, _ = unpack(data, offset)
                end = offset + _FRAME.size + (lrec & _LENGTH_MASK)
                start = offset + _FRAMED_HEADER.size
                if (
                    magic == MAGIC
                    and lrec >> 29 == 0
                    and flag == 0
                    and (id1 == key or id1 == 0)
                    and start + len(suffix) <= end <= limit
                    and data[end - len(suffix) : end] == suffix
                ):
                    yield key, label, whole[start:end]
                    continue
            yield key, 0.0, None

    def label_pairs(self, keys: np.ndarray) -> np.ndarray:
        """float64 ``(K, 2)``: the first two labels of the records of ``keys`` (int64, all in
        the index), read in one numpy gather where a record is one part holding exactly a
        header with two labels and the key (or 0) as id; NaN rows for every other record (read
        those with :meth:`record_view`, which checks them fully). Reads a pack's identity
        records at open: a loop over them costs about 16 us each."""
        offsets, ends = self._table.spans(keys)
        size = _FRAMED_HEADER.size + 8
        fits = np.flatnonzero(offsets + size <= ends)
        self._mapped()
        gathered = self._bytes[(offsets[fits, None] + np.arange(size)).ravel()]
        records = gathered.view(_LABEL_PAIR_RECORD)
        ids = records["id"]
        good = (
            (records["magic"] == MAGIC)
            & (records["lrec"] == size - _FRAME.size)
            & (records["flag"] == 2)
            & ((ids == keys[fits].astype(np.uint64)) | (ids == 0))
        )
        out = np.full((len(keys), 2), np.nan)
        out[fits[good]] = records["labels"][good]
        return out

    def _where(self, offset: int, key: int | None) -> str:
        """The record named in errors (built only when one is raised)."""
        at = f"key {key} at offset {offset}" if key is not None else f"offset {offset}"
        return f"{self.rec_path}: {at}"

    def read_record(self, key: int) -> tuple[IRHeader, bytes]:
        """Header and image bytes of record ``key`` (see :meth:`record_view`)."""
        header, image = self.record_view(key)
        return header, image.tobytes()

    def record_view(self, key: int) -> tuple[IRHeader, np.ndarray]:
        """Header and image bytes (uint8, a view into the map, see :meth:`payload_view`) of
        record ``key``.

        The header's id is the record's key in packs written by im2rec, InsightFace and
        facebench (0 where a writer left it unset); any other id means the index points at
        another record, which is an error.
        """
        payload = self.payload_view(key)
        header, image = unpack_record(payload, source=f"{self.rec_path}: key {key}")
        if header.id != key and header.id != 0:
            raise DataError(
                f"{self.rec_path}: key {key}: the record at offset {self.offset(key)} is record "
                f"{header.id} (its header says so); {self.idx_path} points at the wrong record"
            )
        return header, image


class IndexedRecordWriter:
    """Writes ``.rec`` + ``.idx`` under temporary names (:mod:`facebench.fileio`); a clean exit
    of the ``with`` block renames both into place together, an error removes both."""

    def __init__(self, rec_path: str, idx_path: str | None = None):
        self.rec_path = str(rec_path)
        self.idx_path = str(idx_path) if idx_path else os.path.splitext(self.rec_path)[0] + ".idx"
        self._entries: list[tuple[int, int]] = []
        self._keys: set[int] = set()
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> IndexedRecordWriter:
        self._stack.enter_context(staged())
        self._file = self._stack.enter_context(atomic_file(self.rec_path))
        return self

    def write(self, key: int, payload: bytes) -> int:
        """Append record ``key``; returns its byte offset."""
        key = int(key)
        if key in self._keys:
            raise DataError(f"{self.rec_path}: key {key} written twice")
        offset = self._file.tell()
        self._file.write(frame_record(payload))
        self._keys.add(key)
        self._entries.append((key, offset))
        return offset

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            return self._stack.__exit__(exc_type, exc, tb)
        with self._stack:
            write_text(self.idx_path, "".join(f"{k}\t{o}\n" for k, o in self._entries))
        return False
