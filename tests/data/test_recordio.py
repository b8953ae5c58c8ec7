"""RecordIO framing, header and keyed reader/writer, checked against bytes built from the spec."""

import os
import pickle
import struct

import numpy as np
import pytest

from facebench.data.recordio import (
    MAGIC,
    IndexedRecordReader,
    IndexedRecordWriter,
    IRHeader,
    frame_record,
    pack_record,
    unpack_record,
)
from facebench.errors import DataError

MAGIC_BYTES = struct.pack("<I", MAGIC)


def spec_record(cflag: int, data: bytes) -> bytes:
    """One record part written straight from formats.md: magic, lrec, data, zero padding."""
    return struct.pack("<II", MAGIC, (cflag << 29) | len(data)) + data + b"\0" * (-len(data) % 4)


@pytest.fixture
def hand_built(tmp_path):
    """A .rec/.idx built with struct.pack only: keys out of file order, a 3-part record; each
    header's id is its key, as im2rec and InsightFace write them."""
    plain = struct.pack("<IfQQ", 0, 7.0, 5, 0) + b"JPEGDATA!"
    labelled = struct.pack("<IfQQ", 2, 0.0, 9, 0) + struct.pack("<2f", 3.0, 9.0) + b"xy"
    # payload bytes holding the magic word at 4-aligned offsets 28 and 36
    head = struct.pack("<IfQQ", 0, 1.0, 2, 0) + b"abcd"
    multi = head + MAGIC_BYTES + b"1234" + MAGIC_BYTES + b"tail!"
    parts = spec_record(1, head) + spec_record(2, b"1234") + spec_record(3, b"tail!")
    blob = b""
    offsets = {}
    for key, data in ((5, spec_record(0, plain)), (2, parts), (9, spec_record(0, labelled))):
        offsets[key] = len(blob)
        blob += data
    (tmp_path / "p.rec").write_bytes(blob)
    (tmp_path / "p.idx").write_text("".join(f"{k}\t{o}\n" for k, o in offsets.items()))
    return tmp_path / "p.rec", {5: plain, 2: multi, 9: labelled}, blob


def test_reader_reads_hand_built_fixture(hand_built):
    rec, payloads, _ = hand_built
    reader = IndexedRecordReader(rec)
    assert list(reader.keys) == [5, 2, 9]
    for key, payload in payloads.items():
        assert reader.read(key) == payload
    header, image = reader.read_record(5)
    assert header == IRHeader(0, 7.0, 5, 0) and image == b"JPEGDATA!"
    header, image = reader.read_record(9)
    assert header.flag == 2 and list(header.label) == [3.0, 9.0] and image == b"xy"


def test_writer_reproduces_hand_built_bytes(hand_built, tmp_path):
    _, payloads, blob = hand_built
    out = tmp_path / "w.rec"
    with IndexedRecordWriter(out) as writer:
        for key in (5, 2, 9):
            writer.write(key, payloads[key])
    assert out.read_bytes() == blob
    assert (tmp_path / "w.idx").read_text() == (tmp_path / "p.idx").read_text()


def test_magic_at_unaligned_offset_is_not_split():
    payload = b"ab" + MAGIC_BYTES + b"cd"
    assert frame_record(payload) == spec_record(0, payload)
    # magic ending past the last 4-aligned boundary is not split either (dmlc scans lower_align)
    assert frame_record(b"abcd" + MAGIC_BYTES[:3]) == spec_record(0, b"abcd" + MAGIC_BYTES[:3])


def test_payload_that_is_only_magic_words(tmp_path):
    payload = MAGIC_BYTES * 3
    framed = frame_record(payload)
    assert framed == spec_record(1, b"") + spec_record(2, b"") + spec_record(2, b"") + (
        spec_record(3, b"")
    )
    with IndexedRecordWriter(tmp_path / "m.rec") as writer:
        writer.write(0, payload)
    assert IndexedRecordReader(tmp_path / "m.rec").read(0) == payload


def test_random_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    payloads = {}
    for key in rng.permutation(50)[:30]:
        data = bytearray(rng.integers(0, 256, int(rng.integers(0, 60)), dtype=np.uint8).tobytes())
        for _ in range(int(rng.integers(0, 3))):  # plant magic words, some aligned
            pos = int(rng.integers(0, len(data) + 1))
            data[pos:pos] = MAGIC_BYTES
        payloads[int(key)] = bytes(data)
    with IndexedRecordWriter(tmp_path / "r.rec") as writer:
        for key, data in payloads.items():
            writer.write(key, data)
    reader = IndexedRecordReader(tmp_path / "r.rec")
    for key in rng.permutation(list(payloads)):
        assert reader.read(int(key)) == payloads[int(key)]


@pytest.mark.parametrize(
    "header",
    [IRHeader(0, 3.0, 11, 12), IRHeader(2, np.array([4.0, 8.0], np.float32), 1, 0)],
)
def test_header_round_trip(header):
    back, image = unpack_record(pack_record(header, b"img"))
    assert image == b"img"
    assert (back.flag, back.id, back.id2) == (header.flag, header.id, header.id2)
    np.testing.assert_array_equal(back.label, header.label)


def test_one_part_payloads_are_views_into_the_map(hand_built):
    rec, payloads, _ = hand_built
    reader = IndexedRecordReader(rec)
    for key, payload in payloads.items():
        view = reader.payload_view(key)
        assert view.dtype == np.uint8 and view.tobytes() == payload
        assert not view.flags.writeable
        # one-part records share the map's memory; the 3-part one is joined into new bytes
        assert np.shares_memory(view, reader._bytes) == (key != 2)
    header, image = reader.record_view(9)
    assert header.flag == 2 and list(header.label) == [3.0, 9.0] and image.tobytes() == b"xy"


def test_close_while_a_view_is_held(hand_built):
    rec, payloads, _ = hand_built
    reader = IndexedRecordReader(rec)
    view = reader.payload_view(5)
    reader.close()  # the map stays alive for the view and is freed with it
    assert view.tobytes() == payloads[5]
    assert reader.read(9) == payloads[9]  # maps the file again


def test_reader_survives_pickling_and_reopens(hand_built):
    rec, payloads, _ = hand_built
    reader = IndexedRecordReader(rec)
    reader.read(5)
    clone = pickle.loads(pickle.dumps(reader))
    assert clone.read(2) == payloads[2]


def test_reader_in_forked_dataloader_workers(hand_built):
    import torch.utils.data as tud

    rec, payloads, _ = hand_built
    reader = IndexedRecordReader(rec)
    reader.read(9)  # opened in the parent before forking

    class Records(tud.Dataset):
        def __len__(self):
            return 30

        def __getitem__(self, i):
            key = [5, 2, 9][i % 3]
            return reader.read(key) == payloads[key]

    loader = tud.DataLoader(Records(), batch_size=None, num_workers=2)
    assert all(loader)


def test_writer_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), IndexedRecordWriter(tmp_path / "x.rec") as writer:
        writer.write(1, b"abc")
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_duplicate_key_rejected(tmp_path):
    with (
        pytest.raises(DataError, match="key 1 written twice"),
        IndexedRecordWriter(tmp_path / "x.rec") as writer,
    ):
        writer.write(1, b"a")
        writer.write(1, b"b")
    assert os.listdir(tmp_path) == []


def test_missing_idx(hand_built):
    rec, _, _ = hand_built
    os.remove(rec.with_suffix(".idx"))
    with pytest.raises(DataError, match=r"p\.idx: index file is missing"):
        IndexedRecordReader(rec)


def test_wrong_magic(hand_built):
    rec, _, blob = hand_built
    data = bytearray(blob)
    data[0:4] = b"\x01\x02\x03\x04"
    rec.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"p\.rec: key 5 at offset 0: wrong magic word 0x04030201"):
        IndexedRecordReader(rec).read(5)


def test_truncated_record(hand_built):
    rec, _, blob = hand_built
    rec.write_bytes(blob[:-3])
    with pytest.raises(DataError, match=r"key 9 at offset \d+: truncated record"):
        IndexedRecordReader(rec).read(9)


def test_offset_past_end(hand_built):
    rec, _, blob = hand_built
    rec.with_suffix(".idx").write_text(f"5\t0\n7\t{len(blob) + 100}\n")
    with pytest.raises(DataError, match=rf"key 7 has offset {len(blob) + 100} past the end"):
        IndexedRecordReader(rec)


def test_unknown_key(hand_built):
    rec, _, _ = hand_built
    with pytest.raises(DataError, match=r"key 4 is not in .*p\.idx"):
        IndexedRecordReader(rec).read(4)


def test_offset_into_middle_part(hand_built):
    rec, _, _ = hand_built
    offsets = rec.with_suffix(".idx").read_text().split()
    middle = int(offsets[3]) + 8 + 28  # second part of key 2's record (first part: 28 bytes)
    rec.with_suffix(".idx").write_text(f"3\t{middle}\n")
    with pytest.raises(DataError, match=r"key 3 .*unexpected part flag 2"):
        IndexedRecordReader(rec).read(3)


def test_bad_index_line(hand_built):
    rec, _, _ = hand_built
    rec.with_suffix(".idx").write_text("1\t0\nnot a line\n")
    with pytest.raises(DataError, match="line 2: expected 'key<TAB>offset'"):
        IndexedRecordReader(rec)


def test_sparse_keys_lookup(tmp_path):
    keys = [10**9, 3, 10**12]
    with IndexedRecordWriter(tmp_path / "s.rec") as writer:
        for key in keys:
            writer.write(key, str(key).encode())
    reader = IndexedRecordReader(tmp_path / "s.rec")
    for key in keys:
        assert reader.read(key) == str(key).encode()
    assert 4 not in reader


def test_duplicate_key_in_index(hand_built):
    rec, _, _ = hand_built
    rec.with_suffix(".idx").write_text("5\t0\n2\t0\n5\t0\n")
    with pytest.raises(DataError, match=r"p\.idx: key 5 appears more than once"):
        IndexedRecordReader(rec)


@pytest.mark.parametrize("spread", [1, 10**9], ids=["dense keys", "sparse keys"])
def test_simple_records_takes_exactly_the_usual_records(tmp_path, spread):
    """The batch read returns a record's image bytes and label only for a one-part record with
    a scalar label, the key (or 0) as header id and the asked-for ending; None elsewhere."""
    rng = np.random.default_rng(3)
    ok = b"pixels\xff\xd9"
    records = {
        0: IRHeader(0, 4.0, 0),  # usual (header ids name records here: 0 is key 0)
        1: IRHeader(0, 2.5, 1),  # usual (the label is for the caller to judge)
        2: IRHeader(2, np.array([1.0, 2.0]), 2),  # array label
        3: IRHeader(0, 1.0, 6),  # the id of another record
        4: IRHeader(0, 3.0, 4),  # magic word inside: three parts
        5: IRHeader(0, 6.0, 5),  # another ending
        6: IRHeader(0, 8.0, 0),  # usual, id 0
    }
    keys = {i: i * spread for i in records}
    with IndexedRecordWriter(tmp_path / "r.rec") as writer:
        for i, header in records.items():
            image = ok
            if i == 4:
                image = b"abcd" + MAGIC_BYTES + b"\xff\xd9"
            elif i == 5:
                image = b"pixels"
            writer.write(keys[i], pack_record(header._replace(id=keys[header.id]), image))
    reader = IndexedRecordReader(tmp_path / "r.rec")
    order = [int(k) for k in rng.permutation(list(keys.values()))] + [5 * spread + 1]
    usual = {keys[0], keys[1], keys[6]}
    records = list(reader.simple_records(order, suffix=b"\xff\xd9"))
    assert [key for key, _, _ in records] == order
    for key, label, image in records:
        if key in usual:
            header, expected = reader.record_view(key)
            assert image.tobytes() == expected.tobytes() == ok and label == header.label
        else:
            assert image is None and label == 0
    [(_, _, image)] = reader.simple_records([keys[5]])  # no ending asked for
    assert image.tobytes() == b"pixels"
