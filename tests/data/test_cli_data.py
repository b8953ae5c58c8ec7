"""`facebench data`: info, conversions and synth end to end; bad input gives one line, exit 2."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from facebench.cli import main
from facebench.data.bins import read_verification_bin
from facebench.data.images import encode_image


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "synth"
    argv = ["data", "synth", "--out", str(out), "--identities", "4", "--images-per-identity", "5",
            "--val-identities", "3", "--val-images-per-identity", "2", "--pairs", "20",
            "--image-size", "48", "--workers", "1"]  # fmt: skip
    assert main(argv) == 0
    return out


def test_synth_and_info(synth, capsys):
    capsys.readouterr()
    assert main(["data", "info", str(synth)]) == 0
    out = capsys.readouterr().out
    assert "images: 20\n" in out and "identities: 4 (identity records)" in out
    assert "property: 4 classes, 48x48" in out and "sample: key 1 label 0: 48x48 RGB" in out
    assert main(["data", "info", str(synth / "synth_val.bin")]) == 0
    assert "pairs: 20 (10 genuine, 10 impostor)" in capsys.readouterr().out


def test_pack_folder_round_trip(synth, tmp_path, capsys):
    assert main(["data", "to-folder", str(synth), "--out", str(tmp_path / "f")]) == 0
    assert sorted(os.listdir(tmp_path / "f")) == ["0000000", "0000001", "0000002", "0000003"]
    assert main(["data", "from-folder", str(tmp_path / "f"), "--out", str(tmp_path / "p")]) == 0
    assert "20 images, 4 identities" in capsys.readouterr().out
    # keys 6..10 share a folder: names must sort in key order for the same bytes
    assert (tmp_path / "p" / "train.rec").read_bytes() == (synth / "train.rec").read_bytes()


def test_bin_folder_round_trip(synth, tmp_path):
    assert main(["data", "bin-to-folder", str(synth / "synth_val.bin"), "--out",
                 str(tmp_path / "pairs")]) == 0  # fmt: skip
    assert main(["data", "folder-to-bin", str(tmp_path / "pairs"), "--out",
                 str(tmp_path / "b.bin")]) == 0  # fmt: skip
    back, original = (
        read_verification_bin(p) for p in (tmp_path / "b.bin", synth / "synth_val.bin")
    )
    assert back.images == original.images and back.issame.tolist() == original.issame.tolist()


def broken_packs(tmp_path, synth):
    """Each bad input of the issue as a (name, path, expected message) case."""
    rec = (synth / "train.rec").read_bytes()
    idx = (synth / "train.idx").read_text()
    cases = []

    def pack(name, rec_bytes=rec, idx_text=idx):
        d = tmp_path / name
        d.mkdir()
        (d / "train.rec").write_bytes(rec_bytes)
        (d / "property").write_bytes((synth / "property").read_bytes())
        if idx_text is not None:
            (d / "train.idx").write_text(idx_text)
        return d

    cases.append((pack("no_idx", idx_text=None), "train.idx: index file is missing"))
    cases.append((pack("magic", rec_bytes=b"\0" * 4 + rec[4:]), "key 1 at offset 0: wrong magic"))
    offset_0 = int(idx.splitlines()[-1].split()[1])  # the meta record is written last
    cases.append((pack("truncated", rec_bytes=rec[: offset_0 + 10]), "key 0 at offset"))
    cases.append((pack("past_end", idx_text=idx + f"99\t{len(rec) + 8}\n"), "past the end"))
    bad_jpeg = rec.replace(b"\xff\xd8\xff", b"\0\0\0", 1)  # key 1's JPEG loses its SOI marker
    cases.append((pack("jpeg", rec_bytes=bad_jpeg), "key 1: image does not decode"))
    return cases


def test_broken_inputs_fail_with_one_line(synth, tmp_path, capsys):
    for path, message in broken_packs(tmp_path, synth):
        capsys.readouterr()
        assert main(["data", "info", str(path)]) == 2, path
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("facebench: error: "), err
        assert message in err and str(path) in err


def test_broken_pack_process_exits_2_without_traceback(synth, tmp_path):
    path, message = broken_packs(tmp_path, synth)[1]
    result = subprocess.run(
        [sys.executable, "-m", "facebench", "data", "info", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert (
        result.stderr
        == f"facebench: error: {path / 'train.rec'}: {message}"
        + (result.stderr.split(message, 1)[1])
    )
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_bad_bin_fails_with_one_line(tmp_path, capsys):
    image = encode_image(np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "odd.bin").write_bytes(pickle.dumps(([image] * 3, [True])))
    assert main(["data", "info", str(tmp_path / "odd.bin")]) == 2
    err = capsys.readouterr().err
    assert "odd.bin: odd number of images (3)" in err and err.count("\n") == 1


def test_synth_bad_pairs_exit_2(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path / "s"), "--pairs", "30"]) == 2
    assert "multiple of 20" in capsys.readouterr().err


def test_data_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["data", "--help"])
    out = capsys.readouterr().out
    for name in ("info", "from-folder", "to-folder", "bin-to-folder", "folder-to-bin", "synth"):
        assert name in out


def test_no_progress_hides_the_bars(synth, tmp_path, capsys):
    bin_path = str(synth / "synth_val.bin")
    capsys.readouterr()
    assert main(["data", "bin-to-folder", bin_path, "--out", str(tmp_path / "a")]) == 0
    assert "%|" in capsys.readouterr().err  # a bar by default
    argv = ["data", "bin-to-folder", bin_path, "--out", str(tmp_path / "b"), "--no-progress"]
    assert main(argv) == 0
    assert "%|" not in capsys.readouterr().err
    argv = ["data", "synth", "--out", str(tmp_path / "s"), "--identities", "2",
            "--images-per-identity", "2", "--test-images-per-identity", "0",
            "--val-identities", "2", "--val-images-per-identity", "2", "--pairs", "20",
            "--image-size", "32", "--workers", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().err == ""
