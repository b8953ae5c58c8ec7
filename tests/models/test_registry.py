"""The backbone registry: names, options, errors, and the output contract of every backbone."""

import copy

import pytest
import torch

from facebench.errors import ConfigError
from facebench.models import backbone_options, build_backbone, list_backbones, register_backbone

# (name, input size, extra kwargs) kept small so a CPU forward pass is quick
SMALL_CASES = [
    ("iresnet18", 112, {}),
    ("mobilefacenet", 112, {}),
    ("mobilefacenet", 112, {"scale": 2, "blocks": [1, 1, 1, 1]}),
    ("tiny_face", 112, {}),
    ("tiny_face", 28, {}),
    ("small_resnet", 28, {}),
    ("small_resnet", 40, {"widths": [8, 16], "blocks": [2, 1]}),
]


def test_every_published_backbone_is_registered():
    names = set(list_backbones())
    expected = {f"iresnet{d}" for d in (18, 34, 50, 100, 200)}
    assert expected | {"mobilefacenet", "small_resnet", "tiny_face"} <= names


@pytest.mark.parametrize(("name", "size", "kwargs"), SMALL_CASES)
def test_backbone_maps_images_to_embeddings(name, size, kwargs):
    torch.manual_seed(0)
    model = build_backbone(name, embedding_size=24, **kwargs).eval()
    x = torch.rand(3, 3, size, size) * 2 - 1
    with torch.no_grad():
        out = model(x)
    assert out.shape == (3, 24)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # eval mode: each row depends only on its own image (no batch statistics). Compared in
    # float64, where another batch size only reorders sums: at most 4608 products (3x3x512)
    # per sum, sqrt(4608) * 2.2e-16 = 1.5e-14 relative per layer over about 50 layers, so
    # 1e-9 leaves a 1000-fold room for the layers' conditioning
    model64 = copy.deepcopy(model).double()
    with torch.no_grad():
        out64, single64 = model64(x.double()), model64(x[1:2].double())
    torch.testing.assert_close(single64[0], out64[1], rtol=1e-9, atol=1e-9)
    # not normalized, and different images give different embeddings
    assert not torch.allclose(out.norm(dim=1), torch.ones(3))
    assert not torch.allclose(out[0], out[2])


def test_backbone_trains_in_train_mode():
    model = build_backbone("tiny_face", embedding_size=8, widths=[4, 8], blocks=[1, 1]).train()
    out = model(torch.rand(4, 3, 32, 32) * 2 - 1)
    out.square().sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_unknown_backbone_names_it_and_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"'iresnet51'.*iresnet50"):
        build_backbone("iresnet51")


def test_unknown_option_names_it():
    with pytest.raises(ConfigError, match=r"'iresnet50' has no option 'dropuot'"):
        build_backbone("iresnet50", dropuot=0.1)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "512", True])
def test_bad_embedding_size_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="embedding_size"):
        build_backbone("tiny_face", embedding_size=bad)


def test_bad_stage_lists_are_config_errors():
    with pytest.raises(ConfigError, match="small_resnet"):
        build_backbone("small_resnet", widths=[8, 16], blocks=[1])
    with pytest.raises(ConfigError, match="mobilefacenet"):
        build_backbone("mobilefacenet", blocks=[1, 2, 3])


def test_options_list_the_factory_defaults():
    options = backbone_options("iresnet50")
    assert options == {"embedding_size": 512, "dropout": 0.0, "zero_init_residual": False}


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="twice"):
        register_backbone("iresnet50")(lambda embedding_size=512: None)


def test_iresnet_layer_names_match_insightface():
    state = build_backbone("iresnet18").state_dict()
    for key in (
        "conv1.weight",
        "prelu.weight",
        "layer1.0.bn1.running_mean",
        "layer2.0.downsample.0.weight",
        "layer4.1.conv2.weight",
        "bn2.weight",
        "fc.weight",
        "features.running_var",
    ):
        assert key in state
    assert state["fc.weight"].shape == (512, 512 * 7 * 7)


def test_names_sort_by_depth():
    names = list_backbones()
    depths = [n for n in names if n.startswith("iresnet")]
    assert depths == ["iresnet18", "iresnet34", "iresnet50", "iresnet100", "iresnet200"]
