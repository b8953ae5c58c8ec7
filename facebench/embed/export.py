"""ONNX export of a backbone, checked with onnxruntime against PyTorch and with insightface."""

from __future__ import annotations

import copy
import json
import logging

import numpy as np
import torch
from torch import nn

from facebench.data.images import DEFAULT_CONVENTION, InputConvention
from facebench.data.model_input import model_input
from facebench.embed.onnx_convention import CONVENTION_METADATA_KEY, MODEL_NAME_METADATA_KEY
from facebench.errors import DataError, ModelError
from facebench.fileio import atomic_path

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "embedding"


class ConventionAdapter(nn.Module):
    """Takes InsightFace's input (RGB, (x - 127.5) / 127.5) and feeds ``module`` its own convention.

    So every exported file expects what insightface's ArcFaceONNX feeds, whatever the training
    convention was.
    """

    def __init__(self, module: nn.Module, convention: InputConvention):
        super().__init__()
        self.module = module
        self.flip = convention.color == "BGR"
        self.scale = DEFAULT_CONVENTION.std / convention.std
        self.shift = (DEFAULT_CONVENTION.mean - convention.mean) / convention.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flip:
            x = x.flip(1)
        return self.module(x * self.scale + self.shift)


def insightface_accepts(size: tuple[int, int]) -> bool:
    """Whether insightface's model zoo routes an input of ``size`` to a recognition model:
    square, a multiple of 16 and at least 112 (smaller CPU models still export for onnxruntime)."""
    height, width = size
    return height == width and height % 16 == 0 and height >= 112


def _insightface_check(path: str, size: tuple[int, int]) -> None:
    """ModelError unless insightface's model zoo routes ``path`` to a 127.5/127.5 ArcFaceONNX."""
    from insightface.model_zoo import get_model
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX

    model = get_model(path, providers=["CPUExecutionProvider"])
    if not isinstance(model, ArcFaceONNX):
        raise ModelError(
            f"{path}: insightface does not load it as a recognition model "
            f"(got {type(model).__name__}); it needs a square input, a multiple of 16, >= 112"
        )
    if (model.input_mean, model.input_std) != (127.5, 127.5) or model.input_size != size[::-1]:
        raise ModelError(
            f"{path}: insightface reads mean {model.input_mean}, std {model.input_std}, size "
            f"{model.input_size}; expected 127.5, 127.5, {size[::-1]}"
        )


def export_onnx(
    module: nn.Module,
    out_path: str,
    check_images: np.ndarray,
    convention: InputConvention = DEFAULT_CONVENTION,
    name: str = "model",
    tolerance: float = 1e-4,
    opset: int = 17,
    insightface_check: bool = True,
) -> dict:
    """Write ``module`` as ONNX (dynamic batch) to ``out_path`` if it matches PyTorch on images.

    ``check_images``: real uint8 RGB ``(N, H, W, 3)`` faces. Raises ModelError, leaving no file,
    when the largest absolute difference exceeds ``tolerance`` or insightface cannot load a
    model whose input size it supports (``result["insightface"]`` says whether it was checked).
    """
    import onnx
    import onnxruntime as ort

    images = np.asarray(check_images)
    if images.ndim != 4 or len(images) == 0 or images.dtype != np.uint8:
        raise DataError(f"export check: need uint8 (N, H, W, 3) images, got {images.shape}")
    cpu_module = copy.deepcopy(module).float().cpu().eval()
    wrapped = (
        cpu_module
        if convention == DEFAULT_CONVENTION
        else ConventionAdapter(cpu_module, convention)
    ).eval()  # a new wrapper starts in train mode, and the exporter restores the mode it found
    onnx_conv = InputConvention("RGB", 127.5, 127.5, convention.size)
    with atomic_path(out_path, suffix=".onnx") as tmp:
        example = model_input(torch.from_numpy(images[:2]), onnx_conv)
        with torch.no_grad():
            torch.onnx.export(
                wrapped,
                (example,),
                tmp,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset,
                dynamo=False,
            )
        graph = onnx.load(tmp)
        for key, value in {
            CONVENTION_METADATA_KEY: json.dumps(onnx_conv.to_dict()),
            MODEL_NAME_METADATA_KEY: name,
            "facebench.training_convention": json.dumps(convention.to_dict()),
        }.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(graph)
        onnx.save(graph, tmp)

        with torch.no_grad():
            expected = cpu_module(model_input(torch.from_numpy(images), convention)).numpy()
        session = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
        blob = model_input(torch.from_numpy(images), onnx_conv).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: blob})[0]
        single = session.run([OUTPUT_NAME], {INPUT_NAME: blob[:1]})[0]
        max_diff = float(max(np.abs(got - expected).max(), np.abs(single - expected[:1]).max()))
        log.debug(
            "onnxruntime vs PyTorch on %d images: max abs difference %.3g", len(images), max_diff
        )
        if not max_diff <= tolerance:
            raise ModelError(
                f"{out_path}: onnxruntime differs from PyTorch by {max_diff:.3g} "
                f"(> {tolerance:g}; outputs up to {np.abs(expected).max():.3g}); nothing written"
            )
        insightface = insightface_check and insightface_accepts(convention.size)
        if insightface:
            _insightface_check(tmp, convention.size)
    return {
        "path": str(out_path),
        "max_abs_diff": max_diff,
        "images": len(images),
        "opset": opset,
        "convention": onnx_conv.to_dict(),
        "insightface": insightface,
    }


def check_images(
    convention: InputConvention,
    pack: str | None = None,
    bin_path: str | None = None,
    count: int = 16,
) -> np.ndarray:
    """Real faces to check an export on: the first ``count`` of a pack or bin if given, else the
    insightface sample photos aligned to the convention's size (sizes the alignment template
    does not support, such as 56 px or non-square inputs: the 112-px crops resized)."""
    import itertools

    from facebench.embed.sources import open_source

    if pack or bin_path:
        source = open_source(pack=pack, bin_path=bin_path)
        source.expected_size = convention.size
        return np.stack(list(itertools.islice(iter(source), count)))
    import cv2

    from facebench.data.align import insightface_sample_faces, template_sizes_include

    height, width = convention.size
    if height == width and template_sizes_include(height):
        return insightface_sample_faces(height)
    faces = insightface_sample_faces(112)
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in faces])


def export_artifact(
    model_path: str,
    onnx_path: str,
    pack: str | None = None,
    bin_path: str | None = None,
    count: int = 16,
    tolerance: float = 1e-4,
    opset: int = 17,
) -> dict:
    """Export a facebench ``model.pt`` to ONNX, checked on real images (see :func:`export_onnx`)."""
    from facebench.models.artifact import load_model_artifact

    if not str(onnx_path).endswith(".onnx"):
        raise DataError(f"{onnx_path}: the ONNX file name must end in .onnx")
    module, info = load_model_artifact(model_path, "cpu")
    images = check_images(info["convention"], pack, bin_path, count)
    return export_onnx(
        module,
        onnx_path,
        images,
        convention=info["convention"],
        name=info["name"],
        tolerance=tolerance,
        opset=opset,
    )
