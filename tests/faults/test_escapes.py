"""Nothing is written outside --out (issue 26.1, 26.3): identity names read from a pack's
classes.txt or from folder names are one safe path component each, and an output given as a
symbolic link is written through (the link stays, the file it points to is replaced)."""

import os

import numpy as np
import pytest

from facebench.cli import main
from facebench.data.images import encode_image
from facebench.data.packs import write_face_pack
from facebench.embed.io import save_embeddings
from facebench.errors import DataError, WriteError
from facebench.fileio import atomic_file, write_text
from facebench.search.gallery import Gallery


def _images(n: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [encode_image(rng.integers(0, 256, (8, 8, 3), np.uint8)) for _ in range(n)]


def _pack(folder, names: list[str]) -> None:
    """A pack of one image per identity and its classes.txt holding ``names`` as given."""
    write_face_pack(str(folder), list(enumerate(_images(3))), (8, 8))
    (folder / "classes.txt").write_bytes("".join(f"{n}\n" for n in names).encode())


@pytest.mark.parametrize(
    ("bad", "part"),
    [
        ("../../escaped", "path separator"),
        ("{tmp}/abs/path", "path separator"),
        ("..", "not a file name"),
        (".", "not a file name"),
        ("", "not a file name"),
        ("tab\there", "control character"),
        ("nul\x00byte", "control character"),
        ("back\\slash", "path separator"),
        ("x" * 256, "longer than 255 bytes"),
    ],
)
def test_to_folder_refuses_a_class_name_that_is_no_folder_name(
    tmp_path, snapshot, one_line_error, bad, part
):
    (tmp_path / "in" / "p").mkdir(parents=True)
    _pack(tmp_path / "in" / "p", ["alice", bad.format(tmp=tmp_path), "carol"])
    (tmp_path / "work").mkdir()
    before = snapshot(tmp_path)
    out = tmp_path / "work" / "a" / "b" / "faces"
    one_line_error(["data", "to-folder", str(tmp_path / "in" / "p"), "--out", str(out)], part)
    assert snapshot(tmp_path) == before  # nothing escaped, nothing half-written in OUT


def test_to_folder_refuses_a_name_given_twice(tmp_path, one_line_error):
    (tmp_path / "p").mkdir()
    _pack(tmp_path / "p", ["alice", "bob", "alice"])
    out = tmp_path / "faces"
    one_line_error(["data", "to-folder", str(tmp_path / "p"), "--out", str(out)], "line 3")
    assert not out.exists()


@pytest.mark.parametrize("bad", ["bob\nalice", "bob\ralice", "a\\b", "bell\x07"])
def test_from_folder_refuses_a_folder_name_that_breaks_classes_txt(
    tmp_path, snapshot, one_line_error, bad
):
    for name, image in zip(["alice", bad], _images(2), strict=True):
        (tmp_path / "faces" / name).mkdir(parents=True)
        (tmp_path / "faces" / name / "0.jpg").write_bytes(image)
    before = snapshot(tmp_path)
    one_line_error(
        ["data", "from-folder", str(tmp_path / "faces"), "--out", str(tmp_path / "pack")],
        repr(bad),
    )
    assert snapshot(tmp_path) == before


def test_unusual_but_safe_names_survive_a_round_trip(tmp_path, capsys):
    names = sorted(["José", "李小龙", "o'brien", "a b", "x.y", "-dash"])
    for name, image in zip(names, _images(len(names)), strict=True):
        (tmp_path / "faces" / name).mkdir(parents=True)
        (tmp_path / "faces" / name / "0.jpg").write_bytes(image)
    assert main(["data", "from-folder", str(tmp_path / "faces"), "--out", str(tmp_path / "p")]) == 0
    text = (tmp_path / "p" / "classes.txt").read_bytes().decode("utf-8")
    assert text.splitlines() == names
    assert main(["data", "to-folder", str(tmp_path / "p"), "--out", str(tmp_path / "back")]) == 0
    assert sorted(os.listdir(tmp_path / "back")) == names


def test_a_crlf_classes_txt_reads_as_its_names(tmp_path, capsys):
    (tmp_path / "p").mkdir()
    _pack(tmp_path / "p", [])
    (tmp_path / "p" / "classes.txt").write_bytes(b"alice\r\nbob\r\ncarol\r\n")
    assert main(["data", "to-folder", str(tmp_path / "p"), "--out", str(tmp_path / "f")]) == 0
    assert sorted(os.listdir(tmp_path / "f")) == ["alice", "bob", "carol"]


def test_check_file_name_names_the_source():
    from facebench.fileio import check_file_name

    assert check_file_name("bob", "src") == "bob"
    with pytest.raises(DataError, match=r"^src: name 'bob\\nalice' holds a control character"):
        check_file_name("bob\nalice", "src")


def test_a_write_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "data.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    chain = tmp_path / "chain.txt"
    chain.symlink_to(link)
    write_text(chain, "new")
    assert chain.is_symlink() and link.is_symlink() and target.read_text() == "new"
    with pytest.raises(RuntimeError), atomic_file(link, "w") as f:  # a failed write
        f.write("half")
        raise RuntimeError
    assert link.is_symlink() and target.read_text() == "new"
    assert sorted(os.listdir(tmp_path / "real")) == ["data.txt"]  # no temporary left


def test_a_symlink_loop_is_refused(tmp_path):
    loop = tmp_path / "loop.txt"
    loop.symlink_to(loop)
    with pytest.raises(WriteError, match="loops"):
        write_text(loop, "x")
    assert loop.is_symlink()


@pytest.mark.parametrize("options", [[], ["--factory", "IVF1,Flat", "--on-disk"]])
def test_index_add_through_a_symlink_extends_the_real_gallery(tmp_path, capsys, options):
    rng = np.random.default_rng(0)
    for name, rows in (("g", 6), ("p", 4)):
        x = rng.normal(size=(rows, 8)).astype(np.float32)
        save_embeddings(str(tmp_path / f"{name}.npy"), x, {"identities": list(range(rows))})
    real = tmp_path / "real" / "g.index"
    build = ["index", "build", "--embeddings", str(tmp_path / "g.npy"), "--out", str(real)]
    assert main([*build, *options]) == 0
    link = tmp_path / "link.index"
    link.symlink_to(real)
    assert (
        main(["index", "add", "--index", str(link), "--embeddings", str(tmp_path / "p.npy")]) == 0
    )
    assert link.is_symlink() and os.path.realpath(link) == str(real)
    assert len(Gallery.load(str(real))) == 10
    assert sorted(os.listdir(tmp_path)) == [
        "g.json",
        "g.npy",
        "link.index",
        "p.json",
        "p.npy",
        "real",
    ]
