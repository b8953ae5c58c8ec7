"""data_scripts/json_digits_to_idx.py: JSON digit files -> an idx set the study reads."""

import importlib.util
import json
from pathlib import Path

import numpy as np

from facebench.data.idx_ubyte import load_idx_split

SCRIPT = Path(__file__).resolve().parents[2] / "data_scripts" / "json_digits_to_idx.py"
spec = importlib.util.spec_from_file_location("json_digits_to_idx", SCRIPT)
convert = importlib.util.module_from_spec(spec)
spec.loader.exec_module(convert)


def _digits(root: Path, per_digit: int = 10) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(1)
    images = {}
    for digit in range(10):
        grey = rng.integers(0, 256, (per_digit, 28, 28)).astype(np.float64) / 255
        images[digit] = grey
        (root / f"{digit}.json").write_text(json.dumps({"data": grey.ravel().tolist()}))
    return images


def test_every_image_lands_in_one_split_with_its_label(tmp_path):
    src = tmp_path / "digits"
    src.mkdir()
    images = _digits(src)
    assert convert.main([str(src), "--out", str(tmp_path / "idx"), "--test-fraction", "0.2"]) == 0
    seen = []
    for split, per_digit in (("train", 8), ("t10k", 2)):
        x, y = load_idx_split(tmp_path / "idx", split)
        assert x.shape == (10 * per_digit, 28, 28) and np.bincount(y).tolist() == [per_digit] * 10
        seen += [(label, image.tobytes()) for image, label in zip(x, y, strict=True)]
    expected = [
        (digit, np.rint(image * 255).astype(np.uint8).tobytes())
        for digit, stack in images.items()
        for image in stack
    ]
    assert sorted(seen) == sorted(expected)


def test_a_malformed_file_is_one_line_and_nothing_is_written(tmp_path, capsys):
    src = tmp_path / "digits"
    src.mkdir()
    _digits(src)
    (src / "7.json").write_text(json.dumps({"data": [0.5] * 700}))
    out = tmp_path / "idx"
    assert convert.main([str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "7.json: expected a multiple of 784 grey values" in err and "\n" not in err
    assert not out.exists()
