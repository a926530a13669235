"""Synthetic CLIP-like embeddings, loaders and sharded stores of embeddings on disk."""

from ._loaders import load_embeddings, load_npy_embeddings
from ._shards import EmbeddingStore, ShardedArray, open_embedding_store
from ._synthetic import make_caption_embeddings, make_vlm_embeddings

__all__ = [
    "EmbeddingStore",
    "ShardedArray",
    "open_embedding_store",
    "load_embeddings",
    "load_npy_embeddings",
    "make_caption_embeddings",
    "make_vlm_embeddings",
]
