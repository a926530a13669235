"""Synthetic CLIP-like image and text embeddings with controllable failures."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.utils import Bunch, check_random_state

from .._validation import check_logit_scale
from .._zero_shot import _predict_argmax, caption_correctness

__all__ = ["make_vlm_embeddings", "make_caption_embeddings"]

# rows generated at a time: bounds the (rows, dim) and (rows, K) temporaries
_GEN_CHUNK = 8192
# most (pilot rows x candidates) score entries kept for calibrating the noise
_PILOT_BUDGET = 12_000_000
_MIN_PILOT, _MAX_PILOT = 1000, 20000


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}.")
    return int(value)


def _check_fraction(value: Any, name: str, low: float, high: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not low <= float(value) <= high
    ):
        raise ValueError(f"{name} must be a number in [{low}, {high}]; got {value!r}.")
    return float(value)


def _unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """``n`` random unit vectors of dimension ``d`` (float64)."""
    U = rng.standard_normal((n, d))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    return U


def _normalize_(X: np.ndarray) -> np.ndarray:
    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    return X


def _bisect_noise(
    accuracy_at: Any, target: float, lo: float = 1e-4, hi: float = 1e3
) -> float:
    """Noise scale whose accuracy is ``target`` (accuracy decreases with noise)."""
    if accuracy_at(hi) > target:
        return hi
    if accuracy_at(lo) < target:
        return lo
    for _ in range(40):
        mid = float(np.sqrt(lo * hi))
        if accuracy_at(mid) > target:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1.0 + 1e-4:
            break
    return float(np.sqrt(lo * hi))


def _calibrate_classes(
    A: np.ndarray, B: np.ndarray, y: np.ndarray, target: float
) -> float:
    """Noise scale where ``argmax(A + sigma * B) == y`` has rate ``target``."""
    work = np.empty_like(A)

    def accuracy_at(sigma: float) -> float:
        np.multiply(B, np.float32(sigma), out=work)
        np.add(work, A, out=work)
        return float(np.mean(work.argmax(axis=1) == y))

    return _bisect_noise(accuracy_at, target)


def _calibrate_captions(
    groups: list[tuple[np.ndarray, np.ndarray]], target: float
) -> float:
    """Noise scale where in-group retrieval has accuracy ``target``."""
    n = sum(A.shape[0] for A, _ in groups)

    def accuracy_at(sigma: float) -> float:
        hits = 0
        for A, B in groups:
            S = A + np.float32(sigma) * B
            hits += int(np.sum(np.diagonal(S) >= S.max(axis=1)))
        return hits / n

    return _bisect_noise(accuracy_at, target)


class _ImageModel:
    """Per-sample latent structure shared by the pilot and the full generation.

    The unnormalised image embedding of sample ``i`` is::

        x_i = T[y_i] + gap * c_img + z_i * (w_i @ H)
              + sigma * s_i * (e_i + confusion * g_i * p_i / sqrt(d))

    where ``e_i ~ N(0, I / d)``, ``p_i`` is the unit direction from the class
    anchor towards its confusable partner (zero for classes without one),
    ``s_i = class_scale[y_i] * exp(atypicality * (z_i - 1))`` and ``z_i`` is the
    latent difficulty. Class scores ``x_i @ T.T`` are affine in ``sigma``, which
    makes calibration by bisection cheap.
    """

    def __init__(
        self,
        T: np.ndarray,
        partner_dir: np.ndarray,
        class_scale: np.ndarray,
        H: np.ndarray,
        c_img: np.ndarray,
        atypicality: float,
    ) -> None:
        self.T = T.astype(np.float32)
        self.partner_dir = partner_dir.astype(np.float32)
        self.class_scale = class_scale
        self.H, self.c_img = H.astype(np.float32), c_img
        self.atypicality = atypicality

    def latents(self, rng: np.random.Generator, labels: np.ndarray) -> dict:
        n, d = labels.shape[0], self.T.shape[1]
        z = rng.exponential(1.0, size=n)
        w = rng.dirichlet(np.ones(self.H.shape[0]), size=n)
        return {
            "z": z,
            "w": w,
            "g": rng.standard_normal(n),
            "e": rng.standard_normal((n, d), dtype=np.float32) / np.float32(np.sqrt(d)),
        }

    def scale(self, labels: np.ndarray, z: np.ndarray) -> np.ndarray:
        return self.class_scale[labels] * np.exp(self.atypicality * (z - 1.0))

    def parts(self, labels: np.ndarray, lat: dict) -> tuple[np.ndarray, np.ndarray]:
        """Noise-free part and unit-sigma noise part, float32 (n, d)."""
        z, s = lat["z"], self.scale(labels, lat["z"])
        base = self.T[labels]
        base += (z[:, None] * lat["w"]).astype(np.float32) @ self.H
        noise = self.partner_dir[labels]
        noise *= lat["g"].astype(np.float32)[:, None]
        noise += lat["e"]
        noise *= s.astype(np.float32)[:, None]
        return base, noise


def make_vlm_embeddings(
    n_samples: int = 1000,
    n_classes: int = 10,
    dim: int = 512,
    *,
    accuracy: float = 0.7,
    text_similarity: float = 0.8,
    confusable_fraction: float = 0.3,
    pair_similarity: float = 0.6,
    confusion: float = 3.0,
    class_difficulty: float = 0.3,
    atypicality: float = 0.5,
    n_nuisance: int = 8,
    image_text_cosine: float = 0.3,
    logit_scale: float = 100.0,
    return_X_y: bool = False,
    random_state: Any = None,
) -> Any:
    """Synthetic CLIP-like image and class-prompt embeddings for failure prediction.

    Class prompts ("text anchors") are unit vectors sharing a common direction,
    so that they are far from orthogonal (cosine about ``text_similarity``, as
    for the prompts of a real CLIP text tower). Some classes come in confusable
    pairs whose anchors are even closer. Every image embedding is its class
    anchor plus a shared "modality gap" direction, a nuisance component and
    noise, then L2-normalised. The noise level is calibrated (by bisection on a
    pilot sample, using the fact that class scores are affine in it) so that the
    zero-shot accuracy, ``argmax_k cos(X_img[i], X_txt[k]) == labels[i]``, hits
    ``accuracy``.

    Failures are partly predictable from the image embedding beyond the
    softmax confidence: every sample has a latent difficulty ``z ~ Exp(1)`` that
    multiplies its noise by ``exp(atypicality * (z - 1))`` *and* adds
    ``z`` times a non-negative mix of ``n_nuisance`` fixed "nuisance" directions
    (think blur, low light, sketches) to the image. A model that reads those
    directions knows that an image is atypical, hence more often misclassified
    than its softmax says; max-softmax cannot.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of images.
    n_classes : int, default=10
        Number of classes ``K`` (tens of thousands are fine).
    dim : int, default=512
        Embedding dimension (512 like CLIP ViT-B, 768 like ViT-L/14).
    accuracy : float, default=0.7
        Target zero-shot accuracy in ``(1 / n_classes, 1)``. The realised accuracy
        is within about 0.01 of it (exactly calibrated on the first
        ``min(n_samples, ~20000)`` rows; sampling error beyond that).
    text_similarity : float, default=0.8
        Mean cosine similarity between two class anchors, in ``[0, 1)``.
    confusable_fraction : float, default=0.3
        Fraction of classes that belong to a confusable pair (``0`` for none).
    pair_similarity : float, default=0.6
        How much closer the anchors of a pair are: the class-specific parts of the
        two anchors have this cosine (anchor cosine
        ``text_similarity + (1 - text_similarity) * pair_similarity``).
    confusion : float, default=3.0
        Extra noise of a paired class along the direction of its partner:
        the ratio of its standard deviation to that of the isotropic noise
        (``0`` for none).
    class_difficulty : float, default=0.3
        Standard deviation of the log of the per-class noise multiplier.
    atypicality : float, default=0.5
        Strength of the latent difficulty: how much it raises the noise
        (``0`` makes failures as predictable as the softmax says, roughly).
    n_nuisance : int, default=8
        Number of nuisance directions that carry the latent difficulty.
    image_text_cosine : float, default=0.3
        Typical cosine between an image and its class anchor (about 0.3 for
        CLIP). Reached by adding a shared image-only direction (the modality gap)
        when the noise leaves room for it; it does not change predictions.
    logit_scale : float, default=100.0
        Temperature returned in the bunch, used for softmax probabilities
        ``softmax(logit_scale * X_img @ X_txt.T)``. With the default geometry,
        cosines of an image with the anchors differ by a few hundredths, so CLIP's
        100 gives softmax confidences in a realistic range.
    return_X_y : bool, default=False
        Return ``(X_img, X_txt, y_correct)`` instead of a bunch.
    random_state : int, RandomState instance or None, default=None
        Seed; the same seed gives identical arrays.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With fields

        - ``X_img``: ndarray (n_samples, dim), float32, unit-norm rows.
        - ``X_txt``: ndarray (n_classes, dim), float32, unit-norm rows; row ``k``
          is the prompt embedding of class ``k``.
        - ``labels``: ndarray (n_samples,), int64, true classes.
        - ``y_pred``: ndarray (n_samples,), int64, zero-shot predictions.
        - ``y_correct``: ndarray (n_samples,), int64, 1 where ``y_pred == labels``.
        - ``logit_scale``: float.
        - ``class_names``: list of str, ``"class_0"``, ``"class_1"``, ...
        - ``difficulty``: ndarray (n_samples,), the latent difficulty ``z``
          (for analysis; a failure predictor must not see it).
        - ``confusable_pairs``: ndarray (n_pairs, 2), int64, paired classes.
        - ``noise_scale``: float, the calibrated noise level.
        - ``accuracy``: float, realised zero-shot accuracy.
        - ``description``: str.

    (X_img, X_txt, y_correct) : tuple
        If ``return_X_y=True``.

    Notes
    -----
    How this differs from real CLIP embeddings:

    * Anchors are random apart from their shared direction and the designed
      pairs; real prompts have a rich semantic hierarchy (many near-duplicates,
      clusters of fine-grained classes).
    * The noise is Gaussian (isotropic plus a partner direction); real image
      embeddings are multi-modal within a class and lie on a low-dimensional
      manifold, and real errors have many more causes (label noise, multiple
      objects, ambiguous crops).
    * The modality gap is a single direction; the per-class image means of real
      CLIP are not exactly their anchors plus a constant shift.
    * The failure signal beyond the softmax is a clean latent variable and
      linearly readable; real signals are weaker and entangled.

    Examples
    --------
    >>> from vilu_sklearn.datasets import make_vlm_embeddings
    >>> data = make_vlm_embeddings(2000, 10, 64, accuracy=0.8, random_state=0)
    >>> data.X_img.shape, data.X_txt.shape, data.X_img.dtype
    ((2000, 64), (10, 64), dtype('float32'))
    >>> round(float(data.y_correct.mean()), 2)
    0.8
    >>> X_img, X_txt, y_correct = make_vlm_embeddings(
    ...     100, 5, 32, return_X_y=True, random_state=0
    ... )
    """
    n_samples = _check_int(n_samples, "n_samples", 1)
    n_classes = _check_int(n_classes, "n_classes", 2)
    dim = _check_int(dim, "dim", 2)
    n_nuisance = _check_int(n_nuisance, "n_nuisance", 1)
    if dim < n_nuisance + 3:
        raise ValueError(
            f"dim must be at least n_nuisance + 3 = {n_nuisance + 3} (the image-only "
            f"directions need their own dimensions); got dim={dim}."
        )
    accuracy = _check_fraction(accuracy, "accuracy", 0.0, 1.0)
    if not 1.0 / n_classes < accuracy < 1.0:
        raise ValueError(
            f"accuracy must be above chance (1 / n_classes = {1.0 / n_classes:.4g}) "
            f"and below 1; got {accuracy}."
        )
    rho = _check_fraction(text_similarity, "text_similarity", 0.0, 0.99)
    confusable_fraction = _check_fraction(
        confusable_fraction, "confusable_fraction", 0.0, 1.0
    )
    pair_similarity = _check_fraction(pair_similarity, "pair_similarity", 0.0, 0.99)
    confusion = _check_fraction(confusion, "confusion", 0.0, 100.0)
    class_difficulty = _check_fraction(class_difficulty, "class_difficulty", 0, 5)
    atypicality = _check_fraction(atypicality, "atypicality", 0.0, 5.0)
    image_text_cosine = _check_fraction(
        image_text_cosine, "image_text_cosine", 0.01, 1.0
    )
    logit_scale = check_logit_scale(logit_scale)
    rng = np.random.default_rng(check_random_state(random_state).randint(2**31 - 1))

    # --- geometry ---------------------------------------------------------
    # The image-only directions (modality gap, nuisances) are orthogonal to
    # every text anchor, so that they do not favour any class.
    side = np.linalg.qr(rng.standard_normal((dim, n_nuisance + 1)))[0].T
    c_img, H = side[0], side[1:] * 0.5

    def off_side(V: np.ndarray) -> np.ndarray:
        V -= (V @ side.T) @ side
        return _normalize_(V)

    c_txt = off_side(_unit_rows(rng, 1, dim))[0]
    U = off_side(_unit_rows(rng, n_classes, dim))
    n_pairs = int(round(confusable_fraction * n_classes / 2))
    perm = rng.permutation(n_classes)
    pairs = perm[: 2 * n_pairs].reshape(n_pairs, 2)
    q = pair_similarity
    U[pairs[:, 1]] = np.sqrt(q) * U[pairs[:, 0]] + np.sqrt(1 - q) * U[pairs[:, 1]]
    _normalize_(U)
    rho_k = np.clip(rho + 0.03 * rng.standard_normal(n_classes), 0.0, 0.995)
    T = np.sqrt(rho_k)[:, None] * c_txt + np.sqrt(1 - rho_k)[:, None] * U
    _normalize_(T)

    # unit direction from every paired anchor towards its partner, scaled so
    # that `confusion` is the ratio of the noise standard deviation along it to
    # the isotropic noise standard deviation (1 / sqrt(dim) per direction)
    partner_dir = np.zeros_like(T)
    for a, b in ((pairs[:, 0], pairs[:, 1]), (pairs[:, 1], pairs[:, 0])):
        diff = T[b] - T[a]
        partner_dir[a] = diff / np.linalg.norm(diff, axis=1, keepdims=True)
    partner_dir *= confusion / np.sqrt(dim)
    class_scale = np.exp(class_difficulty * rng.standard_normal(n_classes))
    model = _ImageModel(T, partner_dir, class_scale, H, c_img, atypicality)
    labels = rng.integers(0, n_classes, size=n_samples)
    T32 = T.astype(np.float32)

    # --- calibrate the noise on a pilot: scores are base + sigma * noise ----
    n_pilot = int(np.clip(_PILOT_BUDGET // n_classes, _MIN_PILOT, _MAX_PILOT))
    n_pilot = min(n_pilot, n_samples)
    pilot_lat = model.latents(rng, labels[:n_pilot])
    base, noise = model.parts(labels[:n_pilot], pilot_lat)
    y_pilot = labels[:n_pilot]
    sigma = _calibrate_classes(base @ T32.T, noise @ T32.T, y_pilot, accuracy)

    # modality gap: a shared image direction that brings cos(image, anchor)
    # down to about image_text_cosine, if the noise leaves room for it
    typical_sq = float(np.median(np.sum((base + sigma * noise) ** 2, axis=1)))
    gap = np.sqrt(max(0.0, 1.0 / image_text_cosine**2 - typical_sq))

    # --- generate the embeddings chunk by chunk -----------------------------
    X_img = np.empty((n_samples, dim), dtype=np.float32)
    difficulty = np.empty(n_samples)
    gap_vec = (gap * c_img).astype(np.float32)

    def fill(start: int, stop: int, lat: dict, b: Any = None, nz: Any = None) -> None:
        if b is None:
            b, nz = model.parts(labels[start:stop], lat)
        block = b + np.float32(sigma) * nz + gap_vec
        X_img[start:stop] = _normalize_(block)
        difficulty[start:stop] = lat["z"]

    fill(0, n_pilot, pilot_lat, base, noise)
    del base, noise, pilot_lat
    for start in range(n_pilot, n_samples, _GEN_CHUNK):
        stop = min(start + _GEN_CHUNK, n_samples)
        fill(start, stop, model.latents(rng, labels[start:stop]))

    y_pred = _predict_argmax(X_img, T32, True)
    y_correct = (y_pred == labels).astype(np.int64)
    if return_X_y:
        return X_img, T32, y_correct
    acc = float(y_correct.mean())
    description = (
        f"Synthetic CLIP-like embeddings: {n_samples} images, {n_classes} classes, "
        f"dim {dim}; zero-shot accuracy {acc:.3f} (target {accuracy}); "
        f"{n_pairs} confusable class pairs; anchor cosine ~{rho}; "
        f"logit_scale {logit_scale:g}. Generated by "
        "vilu_sklearn.datasets.make_vlm_embeddings."
    )
    return Bunch(
        X_img=X_img,
        X_txt=T32,
        labels=labels.astype(np.int64),
        y_pred=y_pred,
        y_correct=y_correct,
        logit_scale=logit_scale,
        class_names=[f"class_{k}" for k in range(n_classes)],
        difficulty=difficulty,
        confusable_pairs=pairs.astype(np.int64),
        noise_scale=sigma,
        accuracy=acc,
        description=description,
    )


def make_caption_embeddings(
    n_pairs: int = 2048,
    dim: int = 512,
    *,
    retrieval_accuracy: float = 0.6,
    group_size: int = 1024,
    n_topics: int = 64,
    topic_similarity: float = 0.5,
    text_similarity: float = 0.6,
    atypicality: float = 0.5,
    n_nuisance: int = 8,
    image_text_cosine: float = 0.3,
    logit_scale: float = 100.0,
    return_X_y: bool = False,
    random_state: Any = None,
) -> Any:
    """Synthetic paired image and caption embeddings for caption mode.

    Every pair has a latent "concept" drawn around one of ``n_topics`` topics
    (captions of the same topic are similar, which makes in-batch retrieval hard
    as on web image-text data). The caption embedding is the concept plus a
    shared text direction; the image embedding is the caption embedding plus a
    shared image direction (modality gap), a nuisance component carrying a
    latent difficulty, and noise. The noise level is calibrated so that in-batch
    image-to-caption retrieval over consecutive groups of ``group_size`` rows
    (see :func:`vilu_sklearn.caption_correctness`) has accuracy
    ``retrieval_accuracy`` (CLIP on CC12M with groups of 1024: about 0.5-0.7).

    Parameters
    ----------
    n_pairs : int, default=2048
        Number of image-caption pairs.
    dim : int, default=512
        Embedding dimension.
    retrieval_accuracy : float, default=0.6
        Target in-batch retrieval accuracy in ``(1 / group_size, 1)``.
    group_size : int, default=1024
        Number of candidate captions per group when calibrating and computing
        ``y_correct``.
    n_topics : int, default=64
        Number of topics the concepts cluster around.
    topic_similarity : float, default=0.5
        Share of a concept that comes from its topic, in ``[0, 1)``.
    text_similarity : float, default=0.6
        Share of every caption embedding along a common text direction (mean
        caption-caption cosine), in ``[0, 1)``.
    atypicality : float, default=0.5
        Strength of the latent difficulty (see :func:`make_vlm_embeddings`).
    n_nuisance : int, default=8
        Number of nuisance directions carrying the difficulty.
    image_text_cosine : float, default=0.3
        Typical cosine between an image and its caption, when the noise allows.
    logit_scale : float, default=100.0
        Temperature returned in the bunch.
    return_X_y : bool, default=False
        Return ``(X_img, X_txt, y_correct)`` instead of a bunch.
    random_state : int, RandomState instance or None, default=None
        Seed; the same seed gives identical arrays.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With fields ``X_img`` (n_pairs, dim) and ``X_txt`` (n_pairs, dim)
        (float32, unit rows, row ``i`` of both is pair ``i``), ``y_correct``
        (int64, in-batch retrieval correctness with ``group_size``),
        ``group_size``, ``topics`` (int64 topic of every pair), ``difficulty``,
        ``logit_scale``, ``noise_scale``, ``accuracy`` and ``description``.

    (X_img, X_txt, y_correct) : tuple
        If ``return_X_y=True``.

    Notes
    -----
    Real caption embeddings carry far more structure (near-duplicate captions,
    long-tailed topics, captions that describe only part of the image); here
    topics are equally likely and the noise is Gaussian.

    Examples
    --------
    >>> from vilu_sklearn.datasets import make_caption_embeddings
    >>> data = make_caption_embeddings(
    ...     1024, 64, retrieval_accuracy=0.6, random_state=0
    ... )
    >>> data.X_img.shape, data.X_txt.shape
    ((1024, 64), (1024, 64))
    >>> round(float(data.y_correct.mean()), 1)
    0.6
    """
    n_pairs = _check_int(n_pairs, "n_pairs", 2)
    dim = _check_int(dim, "dim", 2)
    group_size = _check_int(group_size, "group_size", 2)
    n_topics = _check_int(n_topics, "n_topics", 1)
    n_nuisance = _check_int(n_nuisance, "n_nuisance", 1)
    if dim < n_nuisance + 3:
        raise ValueError(
            f"dim must be at least n_nuisance + 3 = {n_nuisance + 3} (the image-only "
            f"directions need their own dimensions); got dim={dim}."
        )
    g_eff = min(group_size, n_pairs)
    retrieval_accuracy = _check_fraction(
        retrieval_accuracy, "retrieval_accuracy", 0.0, 1.0
    )
    if not 1.0 / g_eff < retrieval_accuracy < 1.0:
        raise ValueError(
            "retrieval_accuracy must be above chance (1 / group_size = "
            f"{1.0 / g_eff:.4g}) and below 1; got {retrieval_accuracy}."
        )
    q = _check_fraction(topic_similarity, "topic_similarity", 0.0, 0.99)
    rho = _check_fraction(text_similarity, "text_similarity", 0.0, 0.99)
    atypicality = _check_fraction(atypicality, "atypicality", 0.0, 5.0)
    image_text_cosine = _check_fraction(
        image_text_cosine, "image_text_cosine", 0.01, 1.0
    )
    logit_scale = check_logit_scale(logit_scale)
    rng = np.random.default_rng(check_random_state(random_state).randint(2**31 - 1))

    # image-only directions orthogonal to every caption (see make_vlm_embeddings)
    side = np.linalg.qr(rng.standard_normal((dim, n_nuisance + 1)))[0].T
    c_img, H = side[0], side[1:] * 0.5

    def off_side(V: np.ndarray) -> np.ndarray:
        V -= (V @ side.T) @ side
        return _normalize_(V)

    c_txt = off_side(_unit_rows(rng, 1, dim))[0]
    topic_dirs = off_side(_unit_rows(rng, n_topics, dim))
    topics = rng.integers(0, n_topics, size=n_pairs)

    def make_chunk(start: int, stop: int) -> tuple[np.ndarray, ...]:
        m = stop - start
        concept = np.sqrt(q) * topic_dirs[topics[start:stop]] + np.sqrt(
            1 - q
        ) * off_side(_unit_rows(rng, m, dim))
        _normalize_(concept)
        txt = _normalize_(np.sqrt(rho) * c_txt + np.sqrt(1 - rho) * concept)
        z = rng.exponential(1.0, size=m)
        w = rng.dirichlet(np.ones(n_nuisance), size=m)
        e = rng.standard_normal((m, dim)) / np.sqrt(dim)
        base = txt + (z[:, None] * w) @ H
        noise = np.exp(atypicality * (z - 1.0))[:, None] * e
        return (
            txt.astype(np.float32),
            base.astype(np.float32),
            noise.astype(np.float32),
            z,
        )

    # pilot: whole groups, at most about 8 of them
    n_groups_pilot = max(1, min(-(-n_pairs // group_size), 8))
    n_pilot = min(n_pairs, n_groups_pilot * group_size)
    txt_p, base_p, noise_p, z_p = make_chunk(0, n_pilot)
    sigma = _calibrate_captions(
        [
            (base_p[a:b] @ txt_p[a:b].T, noise_p[a:b] @ txt_p[a:b].T)
            for a, b in (
                (a, min(a + group_size, n_pilot)) for a in range(0, n_pilot, group_size)
            )
        ],
        retrieval_accuracy,
    )
    typical_sq = float(np.median(np.sum((base_p + sigma * noise_p) ** 2, axis=1)))
    gap_vec = (np.sqrt(max(0.0, 1 / image_text_cosine**2 - typical_sq)) * c_img).astype(
        np.float32
    )

    X_img = np.empty((n_pairs, dim), dtype=np.float32)
    X_txt = np.empty((n_pairs, dim), dtype=np.float32)
    difficulty = np.empty(n_pairs)

    def fill(start: int, stop: int, parts: tuple[np.ndarray, ...]) -> None:
        txt, base, noise, z = parts
        X_txt[start:stop] = txt
        X_img[start:stop] = _normalize_(base + np.float32(sigma) * noise + gap_vec)
        difficulty[start:stop] = z

    fill(0, n_pilot, (txt_p, base_p, noise_p, z_p))
    del txt_p, base_p, noise_p
    for start in range(n_pilot, n_pairs, _GEN_CHUNK):
        stop = min(start + _GEN_CHUNK, n_pairs)
        fill(start, stop, make_chunk(start, stop))

    y_correct = caption_correctness(X_img, X_txt, group_size=group_size)
    if return_X_y:
        return X_img, X_txt, y_correct
    acc = float(y_correct.mean())
    return Bunch(
        X_img=X_img,
        X_txt=X_txt,
        y_correct=y_correct,
        group_size=group_size,
        topics=topics.astype(np.int64),
        difficulty=difficulty,
        logit_scale=logit_scale,
        noise_scale=sigma,
        accuracy=acc,
        description=(
            f"Synthetic CLIP-like image-caption pairs: {n_pairs} pairs, dim {dim}, "
            f"{n_topics} topics; in-batch retrieval accuracy {acc:.3f} with groups "
            f"of {group_size} (target {retrieval_accuracy}). Generated by "
            "vilu_sklearn.datasets.make_caption_embeddings."
        ),
    )
