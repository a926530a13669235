"""Tests of CLIPEmbedder (both backends, random weights, offline) and its cache."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from vilu_sklearn.embed import (
    IMAGENET_TEMPLATES,
    IMAGENET_TEMPLATES_SHORT,
    CLIPEmbedder,
    get_templates,
)
from vilu_sklearn.embed._cache import EmbeddingCache, content_hash

HAS_HF = all(importlib.util.find_spec(m) for m in ("transformers", "PIL"))
HAS_OPEN_CLIP = all(importlib.util.find_spec(m) for m in ("open_clip", "PIL"))
needs_hf = pytest.mark.skipif(not HAS_HF, reason="transformers/pillow not installed")
needs_oc = pytest.mark.skipif(
    not HAS_OPEN_CLIP, reason="open_clip not installed (pip install open_clip_torch)"
)


def test_templates():
    assert len(IMAGENET_TEMPLATES) == 80 and len(set(IMAGENET_TEMPLATES)) == 80
    assert set(IMAGENET_TEMPLATES_SHORT) <= set(IMAGENET_TEMPLATES)
    assert all(t.count("{}") == 1 for t in IMAGENET_TEMPLATES)
    assert get_templates("base") == ("a photo of a {}.",)
    assert get_templates("a {} here") == ("a {} here",)
    with pytest.raises(ValueError, match="neither a known set"):
        get_templates("imagenet81")
    with pytest.raises(ValueError, match="exactly once"):
        get_templates(["no placeholder"])


def test_cache_store_lookup_reload(tmp_path):
    cache = EmbeddingCache(tmp_path, {"m": 1})
    keys = [content_hash(str(i)) for i in range(5)]
    cache.add(keys[:3], np.arange(6, dtype=np.float32).reshape(3, 2))
    again = EmbeddingCache(tmp_path, {"m": 1})  # a new process sees the chunk
    found, emb = again.get(keys[::-1])
    assert found.tolist() == [False, False, True, True, True]
    np.testing.assert_array_equal(emb, [[4, 5], [2, 3], [0, 1]])
    other = EmbeddingCache(tmp_path, {"m": 2})  # another model: separate
    assert len(other) == 0 and len(again) == 3
    assert not list(tmp_path.rglob("*.tmp"))
    with pytest.raises(ValueError, match="2 keys but 1"):
        cache.add(keys[:2], np.zeros((1, 2)))


def test_cache_ignores_keys_without_embeddings(tmp_path):
    cache = EmbeddingCache(tmp_path, {"m": 1})
    keys = [content_hash(str(i)) for i in range(3)]
    cache.add(keys[:2], np.ones((2, 2), dtype=np.float32))
    # keys are committed after the embeddings: a keys file alone is not a chunk
    np.save(cache.path / "orphan.keys.npy", np.array(keys[2:], dtype="S32"))
    again = EmbeddingCache(tmp_path, {"m": 1})
    assert len(again) == 2 and keys[2] not in again
    assert again.get(keys)[0].tolist() == [True, True, False]


def test_embedder_argument_errors():
    with pytest.raises(ValueError, match="backend"):
        CLIPEmbedder("keras", "x")
    with pytest.raises(ValueError, match="model_name is required"):
        CLIPEmbedder("transformers")
    with pytest.raises(ValueError, match="precision"):
        CLIPEmbedder("transformers", "x", precision="fp8")
    with pytest.raises(ValueError, match="batch_size"):
        CLIPEmbedder("transformers", "x", batch_size=0)
    with pytest.raises(ValueError, match="preprocess=... and tokenizer"):
        CLIPEmbedder("transformers", "x", model=object())


def _images(n, seed=0, size=24):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size + 4, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope="module")
def hf_parts():
    if not HAS_HF:
        pytest.skip("transformers/pillow not installed")
    from vilu_sklearn.embed import make_random_transformers_clip

    return make_random_transformers_clip(dim=16, seed=0)


def _hf(hf_parts, **kwargs):
    model, processor, tokenizer = hf_parts
    return CLIPEmbedder(
        "transformers",
        "random-tiny",
        model=model,
        preprocess=processor,
        tokenizer=tokenizer,
        device="cpu",
        batch_size=4,
        **kwargs,
    )


@needs_hf
def test_hf_inputs_and_outputs(hf_parts, tmp_path):
    from PIL import Image

    emb = _hf(hf_parts)
    arrays = _images(3)
    path = tmp_path / "img.png"
    Image.fromarray(arrays[0]).save(path)
    X = emb.embed_images(
        [
            arrays[0],
            Image.fromarray(arrays[0]),
            str(path),
            path,
            arrays[1],
            arrays[2][:, :, 0],
        ]
    )
    assert X.shape == (6, 16) and X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(X[0], X[1], atol=1e-6)  # same pixels, any input type
    np.testing.assert_allclose(X[0], X[2], atol=1e-6)
    assert not np.allclose(X[0], X[4])
    X4 = emb.embed_images(np.stack(arrays[:2]))
    np.testing.assert_allclose(X4, X[[0, 4]], atol=1e-6)
    T = emb.embed_texts(["a photo of a cat.", "a photo of a dog.", "a photo of a cat."])
    assert T.shape == (3, 16)
    np.testing.assert_array_equal(T[0], T[2])
    assert emb.logit_scale == pytest.approx(1 / 0.07, rel=1e-4)  # CLIP's init


@needs_hf
def test_hf_class_prompts_ensemble(hf_parts):
    emb = _hf(hf_parts)
    names = ["cat", "dog"]
    P = emb.embed_class_prompts(names, templates=("a {}.", "the {}!"))
    per = emb.embed_texts(["a cat.", "the cat!", "a dog.", "the dog!"]).reshape(
        2, 2, -1
    )
    expected = per.mean(1)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(P, expected, atol=1e-6)
    assert emb.embed_class_prompts(names, "imagenet80").shape == (2, 16)
    single = emb.embed_class_prompts(names)  # default "a photo of a {}."
    np.testing.assert_allclose(
        single, emb.embed_texts(["a photo of a cat.", "a photo of a dog."])
    )


@needs_hf
def test_hf_input_errors(hf_parts, tmp_path):
    emb = _hf(hf_parts)
    with pytest.raises(ValueError, match=r"images\[0\] must be a uint8 array"):
        emb.embed_images([np.zeros((4, 4, 3), np.float32)])
    with pytest.raises(TypeError, match=r"images\[1\]"):
        emb.embed_images([np.zeros((4, 4, 3), np.uint8), 3])
    with pytest.raises(FileNotFoundError, match="nope.png"):
        emb.embed_images([tmp_path / "nope.png"])
    with pytest.raises(ValueError, match="empty"):
        emb.embed_images([])
    with pytest.raises(TypeError, match="single string"):
        emb.embed_texts("a cat")
    with pytest.raises(ValueError, match="needs a GPU"):
        _hf(hf_parts, precision="fp16").embed_texts(["x"])


@needs_hf
def test_cache_hit_miss_and_invalidation(hf_parts, tmp_path):
    from PIL import Image

    paths = []
    for i, arr in enumerate(_images(6)):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(arr).save(paths[-1])
    cache = tmp_path / "cache"
    first = _hf(hf_parts, cache_dir=cache)
    X1 = first.embed_images(paths)
    assert first.n_computed_ == 6
    second = _hf(hf_parts, cache_dir=cache)  # fresh object, same model: all hits
    X2 = second.embed_images(paths)
    assert second.n_computed_ == 0
    np.testing.assert_array_equal(X1, X2)
    second.embed_texts(["a", "b"])
    second.embed_texts(["b", "c"])
    assert second.n_computed_ == 3  # "b" is a hit the second time
    # changing a file's content invalidates its entry only
    Image.fromarray(_images(1, seed=99)[0]).save(paths[2])
    X3 = second.embed_images(paths)
    assert second.n_computed_ == 4
    np.testing.assert_array_equal(X3[[0, 1, 3, 4, 5]], X1[[0, 1, 3, 4, 5]])
    assert not np.allclose(X3[2], X1[2])
    # other weights, other preprocessing or another model name: misses
    from vilu_sklearn.embed import make_random_transformers_clip

    model, processor, tok = make_random_transformers_clip(dim=16, seed=1)
    other = CLIPEmbedder(
        "transformers",
        "random-tiny",
        model=model,
        preprocess=processor,
        tokenizer=tok,
        cache_dir=cache,
    )
    other.embed_images(paths[:2])
    assert other.n_computed_ == 2
    renamed = _hf(hf_parts, cache_dir=cache)
    renamed.model_name = "another-name"
    renamed.embed_images(paths[:2])
    assert renamed.n_computed_ == 2
    _, processor48, _ = make_random_transformers_clip(dim=16, image_size=48)
    model0, _, tok0 = hf_parts
    reprocessed = CLIPEmbedder(
        "transformers",
        "random-tiny",
        model=model0,
        preprocess=processor48,
        tokenizer=tok0,
        cache_dir=cache,
    )
    reprocessed.embed_texts(["a"])  # same tokenizer: text cache still hits
    assert reprocessed.n_computed_ == 0


@needs_hf
def test_cache_resumes_after_interruption(hf_parts, tmp_path):
    images = _images(10)
    cache = tmp_path / "cache"
    emb = _hf(hf_parts, cache_dir=cache)  # batch_size=4: batches of 4, 4, 2
    original = emb._encode_images
    calls = {"n": 0}

    def flaky(batch):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated interruption")
        return original(batch)

    emb._encode_images = flaky  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        emb.embed_images(images)
    assert emb.n_computed_ == 4
    assert not list(cache.rglob("*.tmp"))
    resumed = _hf(hf_parts, cache_dir=cache)
    X = resumed.embed_images(images)
    assert resumed.n_computed_ == 6  # the first finished batch was kept
    reference = _hf(hf_parts).embed_images(images)
    np.testing.assert_allclose(X, reference, atol=1e-6)
    stored = list(cache.rglob("*.emb.npy"))
    assert len(stored) == 3
    assert np.load(stored[0], mmap_mode="r").dtype == np.float32


@needs_hf
def test_progress_output(hf_parts, capsys):
    _hf(hf_parts, progress=True).embed_texts(["a", "b", "c", "d", "e"])
    err = capsys.readouterr().err
    assert "embedding texts" in err and "5" in err


@needs_oc
def test_open_clip_random_weights(tmp_path):
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(
        "ViT-B-32", pretrained=None
    )
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    emb = CLIPEmbedder(
        "open_clip",
        "ViT-B-32",
        model=model,
        preprocess=preprocess,
        tokenizer=tokenizer,
        device="cpu",
        batch_size=2,
        cache_dir=tmp_path,
    )
    X = emb.embed_images(_images(3))
    T = emb.embed_class_prompts(["cat", "dog"], "imagenet7")
    assert X.shape == (3, 512) and T.shape == (2, 512) and X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)
    assert emb.logit_scale == pytest.approx(1 / 0.07, rel=1e-4)
    again = CLIPEmbedder(
        "open_clip",
        "ViT-B-32",
        model=model,
        preprocess=preprocess,
        tokenizer=tokenizer,
        device="cpu",
        cache_dir=tmp_path,
    )
    np.testing.assert_array_equal(again.embed_images(_images(3)), X)
    assert again.n_computed_ == 0


# ---------------------------------------------------------------- issue 11
def _cache_with_chunk(tmp_path, rows=3, dim=4):
    cache = EmbeddingCache(tmp_path, {"m": 1})
    keys = [content_hash(str(i)) for i in range(rows)]
    emb = np.arange(1, rows * dim + 1, dtype=np.float32).reshape(rows, dim)
    cache.add(keys, emb)
    (chunk,) = cache.path.glob("*.emb.npy")
    return keys, emb, chunk


def _flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _nan_row(path):
    arr = np.load(path)
    arr[1] = np.nan
    np.save(path, arr)


def _zero_row(path):
    arr = np.load(path)
    arr[0] = 0
    np.save(path, arr)


def _wrong_width(path):
    np.save(path, np.ones((3, 5), np.float32))


def _truncate(path):
    path.write_bytes(path.read_bytes()[:100])


@pytest.mark.parametrize(
    "damage", [_flip_last_byte, _nan_row, _zero_row, _wrong_width, _truncate]
)
def test_cache_discards_damaged_chunks(tmp_path, damage):
    # defect 9: damaged chunks were returned as they were, or crashed
    keys, emb, chunk = _cache_with_chunk(tmp_path)
    damage(chunk)
    fresh = EmbeddingCache(tmp_path, {"m": 1})
    found, got = fresh.get(keys)
    assert not found.any() and got is None
    assert fresh.n_discarded_ == 1 and not chunk.exists()
    fresh.add(keys, emb)  # recomputed and stored again
    found, got = EmbeddingCache(tmp_path, {"m": 1}).get(keys)
    assert found.all()
    np.testing.assert_array_equal(got, emb)


def test_cache_discards_damaged_keys(tmp_path):
    keys, emb, chunk = _cache_with_chunk(tmp_path)
    keys_file = chunk.with_name(chunk.name.replace(".emb.", ".keys."))
    _flip_last_byte(keys_file)
    fresh = EmbeddingCache(tmp_path, {"m": 1})
    assert len(fresh) == 0 and fresh.n_discarded_ == 1


def test_describe_has_no_memory_address():
    # defect 10: repr() with "at 0x..." made the key differ in every process
    from vilu_sklearn.embed._embedder import describe

    class Tokenizer:
        def __init__(self, lower):
            self.lower = lower
            self.vocab = {"a": 0, "b": 1}
            self.fn = len
            self.cache = {}

        def __call__(self, texts):  # pragma: no cover - not called
            return texts

    first, second = Tokenizer(True), Tokenizer(True)
    second.cache["seen"] = 1  # memoised results do not change the description
    assert "0x" not in describe(first)
    assert describe(first) == describe(second)
    assert describe(first) != describe(Tokenizer(False))
    assert describe(lambda x: x + 1) != describe(lambda x: x + 2)


@needs_hf
def test_cache_keyed_on_weights_of_a_model_loaded_by_path(hf_parts, tmp_path):
    # defect 1: a new checkpoint at the same path returned the old embeddings
    import transformers

    from vilu_sklearn.embed import make_random_transformers_clip

    folder = tmp_path / "model"
    cache = tmp_path / "cache"

    def save(seed):
        model, processor, tokenizer = make_random_transformers_clip(dim=16, seed=seed)
        model.save_pretrained(folder)
        transformers.CLIPProcessor(
            image_processor=processor, tokenizer=tokenizer
        ).save_pretrained(folder)

    def embed():
        emb = CLIPEmbedder("transformers", str(folder), device="cpu", cache_dir=cache)
        return emb.embed_texts(["a cat", "a dog"]), emb.n_computed_

    save(0)
    old, n_old = embed()
    assert n_old == 2
    again, n_again = embed()
    assert n_again == 0
    np.testing.assert_array_equal(again, old)
    save(1)  # new weights at the same path
    new, n_new = embed()
    assert n_new == 2 and not np.allclose(new, old)


@needs_hf
def test_cache_hits_with_a_tokenizer_without_description(hf_parts, tmp_path):
    model, processor, tokenizer = hf_parts

    class Wrapped:  # no to_json_string, no get_vocab: repr has an address
        def __init__(self, tok):
            self.tok = tok

        def __call__(self, texts):
            return self.tok(texts, padding=True, return_tensors="pt")

    def embed():
        emb = CLIPEmbedder(
            "transformers",
            "random-tiny",
            model=model,
            preprocess=processor,
            tokenizer=Wrapped(tokenizer),
            device="cpu",
            cache_dir=tmp_path,
        )
        emb.embed_texts(["a cat"])
        return emb.n_computed_

    assert embed() == 1
    assert embed() == 0  # a fresh tokenizer object: same key, a hit
