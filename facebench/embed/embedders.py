"""Embedders: ``.embed(uint8 NHWC RGB) -> float32 (N, d)`` over a torch module or an ONNX file."""

from __future__ import annotations

import logging
import os

import numpy as np
import torch

from facebench.data.images import DEFAULT_CONVENTION, InputConvention
from facebench.data.model_input import model_input
from facebench.embed.onnx_convention import (
    MODEL_NAME_METADATA_KEY,
    check_onnx_input,
    detect_onnx_convention,
)
from facebench.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

#: Names accepted for ``precision`` and the autocast dtype each one means (None: float32).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class TorchEmbedder:
    """A PyTorch backbone run in eval mode; ``amp_dtype`` (bf16/fp16) runs it under autocast.

    Each :meth:`embed` switches the module to eval mode and back to the mode it found it in,
    also when the forward pass raises, so a live training backbone can be evaluated;
    ``channels_last`` feeds it NHWC-laid-out batches (for a module trained that way)."""

    def __init__(
        self,
        module: torch.nn.Module,
        convention: InputConvention = DEFAULT_CONVENTION,
        device: str = "cpu",
        amp_dtype: torch.dtype | None = None,
        name: str = "torch",
        channels_last: bool = False,
    ):
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.module = module.to(self.device)
        self.convention = convention
        self.amp_dtype = amp_dtype
        self.name = name

    @torch.inference_mode()
    def embed(self, rgb: np.ndarray) -> np.ndarray:
        """Embeddings (not normalized) of a uint8 RGB ``(N, H, W, 3)`` batch."""
        batch = model_input(
            _uint8_tensor(rgb, self.device), self.convention, channels_last=self.channels_last
        )
        modes = [(m, m.training) for m in self.module.modules()]
        self.module.eval()
        try:
            with torch.autocast(
                self.device.type,
                dtype=self.amp_dtype or torch.float32,
                enabled=self.amp_dtype is not None,
            ):
                out = self.module(batch)
        finally:
            for m, training in modes:
                m.training = training
        return out.float().cpu().numpy()


class OnnxEmbedder:
    """An ONNX recognition model run by onnxruntime (NCHW float input, one ``(N, d)`` output)."""

    def __init__(
        self,
        path: str,
        convention: InputConvention | None = None,
        device: str = "cpu",
    ):
        import onnxruntime as ort

        self.path = str(path)
        self.convention = convention or detect_onnx_convention(self.path)
        providers = _onnx_providers(device, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(self.path, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{self.path}: onnxruntime cannot load the model ({exc})") from exc
        stored = self.session.get_modelmeta().custom_metadata_map
        self.name = (
            stored.get(MODEL_NAME_METADATA_KEY) or os.path.splitext(os.path.basename(self.path))[0]
        )
        inp = self.session.get_inputs()[0]
        check_onnx_input(self.path, inp.shape, inp.type, self.convention)
        self.input_name = inp.name
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        self.output_name = self.session.get_outputs()[0].name

    def embed(self, rgb: np.ndarray) -> np.ndarray:
        """Embeddings (not normalized) of a uint8 RGB ``(N, H, W, 3)`` batch."""
        blob = model_input(_uint8_tensor(rgb, "cpu"), self.convention).numpy()
        if self.fixed_batch is None or self.fixed_batch == len(blob):
            return self._run(blob)
        if self.fixed_batch != 1:
            raise ModelError(f"{self.path}: model has a fixed batch of {self.fixed_batch}")
        return np.concatenate([self._run(blob[i : i + 1]) for i in range(len(blob))])

    def _run(self, blob: np.ndarray) -> np.ndarray:
        out = self.session.run([self.output_name], {self.input_name: blob})[0]
        return np.asarray(out, dtype=np.float32).reshape(len(blob), -1)


def _uint8_tensor(rgb: np.ndarray, device) -> torch.Tensor:
    """A uint8 NHWC array as a tensor on ``device``; on the CPU it shares a contiguous, writable
    array's memory (a read-only one, such as a memory-mapped file, is copied)."""
    array = np.asarray(rgb)
    if not (array.flags.c_contiguous and array.flags.writeable):
        array = np.array(array, order="C")
    return torch.as_tensor(array, device=device)


def _onnx_providers(device: str, available: list[str]) -> list[str]:
    """onnxruntime providers for a torch-style device string."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise ConfigError(f"device {device!r}: onnxruntime has no CUDAExecutionProvider here")
        index = device.partition(":")[2]
        if index and not index.isdigit():
            raise ConfigError(f"device {device!r}: expected 'cuda' or 'cuda:N'")
        options = {"device_id": int(index)} if index else {}
        return [("CUDAExecutionProvider", options), "CPUExecutionProvider"]
    raise ConfigError(f"device {device!r}: ONNX models run on 'cpu' or 'cuda'")


def load_embedder(
    path: str,
    device: str = "cpu",
    convention: InputConvention | None = None,
    precision: str = "fp32",
):
    """A facebench ``model.pt`` -> TorchEmbedder, an ``.onnx`` file -> OnnxEmbedder."""
    path = str(path)
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if not os.path.isfile(path):
        raise ModelError(f"{path}: model file not found")
    if path.endswith(".onnx"):
        if precision != "fp32":
            raise ConfigError(f"{path}: ONNX models run in fp32 here (precision {precision!r})")
        return OnnxEmbedder(path, convention=convention, device=device)
    if not path.endswith(".pt"):
        raise ModelError(f"{path}: expected a facebench model artifact (.pt) or an ONNX (.onnx)")
    from facebench.models.artifact import load_model_artifact

    module, info = load_model_artifact(path, device)
    if convention is None:
        stored = info.get("convention", DEFAULT_CONVENTION)
        convention = (
            stored if isinstance(stored, InputConvention) else (InputConvention.from_dict(stored))
        )
    name = info.get("name") or os.path.splitext(os.path.basename(path))[0]
    return TorchEmbedder(module, convention, device, PRECISIONS[precision], name=str(name))
