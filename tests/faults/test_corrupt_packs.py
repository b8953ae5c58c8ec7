"""Readers verify what they read (issue 15.4): corrupt packs are one-line errors naming the pack
and key, ``--skip-bad`` lists what it leaves out, and nothing corrupt is written silently."""

import random
import sys
from pathlib import Path

import numpy as np
import pytest

from facebench.cli import main
from facebench.data.images import decode_image, encode_image
from facebench.data.recordio import IRHeader, pack_record

sys.path.insert(0, str(Path(__file__).parent))
from pack_edits import CLASSES, SIDE, index_of, make_pack, replace_record, write_index


@pytest.fixture
def pack(tmp_path):
    return make_pack(tmp_path / "p")


def test_swapped_offsets_are_caught_by_the_header_key(pack, tmp_path, one_line_error):
    table = index_of(pack)
    table[3], table[4] = table[4], table[3]
    write_index(pack, table)
    out = tmp_path / "f"
    one_line_error(
        ["data", "to-folder", str(pack), "--out", str(out)], "train.rec: key 3", "record 4"
    )
    assert not out.exists()


@pytest.mark.parametrize("lines", [0, 1])
def test_empty_or_one_line_index_is_an_error(pack, one_line_error, lines):
    table = index_of(pack)
    write_index(pack, {0: table[0]} if lines else {})
    one_line_error(["data", "info", str(pack)], "train.idx" if not lines else "key")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda jpeg: jpeg[:-2], "truncated JPEG"),  # decodes (grey fill) without its end marker
        (lambda jpeg: bytes(len(jpeg)), "does not decode"),
        (lambda jpeg: b"", "does not decode"),
    ],
)
def test_bad_image_is_an_error_or_skipped_and_listed(
    pack, tmp_path, capsys, caplog, damage, message, one_line_error
):
    from facebench.data.packs import FacePack

    jpeg, label = FacePack(str(pack)).read_encoded(5)
    replace_record(pack, 5, pack_record(IRHeader(0, float(label), 5, 0), damage(jpeg)))
    out = tmp_path / "f"
    one_line_error(["data", "to-folder", str(pack), "--out", str(out)], "key 5", message)
    assert not out.exists()
    assert main(["data", "to-folder", str(pack), "--out", str(out), "--skip-bad"]) == 0
    assert "11 images" in capsys.readouterr().out
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped")]
    assert len(skipped) == 1 and "key 5" in skipped[0] and message in skipped[0]
    written = sorted(p.name for p in out.rglob("*.jpg"))
    assert len(written) == 11 and "05.jpg" not in written


def test_skip_bad_bin_leaves_out_the_pair_and_renumbers(tmp_path, capsys, caplog, one_line_error):
    import pickle

    rng = np.random.default_rng(2)
    images = [encode_image(rng.integers(0, 256, (8, 8, 3), np.uint8)) for _ in range(6)]
    images[3] = b""  # pair 1
    with open(tmp_path / "b.bin", "wb") as f:
        pickle.dump((images, [True, False, True]), f, protocol=2)
    out = tmp_path / "pairs"
    one_line_error(["data", "bin-to-folder", str(tmp_path / "b.bin"), "--out", str(out)], "image 3")
    assert main(["data", "bin-to-folder", str(tmp_path / "b.bin"), "--out", str(out),
                 "--skip-bad"]) == 0  # fmt: skip
    assert "2 pairs" in capsys.readouterr().out
    assert any("b.bin: image 3" in r.getMessage() for r in caplog.records)
    assert (out / "issame.txt").read_text() == "1\n1\n"
    assert (out / "00001_0.jpg").read_bytes() == images[4]
    assert main(["data", "folder-to-bin", str(out), "--out", str(tmp_path / "back.bin")]) == 0


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("-5,16,16", "impossible values"),
        ("0,0,0", "impossible values"),
        ("2000000000,16,16", "2,000,000,000 classes"),
        ("20,16,16", "4 identity records"),
        ("4,16,70000", "impossible values"),
    ],
)
def test_impossible_property_file(pack, one_line_error, text, part):
    (pack / "property").write_text(text + "\n")
    one_line_error(["data", "info", str(pack)], "property", part)


def test_image_size_must_match_the_property(pack, one_line_error):
    (pack / "property").write_text(f"{CLASSES},{SIDE},{SIDE + 1}\n")
    one_line_error(["data", "info", str(pack)], "key 1", "16x16", "16x17")


@pytest.mark.parametrize("label", [7.0, -1.0, 2.5, float("nan")])
def test_label_outside_the_classes(pack, one_line_error, label):
    image = encode_image(np.zeros((SIDE, SIDE, 3), np.uint8))
    replace_record(pack, 1, pack_record(IRHeader(0, label, 1, 0), image))
    one_line_error(["data", "info", str(pack)], "key 1", "is not a class")


def test_identity_range_outside_the_images(pack, capsys):
    replace_record(pack, 13, pack_record(IRHeader(2, np.array([1.0, 40.0]), 13, 0)))
    from facebench.data.packs import FacePack
    from facebench.errors import DataError

    with pytest.raises(DataError, match="key 13: identity range"):
        _ = FacePack(str(pack)).identities


def test_mutated_packs_never_write_an_undecodable_image(pack, tmp_path, capsys):
    """Random damage to the record file: to-folder either fails with one line and writes
    nothing, or every image it writes decodes to an image of the pack's size."""
    original = (pack / "train.rec").read_bytes()
    rng = random.Random(0)
    outcomes = {"error": 0, "written": 0}
    for trial in range(40):
        data = bytearray(original)
        kind = trial % 3
        start = rng.randrange(len(data))
        if kind == 0:  # flip a few bytes
            for pos in rng.sample(range(len(data)), 4):
                data[pos] ^= 0xFF
        elif kind == 1:  # zero a run of bytes
            data[start : start + 64] = bytes(len(data[start : start + 64]))
        else:  # cut the file
            del data[start:]
        (pack / "train.rec").write_bytes(bytes(data))
        out = tmp_path / f"out{trial}"
        status = main(["data", "to-folder", str(pack), "--out", str(out)])
        err = capsys.readouterr().err
        if status == 2:
            assert "Traceback" not in err and err.count("facebench: error:") == 1, err
            assert not out.exists()
            outcomes["error"] += 1
            continue
        assert status == 0
        for path in out.rglob("*.jpg"):
            assert decode_image(path.read_bytes(), str(path)).shape == (SIDE, SIDE, 3)
        outcomes["written"] += 1
    assert outcomes["error"] > 0
