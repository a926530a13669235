"""Tests of the synthetic generators and the embedding loaders."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from vilu_sklearn import caption_correctness, correctness, zero_shot_predict
from vilu_sklearn.datasets import (
    load_embeddings,
    load_npy_embeddings,
    make_caption_embeddings,
    make_vlm_embeddings,
)


@pytest.mark.parametrize(
    "n, K, d, acc",
    [
        (3000, 10, 512, 0.7),
        (3000, 10, 384, 0.9),
        # full-size sets (a CLIP ViT-L width, ImageNet's 1000 classes): slow tier
        pytest.param(3000, 100, 768, 0.6, marks=pytest.mark.slow),
        pytest.param(4000, 1000, 512, 0.65, marks=pytest.mark.slow),
        (2000, 3, 64, 0.5),
    ],
)
def test_vlm_hits_target_accuracy(n, K, d, acc):
    data = make_vlm_embeddings(n, K, d, accuracy=acc, random_state=0)
    assert abs(data.accuracy - acc) <= 0.01
    # y_correct agrees with the package's own zero-shot helper
    np.testing.assert_array_equal(
        data.y_correct, correctness(data.X_img, data.X_txt, data.labels)
    )
    np.testing.assert_array_equal(data.y_correct, data.y_pred == data.labels)


def test_vlm_accuracy_beyond_pilot():
    # more rows than the calibration pilot: sampling error only
    data = make_vlm_embeddings(30000, 1000, 64, accuracy=0.7, random_state=1)
    assert abs(data.accuracy - 0.7) <= 0.015


def test_vlm_shapes_dtypes_norms_and_geometry():
    data = make_vlm_embeddings(2000, 20, 256, accuracy=0.75, random_state=0)
    assert data.X_img.shape == (2000, 256) and data.X_img.dtype == np.float32
    assert data.X_txt.shape == (20, 256) and data.X_txt.dtype == np.float32
    assert data.labels.dtype == np.int64 and data.y_correct.dtype == np.int64
    np.testing.assert_allclose(np.linalg.norm(data.X_img, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(data.X_txt, axis=1), 1, atol=1e-5)
    G = data.X_txt @ data.X_txt.T
    off = G[~np.eye(20, dtype=bool)]
    assert 0.7 < off.mean() < 0.9  # CLIP-like prompt similarity, far from orthogonal
    pair = data.confusable_pairs[0]
    assert G[pair[0], pair[1]] > np.median(off)  # confusable pairs are closer
    cos_own = np.sum(data.X_img * data.X_txt[data.labels], axis=1)
    assert 0.15 < np.median(cos_own) < 0.45
    assert data.logit_scale == 100.0 and len(data.class_names) == 20
    assert "20 classes" in data.description
    X_img, X_txt, y = make_vlm_embeddings(50, 5, 32, return_X_y=True, random_state=0)
    assert X_img.shape == (50, 32) and X_txt.shape == (5, 32) and y.shape == (50,)


def test_vlm_reproducible():
    a = make_vlm_embeddings(500, 10, 64, random_state=3)
    b = make_vlm_embeddings(500, 10, 64, random_state=3)
    c = make_vlm_embeddings(500, 10, 64, random_state=4)
    for name in ("X_img", "X_txt", "labels", "y_correct"):
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a.X_img, c.X_img)
    assert not np.array_equal(a.X_txt, c.X_txt)


def _neighbourhood_gain(seed):
    """AUROC of MSP and 10-NN correctness rate together, minus MSP alone."""
    data = make_vlm_embeddings(6000, 10, 128, accuracy=0.7, random_state=seed)
    _, P = zero_shot_predict(data.X_img, data.X_txt, logit_scale=data.logit_scale)
    msp = P.max(axis=1)
    y, half = data.y_correct, 3000
    nn = NearestNeighbors(n_neighbors=10).fit(data.X_img[:half])
    knn_rate = y[:half][nn.kneighbors(data.X_img[half:])[1]].mean(axis=1)
    auc_knn = roc_auc_score(y[half:], knn_rate)
    auc_msp = roc_auc_score(y[half:], msp[half:])
    feats = np.c_[msp[half:], knn_rate]
    lr = LogisticRegression().fit(feats[:1500], y[half : half + 1500])
    auc_both = roc_auc_score(y[half + 1500 :], lr.decision_function(feats[1500:]))
    gain = auc_both - roc_auc_score(y[half + 1500 :], msp[half + 1500 :])
    return data, auc_msp, auc_knn, gain


def test_vlm_failures_cluster_in_image_neighbourhoods():
    # failures are predictable beyond the softmax from the correctness of an
    # image's neighbours (visual modes), as on real embeddings
    gains = []
    for seed in range(3):
        data, auc_msp, auc_knn, gain = _neighbourhood_gain(seed)
        assert 0.65 < auc_msp < 0.95  # the softmax is informative, as with real CLIP
        assert auc_knn > 0.6  # and so are image neighbourhoods
        gains.append(gain)
        if seed == 0:
            y = data.y_correct
            # the prototypical mode is easier than the drifted ones
            assert y[data.modes == 0].mean() > y[data.modes > 0].mean() + 0.1
            assert data.modes.max() == 3 and data.backgrounds.max() < 8
    # the gain of one seed is noisy (0.005 to 0.025 for seeds 0-5): its mean
    assert np.mean(gains) > 0.01


@pytest.mark.slow  # a full-size set: 4000 images, 100 classes, width 512
def test_vlm_softmax_over_confident():
    # over-confident like CLIP, more than on the CIFAR-10 surrogate (gap 0.05):
    # the default image_specificity (0.6) trades this for effect sizes like real
    # data (docs/benchmark.md); measured 0.18 for seeds 0-2
    data = make_vlm_embeddings(4000, 100, 512, accuracy=0.62, random_state=0)
    _, P = zero_shot_predict(data.X_img, data.X_txt, logit_scale=100.0)
    gap = P.max(axis=1).mean() - data.accuracy
    assert 0.0 < gap < 0.25


def test_vlm_structure_can_be_switched_off():
    # without modes, drift and backgrounds the calibration still hits the target
    data = make_vlm_embeddings(
        2000,
        10,
        64,
        accuracy=0.7,
        n_modes=1,
        mode_drift=0.0,
        background_strength=0.0,
        random_state=0,
    )
    assert abs(data.accuracy - 0.7) <= 0.01 and np.all(data.modes == 0)


def test_vlm_superclasses_share_prompt_structure():
    # classes fall into superclasses whose prompts are nearer each other, and
    # confusable pairs are drawn mostly inside a superclass
    data = make_vlm_embeddings(500, 40, 256, random_state=0)
    groups, T = data.groups, data.X_txt
    assert groups.shape == (40,) and np.bincount(groups).max() == 5
    G = T @ T.T
    same = groups[:, None] == groups[None, :]
    off = ~np.eye(40, dtype=bool)
    paired = np.zeros_like(same)
    paired[tuple(data.confusable_pairs.T)] = True
    paired |= paired.T
    inside, across = G[same & off & ~paired].mean(), G[~same].mean()
    assert inside > across + 0.02
    pair_groups = groups[data.confusable_pairs]
    assert np.mean(pair_groups[:, 0] == pair_groups[:, 1]) >= 0.5
    flat = make_vlm_embeddings(500, 40, 256, group_similarity=0.0, random_state=0)
    G0, g0 = flat.X_txt @ flat.X_txt.T, flat.groups[:, None] == flat.groups[None, :]
    assert G0[g0 & off].mean() < G0[~g0].mean() + 0.02


def test_vlm_look_coupling_hides_the_true_class_not_the_prediction():
    # the image-only look follows the class the prompts see: predictions do not
    # move, but the image no longer reveals the true class of a failure
    kw = dict(n_samples=4000, n_classes=10, dim=64, accuracy=0.6, random_state=0)
    free = make_vlm_embeddings(**kw, look_coupling=0.0, visual_separation=0.3)
    tied = make_vlm_embeddings(**kw, look_coupling=1.0, visual_separation=0.3)
    assert np.array_equal(free.y_pred, tied.y_pred)
    assert np.array_equal(free.labels, tied.labels)
    assert not np.allclose(free.X_img, tied.X_img)

    def probe_fixes(d):
        # share of the zero-shot failures that a label-trained probe corrects
        lr = LogisticRegression(max_iter=500).fit(d.X_img[:2000], d.labels[:2000])
        wrong = d.y_correct[2000:] == 0
        return np.mean(lr.predict(d.X_img[2000:])[wrong] == d.labels[2000:][wrong])

    assert probe_fixes(tied) < probe_fixes(free) - 0.1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"accuracy": 0.05}, "above chance"),
        ({"group_size": 0}, "group_size"),
        ({"group_similarity": 1.0}, "group_similarity"),
        ({"look_coupling": 1.5}, "look_coupling"),
        ({"accuracy": 1.0}, "above chance"),
        ({"n_classes": 1}, "n_classes"),
        ({"dim": 5}, "dim must be at least"),
        ({"text_similarity": 1.5}, "text_similarity"),
        ({"logit_scale": -1.0}, "logit_scale"),
        ({"mode_drift": -1.0}, "mode_drift"),
        ({"image_specificity": 2.0}, "image_specificity"),
        ({"residual_noise": 1.5}, "residual_noise"),
    ],
)
def test_vlm_bad_parameters(kwargs, match):
    params = {"n_samples": 10, "n_classes": 10, "dim": 32, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_vlm_embeddings(**params)


def test_vlm_n_samples_type():
    with pytest.raises(TypeError, match="n_samples"):
        make_vlm_embeddings(10.5)


@pytest.mark.parametrize("acc", [0.5, 0.7])
def test_caption_retrieval_accuracy(acc):
    data = make_caption_embeddings(
        2048, 256, retrieval_accuracy=acc, group_size=1024, random_state=0
    )
    assert abs(data.accuracy - acc) <= 0.01
    np.testing.assert_array_equal(
        data.y_correct, caption_correctness(data.X_img, data.X_txt, group_size=1024)
    )
    assert data.X_img.dtype == np.float32 and data.X_txt.shape == (2048, 256)
    np.testing.assert_allclose(np.linalg.norm(data.X_img, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(data.X_txt, axis=1), 1, atol=1e-5)
    X_img, X_txt, y = make_caption_embeddings(
        300, 32, group_size=100, return_X_y=True, random_state=0
    )
    assert X_img.shape == X_txt.shape == (300, 32) and y.shape == (300,)


def test_caption_reproducible():
    a = make_caption_embeddings(256, 32, group_size=128, random_state=0)
    b = make_caption_embeddings(256, 32, group_size=128, random_state=0)
    c = make_caption_embeddings(256, 32, group_size=128, random_state=1)
    np.testing.assert_array_equal(a.X_img, b.X_img)
    np.testing.assert_array_equal(a.X_txt, b.X_txt)
    assert not np.array_equal(a.X_img, c.X_img)


def test_caption_bad_accuracy():
    with pytest.raises(ValueError, match="retrieval_accuracy"):
        make_caption_embeddings(100, 32, retrieval_accuracy=0.001)


# ------------------------------------------------------------------ loaders
def _arrays(rng, n=12, K=3, d=8):
    return {
        "X_img": rng.normal(size=(n, d)).astype(np.float32),
        "X_txt": rng.normal(size=(K, d)).astype(np.float32),
        "y": rng.integers(0, K, size=n),
    }


def test_load_embeddings_roundtrip(write_npz):
    rng = np.random.default_rng(0)
    arrays = _arrays(rng)
    path = write_npz(
        **arrays,
        y_correct=np.ones(12, np.int64),
        logit_scale=50.0,
        classes=np.array(["a", "b", "c"]),
        notes=np.array(["x"]),
    )
    data = load_embeddings(path)
    np.testing.assert_array_equal(data.X_img, arrays["X_img"])
    np.testing.assert_array_equal(data.y, arrays["y"])
    assert data.logit_scale == 50.0 and data.classes == ["a", "b", "c"]
    assert data.extra == ["notes"] and data.y_correct.sum() == 12


def test_load_embeddings_split_names(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "split.npz"
    np.savez_compressed(
        path,
        X_img_train=rng.normal(size=(10, 4)).astype(np.float16),
        y_train=rng.integers(0, 2, 10),
        X_img_test=rng.normal(size=(5, 4)).astype(np.float16),
        y_test=rng.integers(0, 2, 5),
        X_txt=rng.normal(size=(2, 4)).astype(np.float32),
    )
    data = load_embeddings(path)
    assert data.X_img_train.shape == (10, 4) and data.X_img_test.dtype == np.float16
    assert data.logit_scale is None and data.classes is None


@pytest.mark.slow
def test_load_embeddings_shared_cifar(cifar_npz_path):
    data = load_embeddings(cifar_npz_path)
    assert data.X_img_train.shape == (40000, 384) and data.X_txt.shape == (10, 384)
    assert data.classes[3] == "cat" and abs(data.logit_scale - 19.358) < 1e-3
    assert set(data.extra) >= {"file_train", "file_test", "provenance"}


@pytest.mark.parametrize(
    "change, match",
    [
        (
            {"X_txt": None},
            r"misses required array\(s\): X_txt\. Arrays found: X_img, y",
        ),
        ({"X_img": None}, r"X_img \(or X_img_train"),
        ({"X_txt": np.zeros((3, 5), np.float32)}, "dimension 8"),
        ({"y": np.zeros(11, np.int64)}, r"shape \(12,\)"),
        ({"y": np.full(12, 7)}, r"class indices in \[0, 3\)"),
        ({"y": np.zeros(12)}, "integers"),
        ({"X_img": np.zeros((12, 8), np.int64)}, "must hold floats"),
        ({"X_img": np.zeros(12, np.float32)}, "2-D array"),
        ({"logit_scale": np.array([1.0, 2.0])}, "single number"),
        ({"logit_scale": np.array(-3.0)}, "positive"),
        ({"classes": np.array(["a"])}, r"classes .* shape \(3,\)"),
        ({"y_correct": np.full(12, 2)}, "binary"),
    ],
)
def test_load_embeddings_errors(write_npz, change, match):
    arrays = _arrays(np.random.default_rng(0))
    for key, value in change.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    path = write_npz("bad.npz", **arrays)
    with pytest.raises(ValueError, match=match):
        load_embeddings(path)


def test_load_embeddings_refuses_pickles_and_bad_files(tmp_path, write_npz):
    arrays = _arrays(np.random.default_rng(0))
    classes = np.array([{"a": 1}, 2, 3], dtype=object)
    path = write_npz("pickled.npz", **arrays, classes=classes)
    with pytest.raises(ValueError, match="pickled"):
        load_embeddings(path)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_embeddings(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="junk.npz"):
        load_embeddings(tmp_path / "junk.npz")
    np.save(tmp_path / "single.npy", np.zeros((2, 2)))
    with pytest.raises(ValueError, match="load_npy_embeddings"):
        load_embeddings(tmp_path / "single.npy")
    orphan = write_npz(
        "orphan.npz", X_img=arrays["X_img"], X_txt=arrays["X_txt"], y_test=arrays["y"]
    )
    with pytest.raises(ValueError, match="'y_test' but no 'X_img_test'"):
        load_embeddings(orphan)


def test_load_npy_embeddings_memmap(tmp_path):
    rng = np.random.default_rng(0)
    a = _arrays(rng)
    for name in ("X_img", "X_txt", "y"):
        np.save(tmp_path / f"{name}.npy", a[name])
    np.save(tmp_path / "yc.npy", np.ones(12, dtype=bool))
    data = load_npy_embeddings(
        tmp_path / "X_img.npy",
        tmp_path / "X_txt.npy",
        tmp_path / "y.npy",
        y_correct_path=tmp_path / "yc.npy",
        logit_scale=100,
    )
    assert isinstance(data.X_img, np.memmap) and not data.X_img.flags.writeable
    np.testing.assert_array_equal(data.X_img, a["X_img"])
    assert data.y_correct.dtype == np.int64 and data.logit_scale == 100.0
    eager = load_npy_embeddings(
        tmp_path / "X_img.npy", tmp_path / "X_txt.npy", mmap=False
    )
    assert not isinstance(eager.X_img, np.memmap) and eager.y is None


def test_load_npy_embeddings_errors(tmp_path):
    rng = np.random.default_rng(0)
    a = _arrays(rng)
    np.save(tmp_path / "img.npy", a["X_img"])
    np.save(tmp_path / "txt.npy", a["X_txt"])
    np.save(tmp_path / "txt_bad.npy", np.zeros((3, 5), np.float32))
    np.save(tmp_path / "y_bad.npy", np.zeros(4, np.int64))
    np.save(tmp_path / "obj.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="dimension 8.*dimension 5"):
        load_npy_embeddings(tmp_path / "img.npy", tmp_path / "txt_bad.npy")
    with pytest.raises(ValueError, match=r"shape \(12,\)"):
        load_npy_embeddings(
            tmp_path / "img.npy", tmp_path / "txt.npy", tmp_path / "y_bad.npy"
        )
    with pytest.raises(ValueError, match="unpickling"):
        load_npy_embeddings(tmp_path / "obj.npy", tmp_path / "txt.npy")
    with pytest.raises(FileNotFoundError, match="txt_path"):
        load_npy_embeddings(tmp_path / "img.npy", tmp_path / "nope.npy")
