"""Synthetic CLIP-like embeddings and loaders for embeddings stored on disk."""

from ._loaders import load_embeddings, load_npy_embeddings
from ._synthetic import make_caption_embeddings, make_vlm_embeddings

__all__ = [
    "load_embeddings",
    "load_npy_embeddings",
    "make_caption_embeddings",
    "make_vlm_embeddings",
]
