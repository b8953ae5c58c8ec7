"""Allocation is bounded by the evidence (issue 26.4): counts and shapes from a header are
checked against the file before anything is allocated, image sizes are read from the JPEG
header before decoding, and the bin unpickler builds nothing larger than its file. Each bomb
runs the CLI in a subprocess whose address space may grow only 400 MiB past what its libraries
map: each must end in one line and exit 2."""

import struct
import subprocess
import sys

import numpy as np
import pytest

from facebench.cli import main
from facebench.data.bins import write_verification_bin
from facebench.data.images import InputConvention, encode_image
from facebench.data.packs import write_face_pack
from facebench.data.recordio import IRHeader, frame_record, pack_record
from facebench.embed.io import save_embeddings
from facebench.models import build_backbone
from facebench.models.artifact import save_model_artifact

HEADROOM = 400 << 20
# The libraries are mapped first (torch alone maps more than the headroom), then the limit is
# set to what the process maps now plus HEADROOM.
RUNNER = """
import resource, sys
import cv2, faiss, numpy, torch
import facebench.cli
with open("/proc/self/status") as f:
    mapped = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
limit = mapped + int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
sys.exit(facebench.cli.main(sys.argv[2:]))
"""
ENV = {"OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2", "PATH": "/usr/bin:/bin"}


def run_limited(argv: list) -> tuple[int, str]:
    """Exit status and stderr of the CLI run under the memory limit."""
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(HEADROOM), *map(str, argv)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    return done.returncode, done.stderr


def assert_one_line(argv: list, *parts: str) -> None:
    code, err = run_limited(argv)
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("facebench: error:") and "MemoryError" not in err, err
    for part in parts:
        assert part in lines[0], lines[0]


@pytest.fixture
def pack(tmp_path):
    """A 12-image pack (keys 1..12, identity records 13..16, meta record 0)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    write_face_pack(str(tmp_path / "p"), [(i // 3, encode_image(x)) for i, x in enumerate(images)],
                    (16, 16))  # fmt: skip
    return tmp_path / "p"


@pytest.mark.parametrize("first", [float(np.float32(1e12)), float(2**28)])
def test_a_meta_record_claiming_more_images_than_the_index(pack, first):
    """The meta record claims ``first - 1`` images; the index lists the keys the old check
    looked at (``a - 1`` and ``b - 1``), but only 19 keys in all."""
    end = float(np.nextafter(np.float32(first), np.float32(np.inf)))  # the next float32
    rec = pack / "train.rec"
    offset = rec.stat().st_size
    with open(rec, "ab") as f:
        f.write(frame_record(pack_record(IRHeader(2, np.array([first, end]), 0, 0))))
    lines = (pack / "train.idx").read_text().splitlines()
    one = lines[0].split()[1]  # key 1's offset
    lines = [line for line in lines if line.split()[0] != "0"]
    lines += [f"0\t{offset}", f"{int(first) - 1}\t{one}", f"{int(end) - 1}\t{one}"]
    (pack / "train.idx").write_text("\n".join(lines) + "\n")
    assert_one_line(["data", "info", pack], "key 0: meta record names", "holds only 19")


def test_a_34_byte_pickle_of_a_2_gb_bytearray(tmp_path):
    path = tmp_path / "b.bin"
    path.write_bytes(b"\x80\x02cbuiltins\nbytearray\nJ" + struct.pack("<i", 2 * 10**9) + b"\x85R.")
    assert_one_line(["data", "info", path], "b.bin", "bytearray of 2,000,000,000 bytes")


def huge_jpeg(side: int) -> bytes:
    """A small JPEG whose frame header says ``side`` x ``side`` (a decoder would allocate
    for the stated size)."""
    jpeg = bytearray(encode_image(np.zeros((8, 8, 3), np.uint8)))
    frame = jpeg.index(b"\xff\xc0")
    jpeg[frame + 5 : frame + 9] = struct.pack(">HH", side, side)
    return bytes(jpeg)


def test_a_bin_of_16000x16000_jpegs(tmp_path):
    write_verification_bin(tmp_path / "b.bin", [huge_jpeg(16000)] * 2, [True])
    kwargs = {"widths": [4, 8], "blocks": [1, 1], "embedding_size": 16}
    net = build_backbone("tiny_face", **kwargs).eval()
    save_model_artifact(tmp_path / "m.pt", net, "tiny_face", kwargs, InputConvention(size=(32, 32)))
    verify = ["verify", "--model", tmp_path / "m.pt", "--bin", tmp_path / "b.bin"]
    assert_one_line([*verify, "--out", tmp_path / "r", "--no-progress"], "image is 16000x16000")
    assert_one_line(["data", "info", tmp_path / "b.bin"], "b.bin: image 0", "16000x16000")
    assert not (tmp_path / "r").exists()


def test_npy_header_claiming_a_trillion_rows(tmp_path):
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(6, 8)).astype(np.float32)
    save_embeddings(str(tmp_path / "g.npy"), rows, {"labels": [0, 0, 1, 1, 2, 2]})
    assert main(["index", "build", "--embeddings", str(tmp_path / "g.npy"),
                 "--out", str(tmp_path / "g.index")]) == 0  # fmt: skip
    write_verification_bin(
        tmp_path / "b.bin", [encode_image(np.zeros((8, 8, 3), np.uint8))] * 2, [True]
    )
    bomb = tmp_path / "bomb.npy"
    with open(bomb, "wb") as f:
        header = {"descr": "<f4", "fortran_order": False, "shape": (10**12, 8)}
        np.lib.format.write_array_header_1_0(f, header)
        f.write(rows.tobytes())
    claims = ("bomb.npy", "header says float32 (1000000000000, 8)")
    verify = ["verify", "--embeddings", bomb, "--bin", tmp_path / "b.bin"]
    assert_one_line([*verify, "--out", tmp_path / "r"], *claims)
    search = ["search", "--index", tmp_path / "g.index", "--embeddings", bomb]
    assert_one_line([*search, "--threshold", "0.5", "--out", tmp_path / "s.json"], *claims)
    assert_one_line(["index", "build", "--embeddings", bomb, "--out", tmp_path / "x"], *claims)
    assert not any((tmp_path / name).exists() for name in ("r", "s.json", "x"))


@pytest.mark.parametrize(
    ("opcodes", "part"),
    [
        (b"\x8e" + struct.pack("<Q", 2**40) + b"ab.", "not a readable bin pickle"),  # BINBYTES8
        (b"\x96" + struct.pack("<Q", 2**40) + b"ab.", "bytearray of 1,099,511,627,776 bytes"),
        (b"Nr" + struct.pack("<I", 2**32 - 1) + b".", "expected a pickled (bins, issame_list)"),
    ],
    ids=["BINBYTES8", "BYTEARRAY8", "LONG_BINPUT"],
)
def test_pickle_opcodes_that_announce_more_than_the_file(tmp_path, opcodes, part):
    """Lengths of 2^40 bytes in a short file, a memo index of 2^32 - 1."""
    path = tmp_path / "b.bin"
    path.write_bytes(b"\x80\x05" + opcodes)
    assert_one_line(["data", "info", path], "b.bin", part)
