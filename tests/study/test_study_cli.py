"""`facebench study` on face packs: bad input is one line, exit 2, nothing written; the readable
report's forest plot has one row per claim, in order."""

# pytest.approx's default (rel 1e-6) compares float64 arithmetic of a few terms (rounding
# about 1e-16 relative): it checks the formula, not rounding.
import os
from pathlib import Path

import pytest

from facebench.cli import main
from facebench.data.recordio import IndexedRecordWriter, IRHeader, pack_record
from facebench.data.synth.dataset import SynthConfig, write_synthetic_dataset

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "study" / "synth_faces_quick.yaml"


def _study(synth, out, *extra, recipe=RECIPE):
    args = ["study", "--quick", "--train", str(synth), "--closed-test", str(synth / "test.rec")]
    return main([*args, "--recipe", str(recipe), "--out", str(out), *extra])


def _one_line(capsys, *named):
    err = capsys.readouterr().err.strip()
    assert err.startswith("facebench: error: ") and "\n" not in err, err
    for text in named:
        assert text in err, err


def test_missing_bin(synth, tmp_path, capsys):
    out = tmp_path / "out"
    assert _study(synth, out, "--bin", str(synth / "synth_val.bin"), "--bin", "nope.bin") == 2
    _one_line(capsys, "--bin nope.bin", "no such file")
    assert not out.exists()


def test_pack_without_identity_records(synth, tmp_path, capsys):
    plain = tmp_path / "plain"
    plain.mkdir()
    source = (synth / "train.rec").read_bytes()  # any bytes: the check never decodes them
    with IndexedRecordWriter(str(plain / "train.rec")) as writer:
        for key in (1, 2, 3):
            writer.write(key, pack_record(IRHeader(0, float(key % 2), key, 0), source[:64]))
    out = tmp_path / "out"
    args = ["study", "--quick", "--train", str(plain), "--closed-test", str(synth / "test.rec")]
    args += ["--bin", str(synth / "synth_val.bin"), "--recipe", str(RECIPE), "--out", str(out)]
    assert main(args) == 2
    _one_line(capsys, "--train", "no identity records")
    assert not out.exists()


def test_unknown_head(synth, tmp_path, capsys):
    out = tmp_path / "out"
    assert _study(synth, out, "--bin", str(synth / "synth_val.bin"), "--heads", "bce_u,nope") == 2
    _one_line(capsys, "unknown head 'nope'")
    assert not out.exists()


def test_recipe_that_does_not_take_the_image_size(synth, tmp_path, capsys):
    recipe = tmp_path / "r50.yaml"
    text = RECIPE.with_name("synth_faces.yaml").read_text()
    text = text.replace("backbone: tiny_face", "backbone: iresnet50")
    text = text.replace("batch_size: 256", "batch_size: 8")
    recipe.write_text(text.replace("    widths: [24, 48, 96]\n    blocks: [1, 1, 1]\n", "    {}\n"))
    out = tmp_path / "out"
    assert _study(synth, out, "--bin", str(synth / "synth_val.bin"), recipe=recipe) == 2
    _one_line(capsys, "does not take the pack's 32x32 images")
    assert not out.exists()


def test_closed_test_with_more_identities_than_training(synth, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["study", "--quick", "--train", str(synth / "test.rec"), "--closed-test", str(synth)]
    args += ["--bin", str(synth / "synth_val.bin"), "--recipe", str(RECIPE), "--out", str(out)]
    other = tmp_path / "small"
    cfg = SynthConfig(
        identities=3, images_per_identity=3, val_identities=2, pairs=20, image_size=32
    )
    write_synthetic_dataset(str(other), cfg, progress=False)
    args[3] = str(other)  # 3 training identities, 4 in --closed-test
    assert main(args) == 2
    _one_line(capsys, "--closed-test", "more than the 3 of --train")
    assert not out.exists()


def test_no_open_target(synth, tmp_path, capsys):
    out = tmp_path / "out"
    assert _study(synth, out) == 2
    _one_line(capsys, "--bin, --ijb or --open-pack")
    assert not out.exists()


def test_forest_rows_follow_the_claims():
    from facebench.study.figures import forest_rows

    claims = [
        {
            "claim": "(1) uniform accuracy",
            "better": "a",
            "other": "b",
            "higher_is_better": True,
            "difference": {"mean": 0.02, "low": 0.01, "high": 0.03},
            "adjusted_verdict": "held",
        },
        {
            "claim": "(4) separated classes",
            "better": "a",
            "other": "b",
            "higher_is_better": False,  # lower is better: the row is turned to "> 0 as claimed"
            "difference": {"mean": 0.05, "low": 0.01, "high": 0.09},
            "adjusted_verdict": "reversed",
        },
        {
            "claim": "(2) sample-wise accuracy",
            "better": "a",
            "other": "b",
            "higher_is_better": True,
            "difference": None,
            "adjusted_verdict": "not judged",
        },
    ]
    rows = forest_rows(claims, {"a": "A", "b": "B"})
    assert [r["label"] for r in rows] == [f"{c['claim']}: A vs B" for c in claims]
    assert [r["verdict"] for r in rows] == ["held", "reversed", "not judged"]
    assert rows[1]["mean"] == pytest.approx(-0.05)
    assert (rows[1]["low"], rows[1]["high"]) == pytest.approx((-0.09, -0.01))
    assert rows[2]["mean"] is None


def test_batch_larger_than_the_tuning_set(synth, tmp_path, capsys):
    out = tmp_path / "out"  # 4 identities x 3 images fitted (--quick's --fit-per-class)
    assert _study(synth, out, "--bin", str(synth / "synth_val.bin"), "--val-per-class", "1") == 2
    _one_line(capsys, "train.batch_size 32 is larger than the 12 images")
    assert not out.exists()


def test_quick_face_study_writes_the_readable_report(synth, tmp_path):
    out = tmp_path / "out"
    recipe = tmp_path / "small_batch.yaml"
    recipe.write_text(f"extends: [{RECIPE}]\ntrain:\n  batch_size: 8\n")
    extra = ["--bin", str(synth / "synth_val.bin"), "--heads", "bce_u,softmax", "--workers", "1"]
    extra += ["--val-per-class", "1", "--fit-per-class", "5", "--seeds", "2", "--epochs", "1"]
    assert _study(synth, out, *extra, recipe=recipe) == 0
    for name in ("report.md", "claims_forest.png", "loss_curves.png", "claims.md", "table.md"):
        assert (out / name).is_file() and os.path.getsize(out / name) > 0, name
    import json

    study = json.loads((out / "study.json").read_text())
    claims = [c["claim"] for c in study["claims"]]
    assert "(5) open set, synth_val 10-fold acc" in claims
    report = (out / "report.md").read_text()
    assert "claims_forest.png" in report and "loss_curves.png" in report
    # the open-set intervals are described as the face study makes them: no class partitions
    claims_md = (out / "claims.md").read_text()
    assert "paired t interval over seeds." in claims_md and "class partition" not in claims_md


def test_a_resumed_study_accepts_its_inputs_named_relative_to_another_folder(
    synth, tmp_path, monkeypatch
):
    from facebench.errors import DataError
    from facebench.study.inputs import FaceInputs

    size = {"val_per_class": 1, "fit_per_class": 3, "targets": {}}
    data = tmp_path / "data"
    absolute = FaceInputs(str(synth), str(synth / "test.rec"), (str(synth / "synth_val.bin"),))
    split = absolute.prepare(data, size)
    monkeypatch.chdir(synth.parent)
    relative = FaceInputs("synth", "synth/test.rec", ("synth/synth_val.bin",))
    assert relative.prepare(data, size) == split
    other = FaceInputs("synth", "synth/test.rec", ("synth/synth_hard.bin",))
    with pytest.raises(DataError, match="holds data of other inputs or sizes"):
        other.prepare(data, size)
