"""Packs are read consistently (issue 26.7-8): headers agree with the identity records, record
lengths stay before the next record, `data info` checks what it reports, odd labels and
property files are one line, temporary folders are refused by every reader, sidecar labels are
integers, and a Fortran-order .npy gets the same answer everywhere."""

import json
import os
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from facebench.cli import main
from facebench.data.bins import write_verification_bin
from facebench.data.images import encode_image
from facebench.data.packs import FacePack, PackDataset
from facebench.data.recordio import IRHeader, pack_record
from facebench.embed.io import save_embeddings
from facebench.errors import DataError

sys.path.insert(0, str(Path(__file__).parent))
from pack_edits import CLASSES, SIDE, index_of, make_pack, replace_record, write_index


@pytest.fixture
def pack(tmp_path):
    return make_pack(tmp_path / "p")


def test_header_label_that_disagrees_with_the_identity_records(pack, tmp_path, one_line_error):
    jpeg, _ = FacePack(str(pack)).read_encoded(2)
    replace_record(pack, 2, pack_record(IRHeader(0, 3.0, 2, 0), jpeg))  # key 2 is class 0
    out = tmp_path / "f"
    one_line_error(
        ["data", "to-folder", str(pack), "--out", str(out)], "key 2", "label 3", "class 0"
    )
    assert not out.exists()
    data = PackDataset(str(pack))
    with pytest.raises(DataError, match="key 2: its header says label 3") as item:
        data[1]
    with pytest.raises(DataError) as batch:  # the batched read gives the item's error
        data.__getitems__([0, 1, 2])
    assert str(batch.value) == str(item.value)


def test_flipped_length_bit_runs_into_the_next_record(pack, tmp_path, one_line_error):
    offset = index_of(pack)[5]
    data = bytearray((pack / "train.rec").read_bytes())
    (lrec,) = struct.unpack_from("<I", data, offset + 4)
    struct.pack_into("<I", data, offset + 4, lrec ^ (1 << 11))  # 2 KiB more: keys 6..8
    (pack / "train.rec").write_bytes(bytes(data))
    out = tmp_path / "f"
    one_line_error(["data", "to-folder", str(pack), "--out", str(out)], "key 5", "next record")
    assert not out.exists()
    with pytest.raises(DataError, match="key 5"):
        PackDataset(str(pack)).__getitems__([3, 4, 5])


@pytest.mark.parametrize(
    ("labels", "part"),
    [
        ([2.0, 7.0], "key 14: identity range [2, 7) does not follow"),  # overlaps class 0
        ([4.0, 40.0], "key 14: identity range [4, 40) lies outside"),
        ([float("nan"), 7.0], "key 14: identity range [nan, 7) lies outside"),
        ([4.0, 6.0], "cover images 1..11, not 1..12"),  # key 6 in no class
    ],
)
def test_data_info_checks_the_identity_records(pack, one_line_error, labels, part):
    replace_record(pack, 14, pack_record(IRHeader(2, np.array(labels), 14, 0)))
    if labels == [4.0, 6.0]:  # the next classes follow on, key 12 is left over
        for key, (a, b) in ((15, (6, 9)), (16, (9, 12))):
            replace_record(pack, key, pack_record(IRHeader(2, np.array([a, b]), key, 0)))
    one_line_error(["data", "info", str(pack)], part)


def test_data_info_checks_the_index_keys(pack, one_line_error):
    table = index_of(pack)
    identity_14 = table.pop(14)
    table[99] = table[3]  # as many keys as before: key 14 is missing
    write_index(pack, table)
    one_line_error(["data", "info", str(pack)], "key 14 is not in")
    table[14] = identity_14  # every key there, and key 99 too
    write_index(pack, table)
    one_line_error(["data", "info", str(pack)], "key 99 lies outside the keys 0..16")


def test_data_info_needs_the_property_file(pack, one_line_error):
    (pack / "property").unlink()
    one_line_error(["data", "info", str(pack)], "no property file")


def test_meta_label_nan_and_a_property_file_that_is_not_text(pack, one_line_error):
    (pack / "property").write_bytes(b"\xff\xfe4,16,16\n")
    one_line_error(["data", "info", str(pack)], "property", "not ASCII")
    (pack / "property").write_text(f"{CLASSES},{SIDE},{SIDE}\n")
    replace_record(pack, 0, pack_record(IRHeader(2, np.array([float("nan"), 17.0]), 0, 0)))
    one_line_error(["data", "info", str(pack)], "key 0: meta record range [nan, 17)")


def test_persistent_id_pickle_is_one_line(tmp_path, one_line_error):
    path = tmp_path / "b.bin"
    path.write_bytes(b"\x80\x02X\x01\x00\x00\x00aQ.")  # BINPERSID of "a"
    one_line_error(["data", "info", str(path)], "b.bin", "persistent id")


def test_temporary_folders_are_refused_by_every_reader(pack, tmp_path, one_line_error):
    temporary = tmp_path / f".synth.fbtmp-{2**22 + 7}-0123abcd"
    shutil.copytree(pack, temporary)
    image = encode_image(np.zeros((SIDE, SIDE, 3), np.uint8))
    write_verification_bin(temporary / "v.bin", [image, image], [True])
    (temporary / "faces" / "alice").mkdir(parents=True)
    (temporary / "faces" / "alice" / "0.png").write_bytes(image)
    for reader in (FacePack, PackDataset):
        with pytest.raises(DataError, match="temporary folder left by an interrupted write"):
            reader(str(temporary / "train.rec"))
    for argv in (
        ["data", "info", temporary],
        ["data", "to-folder", temporary / "train.rec", "--out", tmp_path / "f"],
        ["data", "info", temporary / "v.bin"],
        ["data", "bin-to-folder", temporary / "v.bin", "--out", tmp_path / "g"],
        ["data", "from-folder", temporary / "faces", "--out", tmp_path / "h"],
    ):
        one_line_error([str(a) for a in argv], ".synth.fbtmp-", "interrupted write")
    assert not any((tmp_path / name).exists() for name in "fgh")


def embeddings(tmp_path, name, sidecar, fortran=False):
    rows = np.random.default_rng(1).normal(size=(4, 8)).astype(np.float32)
    path = tmp_path / f"{name}.npy"
    save_embeddings(str(path), rows, sidecar)
    if fortran:
        np.save(path, np.asfortranarray(rows))
    return path


@pytest.mark.parametrize("labels", [[1, "a", 2, 3], [True, 0, 1, 1], True])
def test_sidecar_labels_must_be_integers(tmp_path, one_line_error, labels):
    path = embeddings(tmp_path, "g", {})
    side = path.with_suffix(".json")
    side.write_text(json.dumps({**json.loads(side.read_text()), "labels": labels}))
    out = tmp_path / "g.index"
    one_line_error(["index", "build", "--embeddings", str(path), "--out", str(out)], "'labels'")
    assert not out.exists()


def test_fortran_order_npy_gets_one_answer_everywhere(tmp_path, one_line_error):
    gallery = embeddings(tmp_path, "g", {"labels": [0, 0, 1, 1]})
    assert main(["index", "build", "--embeddings", str(gallery),
                 "--out", str(tmp_path / "g.index")]) == 0  # fmt: skip
    probes = embeddings(tmp_path, "p", {"labels": [0, 0, 1, 1]}, fortran=True)
    image = encode_image(np.zeros((SIDE, SIDE, 3), np.uint8))
    write_verification_bin(tmp_path / "v.bin", [image] * 4, [True, False])
    commands = [
        ["index", "build", "--embeddings", probes, "--out", tmp_path / "x.index"],
        ["index", "add", "--index", tmp_path / "g.index", "--embeddings", probes],
        ["search", "--index", tmp_path / "g.index", "--embeddings", probes,
         "--threshold", "0.5", "--out", tmp_path / "s.json"],
        ["verify", "--embeddings", probes, "--bin", tmp_path / "v.bin", "--out", tmp_path / "r"],
    ]  # fmt: skip
    before = (tmp_path / "g.index").read_bytes()
    for argv in commands:
        one_line_error([str(a) for a in argv], "p.npy", "Fortran-order")
    assert (tmp_path / "g.index").read_bytes() == before
    assert not any(os.path.exists(tmp_path / n) for n in ("x.index", "s.json", "r"))
