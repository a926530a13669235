"""Prompt templates for zero-shot classification with CLIP-like models."""

from __future__ import annotations

__all__ = ["IMAGENET_TEMPLATES", "IMAGENET_TEMPLATES_SHORT", "get_templates"]

# The 80 prompt templates used for ImageNet zero-shot evaluation with CLIP
# (Radford et al., 2021); ``{}`` is replaced by the class name.
IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)

# A 7-template subset of the above, reported by CLIP's authors to work about as
# well as all 80 on ImageNet.
IMAGENET_TEMPLATES_SHORT: tuple[str, ...] = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)

_NAMED = {
    "base": ("a photo of a {}.",),
    "imagenet": IMAGENET_TEMPLATES,
    "imagenet80": IMAGENET_TEMPLATES,
    "imagenet7": IMAGENET_TEMPLATES_SHORT,
}


def get_templates(templates: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Resolve a template set by name, or validate a sequence of templates.

    Parameters
    ----------
    templates : str or sequence of str
        ``"base"`` (``"a photo of a {}."``), ``"imagenet"`` / ``"imagenet80"``
        (the 80 CLIP ImageNet templates), ``"imagenet7"`` (a 7-template subset),
        or templates that each contain ``{}`` exactly once.

    Returns
    -------
    templates : tuple of str

    Examples
    --------
    >>> from vilu_sklearn.embed import get_templates
    >>> len(get_templates("imagenet80"))
    80
    >>> get_templates(["a photo of a {}, a type of pet."])
    ('a photo of a {}, a type of pet.',)
    """
    if isinstance(templates, str):
        if templates in _NAMED:
            return _NAMED[templates]
        if "{}" not in templates:
            raise ValueError(
                f"templates={templates!r} is neither a known set "
                f"({', '.join(sorted(_NAMED))}) nor a template containing '{{}}'."
            )
        templates = (templates,)
    out = tuple(templates)
    if not out:
        raise ValueError("templates is empty; give at least one template.")
    for t in out:
        if not isinstance(t, str) or t.count("{}") != 1:
            raise ValueError(
                f"every template must be a string containing '{{}}' exactly once "
                f"(where the class name goes); got {t!r}."
            )
    return out
