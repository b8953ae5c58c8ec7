"""`facebench uniform` on a tiny model with a stored head and a tiny pack."""

import json
import re

import numpy as np
import pytest
import torch

from facebench.cli import main
from facebench.data.images import InputConvention, encode_image
from facebench.data.packs import write_face_pack
from facebench.embed import embed_images, load_embedder
from facebench.eval.uniform import uniform_metrics
from facebench.heads import build_head
from facebench.models import build_backbone
from facebench.models.artifact import save_model_artifact

SIZE = 32


def save_model(path, head_name):
    torch.manual_seed(0)
    kwargs = {"widths": [8, 8, 8], "embedding_size": 16}
    net = build_backbone("tiny_face", **kwargs).eval()
    head = build_head(head_name, 16, 4)
    state = {
        "name": head_name,
        "embedding_size": 16,
        "num_classes": 4,
        "params": {},
        "state_dict": head.full_state_dict(),
    }
    save_model_artifact(
        path, net, "tiny_face", kwargs, InputConvention(size=(SIZE, SIZE)), None, state
    )
    return head


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, SIZE, SIZE, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(3), 4)
    out = tmp_path_factory.mktemp("pack")
    write_face_pack(
        out,
        [(int(y), encode_image(im, ".png")) for y, im in zip(labels, images, strict=True)],
        (SIZE, SIZE),
    )
    return str(out), images, labels


@pytest.mark.parametrize("head_name", ["bce_u", "normsoftmax"])
def test_uniform_cli_matches_direct_computation(tmp_path, pack, head_name, capsys, caplog):
    path, images, labels = pack
    head = save_model(tmp_path / "model.pt", head_name)
    assert (
        main(
            [
                "uniform",
                "--model",
                str(tmp_path / "model.pt"),
                "--pack",
                path,
                "--out",
                str(tmp_path / "u"),
                "--no-progress",
            ]
        )
        == 0
    )
    text, err = capsys.readouterr()
    summary = text.splitlines()[0]  # one line, rounded like verify's: percent, t* to 4 places
    assert re.fullmatch(
        r"sample-wise \d+\.\d\d  uniform \d+\.\d\d \(t\* (-?\d+\.\d{4}|none)\)  class-wise .*",
        summary,
    ), summary
    assert not [m for m in caplog.messages if "sample-wise" in m] and "%|" not in err
    report = json.loads((tmp_path / "u" / "uniform.json").read_text())
    emb = embed_images(
        load_embedder(str(tmp_path / "model.pt")),
        images,
        flip_sum=False,
        normalize=False,
        progress=False,
    )
    cos = head.scores(torch.from_numpy(emb)).double().numpy() / head.scale
    decision = head.decision_threshold()
    threshold = None if decision is None else decision.value
    if threshold is not None:
        cos = cos + threshold
    expected = uniform_metrics(cos, labels, threshold)
    # the CLI runs the same embedder on the same pixels (PNG is lossless), at the same batch
    # size, in this process, and the same float64 arithmetic on the head's scores: equal, bit
    # for bit (JSON writes floats with repr, which reads back the same double)
    for key in ("sample_accuracy", "uniform_accuracy", "class_wise_accuracy_sample_weighted"):
        assert report[key] == expected[key]
    assert report["uniform_threshold"] == expected["uniform_threshold"]
    assert report["learned_threshold"] == threshold
    assert report["score_units"] == "cosine"
    assert report["classes"] == 4 and report["samples"] == 12


def test_model_without_head_is_one_line_error(tmp_path, pack, capsys):
    kwargs = {"widths": [8, 8, 8], "embedding_size": 16}
    net = build_backbone("tiny_face", **kwargs).eval()
    save_model_artifact(
        tmp_path / "m.pt", net, "tiny_face", kwargs, InputConvention(size=(SIZE, SIZE))
    )
    assert (
        main(
            [
                "uniform",
                "--model",
                str(tmp_path / "m.pt"),
                "--pack",
                pack[0],
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "holds no head" in capsys.readouterr().err
