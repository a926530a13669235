"""Image and text embeddings from CLIP models, with an on-disk cache.

Needs the optional extra ``vilu-sklearn[clip]`` (Hugging Face transformers) or
``vilu-sklearn[open_clip]``; importing this subpackage does not import either.
"""

from ._embedder import CLIPEmbedder, make_random_transformers_clip
from ._templates import IMAGENET_TEMPLATES, IMAGENET_TEMPLATES_SHORT, get_templates

__all__ = [
    "CLIPEmbedder",
    "IMAGENET_TEMPLATES",
    "IMAGENET_TEMPLATES_SHORT",
    "get_templates",
    "make_random_transformers_clip",
]
