"""Image and text embeddings from CLIP models (open_clip or Hugging Face)."""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .._zero_shot import l2_normalize
from ._cache import EmbeddingCache, content_hash
from ._templates import get_templates

__all__ = ["CLIPEmbedder", "make_random_transformers_clip"]

_BACKENDS = ("open_clip", "transformers")
_PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_CACHE_VERSION = 2  # 2: weights always hashed, stable descriptions


class _Progress:
    """Minimal progress bar on stderr (uses tqdm when it is installed)."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.total, self.desc, self.enabled, self.done = total, desc, enabled, 0
        self._bar: Any = None
        if enabled:
            try:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=total, desc=desc, unit="item")
            except ImportError:
                self._bar = None
            self._write()

    def _write(self) -> None:
        if self.enabled and self._bar is None:
            sys.stderr.write(f"\r{self.desc}: {self.done}/{self.total}")
            sys.stderr.flush()

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        self._write()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            sys.stderr.write("\n")


def _require(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"This needs the optional package {module!r} ({exc}); install it with "
            f"pip install 'vilu-sklearn[{extra}]'."
        ) from exc


def _byte_vocab() -> dict[str, int]:
    """Vocabulary of a character-level CLIP tokenizer (no merges), built offline.

    Byte-level BPE maps the 256 byte values to printable characters: the
    printable ones map to themselves, the others to code points from 256 up.
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(0xA1, 0xAC + 1),
        *range(0xAE, 0xFF + 1),
    ]
    chars = [chr(b) for b in printable]
    extra = 0
    for b in range(256):
        if b not in printable:
            chars.append(chr(256 + extra))
            extra += 1
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    return vocab


def make_random_transformers_clip(
    *, dim: int = 32, image_size: int = 32, seed: int = 0
) -> tuple[Any, Any, Any]:
    """A tiny Hugging Face ``CLIPModel`` with random weights, built offline.

    Useful for tests and offline demos: no download happens. The tokenizer
    works on characters (a byte-level vocabulary without merges) and the image
    processor resizes to ``image_size`` pixels.

    Parameters
    ----------
    dim : int, default=32
        Width of both towers and of the joint embedding.
    image_size : int, default=32
        Input resolution of the vision tower.
    seed : int, default=0
        Seed of the random weights.

    Returns
    -------
    model : transformers.CLIPModel
    image_processor : transformers image processor
    tokenizer : transformers.CLIPTokenizer

    Examples
    --------
    >>> from vilu_sklearn.embed import CLIPEmbedder, make_random_transformers_clip
    >>> model, processor, tokenizer = make_random_transformers_clip()
    >>> emb = CLIPEmbedder("transformers", "random-tiny", model=model,
    ...                    preprocess=processor, tokenizer=tokenizer, device="cpu")
    >>> emb.embed_texts(["a photo of a cat."]).shape
    (1, 32)
    """
    transformers = _require("transformers", "clip")
    import torch

    vocab = _byte_vocab()
    tokenizer = transformers.CLIPTokenizer(vocab=vocab, merges=[])
    # transformers >= 5 has a PIL-only processor; older ones work with PIL anyway
    Processor: Any = (
        getattr(transformers.models.clip, "CLIPImageProcessorPil", None)
        or transformers.CLIPImageProcessor
    )
    processor = Processor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    )
    config = transformers.CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": dim,
            "intermediate_size": 2 * dim,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config={
            "hidden_size": dim,
            "intermediate_size": 2 * dim,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": max(1, image_size // 4),
        },
        projection_dim=dim,
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = transformers.CLIPModel(config).eval()
    finally:
        torch.random.set_rng_state(state)
    return model, processor, tokenizer


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
# attributes that memoise results (e.g. open_clip's SimpleTokenizer.cache): they
# grow with use and say nothing about the output
_MEMO_ATTRIBUTES = frozenset({"cache", "_cache"})


def describe(obj: Any, depth: int = 0) -> str:
    """A description of a tokenizer or transform that is the same in every process.

    ``repr`` often holds a memory address (``<... object at 0x7f...>``), which
    would make a cache key differ between processes. This describes Hugging Face
    objects by their JSON configuration or vocabulary, functions by their module,
    name and code, arrays by their content, and other objects by their type and
    attributes, recursively.

    Examples
    --------
    >>> from vilu_sklearn.embed._embedder import describe
    >>> class Tok:
    ...     def __init__(self):
    ...         self.lower = True
    >>> describe(Tok()) == describe(Tok())
    True
    """
    if depth > 6:
        return _ADDRESS.sub("", repr(obj))
    to_json = getattr(obj, "to_json_string", None)
    if callable(to_json) and not isinstance(obj, type):
        return str(to_json())
    get_vocab = getattr(obj, "get_vocab", None)
    if callable(get_vocab) and not isinstance(obj, type):
        vocab = json.dumps(sorted(get_vocab().items()), default=str)
        return f"{type(obj).__qualname__}:{hashlib.sha256(vocab.encode()).hexdigest()}"
    if obj is None or isinstance(obj, bool | int | float | str | bytes | enum.Enum):
        return repr(obj)
    if isinstance(obj, list | tuple | set | frozenset):
        items = [describe(v, depth + 1) for v in obj]
        if isinstance(obj, set | frozenset):
            items.sort()
        return f"{type(obj).__name__}[{', '.join(items)}]"
    if isinstance(obj, Mapping):
        pairs = sorted(
            f"{describe(k, depth + 1)}: {describe(v, depth + 1)}"
            for k, v in obj.items()
        )
        digest = hashlib.sha256("\n".join(pairs).encode()).hexdigest()
        return f"mapping:{len(pairs)}:{digest}"
    if isinstance(obj, functools.partial):
        return "partial" + describe((obj.func, obj.args, obj.keywords), depth + 1)
    if hasattr(obj, "__array__") and hasattr(obj, "shape"):
        arr = np.asarray(obj.detach().cpu() if hasattr(obj, "detach") else obj)
        return (
            f"array{arr.shape}{arr.dtype}:{hashlib.sha256(arr.tobytes()).hexdigest()}"
        )
    code = getattr(obj, "__code__", None)
    if (
        code is not None
        or isinstance(obj, type)
        or callable(obj)
        and not hasattr(obj, "__dict__")
    ):
        qualname = getattr(obj, "__qualname__", type(obj).__qualname__)
        name = f"{getattr(obj, '__module__', '')}.{qualname}"
        if code is not None:
            body = code.co_code + repr(code.co_consts).encode()
            name += ":" + hashlib.sha256(body).hexdigest()
        return _ADDRESS.sub("", name)
    attrs = getattr(obj, "__dict__", None)
    kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if attrs is None:
        return f"{kind}:{_ADDRESS.sub('', repr(obj))}"
    fields = {k: v for k, v in attrs.items() if k not in _MEMO_ATTRIBUTES}
    return f"{kind}({describe(fields, depth + 1)})"


def _features(out: Any) -> Any:
    """Projected features from a Hugging Face ``get_*_features`` output."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    for name in ("image_embeds", "text_embeds", "pooler_output"):
        value = getattr(out, name, None)
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"Unexpected model output of type {type(out).__name__}.")


def _to_pil(image: Any, index: int) -> Any:
    from PIL import Image

    if isinstance(image, str | os.PathLike):
        with Image.open(image) as im:
            return im.convert("RGB")
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray):
        return Image.fromarray(image).convert("RGB")
    raise TypeError(  # pragma: no cover - caught by _image_key first
        f"images[{index}] has unsupported type {type(image).__name__}."
    )


def _image_key(image: Any, index: int) -> bytes:
    if isinstance(image, str | os.PathLike):
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"images[{index}]: no such file {path!r}.")
        h = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return content_hash("file", h.digest())
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or not (
            image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))
        ):
            raise ValueError(
                f"images[{index}] must be a uint8 array of shape (H, W), (H, W, 3) "
                f"or (H, W, 4); got dtype {image.dtype} and shape {image.shape}."
            )
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        return content_hash(
            "array", str(image.shape), np.ascontiguousarray(image).tobytes()
        )
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        Image = None  # type: ignore[assignment]
    if Image is not None and isinstance(image, Image.Image):
        return content_hash("pil", image.mode, str(image.size), image.tobytes())
    raise TypeError(
        f"images[{index}] must be a file path, a PIL image or a uint8 array; got "
        f"{type(image).__name__}."
    )


class CLIPEmbedder:
    """Embed images and texts with a CLIP model, with an on-disk cache.

    One interface over two backends: `open_clip
    <https://github.com/mlfoundations/open_clip>`_ (``backend="open_clip"``,
    extra ``vilu-sklearn[open_clip]``) and Hugging Face ``transformers``
    ``CLIPModel`` (``backend="transformers"``, extra ``vilu-sklearn[clip]``).
    The model is loaded on first use. Embeddings are returned L2-normalised,
    float32.

    Parameters
    ----------
    backend : {"open_clip", "transformers"}, default="transformers"
        Library that runs the model.
    model_name : str, default=None
        open_clip architecture (e.g. ``"ViT-B-32"``) or Hugging Face model id
        (e.g. ``"openai/clip-vit-base-patch32"``). Required: with ``model`` it
        names the model in the cache key.
    pretrained : str, default=None
        open_clip pretrained tag (e.g. ``"laion2b_s34b_b79k"``); for
        transformers, an optional revision of the model repository.
    model : object, default=None
        An already-built model (open_clip ``CLIP`` or transformers
        ``CLIPModel``), e.g. with random weights for offline tests. Then
        ``preprocess`` and ``tokenizer`` are required too, and a hash of its
        weights enters the cache key.
    preprocess : callable, default=None
        With ``model``: for open_clip, a transform from a PIL image to a
        (3, H, W) tensor; for transformers, an image processor (or a
        ``CLIPProcessor``) called as ``preprocess(images=..., return_tensors="pt")``.
    tokenizer : callable, default=None
        With ``model``: for open_clip, a callable from a list of strings to a
        tensor of token ids; for transformers, a tokenizer (a callable returning
        a mapping with ``input_ids`` and optionally ``attention_mask``, or a
        tensor of ids). Defaults to ``preprocess.tokenizer`` when present.
    device : str, default="auto"
        ``"auto"`` picks CUDA, then MPS, then CPU.
    batch_size : int, default=64
        Inputs per forward pass (and per cache chunk).
    precision : {"auto", "fp32", "fp16", "bf16"}, default="auto"
        ``"auto"`` runs float16 autocast on CUDA and float32 elsewhere; float16
        needs a GPU. The precision is part of the cache key.
    cache_dir : str or path-like, default=None
        Folder of the embedding cache; ``None`` disables caching. Entries are
        keyed by backend, model name, pretrained tag, weights (for ``model``),
        preprocessing, precision and the content of each input (file bytes for
        paths, pixels for images and arrays, the string for texts).
    progress : bool, default=None
        Show a progress bar on stderr; ``None`` shows it when stderr is a
        terminal.

    Attributes
    ----------
    logit_scale : float
        The model's softmax temperature (``exp`` of its learned log-scale; 100
        for OpenAI CLIP).
    n_computed_ : int
        Number of inputs run through the model so far (cache hits excluded).

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn.embed import CLIPEmbedder, make_random_transformers_clip
    >>> model, processor, tokenizer = make_random_transformers_clip(dim=16)
    >>> emb = CLIPEmbedder("transformers", "random-tiny", model=model,
    ...                    preprocess=processor, tokenizer=tokenizer, device="cpu")
    >>> images = [np.full((40, 40, 3), v, dtype=np.uint8) for v in (0, 128, 255)]
    >>> X_img = emb.embed_images(images)
    >>> X_txt = emb.embed_class_prompts(["cat", "dog"], templates="imagenet7")
    >>> X_img.shape, X_txt.shape, X_img.dtype
    ((3, 16), (2, 16), dtype('float32'))
    >>> float(np.linalg.norm(X_img[0]))
    1.0
    """

    def __init__(
        self,
        backend: str = "transformers",
        model_name: str | None = None,
        pretrained: str | None = None,
        *,
        model: Any = None,
        preprocess: Any = None,
        tokenizer: Any = None,
        device: str = "auto",
        batch_size: int = 64,
        precision: str = "auto",
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool | None = None,
    ) -> None:
        if backend not in _BACKENDS:
            raise ValueError(
                f"backend must be one of {', '.join(map(repr, _BACKENDS))}; got "
                f"{backend!r}."
            )
        if not model_name or not isinstance(model_name, str):
            raise ValueError(
                "model_name is required (e.g. 'ViT-B-32' for open_clip or "
                "'openai/clip-vit-base-patch32' for transformers); with model=..., "
                f"it names the model in the cache key. Got {model_name!r}."
            )
        if precision not in _PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(map(repr, _PRECISIONS))}; got "
                f"{precision!r}."
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise TypeError(f"batch_size must be an int; got {batch_size!r}.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
        if model is not None and tokenizer is None:
            tokenizer = getattr(preprocess, "tokenizer", None)
        if model is not None and (preprocess is None or tokenizer is None):
            raise ValueError(
                "With model=..., pass preprocess=... and tokenizer=... too (the "
                "image transform and the text tokenizer that go with the model)."
            )
        self.backend = backend
        self.model_name = model_name
        self.pretrained = pretrained
        self.device = device
        self.batch_size = batch_size
        self.precision = precision
        self.cache_dir = cache_dir
        self.progress = progress
        self._model = model
        self._preprocess = preprocess
        self._tokenizer = tokenizer
        self._user_model = model is not None
        self._loaded = False
        self._caches: dict[str, EmbeddingCache] = {}
        self.n_computed_ = 0

    # ------------------------------------------------------------------ setup
    def _resolve_device(self) -> Any:
        import torch

        if self.device == "auto":
            if torch.cuda.is_available():
                return torch.device("cuda")
            mps = getattr(torch.backends, "mps", None)
            if mps is not None and mps.is_available():
                return torch.device("mps")
            return torch.device("cpu")
        return torch.device(self.device)

    def _load(self) -> None:
        if self._loaded:
            return
        self.device_ = self._resolve_device()
        precision = self.precision
        if precision == "auto":
            precision = "fp16" if self.device_.type == "cuda" else "fp32"
        if precision == "fp16" and self.device_.type == "cpu":
            raise ValueError(
                "precision='fp16' needs a GPU; use 'fp32' or 'bf16' on the CPU."
            )
        self.precision_ = precision
        if self._model is None:
            if self.backend == "open_clip":
                open_clip = _require("open_clip", "open_clip")
                model, _, preprocess = open_clip.create_model_and_transforms(
                    self.model_name, pretrained=self.pretrained
                )
                self._model, self._preprocess = model, preprocess
                self._tokenizer = open_clip.get_tokenizer(self.model_name)
            else:
                transformers = _require("transformers", "clip")
                kwargs = {"revision": self.pretrained} if self.pretrained else {}
                self._model = transformers.CLIPModel.from_pretrained(
                    self.model_name, **kwargs
                )
                processor = transformers.CLIPProcessor.from_pretrained(
                    self.model_name, **kwargs
                )
                self._preprocess = processor.image_processor
                self._tokenizer = processor.tokenizer
        if self.backend == "transformers" and hasattr(
            self._preprocess, "image_processor"
        ):
            self._preprocess = self._preprocess.image_processor
        self._model = self._model.to(self.device_).eval()
        self._loaded = True

    @property
    def logit_scale(self) -> float:
        """The model's softmax temperature, ``exp(model.logit_scale)``."""
        self._load()
        return float(self._model.logit_scale.detach().float().exp().cpu())

    def _weights_hash(self) -> str:
        """Fingerprint of the weights, whether the model was given or loaded.

        A name or path says nothing about the weights behind it (a new
        checkpoint at the same path, a moving hub revision), so the cache is
        keyed on the weights themselves.
        """
        h = hashlib.blake2b(digest_size=16)
        for name, tensor in sorted(self._model.state_dict().items()):
            h.update(name.encode())
            h.update(str(tuple(tensor.shape)).encode())
            h.update(tensor.detach().float().cpu().numpy().tobytes())
        return h.hexdigest()

    def _describe(self, obj: Any) -> str:
        return describe(obj)

    def _cache(self, kind: str) -> EmbeddingCache | None:
        if self.cache_dir is None:
            return None
        if kind not in self._caches:
            self._load()
            if not hasattr(self, "_weights_hash_"):
                self._weights_hash_ = self._weights_hash()
            processing = self._preprocess if kind == "image" else self._tokenizer
            namespace = {
                "version": _CACHE_VERSION,
                "kind": kind,
                "backend": self.backend,
                "model_name": self.model_name,
                "pretrained": self.pretrained,
                "weights": self._weights_hash_,
                "revision": getattr(
                    getattr(self._model, "config", None), "_commit_hash", None
                ),
                "processing": hashlib.sha256(
                    self._describe(processing).encode()
                ).hexdigest(),
                "precision": self.precision_,
            }
            self._caches[kind] = EmbeddingCache(self.cache_dir, namespace)
        return self._caches[kind]

    # ------------------------------------------------------------ forward pass
    def _autocast(self) -> Any:
        import contextlib

        import torch

        if self.precision_ == "fp32":
            return contextlib.nullcontext()
        dtype = torch.float16 if self.precision_ == "fp16" else torch.bfloat16
        return torch.autocast(device_type=self.device_.type, dtype=dtype)

    def _encode_images(self, images: list[Any]) -> np.ndarray:
        import torch

        with torch.inference_mode(), self._autocast():
            if self.backend == "open_clip":
                pixels = torch.stack([self._preprocess(im) for im in images])
                feats = self._model.encode_image(pixels.to(self.device_))
            else:
                pixels = self._preprocess(images=images, return_tensors="pt")
                pixels = pixels["pixel_values"].to(self.device_)
                feats = _features(self._model.get_image_features(pixel_values=pixels))
        return feats.float().cpu().numpy()

    def _tokenize(self, texts: list[str]) -> dict[str, Any]:
        import torch

        tok = self._tokenizer
        if self.backend == "transformers" and hasattr(tok, "get_vocab"):
            max_len = getattr(
                getattr(self._model.config, "text_config", None),
                "max_position_embeddings",
                77,
            )
            out: Any = tok(
                texts,
                padding=True,
                truncation=True,
                max_length=max_len,
                return_tensors="pt",
            )
        else:
            out = tok(texts)
        if isinstance(out, torch.Tensor):
            return {"input_ids": out.to(self.device_)}
        if isinstance(out, Mapping):
            return {
                k: v.to(self.device_) for k, v in out.items() if k != "token_type_ids"
            }
        raise TypeError(
            "tokenizer must return a tensor of token ids or a mapping with "
            f"'input_ids'; got {type(out).__name__}."
        )

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        tokens = self._tokenize(texts)
        with torch.inference_mode(), self._autocast():
            if self.backend == "open_clip":
                feats = self._model.encode_text(tokens["input_ids"])
            else:
                feats = _features(self._model.get_text_features(**tokens))
        return feats.float().cpu().numpy()

    def _run(
        self,
        items: Sequence[Any],
        keys: list[bytes],
        kind: str,
        encode: Callable[[list[Any]], np.ndarray],
    ) -> np.ndarray:
        self._load()
        cache = self._cache(kind)
        unique: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            unique.setdefault(key, i)
        ukeys = list(unique)
        found = np.zeros(len(ukeys), dtype=bool)
        result: dict[bytes, np.ndarray] = {}
        if cache is not None:
            found, emb = cache.get(ukeys)
            if emb is not None:
                for key, row in zip(
                    (k for k, f in zip(ukeys, found, strict=True) if f),
                    emb,
                    strict=True,
                ):
                    result[key] = row
        todo = [k for k, f in zip(ukeys, found, strict=True) if not f]
        show = self.progress if self.progress is not None else sys.stderr.isatty()
        bar = _Progress(len(todo), f"embedding {kind}s", bool(show) and bool(todo))
        try:
            for start in range(0, len(todo), self.batch_size):
                batch_keys = todo[start : start + self.batch_size]
                batch = [items[unique[k]] for k in batch_keys]
                feats = l2_normalize(encode(batch)).astype(np.float32, copy=False)
                self.n_computed_ += len(batch)
                if cache is not None:
                    cache.add(batch_keys, feats)
                for key, row in zip(batch_keys, feats, strict=True):
                    result[key] = row
                bar.update(len(batch))
        finally:
            bar.close()
        out = np.stack([result[k] for k in keys]).astype(np.float32, copy=False)
        return l2_normalize(out)

    # ------------------------------------------------------------- public API
    def embed_images(self, images: Iterable[Any]) -> np.ndarray:
        """Embed images given as file paths, PIL images or uint8 arrays.

        Parameters
        ----------
        images : iterable
            File paths (str or path-like), PIL images, uint8 arrays of shape
            (H, W), (H, W, 3) or (H, W, 4), or one uint8 array of shape
            (n, H, W, 3).

        Returns
        -------
        X_img : ndarray of shape (n_images, dim), float32
            L2-normalised image embeddings, in the order given.

        Examples
        --------
        >>> import numpy as np
        >>> from vilu_sklearn.embed import CLIPEmbedder, make_random_transformers_clip
        >>> model, processor, tokenizer = make_random_transformers_clip(dim=16)
        >>> emb = CLIPEmbedder("transformers", "tiny", model=model,
        ...                    preprocess=processor, tokenizer=tokenizer)
        >>> emb.embed_images(np.zeros((2, 8, 8, 3), np.uint8)).shape
        (2, 16)
        """
        if isinstance(images, np.ndarray) and images.ndim == 4:
            items: list[Any] = list(images)
        elif isinstance(images, str | os.PathLike):
            raise TypeError(
                "images must be a list of images; got a single path. Use "
                "[path] for one image, or list the files of a folder."
            )
        else:
            items = list(images)
        if not items:
            raise ValueError("images is empty; give at least one image.")
        keys = [_image_key(im, i) for i, im in enumerate(items)]

        def encode(batch: list[Any]) -> np.ndarray:
            return self._encode_images([_to_pil(im, i) for i, im in enumerate(batch)])

        return self._run(items, keys, "image", encode)

    def embed_texts(self, texts: Iterable[str]) -> np.ndarray:
        """Embed texts (prompts or captions).

        Parameters
        ----------
        texts : iterable of str

        Returns
        -------
        X_txt : ndarray of shape (n_texts, dim), float32
            L2-normalised text embeddings, in the order given.

        Examples
        --------
        >>> from vilu_sklearn.embed import CLIPEmbedder, make_random_transformers_clip
        >>> model, processor, tokenizer = make_random_transformers_clip(dim=16)
        >>> emb = CLIPEmbedder("transformers", "tiny", model=model,
        ...                    preprocess=processor, tokenizer=tokenizer)
        >>> emb.embed_texts(["a dog", "a cat"]).shape
        (2, 16)
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings; got a single string.")
        items = list(texts)
        if not items:
            raise ValueError("texts is empty; give at least one text.")
        for i, t in enumerate(items):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] must be a str; got {type(t).__name__}.")
        keys = [content_hash("text", t) for t in items]
        return self._run(items, keys, "text", self._encode_texts)

    def embed_class_prompts(
        self,
        class_names: Iterable[str],
        templates: str | Sequence[str] = ("a photo of a {}.",),
    ) -> np.ndarray:
        """One text embedding per class, averaged over prompt templates.

        Every template is filled with each class name and embedded; the
        normalised embeddings of a class are averaged and the mean is
        re-normalised (CLIP's prompt ensembling).

        Parameters
        ----------
        class_names : iterable of str
            Class names, in label order (row ``k`` is class ``k``).
        templates : str or sequence of str, default=("a photo of a {}.",)
            Templates containing ``{}``, or a named set: ``"base"``,
            ``"imagenet80"`` (the 80 CLIP ImageNet templates), ``"imagenet7"``.

        Returns
        -------
        X_txt : ndarray of shape (n_classes, dim), float32
            L2-normalised class embeddings.

        Examples
        --------
        >>> from vilu_sklearn.embed import CLIPEmbedder, make_random_transformers_clip
        >>> model, processor, tokenizer = make_random_transformers_clip(dim=16)
        >>> emb = CLIPEmbedder("transformers", "tiny", model=model,
        ...                    preprocess=processor, tokenizer=tokenizer)
        >>> emb.embed_class_prompts(["cat", "dog", "bird"], "imagenet80").shape
        (3, 16)
        """
        if isinstance(class_names, str):
            raise TypeError("class_names must be a list of strings; got one string.")
        names = list(class_names)
        if not names:
            raise ValueError("class_names is empty.")
        tmpl = get_templates(
            templates if isinstance(templates, str) else tuple(templates)
        )
        prompts = [t.format(name) for name in names for t in tmpl]
        E = self.embed_texts(prompts).reshape(len(names), len(tmpl), -1)
        return l2_normalize(E.mean(axis=1))
