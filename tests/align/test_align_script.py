"""data_scripts/align.py: landmark files in three formats, a detector, failures listed."""

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from facebench.data.align import T1_LANDMARKS, align_face, load_detector, read_landmarks
from facebench.data.images import read_image
from facebench.errors import DataError

SCRIPT = Path(__file__).resolve().parents[2] / "data_scripts" / "align.py"
spec = importlib.util.spec_from_file_location("align_script", SCRIPT)
align_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(align_script)


@pytest.fixture
def photos(tmp_path):
    import insightface

    root = tmp_path / "photos"
    (root / "group").mkdir(parents=True)
    src = Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"
    shutil.copy(src, root / "group" / "t1.jpg")
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def write_formats(tmp_path):
    """The same three faces as IJB text, CSV (with header) and JSON (list form)."""
    faces = [
        ("group/t1.jpg", T1_LANDMARKS[0]),
        ("group/t1.jpg", T1_LANDMARKS[1]),
        ("broken.jpg", T1_LANDMARKS[0]),
    ]
    flat = [(name, " ".join(f"{v:g}" for v in p.ravel())) for name, p in faces]
    (tmp_path / "lm.txt").write_text("".join(f"{n} {c} 0.98\n" for n, c in flat))
    header = "image," + ",".join(f"{a}{i}" for i in range(1, 6) for a in "xy")
    (tmp_path / "lm.csv").write_text(
        header + "\n" + "".join(f"{n},{c.replace(' ', ',')}\n" for n, c in flat)
    )
    (tmp_path / "lm.json").write_text(
        json.dumps([{"image": n, "landmarks": p.tolist()} for n, p in faces])
    )
    return faces


def test_three_landmark_formats_read_the_same(tmp_path):
    faces = write_formats(tmp_path)
    for ext in ("txt", "csv", "json"):
        got = read_landmarks(str(tmp_path / f"lm.{ext}"))
        assert [n for n, _ in got] == [n for n, _ in faces]
        for (_, a), (_, b) in zip(got, faces, strict=True):
            np.testing.assert_array_equal(a, b)  # integer pixels: written and read exactly
    (tmp_path / "bad.txt").write_text("img.jpg 1 2 3\n")
    with pytest.raises(DataError, match="line 1: expected image"):
        read_landmarks(str(tmp_path / "bad.txt"))


def test_landmark_file_run_aligns_and_lists_failures(tmp_path, photos, capsys):
    write_formats(tmp_path)
    out = tmp_path / "aligned"
    code = align_script.main(
        ["--images", str(photos), "--landmarks", str(tmp_path / "lm.txt"), "--out", str(out)]
    )
    assert code == 0 and "2 faces aligned" in capsys.readouterr().out
    assert sorted(os.listdir(out / "group")) == ["t1.png", "t1_1.png"]
    failures = (out / "failures.txt").read_text().splitlines()
    assert len(failures) == 1 and failures[0].startswith("broken.jpg\t")
    expected = align_face(read_image(str(photos / "group" / "t1.jpg")), T1_LANDMARKS[1])
    crop = read_image(str(out / "group" / "t1_1.png"))
    assert np.array_equal(crop, expected)  # lossless: the crop as aligned, bit for bit
    assert json.loads((out / "landmarks.json").read_text())["group/t1_1.png"] == {
        "photo": "group/t1.jpg",
        "landmarks": T1_LANDMARKS[1].tolist(),
    }
    assert (
        align_script.main(
            ["--images", str(photos), "--landmarks", str(tmp_path / "lm.txt"), "--out", str(out)]
        )
        == 2
    )  # output exists: refuse, touch nothing


class FakeDetector:
    """Finds the two faces of t1.jpg (second one larger) and nothing elsewhere."""

    def detect(self, bgr):
        if bgr.shape[:2] != (886, 1280):
            return np.zeros((0, 5)), np.zeros((0, 5, 2))
        boxes = np.array([[480, 290, 550, 400, 0.9], [740, 350, 880, 480, 0.8]])
        return boxes, T1_LANDMARKS.copy()


def test_detector_run_keeps_largest_face_and_lists_misses(tmp_path, photos, monkeypatch, capsys):
    from facebench.data.images import encode_image

    (photos / "blank.png").write_bytes(encode_image(np.zeros((50, 60, 3), np.uint8), ".png"))
    monkeypatch.setattr(align_script, "load_detector", lambda *a: FakeDetector())
    out = tmp_path / "det"
    code = align_script.main(["--images", str(photos), "--detector", "det.onnx", "--out", str(out)])
    assert code == 0
    used = json.loads((out / "landmarks.json").read_text())
    assert used == {
        "group/t1.png": {"photo": "group/t1.jpg", "landmarks": T1_LANDMARKS[1].tolist()}
    }
    reasons = dict(line.split("\t") for line in (out / "failures.txt").read_text().splitlines())
    assert reasons["blank.png"] == "no face detected" and "does not decode" in reasons["broken.jpg"]


def test_a_recognition_onnx_is_not_a_detector(tmp_path):
    import torch

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    )
    path = str(tmp_path / "rec.onnx")
    torch.onnx.export(model, (torch.zeros(1, 3, 112, 112),), path, dynamo=False)
    with pytest.raises(DataError, match="not a face detector"):
        load_detector(path)
    with pytest.raises(DataError, match="not found"):
        load_detector(str(tmp_path / "missing.onnx"))


def test_jpeg_crops_on_request(tmp_path, photos, capsys):
    write_formats(tmp_path)
    base = ["--images", str(photos), "--landmarks", str(tmp_path / "lm.txt"), "--no-progress"]
    sizes = {}
    for quality in (50, 95):
        out = tmp_path / f"q{quality}"
        argv = [*base, "--format", "jpg", "--quality", str(quality), "--out", str(out)]
        assert align_script.main(argv) == 0
        assert sorted(os.listdir(out / "group")) == ["t1.jpg", "t1_1.jpg"]
        data = (out / "group" / "t1_1.jpg").read_bytes()
        assert data[:3] == b"\xff\xd8\xff"  # a JPEG file
        sizes[quality] = len(data)
        expected = align_face(read_image(str(photos / "group" / "t1.jpg")), T1_LANDMARKS[1])
        crop = read_image(str(out / "group" / "t1_1.jpg")).astype(float)
        assert 0 < np.abs(crop - expected).mean() < 6.0  # lossy, close
    assert sizes[50] < sizes[95]  # --quality reaches the encoder
    with pytest.raises(SystemExit):  # a PNG has no quality
        align_script.main([*base, "--quality", "80", "--out", str(tmp_path / "x")])
    assert "--format jpg only" in capsys.readouterr().err and not (tmp_path / "x").exists()
