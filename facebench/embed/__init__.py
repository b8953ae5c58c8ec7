"""Embedding extraction from facebench models and ONNX files; ONNX export and its check."""

from facebench.embed.embedders import OnnxEmbedder, TorchEmbedder, load_embedder
from facebench.embed.extract import embed_images

__all__ = ["OnnxEmbedder", "TorchEmbedder", "embed_images", "load_embedder"]
