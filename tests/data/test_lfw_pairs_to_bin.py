"""data_scripts/lfw_pairs_to_bin.py: pairs.txt + aligned tree -> bin in pairs.txt order."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from facebench.data.bins import read_verification_bin
from facebench.data.images import encode_image
from facebench.errors import DataError

SCRIPT = Path(__file__).resolve().parents[2] / "data_scripts" / "lfw_pairs_to_bin.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("lfw_pairs_to_bin", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tree(tmp_path):
    rng = np.random.default_rng(0)
    files = {}
    for name, count in (("Ann_Lee", 2), ("Bo_Wu", 1), ("Cy_Ray", 1)):
        (tmp_path / "lfw" / name).mkdir(parents=True)
        for n in range(1, count + 1):
            data = encode_image(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
            (tmp_path / "lfw" / name / f"{name}_{n:04d}.jpg").write_bytes(data)
            files[name, n] = data
    (tmp_path / "pairs.txt").write_text("1\t1\nAnn_Lee\t1\t2\nBo_Wu\t1\tCy_Ray\t1\n")
    return tmp_path, files


def test_pairs_to_bin(script, tree, capsys):
    root, files = tree
    argv = ["--pairs", str(root / "pairs.txt"), "--root", str(root / "lfw")]
    assert script.main([*argv, "--out", str(root / "lfw.bin")]) == 0
    assert "2 pairs (1 genuine, 1 impostor)" in capsys.readouterr().out
    vbin = read_verification_bin(root / "lfw.bin")
    assert vbin.issame.tolist() == [True, False]
    expected = [("Ann_Lee", 1), ("Ann_Lee", 2), ("Bo_Wu", 1), ("Cy_Ray", 1)]
    assert vbin.images == [files[k] for k in expected]


def test_bad_line_and_missing_image(script, tree, capsys):
    root, _ = tree
    (root / "bad.txt").write_text("Ann_Lee\t1\n")
    with pytest.raises(DataError, match=r"bad\.txt: line 1: expected"):
        script.parse_pairs(str(root / "bad.txt"))
    (root / "missing.txt").write_text("Ann_Lee\t1\t3\n")
    argv = ["--pairs", str(root / "missing.txt"), "--root", str(root / "lfw")]
    assert script.main([*argv, "--out", str(root / "x.bin")]) == 2
    assert "Ann_Lee_0003.jpg: cannot read image" in capsys.readouterr().err
    assert not (root / "x.bin").exists()
