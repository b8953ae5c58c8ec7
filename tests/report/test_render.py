"""Reports render from JSON only: tables, figures, several runs side by side."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from facebench.cli import main
from facebench.errors import DataError
from facebench.eval.identification import identification_metrics
from facebench.eval.uniform import uniform_metrics
from facebench.eval.verification import evaluate_verification, transfer_table
from facebench.fileio import read_json, write_json
from facebench.report import comparison_table, render_report
from facebench.report.render import headline_rates

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def pairs(n, noise, seed):
    rng = np.random.default_rng(seed)
    issame = rng.random(n) < 0.5
    a = rng.normal(size=(n, 8))
    b = np.where(issame[:, None], a, rng.normal(size=(n, 8))) + noise * rng.normal(size=(n, 8))
    emb = np.empty((2 * n, 8))
    emb[0::2], emb[1::2] = a, b
    return emb, issame


def write_run(root, noise, seed):
    """A run directory with reports/: two bins, transfer, uniform and identification."""
    reports = os.path.join(root, "reports")
    scores = {}
    for i, name in enumerate(("lfw", "cfp_fp")):
        emb, issame = pairs(400, noise + 0.3 * i, seed + i)
        report = {"name": name, **evaluate_verification(emb, issame)}
        write_json(os.path.join(reports, f"{name}.json"), report)
        unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        scores[name] = (np.sum(unit[0::2] * unit[1::2], 1), issame)
    write_json(
        os.path.join(reports, "transfer.json"), {"kind": "transfer", **transfer_table(scores)}
    )
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, 200)
    logits = rng.normal(size=(200, 5)) * 0.2
    logits[np.arange(200), labels] += 0.5
    uniform = uniform_metrics(logits, labels, learned_threshold=0.2)
    write_json(os.path.join(reports, "uniform.json"), {**uniform, "score_units": "cosine"})
    g = rng.normal(size=(20, 8))
    probes = np.concatenate([g + 0.5 * rng.normal(size=g.shape), rng.normal(size=(200, 8))])
    ids = np.concatenate([np.arange(20), 100 + np.arange(200)])
    ident = identification_metrics(g, np.arange(20), probes, ids)
    write_json(os.path.join(reports, "identification.json"), ident)
    return root


def test_two_runs_side_by_side(tmp_path):
    a = write_run(str(tmp_path / "bce"), 0.8, 1)
    b = write_run(str(tmp_path / "arcface"), 1.2, 5)
    path = render_report([a, b], str(tmp_path / "out"))
    text = Path(path).read_text()
    lfw_a = read_json(os.path.join(a, "reports", "lfw.json"))
    lfw_b = read_json(os.path.join(b, "reports", "lfw.json"))
    table = comparison_table([a, b])
    assert table in text
    row = next(line for line in table.splitlines() if line.startswith("| lfw: 10-fold"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    for cell, r in zip(cells[1:], (lfw_a, lfw_b), strict=True):
        mean, std = r["accuracy_10fold_mean"], r["accuracy_10fold_std"]
        assert cell == f"{100 * mean:.2f} ± {100 * std:.2f}"
    assert f"({lfw_a['global_threshold']:.3f})" in table
    assert "### Threshold transfer: bce" in text and "## Uniform classification" in text
    assert "## Identification" in text
    figures = sorted(os.listdir(tmp_path / "out" / "figures"))
    assert "roc_lfw.png" in figures and "accuracy_cfp_fp.png" in figures
    assert "hist_bce_lfw.png" in figures and "uniform_arcface.png" in figures
    for name in figures:
        with open(tmp_path / "out" / "figures" / name, "rb") as f:
            assert f.read(8) == PNG_MAGIC
        assert f"figures/{name}" in text  # every figure is linked from the Markdown


def test_cli_names_and_errors(tmp_path, capsys):
    g = np.random.default_rng(0).normal(size=(30, 8))
    ident = identification_metrics(g, np.arange(30), g + 0.1, np.arange(30))
    a = write_json(str(tmp_path / "run" / "reports" / "identification.json"), ident)
    out = str(tmp_path / "out")
    assert main(["report", a, "--out", out, "--name", "mine"]) == 0  # one JSON file: no figures
    assert "report.md" in capsys.readouterr().out
    text = Path(out, "report.md").read_text()
    assert "| metric | mine |" in text and "| rank-1 (closed set) | 100.00 |" in text
    os.makedirs(tmp_path / "empty")
    assert main(["report", str(tmp_path / "empty"), "--out", out + "2"]) == 2
    assert "no JSON reports" in capsys.readouterr().err
    with pytest.raises(DataError, match="share the name"):
        render_report([a, a], out)
    with pytest.raises(DataError, match="1 names for 2 runs"):
        render_report([a, a], out, names=["x"])


def test_json_round_trip_and_strictness(tmp_path):
    data = {"a": 1.5, "b": [float("nan"), 2.0], "c": {"d": float("inf")}, "e": "x"}
    path = write_json(str(tmp_path / "r.json"), data)
    assert read_json(path) == {"a": 1.5, "b": [None, 2.0], "c": {"d": None}, "e": "x"}
    assert os.listdir(tmp_path) == ["r.json"]  # no temporary left behind
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(DataError, match=r"bad\.json: not valid JSON"):
        read_json(str(tmp_path / "bad.json"))
    (tmp_path / "list.json").write_text(json.dumps([1]))
    with pytest.raises(DataError, match="JSON object"):
        read_json(str(tmp_path / "list.json"))


def test_training_plateau_units_and_reachable_rates(tmp_path):
    from facebench.train.convergence import plateau_report

    a = write_run(str(tmp_path / "bce"), 0.8, 1)
    b = write_run(str(tmp_path / "softmax"), 1.2, 5)
    for run, losses in ((a, [4.0, 2.0, 1.99]), (b, [4.0, 3.0, 2.5])):
        training = {"kind": "training", "epoch_losses": losses, "plateau": plateau_report(losses)}
        write_json(os.path.join(run, "reports", "training.json"), training)
    uniform_b = read_json(os.path.join(b, "reports", "uniform.json"))
    write_json(os.path.join(b, "reports", "uniform.json"), {**uniform_b, "score_units": "w.x"})
    text = Path(render_report([a, b], str(tmp_path / "out"))).read_text()
    assert "| epochs trained | 3 | 3 |" in text
    assert "| loss plateau (last epoch's change) | yes (-0.50%) | **no** (-16.67%) |" in text
    assert "**Not on a plateau** (compare with care): softmax." in text
    with open(tmp_path / "out" / "figures" / "training_loss.png", "rb") as f:
        assert f.read(8) == PNG_MAGIC
    t_star = next(line for line in text.splitlines() if line.startswith("| uniform t*"))
    cells = [c.strip() for c in t_star.strip("|").split("|")]
    assert "(" not in cells[1] and cells[2].endswith("(w.x)")  # units named where not cosine
    # ~200 impostor pairs per bin: TAR@FAR=1e-2 is reachable, 1e-3 and VAL@1e-3 are not
    header = next(line for line in text.splitlines() if line.startswith("| model | data set"))
    assert "TAR@1e-02" in header and "TAR@1e-03" not in header and "VAL@1e-3" not in header


def test_headline_rates_rest_on_ten_pairs_past_their_threshold(tmp_path):
    assert headline_rates({"1e-02": 0.5, "1e-01": 0.7}, 1000) == {"1e-02": 0.5, "1e-01": 0.7}
    assert headline_rates({"1e-02": 0.5, "1e-01": 0.7}, 999) == {"1e-01": 0.7}
    run = write_run(str(tmp_path / "bce"), 0.8, 1)
    lfw = read_json(os.path.join(run, "reports", "lfw.json"))
    ident = read_json(os.path.join(run, "reports", "identification.json"))
    # about 200 impostor pairs and 200 non-mated probes: a rate at 1e-2 would rest on 2 of them
    assert 1e-2 * lfw["impostor_pairs"] < 10 <= 1e-1 * lfw["impostor_pairs"]
    assert 1e-2 * ident["non_mated_probes"] < 10 <= 1e-1 * ident["non_mated_probes"]
    assert (
        "1e-02" in lfw["tar_at_far"] and "1e-02" in ident["dir_at_fpir"]
    )  # reported, not headline
    table = comparison_table([run])
    assert f"| lfw: TAR@FAR=1e-01 | {100 * lfw['tar_at_far']['1e-01']:.2f} |" in table
    assert f"| DIR@FPIR=1e-01 | {100 * ident['dir_at_fpir']['1e-01']:.2f} |" in table
    assert "=1e-02" not in table
    # no target reaches 10 past the threshold: the loosest, each value with its count
    path = os.path.join(run, "reports", "identification.json")
    write_json(path, {**ident, "non_mated_probes": 50})
    dir_at = f"{100 * ident['dir_at_fpir']['1e-01']:.2f}"
    assert f"| DIR@FPIR=1e-01 | {dir_at} (of 50 non-mated probes) |" in comparison_table([run])
