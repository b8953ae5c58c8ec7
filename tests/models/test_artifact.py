"""model.pt artifacts: round trip, atomic writes, and clear errors for bad files."""

import numpy as np
import pytest
import torch
from torch import nn

from facebench.data.images import InputConvention
from facebench.errors import ModelError, WriteError
from facebench.models import artifact as artifact_module
from facebench.models import build_backbone
from facebench.models.artifact import (
    load_head_from_artifact,
    load_model_artifact,
    read_artifact,
    save_model_artifact,
)

KWARGS = {"widths": [4, 8], "blocks": [1, 1]}
CONVENTION = InputConvention(color="BGR", mean=127.5, std=128.0, size=(32, 32))


def _trained_backbone() -> nn.Module:
    """A small backbone with non-default weights and BN statistics."""
    torch.manual_seed(1)
    model = build_backbone("tiny_face", embedding_size=6, **KWARGS).train()
    for _ in range(2):
        model(torch.rand(5, 3, 32, 32) * 2 - 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model


def _images() -> torch.Tensor:
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1


@pytest.fixture
def saved(tmp_path):
    model = _trained_backbone()
    path = tmp_path / "model.pt"
    metadata = {"learned_threshold": np.float32(0.25), "recipe": "synthetic_bce", "steps": 7}
    save_model_artifact(
        path, model, "tiny_face", {**KWARGS, "embedding_size": 6}, CONVENTION, metadata
    )
    return path, model


def test_round_trip_gives_the_same_embeddings(saved):
    path, model = saved
    loaded, info = load_model_artifact(path, device="cpu")
    assert not loaded.training
    with torch.no_grad():
        expected = model.eval()(_images())
        got = loaded(_images())
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert info["name"] == "tiny_face"
    assert info["kwargs"] == KWARGS
    assert info["embedding_size"] == 6
    assert info["convention"] == CONVENTION
    assert info["metadata"] == {"learned_threshold": 0.25, "recipe": "synthetic_bce", "steps": 7}
    assert type(info["metadata"]["learned_threshold"]) is float
    assert info["has_head"] is False
    assert load_head_from_artifact(path) is None


def test_saving_keeps_the_training_mode(tmp_path):
    model = _trained_backbone()
    save_model_artifact(tmp_path / "m.pt", model, "tiny_face", KWARGS, CONVENTION, {})
    assert model.training


def test_artifact_loads_with_weights_only(saved):
    path, _ = saved
    payload = torch.load(path, weights_only=True)
    assert payload["backbone"] == "tiny_face"
    assert all(t.device.type == "cpu" for t in payload["state_dict"].values())


def test_overwrite_is_atomic_when_writing_fails(saved, monkeypatch):
    path, model = saved
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(artifact_module.torch, "save", broken_save)
    with pytest.raises(WriteError, match=r"model\.pt: cannot write \(No space left on device\)"):
        save_model_artifact(path, model, "tiny_face", KWARGS, CONVENTION, {})
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]


def test_wrong_embedding_size_in_kwargs_is_refused(tmp_path):
    with pytest.raises(ModelError, match="embedding_size=9"):
        save_model_artifact(
            tmp_path / "m.pt",
            _trained_backbone(),
            "tiny_face",
            {**KWARGS, "embedding_size": 9},
            CONVENTION,
            {},
        )


def test_convention_the_backbone_cannot_take_is_refused(tmp_path):
    model = build_backbone("iresnet18", embedding_size=4)
    with pytest.raises(ModelError, match=r"does not take \(32, 32\)"):
        save_model_artifact(tmp_path / "m.pt", model, "iresnet18", {}, CONVENTION, {})


def test_unstorable_metadata_names_the_key(tmp_path):
    with pytest.raises(ModelError, match=r"metadata\.when"):
        save_model_artifact(
            tmp_path / "m.pt",
            _trained_backbone(),
            "tiny_face",
            KWARGS,
            CONVENTION,
            {"when": object()},
        )
    assert list(tmp_path.iterdir()) == []


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match=r"nothere\.pt: model artifact not found"):
        load_model_artifact(tmp_path / "nothere.pt")


def test_truncated_file(saved):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"model\.pt: not a readable model artifact"):
        load_model_artifact(path)


def test_garbage_file(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelError, match=r"junk\.pt: not a readable"):
        load_model_artifact(path)


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_pickle_with_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "facebench-model", "x": _Evil()}, path)
    with pytest.raises(ModelError, match=r"evil\.pt: not a readable"):
        load_model_artifact(path)
    assert "code ran" not in capsys.readouterr().out


def test_plain_state_dict_is_not_an_artifact(tmp_path):
    path = tmp_path / "backbone.pth"
    torch.save(_trained_backbone().state_dict(), path)
    with pytest.raises(ModelError, match=r"backbone\.pth: not a facebench model artifact"):
        load_model_artifact(path)


def _rewrite(path, **changes):
    payload = read_artifact(path)
    payload.update(changes)
    torch.save(payload, path)


def test_future_version_is_refused(saved):
    path, _ = saved
    _rewrite(path, format_version=99)
    with pytest.raises(ModelError, match="format version 99"):
        load_model_artifact(path)


def test_missing_entry_is_named(saved):
    path, _ = saved
    payload = read_artifact(path)
    del payload["convention"]
    torch.save(payload, path)
    with pytest.raises(ModelError, match="no 'convention' entry"):
        load_model_artifact(path)


def test_unknown_backbone_in_artifact(saved):
    path, _ = saved
    _rewrite(path, backbone="resnet9000")
    with pytest.raises(ModelError, match=r"model\.pt: cannot rebuild backbone 'resnet9000'"):
        load_model_artifact(path)


def test_weights_that_do_not_fit(saved):
    path, _ = saved
    _rewrite(path, backbone_kwargs={"widths": [4, 16], "blocks": [1, 1]})
    with pytest.raises(ModelError, match="cannot rebuild backbone 'tiny_face'"):
        load_model_artifact(path)


class _FakeHead(nn.Module):
    """Stands in for a facebench head: a weight matrix and a bias."""

    def __init__(self, embedding_size, num_classes, scale):
        super().__init__()
        self.scale = scale
        self.weight = nn.Parameter(torch.zeros(num_classes, embedding_size))
        self.bias = nn.Parameter(torch.zeros(1))


def test_head_round_trip_through_build_head(tmp_path, monkeypatch):
    import facebench.heads

    built = []

    def fake_build_head(name, embedding_size, num_classes, **params):
        built.append((name, embedding_size, num_classes, params))
        return _FakeHead(embedding_size, num_classes, **params)

    monkeypatch.setattr(facebench.heads, "build_head", fake_build_head, raising=False)
    source = _FakeHead(6, 3, scale=32.0)
    with torch.no_grad():
        source.weight.normal_()
        source.bias.fill_(-4.5)
    head = {
        "name": "bce_u",
        "embedding_size": 6,
        "num_classes": 3,
        "params": {"scale": np.float64(32.0)},
        "state_dict": source.state_dict(),
    }
    path = tmp_path / "m.pt"
    save_model_artifact(path, _trained_backbone(), "tiny_face", KWARGS, CONVENTION, {}, head=head)
    assert load_model_artifact(path)[1]["has_head"] is True
    rebuilt = load_head_from_artifact(path)
    assert built == [("bce_u", 6, 3, {"scale": 32.0})]
    assert not rebuilt.training
    assert torch.equal(rebuilt.weight, source.weight)  # stored and read back: the same bits
    assert rebuilt.bias.item() == -4.5


def test_incomplete_head_dict_is_refused(tmp_path):
    with pytest.raises(ModelError, match="head dict lacks num_classes, params"):
        save_model_artifact(
            tmp_path / "m.pt",
            _trained_backbone(),
            "tiny_face",
            KWARGS,
            CONVENTION,
            {},
            head={"name": "x", "embedding_size": 6, "state_dict": {}},
        )


def test_real_head_round_trip(tmp_path):
    from facebench.heads import build_head

    torch.manual_seed(3)
    head = build_head("bce_u", 6, 5)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(torch.randn_like(p))
    state = {**head.spec, "state_dict": head.full_state_dict()}
    path = tmp_path / "m.pt"
    save_model_artifact(path, _trained_backbone(), "tiny_face", KWARGS, CONVENTION, {}, head=state)
    rebuilt = load_head_from_artifact(path)
    embeddings = torch.randn(4, 6)
    with torch.no_grad():
        # the same weights through the same kernels in this process: the same bits
        assert torch.equal(rebuilt.scores(embeddings), head.eval().scores(embeddings))
    assert rebuilt.decision_threshold() == head.decision_threshold()


def test_head_that_does_not_fit_its_state(tmp_path):
    from facebench.heads import build_head

    head = build_head("bce_u", 6, 5)
    state = {**head.spec, "num_classes": 7, "state_dict": head.full_state_dict()}
    path = tmp_path / "m.pt"
    save_model_artifact(path, _trained_backbone(), "tiny_face", KWARGS, CONVENTION, {}, head=state)
    with pytest.raises(ModelError, match=r"m\.pt: cannot rebuild head 'bce_u'"):
        load_head_from_artifact(path)


def test_ddp_wrapper_is_unwrapped(tmp_path):
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.skip("a process group is already set up in this process")
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        model = _trained_backbone()
        wrapped = nn.parallel.DistributedDataParallel(model)
        save_model_artifact(tmp_path / "m.pt", wrapped, "tiny_face", KWARGS, CONVENTION, {})
    finally:
        dist.destroy_process_group()
    loaded, _ = load_model_artifact(tmp_path / "m.pt")
    with torch.no_grad():
        # the same weights through the same kernels in this process: the same bits
        assert torch.equal(loaded(_images()), model.eval()(_images()))
