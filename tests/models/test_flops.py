"""The MAC counter: a hand-made loop reference, torch's own FLOP counter, and published figures."""

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from facebench.models import build_backbone
from facebench.models.flops import backbone_macs, count_macs, macs_table


def _reference_conv_macs(conv: nn.Conv2d, height: int, width: int) -> int:
    """Slow reference: visit every output pixel and tap, count taps that multiply an input."""
    kh, kw = conv.kernel_size
    sh, sw = conv.stride
    ph, pw = conv.padding
    out_h = (height + 2 * ph - kh) // sh + 1
    out_w = (width + 2 * pw - kw) // sw + 1
    per_group_in = conv.in_channels // conv.groups
    macs = 0
    for _ in range(conv.out_channels):
        for _y in range(out_h):
            for _x in range(out_w):
                for _c in range(per_group_in):
                    for _i in range(kh):
                        for _j in range(kw):
                            macs += 1  # padded taps are multiplied too, as in every counter
    return macs


def test_small_net_matches_the_loop_reference():
    conv_a = nn.Conv2d(3, 4, 3, stride=2, padding=1)
    conv_b = nn.Conv2d(4, 8, 3, padding=1, groups=4, bias=False)
    linear = nn.Linear(8 * 5 * 5, 7)
    model = nn.Sequential(
        conv_a, nn.BatchNorm2d(4), nn.PReLU(4), conv_b, nn.Flatten(), linear, nn.BatchNorm1d(7)
    )
    count = count_macs(model, (10, 9))
    expected_conv = _reference_conv_macs(conv_a, 10, 9) + _reference_conv_macs(conv_b, 5, 5)
    assert count.by_kind["Conv2d"] == expected_conv
    assert count.by_kind["Linear"] == 8 * 5 * 5 * 7
    assert count.macs == expected_conv + 8 * 5 * 5 * 7
    assert count.by_kind["BatchNorm2d"] == count.by_kind["PReLU"] == 4 * 5 * 5
    assert count.elementwise == 2 * 4 * 5 * 5 + 7
    assert count.flops == 2 * count.macs
    assert count.params == sum(p.numel() for p in model.parameters())


def test_counting_leaves_the_model_as_it_was():
    model = build_backbone("tiny_face", embedding_size=8, widths=[4, 8], blocks=[1, 1]).train()
    first = count_macs(model, (32, 32))
    assert model.training
    assert count_macs(model, (32, 32)) == first  # hooks removed: nothing counted twice


@pytest.mark.parametrize(
    ("name", "size", "kwargs"),
    [
        ("mobilefacenet", 112, {}),
        ("mobilefacenet", 112, {"scale": 2}),
        ("tiny_face", 112, {}),
        ("small_resnet", 28, {}),
        ("iresnet18", 112, {}),
    ],
)
def test_agrees_with_torch_flop_counter(name, size, kwargs):
    with torch.device("meta"):
        model = build_backbone(name, **kwargs).eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, size, size, device="meta"))
    assert backbone_macs(name, input_size=size, **kwargs).macs * 2 == counter.get_total_flops()


# Published figures: insightface's model zoo and arcface_torch README tables (iresnet50 6.3 /
# iresnet100 12.1 GMACs, 43.6 / 65.2 M params; MobileFaceNet 0.449 GFLOPs, 0.993 M params; "mbf"
# 0.45 GMACs). They are not exact counts of these graphs: the tools behind them count BN, PReLU,
# bias adds and the FC differently (or not at all) and round to 2-3 digits, so rel= is the size
# of that convention gap, not floating-point rounding (our counts are integers).
@pytest.mark.parametrize(
    ("name", "kwargs", "gmacs"),
    [
        ("iresnet50", {}, 6.3),
        ("iresnet100", {}, 12.1),
        ("mobilefacenet", {"embedding_size": 128}, 0.449 / 2),  # zoo: 0.449 GFLOPs
        ("mobilefacenet", {"scale": 2}, 0.45),  # arcface_torch "mbf"
    ],
)
def test_published_macs(name, kwargs, gmacs):
    assert backbone_macs(name, **kwargs).macs / 1e9 == pytest.approx(gmacs, rel=0.03)


@pytest.mark.parametrize(
    ("name", "kwargs", "mparams"),
    [
        ("iresnet50", {}, 43.6),
        ("iresnet100", {}, 65.2),
        ("mobilefacenet", {"embedding_size": 128}, 0.993),
    ],
)
def test_published_parameter_counts(name, kwargs, mparams):
    assert backbone_macs(name, **kwargs).params / 1e6 == pytest.approx(mparams, rel=0.015)


def test_table_rows_hold_the_counts():
    table = macs_table(["tiny_face", "small_resnet"], input_size=28).splitlines()
    assert table[0].startswith("| backbone | params (M) | GMACs at 28x28")
    count = backbone_macs("small_resnet", input_size=28)
    assert table[3] == (
        f"| small_resnet | {count.params / 1e6:.2f} | {count.macs / 1e9:.3f} "
        f"| {2 * count.macs / 1e9:.3f} | {count.elementwise / 1e6:.1f} |"
    )
