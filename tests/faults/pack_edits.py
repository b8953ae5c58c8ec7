"""A small pack to corrupt, and edits of its index: shared by the corrupt-pack and consistency
tests."""

import numpy as np

from facebench.data.images import encode_image
from facebench.data.packs import write_face_pack
from facebench.data.recordio import frame_record

CLASSES, PER_CLASS, SIDE = 4, 3, 16


def make_pack(directory):
    """Images 1..12 (class k: keys 3k+1..3k+3) of 16x16 JPEGs, identity records 13..16, meta
    record 0."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (CLASSES * PER_CLASS, SIDE, SIDE, 3), dtype=np.uint8)
    samples = [(i // PER_CLASS, encode_image(img)) for i, img in enumerate(images)]
    write_face_pack(str(directory), samples, (SIDE, SIDE))
    return directory


def index_of(pack):
    fields = (pack / "train.idx").read_text().split()
    return {int(k): int(o) for k, o in zip(fields[::2], fields[1::2], strict=True)}


def write_index(pack, table):
    (pack / "train.idx").write_text("".join(f"{k}\t{o}\n" for k, o in table.items()))


def replace_record(pack, key, payload):
    """Append a new record for ``key`` (same header id) and point the index at it."""
    rec = pack / "train.rec"
    offset = rec.stat().st_size
    with open(rec, "ab") as f:
        f.write(frame_record(payload))
    table = index_of(pack)
    table[key] = offset
    write_index(pack, table)
