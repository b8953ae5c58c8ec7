"""The head registry: a head declared in one class is built by name with its declared defaults."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch

import facebench.heads
from facebench.errors import ConfigError
from facebench.heads import HEADS, build_head, head_parameters, register_head
from facebench.heads.bce import BCEHead
from facebench.heads.params import POSITIVE, allowed


@pytest.fixture
def sphere_bce():
    """The docs/extending.md example, registered for one test."""

    @register_head("sphere_bce_test")
    class SphereBCEHead(BCEHead):
        """Unified-bias BCE with SphereFace's multiplicative margin cos(m θ_y), m = 1.5."""

        bias_mode = "unified"
        margin_type = "multiplicative"
        margin = 1.5

    try:
        yield SphereBCEHead
    finally:
        del HEADS["sphere_bce_test"]


def test_a_declared_head_is_built_by_name_with_its_defaults(sphere_bce):
    head = build_head("sphere_bce_test", 4, 6, scale=8.0)
    assert isinstance(head, sphere_bce) and head.name == "sphere_bce_test"
    assert head.margin == 1.5 and head.margin_type == "multiplicative"
    assert head.bias_mode == "unified" and head.bias.dim() == 0
    assert head_parameters("sphere_bce_test")["margin"] == 1.5
    # the same loss as bce_u told the same settings
    twin = build_head("bce_u", 4, 6, scale=8.0, margin=1.5, margin_type="multiplicative")
    twin.load_full_state_dict(head.full_state_dict())
    x, y = torch.randn(5, 4), torch.tensor([0, 5, 2, 2, 1])
    assert head(x, y).item() == twin(x, y).item()


def test_registering_a_name_twice_is_refused(sphere_bce):
    with pytest.raises(ValueError, match="registered twice"):
        register_head("sphere_bce_test")(sphere_bce)


def test_head_parameters_are_the_declared_defaults():
    assert head_parameters("cosface") == {"scale": 64.0, "margin": 0.4, "sample_ratio": 1.0}
    assert head_parameters("arcface")["margin"] == 0.5
    assert head_parameters("softmax")["normalized"] is False
    assert "bias_init" not in head_parameters("bce_zero")
    with pytest.raises(ConfigError, match="known heads: adaface, arcface, bce_d"):
        head_parameters("nohead")


def test_margin_type_is_a_parameter_of_the_bce_heads():
    head = build_head("bce_u", 4, 5, margin=0.5, margin_type="angular")
    cosine = torch.tensor([0.3, -0.99], dtype=torch.float64)
    # cos(θ + m) inside (0, π − m), cos θ − m sin m past it, as ArcFace (float64: rtol 1e-7)
    expected = [math.cos(math.acos(0.3) + 0.5), -0.99 - 0.5 * math.sin(0.5)]
    torch.testing.assert_close(head.margin_fn(cosine, head.margin).tolist(), expected)


def test_a_new_parameter_brings_its_range_on_the_class():
    with pytest.raises(TypeError, match="parameters gamma have no entry in ranges"):

        class Unranged(BCEHead):
            params = (*BCEHead.params, "gamma")

    class Ranged(BCEHead):
        params = (*BCEHead.params, "gamma")
        ranges = allowed(gamma=POSITIVE)
        gamma = 1.0

    assert Ranged.ranges["gamma"] is POSITIVE and Ranged.ranges["neg_weight"] is POSITIVE
    with pytest.raises(ConfigError, match=r"gamma=-1 is outside the allowed range \(0, inf\)"):
        Ranged(4, 5, gamma=-1)


def test_every_module_of_the_package_registers_its_heads():
    """A head file dropped into facebench/heads/ is registered by importing the package."""
    declared = set()
    for path in Path(facebench.heads.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                for decorator in node.decorator_list:
                    if (
                        isinstance(decorator, ast.Call)
                        and getattr(decorator.func, "id", None) == "register_head"
                    ):
                        declared.add(decorator.args[0].value)
    assert declared and declared == set(HEADS)
