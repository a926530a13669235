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
# most classes searched for the look-alike classes of the visual modes
_MAX_ALIKE_CANDIDATES = 4096


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


def _off_side(V: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Remove from the rows of ``V`` their part in the span of ``side``, normalise."""
    V -= (V @ side.T) @ side
    return _normalize_(V)


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

    The unnormalised image embedding of sample ``i`` (class ``y``, visual mode
    ``m``, background ``j`` with intensity ``b``) is::

        x_i = T[y] + gap * c_img + sigma * dev_i
        dev_i = Q.T @ (look[y] + mode_look[y, m] + b * bg_look[j])      # image-only
                + (drift[y, m] * u(y, alike[y, m]) + b * bg_txt[j]) / sqrt(d)
                + s_i * (e_i + confusion * g_i * p_i / sqrt(d))

    where ``Q`` spans the image-only subspace (orthogonal to every prompt),
    ``u(y, c)`` is the unit direction from anchor ``y`` towards anchor ``c``,
    ``e_i ~ N(0, I / d)``, ``p_i`` the unit direction towards the confusable
    partner, ``s_i = class_scale[y] * exp(atypicality * (z_i - 1))``. Class
    scores ``x_i @ T.T`` are affine in ``sigma``, which makes calibration by
    bisection cheap.
    """

    def __init__(self, geo: dict, atypicality: float) -> None:
        self.T = geo["T"].astype(np.float32)
        self.geo = geo
        self.atypicality = atypicality

    def latents(self, rng: np.random.Generator, labels: np.ndarray) -> dict:
        n, d = labels.shape[0], self.T.shape[1]
        geo = self.geo
        cum: np.ndarray = np.cumsum(geo["mode_weights"][labels], axis=1)
        u = np.asarray(rng.random(n))
        modes = (u[:, None] > cum[:, :-1]).sum(axis=1)
        return {
            "z": rng.exponential(1.0, size=n),
            "mode": modes,
            "bg": rng.integers(0, geo["bg_txt"].shape[0], size=n),
            "b": rng.exponential(1.0, size=n),
            "g": rng.standard_normal(n),
            "e": rng.standard_normal((n, d), dtype=np.float32) / np.float32(np.sqrt(d)),
        }

    def _shrink_residual(self, e: np.ndarray) -> np.ndarray:
        """Scale the noise outside the prompts' span and the image-only subspace."""
        basis = self.geo.get("span")
        if basis is None or self.geo["residual_noise"] == 1.0:
            return e
        inside = (e @ basis.T) @ basis
        e -= inside
        e *= np.float32(self.geo["residual_noise"])
        e += inside
        return e

    def parts(self, labels: np.ndarray, lat: dict) -> tuple[np.ndarray, np.ndarray]:
        """Noise-free part and unit-sigma deviation part, float32 (n, d)."""
        geo, T = self.geo, self.T
        d = T.shape[1]
        mode, bg, b = lat["mode"], lat["bg"], lat["b"]
        b32 = b.astype(np.float32)[:, None]
        # image-only look of the class, of its mode and of the background
        look = geo["look"][labels] + geo["mode_look"][labels, mode]
        look += b32 * geo["bg_look"][bg]
        dev = look @ geo["Q"]
        # text-visible shifts: the mode towards its look-alike class, the
        # background towards the class it is typical of
        alike = geo["alike"][labels, mode]
        u = T[alike] - T[labels]
        u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
        shift = geo["drift"][labels, mode].astype(np.float32)[:, None] * u
        shift += b32 * geo["bg_txt"][bg]
        dev += shift / np.float32(np.sqrt(d))
        # isotropic noise plus noise along the confusable partner
        s = geo["class_scale"][labels] * np.exp(self.atypicality * (lat["z"] - 1.0))
        noise = geo["partner_dir"][labels]
        noise *= lat["g"].astype(np.float32)[:, None]
        noise += self._shrink_residual(lat["e"])
        noise *= s.astype(np.float32)[:, None]
        dev += noise
        return self.geo["centres"][labels], dev


def _class_groups(rng: np.random.Generator, n_classes: int, size: int) -> np.ndarray:
    """Superclass of every class: a random partition into groups of ``size``."""
    groups = np.empty(n_classes, dtype=np.int64)
    groups[rng.permutation(n_classes)] = np.arange(n_classes) // size
    return groups


def _with_groups(
    rng: np.random.Generator, U: np.ndarray, groups: np.ndarray, share: float
) -> np.ndarray:
    """Unit rows ``sqrt(share) * G[group] + sqrt(1 - share) * U`` (G random, unit)."""
    if share == 0.0:
        return U
    G = _unit_rows(rng, int(groups.max()) + 1, U.shape[1])
    return _normalize_(np.sqrt(share) * G[groups] + np.sqrt(1 - share) * U)


def _within_group_pairs(
    rng: np.random.Generator, groups: np.ndarray, n_pairs: int
) -> np.ndarray:
    """``n_pairs`` disjoint class pairs drawn from a pairing inside the groups.

    The pairing matches the classes of every group two by two and the odd
    ones out across groups; ``n_pairs`` of its pairs are drawn at random.
    """
    order = rng.permutation(groups.shape[0])
    order = order[np.argsort(groups[order], kind="stable")]  # grouped, random within
    runs = [order[groups[order] == g] for g in np.unique(groups)]
    inside = [r[: len(r) // 2 * 2].reshape(-1, 2) for r in runs]
    left = np.concatenate([r[len(r) // 2 * 2 :] for r in runs]).astype(np.int64)
    cand = np.concatenate([*inside, left[: len(left) // 2 * 2].reshape(-1, 2)])
    return cand[rng.permutation(len(cand))[:n_pairs]].astype(np.int64)


def _anchors(
    rng: np.random.Generator, p: Bunch, n_side: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Class prompts, pairs, the image-only basis, the common text part, groups.

    Classes fall into superclasses of ``p.group_size`` whose prompts share a
    group direction (``p.group_similarity`` of their class-specific part);
    confusable pairs come from a pairing inside the superclasses (see
    :func:`_within_group_pairs`). The
    image-only directions (modality gap, visual looks) are orthogonal to every
    text anchor, so that they do not favour any class.
    """
    n_classes, dim = p.n_classes, p.dim
    side = np.linalg.qr(rng.standard_normal((dim, n_side)))[0].T
    c_txt = _off_side(_unit_rows(rng, 1, dim), side)[0]
    U = _off_side(_unit_rows(rng, n_classes, dim), side)
    groups = _class_groups(rng, n_classes, p.group_size)
    U = _off_side(_with_groups(rng, U, groups, p.group_similarity), side)
    n_pairs = int(round(p.confusable_fraction * n_classes / 2))
    pairs = _within_group_pairs(rng, groups, n_pairs)
    q = p.pair_similarity
    U[pairs[:, 1]] = np.sqrt(q) * U[pairs[:, 0]] + np.sqrt(1 - q) * U[pairs[:, 1]]
    _normalize_(U)
    rho_k = np.clip(p.rho + 0.03 * rng.standard_normal(n_classes), 0.0, 0.995)
    T = np.sqrt(rho_k)[:, None] * c_txt + np.sqrt(1 - rho_k)[:, None] * U
    return _normalize_(T), pairs, side, c_txt, groups


def _partner_directions(T: np.ndarray, pairs: np.ndarray, scale: float) -> np.ndarray:
    """Unit direction from every paired anchor towards its partner, times scale.

    ``scale = confusion / sqrt(dim)`` makes ``confusion`` the ratio of the noise
    standard deviation along it to that of the isotropic noise per direction.
    """
    partner_dir = np.zeros_like(T)
    for a, b in ((pairs[:, 0], pairs[:, 1]), (pairs[:, 1], pairs[:, 0])):
        diff = T[b] - T[a]
        partner_dir[a] = diff / np.linalg.norm(diff, axis=1, keepdims=True)
    return (partner_dir * scale).astype(np.float32)


def _check_shared(p: Bunch) -> None:
    """Validate, in place, the parameters both generators share.

    The modality gap (``image_text_cosine``), ``logit_scale``, and the visual
    structure (modes, backgrounds, looks), gathered in ``p.structure``.
    """
    p.image_text_cosine = _check_fraction(
        p.image_text_cosine, "image_text_cosine", 0.01, 1.0
    )
    p.logit_scale = check_logit_scale(p.logit_scale)
    p.structure = {
        "n_modes": _check_int(p.n_modes, "n_modes", 1),
        "mode_drift": _check_fraction(p.mode_drift, "mode_drift", 0.0, 100.0),
        "n_backgrounds": _check_int(p.n_backgrounds, "n_backgrounds", 1),
        "background_strength": _check_fraction(
            p.background_strength, "background_strength", 0.0, 100.0
        ),
        "visual_separation": _check_fraction(
            p.visual_separation, "visual_separation", 0.0, 100.0
        ),
        "pair_similarity": 0.0,
        "group_similarity": 0.0,
        "look_share": 0.6,  # how much a drifting mode looks like its look-alike
    }


def _look_alikes(
    rng: np.random.Generator, T: np.ndarray, pairs: np.ndarray, n_modes: int
) -> np.ndarray:
    """For every (class, mode), the class whose prompt the mode drifts towards.

    One of the 3 nearest anchors (cosine), or the confusable partner with
    probability 1/2 for paired classes. Chunked: no (K, K) matrix; beyond
    ``_MAX_ALIKE_CANDIDATES`` classes the nearest are sought among that many
    random classes, which bounds the time.
    """
    K = T.shape[0]
    if K < 2:
        return np.zeros((K, n_modes), dtype=np.int64)
    n_near = min(3, K - 1)
    cand = np.arange(K)
    if K > _MAX_ALIKE_CANDIDATES:
        cand = np.sort(rng.choice(K, size=_MAX_ALIKE_CANDIDATES, replace=False))
    near = np.empty((K, n_near), dtype=np.int64)
    for start in range(0, K, 512):
        rows = np.arange(start, min(start + 512, K))
        G = T[rows] @ T[cand].T
        G[rows[:, None] == cand] = -np.inf
        near[rows] = cand[np.argpartition(-G, n_near - 1, axis=1)[:, :n_near]]
    pick = rng.integers(0, n_near, size=(K, n_modes))
    alike = near[np.arange(K)[:, None], pick]
    partner = np.full(K, -1)
    partner[pairs[:, 0]], partner[pairs[:, 1]] = pairs[:, 1], pairs[:, 0]
    use = (partner[:, None] >= 0) & (rng.random((K, n_modes)) < 0.5)
    alike[use] = np.broadcast_to(partner[:, None], (K, n_modes))[use]
    return alike


def _visual_structure(
    rng: np.random.Generator,
    T: np.ndarray,
    pairs: np.ndarray,
    r: int,
    cfg: dict,
    groups: np.ndarray | None = None,
) -> dict:
    """Image-only looks (class, mode, background) and text-visible shifts.

    With ``groups``, classes of a superclass share part of their look.
    """
    K, n_modes, n_bg = T.shape[0], cfg["n_modes"], cfg["n_backgrounds"]
    sep, q = cfg["visual_separation"], cfg["pair_similarity"]
    look = _unit_rows(rng, K, r)
    if groups is not None:
        look = _with_groups(rng, look, groups, cfg["group_similarity"])
    # confusable classes also look alike (cat / dog, automobile / truck)
    look[pairs[:, 1]] = (
        np.sqrt(q) * look[pairs[:, 0]] + np.sqrt(1 - q) * look[pairs[:, 1]]
    )
    look = _normalize_(look) * sep
    mode_look = _unit_rows(rng, K * n_modes, r).reshape(K, n_modes, r) * (0.75 * sep)
    weights = np.sort(rng.dirichlet(np.full(n_modes, 2.0), size=K), axis=1)[:, ::-1]
    frac = rng.beta(2.0, 2.0, size=(K, n_modes))
    frac[:, 0] = 0.0  # the most frequent mode is the prototypical one
    alike = _look_alikes(rng, T, pairs, n_modes)
    # a mode that drifts towards another class's prompt also looks like that
    # class's images (a cat that looks like a dog, to both towers)
    mode_look += (frac[:, :, None] * cfg["look_share"]) * (look[alike] - look[:, None])
    home = rng.choice(K, size=n_bg, replace=n_bg > K)
    bg_txt = _normalize_(T[home] - T.mean(axis=0)) * cfg["background_strength"]
    return {
        "look": look.astype(np.float32),
        "mode_look": mode_look.astype(np.float32),
        "mode_weights": np.ascontiguousarray(weights),
        "drift": cfg["mode_drift"] * frac,
        "alike": alike,
        "bg_look": (_unit_rows(rng, n_bg, r) * (0.75 * sep)).astype(np.float32),
        "bg_txt": bg_txt.astype(np.float32),
        "bg_home": home,
        "groups": np.arange(K) if groups is None else groups,
    }


def _check_dim_room(dim: int, n_nuisance: int) -> None:
    if dim < n_nuisance + 3:
        raise ValueError(
            f"dim must be at least n_nuisance + 3 = {n_nuisance + 3} (the image-only "
            f"directions need their own dimensions); got dim={dim}."
        )


def _generator(random_state: Any) -> np.random.Generator:
    """A numpy Generator seeded from a scikit-learn ``random_state``."""
    return np.random.default_rng(check_random_state(random_state).randint(2**31 - 1))


def _check_vlm_params(**params: Any) -> Bunch:
    """Validated parameters of :func:`make_vlm_embeddings`, checked in order.

    ``text_similarity`` is returned as ``rho``; ``structure`` holds the visual
    structure (see :func:`_check_shared`).
    """
    p = Bunch(**params)
    p.n_samples = _check_int(p.n_samples, "n_samples", 1)
    p.n_classes = _check_int(p.n_classes, "n_classes", 2)
    p.dim = _check_int(p.dim, "dim", 2)
    p.n_nuisance = _check_int(p.n_nuisance, "n_nuisance", 1)
    _check_dim_room(p.dim, p.n_nuisance)
    p.accuracy = _check_fraction(p.accuracy, "accuracy", 0.0, 1.0)
    if not 1.0 / p.n_classes < p.accuracy < 1.0:
        raise ValueError(
            f"accuracy must be above chance (1 / n_classes = {1.0 / p.n_classes:.4g}) "
            f"and below 1; got {p.accuracy}."
        )
    p.rho = _check_fraction(p.text_similarity, "text_similarity", 0.0, 0.99)
    for name, low, high in (
        ("confusable_fraction", 0.0, 1.0),
        ("pair_similarity", 0.0, 0.99),
        ("confusion", 0.0, 100.0),
        ("class_difficulty", 0, 5),
        ("atypicality", 0.0, 5.0),
    ):
        p[name] = _check_fraction(p[name], name, low, high)
    _check_shared(p)
    p.structure["pair_similarity"] = p.pair_similarity
    p.image_specificity = _check_fraction(
        p.image_specificity, "image_specificity", 0, 1
    )
    p.residual_noise = _check_fraction(p.residual_noise, "residual_noise", 0.0, 1.0)
    p.group_size = _check_int(p.group_size, "group_size", 1)
    p.group_similarity = _check_fraction(
        p.group_similarity, "group_similarity", 0.0, 0.99
    )
    p.structure["group_similarity"] = p.group_similarity
    p.look_coupling = _check_fraction(p.look_coupling, "look_coupling", 0.0, 1.0)
    return p


def _class_geometry(
    rng: np.random.Generator, p: Bunch
) -> tuple[dict, np.ndarray, np.ndarray]:
    """The latent structure of :class:`_ImageModel`, the pairs, the gap direction."""
    T, pairs, side, c_txt, groups = _anchors(rng, p, p.n_nuisance + 1)
    geo = _visual_structure(rng, T, pairs, p.n_nuisance, p.structure, groups)
    # image class centres keep less of the prompts' common direction than the
    # prompts do: an image is much nearer its own prompt than the others
    centres = T - p.image_specificity * (T @ c_txt)[:, None] * c_txt
    geo.update(
        T=T,
        centres=centres.astype(np.float32),
        Q=side[1:].astype(np.float32),
        partner_dir=_partner_directions(T, pairs, p.confusion / np.sqrt(p.dim)),
        class_scale=np.exp(p.class_difficulty * rng.standard_normal(p.n_classes)),
    )
    if p.n_classes + p.n_nuisance + 1 < p.dim:
        # orthonormal basis of the prompts' span and of the image-only subspace
        geo["span"] = np.linalg.qr(np.c_[T.T, side[1:].T])[0].T.astype(np.float32)
    geo["residual_noise"] = p.residual_noise
    return geo, pairs, side[0]


def _modality_gap(block: np.ndarray, own_txt: np.ndarray, cosine: float) -> Any:
    """Length of the modality-gap direction giving cos(image, own text) ~ ``cosine``.

    Zero when the noise leaves no room for it.
    """
    typical_sq = float(np.median(np.sum(block**2, axis=1)))
    own = float(np.median(np.sum(block * own_txt, axis=1)))
    return np.sqrt(max(0.0, (own / cosine) ** 2 - typical_sq))


def _couple_looks(
    X: np.ndarray, labels: np.ndarray, geo: dict, scale: float, logit_scale: float
) -> None:
    """Move, in place, an image's class look towards its apparent class's look.

    The apparent class is the one the text-visible features point to: ``X``
    (unnormalised images) gets ``scale * (sum_k p_k look[k] - look[y]) @ Q``
    with ``p = softmax(logit_scale * cos(X, T))``, so an image that looks like
    another class to the prompts looks like it in its image-only features too.
    The change is orthogonal to every prompt, so predictions do not move.
    """
    T, look, Q = geo["T32"], geo["look"], geo["Q"]
    step = max(1, _PILOT_BUDGET // T.shape[0])
    for a in range(0, X.shape[0], step):
        b = min(a + step, X.shape[0])
        Z = X[a:b] @ T.T
        Z *= np.float32(logit_scale) / np.linalg.norm(X[a:b], axis=1, keepdims=True)
        Z -= Z.max(axis=1, keepdims=True)
        np.exp(Z, out=Z)
        Z /= Z.sum(axis=1, keepdims=True)
        shift = Z @ look
        shift -= look[labels[a:b]]
        shift *= np.float32(scale)
        X[a:b] += shift @ Q


def _draw_class_images(
    rng: np.random.Generator,
    model: _ImageModel,
    labels: np.ndarray,
    c_img: np.ndarray,
    p: Bunch,
) -> Bunch:
    """Calibrate the noise on a pilot, then draw every image chunk by chunk.

    Returns ``X_img``, ``difficulty``, ``modes``, ``backgrounds`` and ``sigma``.
    """
    n_samples, T32 = labels.shape[0], model.T
    # --- calibrate the noise on a pilot: scores are base + sigma * noise ----
    n_pilot = int(np.clip(_PILOT_BUDGET // p.n_classes, _MIN_PILOT, _MAX_PILOT))
    n_pilot = min(n_pilot, n_samples)
    pilot_lat = model.latents(rng, labels[:n_pilot])
    base, noise = model.parts(labels[:n_pilot], pilot_lat)
    y_pilot = labels[:n_pilot]
    sigma = _calibrate_classes(base @ T32.T, noise @ T32.T, y_pilot, p.accuracy)
    gap = _modality_gap(base + sigma * noise, T32[y_pilot], p.image_text_cosine)
    gap_vec = (gap * c_img).astype(np.float32)

    # --- generate the embeddings chunk by chunk -----------------------------
    out = Bunch(
        X_img=np.empty((n_samples, T32.shape[1]), dtype=np.float32),
        difficulty=np.empty(n_samples),
        modes=np.empty(n_samples, dtype=np.int64),
        backgrounds=np.empty(n_samples, dtype=np.int64),
        sigma=sigma,
    )

    geo = dict(model.geo, T32=T32)
    coupling = sigma * p.look_coupling

    def fill(start: int, stop: int, lat: dict, b: Any = None, nz: Any = None) -> None:
        if b is None:
            b, nz = model.parts(labels[start:stop], lat)
        X = b + np.float32(sigma) * nz + gap_vec
        if coupling > 0:
            _couple_looks(X, labels[start:stop], geo, coupling, p.logit_scale)
        out.X_img[start:stop] = _normalize_(X)
        out.difficulty[start:stop] = lat["z"]
        out.modes[start:stop] = lat["mode"]
        out.backgrounds[start:stop] = lat["bg"]

    fill(0, n_pilot, pilot_lat, base, noise)
    del base, noise, pilot_lat
    for start in range(n_pilot, n_samples, _GEN_CHUNK):
        stop = min(start + _GEN_CHUNK, n_samples)
        fill(start, stop, model.latents(rng, labels[start:stop]))
    return out


def make_vlm_embeddings(
    n_samples: int = 1000,
    n_classes: int = 10,
    dim: int = 512,
    *,
    accuracy: float = 0.7,
    text_similarity: float = 0.7,
    confusable_fraction: float = 0.3,
    pair_similarity: float = 0.6,
    confusion: float = 2.0,
    class_difficulty: float = 0.05,
    atypicality: float = 0.2,
    n_nuisance: int = 16,
    image_text_cosine: float = 0.3,
    logit_scale: float = 100.0,
    return_X_y: bool = False,
    random_state: Any = None,
    n_modes: int = 4,
    mode_drift: float = 1.5,
    n_backgrounds: int = 8,
    background_strength: float = 0.75,
    visual_separation: float = 0.06,
    image_specificity: float = 0.6,
    residual_noise: float = 0.3,
    group_size: int = 5,
    group_similarity: float = 0.25,
    look_coupling: float = 1.0,
) -> Any:
    """Synthetic CLIP-like image and class-prompt embeddings for failure prediction.

    Class prompts ("text anchors") are unit vectors sharing a common direction,
    so that they are far from orthogonal (cosine about ``text_similarity``, as
    for the prompts of a real CLIP text tower); some classes come in confusable
    pairs whose anchors are even closer. An image embedding is built from its
    class, a visual *mode* of that class, a *background* shared across classes
    and noise, plus a shared image-only direction (the modality gap), then
    L2-normalised. One scale multiplies every deviation from the class centre;
    it is calibrated (by bisection on a pilot sample, class scores being affine
    in it) so that the zero-shot accuracy, ``argmax_k cos(X_img[i], X_txt[k]) ==
    labels[i]``, hits ``accuracy``.

    The mechanisms, and the property of real embeddings each one imitates
    (measured on real CIFAR-10 image embeddings; see docs/benchmark.md):

    * **Visual modes** (``n_modes``, ``mode_drift``). Every class has a few
      sub-populations of unequal frequency. The most frequent one sits on the
      class centre; each other one is shifted towards the prompt of a
      look-alike class (one of the nearest anchors, or the confusable
      partner), by a mode-specific amount, and its images also *look* like
      that class's images. Real errors come in visually coherent groups that a
      nearest-neighbour search finds (on CIFAR-10 the correctness rate of the 10
      nearest training images predicts failures with an AUROC of about 0.73)
      and most of a class's errors go to one or two classes.
    * **Confusable pairs** (``confusable_fraction``, ``pair_similarity``,
      ``confusion``): closer prompts, similar image looks and extra noise
      towards the partner, like cat / dog and automobile / truck.
    * **Backgrounds** (``n_backgrounds``, ``background_strength``): contexts
      shared by all classes (think water, sky, grass), each typical of one
      class. They move the image towards that class's prompt by a random
      intensity and add an image-only signature: the image embedding reveals
      the context, the prompt of the true class ignores it.
    * **Image-only looks** (``visual_separation``, ``n_nuisance``): class,
      mode and background signatures in a subspace orthogonal to every prompt.
      Same-class images are nearer each other than other images, but not so
      cleanly that the image embedding alone beats the softmax (on CIFAR-10 a
      trust score is about 3 AUROC points below max-softmax).
    * **Specific images** (``image_specificity``): image class centres keep
      less of the prompts' common direction than the prompts do, so an image is
      much nearer its own prompt than the others and the softmax is
      over-confident (CIFAR-10: mean max-softmax 0.78 at accuracy 0.73; the
      default gives a larger gap, about 0.18 at 100 classes, the price of
      effect sizes like real data, see docs/benchmark.md).
    * **Low-dimensional noise** (``residual_noise``): Gaussian noise is full
      strength inside the prompts' span and the image-only subspace and damped
      elsewhere (real image embeddings vary along few directions).
    * **Difficulty** (``class_difficulty``, ``atypicality``): per-class noise
      levels and a per-image latent difficulty that raises the noise.
    * **Superclasses** (``group_size``, ``group_similarity``): classes fall
      into groups (CIFAR-100's 20 superclasses of 5; animals and vehicles in
      CIFAR-10) whose prompts and image looks share a group direction, and
      confusable pairs are drawn mostly inside a group (from a pairing that
      matches the classes of a group two by two, odd ones out across). The
      confusion structure is then a property of the text side that carries
      over to classes unseen in training (on CIFAR-10 the prompt cosine is
      0.56 inside a superclass and 0.42 across).
    * **One perception** (``look_coupling``): the image-only class look of an
      image follows the class its text-visible features point to (weighted by
      the VLM's softmax) rather than its true class, so an image that looks like
      a dog to the prompts looks like a dog in its other features too. Real
      image embeddings hold no separate hidden record of the true class: on
      CIFAR-10 a linear probe trained on the labels is no more accurate than
      the zero-shot prompts (71 % vs 73 %).

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
    text_similarity : float, default=0.7
        Mean cosine similarity between two class anchors, in ``[0, 1)``.
    confusable_fraction : float, default=0.3
        Fraction of classes that belong to a confusable pair (``0`` for none).
    pair_similarity : float, default=0.6
        How much closer the anchors of a pair are: the class-specific parts of the
        two anchors have this cosine (anchor cosine
        ``text_similarity + (1 - text_similarity) * pair_similarity``).
    confusion : float, default=2.0
        Extra noise of a paired class along the direction of its partner:
        the ratio of its standard deviation to that of the isotropic noise
        (``0`` for none).
    class_difficulty : float, default=0.05
        Standard deviation of the log of the per-class noise multiplier.
    atypicality : float, default=0.2
        Strength of the latent difficulty ``z ~ Exp(1)``: it multiplies the
        noise of an image by ``exp(atypicality * (z - 1))``.
    n_nuisance : int, default=16
        Dimension of the image-only subspace that holds the class, mode and
        background looks (visual factors that the prompts miss). Needs
        ``dim >= n_nuisance + 3``.
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
    n_modes : int, default=4
        Visual modes (sub-populations) per class; ``1`` for none.
    mode_drift : float, default=1.5
        Largest shift of a mode towards its look-alike class's prompt, in units
        of the per-direction noise standard deviation; each non-prototypical
        mode gets ``mode_drift * Beta(2, 2)``. ``0`` for none.
    n_backgrounds : int, default=8
        Contexts shared across classes.
    background_strength : float, default=0.75
        Mean pull of a background towards the prompt of the class it is typical
        of (per-direction noise units; the intensity is exponential). ``0`` for
        none.
    visual_separation : float, default=0.06
        Norm of the image-only class look relative to the noise (modes and
        backgrounds get 0.75 of it): how well image neighbourhoods reveal the
        class, the mode and the background.
    image_specificity : float, default=0.6
        Fraction of the prompts' common direction removed from the image class
        centres, in ``[0, 1]``; higher makes the softmax more confident.
    residual_noise : float, default=0.3
        Scale of the noise outside the prompts' span and the image-only
        subspace, in ``[0, 1]`` (used when ``n_classes + n_nuisance + 1 < dim``).
    group_size : int, default=5
        Classes per superclass (the last group may be smaller); ``1`` or
        ``group_similarity=0`` for none.
    group_similarity : float, default=0.25
        Share of the class-specific part of a prompt (and of a class look)
        that comes from its superclass direction, in ``[0, 1)``.
    look_coupling : float, default=1.0
        Share of the image-only class look that follows the softmax over the
        prompts instead of the true class, in ``[0, 1]``. Orthogonal to every
        prompt: it never changes a prediction.

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
        - ``modes``: ndarray (n_samples,), int64, visual mode of every image
          (0 is the prototypical one; for analysis).
        - ``backgrounds``: ndarray (n_samples,), int64, background of every
          image (for analysis).
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
      clusters of fine-grained classes), so look-alike classes are picked
      among the nearest anchors of random geometry.
    * Modes, backgrounds and noise are Gaussian blobs and fixed directions;
      real image manifolds are curved, and real errors have more causes
      (label noise, several objects, ambiguous crops).
    * The modality gap is a single direction; the per-class image means of real
      CLIP are not exactly their anchors plus a constant shift.
    * The knobs were set by comparing the properties listed above and the
      ranking of the package's baselines with real CIFAR-10 embeddings
      (``examples/synthetic_realism.py``); they are not fitted to any model.

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
    p = _check_vlm_params(
        n_samples=n_samples, n_classes=n_classes, dim=dim, accuracy=accuracy,
        text_similarity=text_similarity, confusable_fraction=confusable_fraction,
        pair_similarity=pair_similarity, confusion=confusion,
        class_difficulty=class_difficulty, atypicality=atypicality,
        n_nuisance=n_nuisance, image_text_cosine=image_text_cosine,
        logit_scale=logit_scale, n_modes=n_modes, mode_drift=mode_drift,
        n_backgrounds=n_backgrounds, background_strength=background_strength,
        visual_separation=visual_separation, image_specificity=image_specificity,
        residual_noise=residual_noise, group_size=group_size,
        group_similarity=group_similarity, look_coupling=look_coupling,
    )  # fmt: skip
    rng = _generator(random_state)
    geo, pairs, c_img = _class_geometry(rng, p)
    model = _ImageModel(geo, p.atypicality)
    labels = rng.integers(0, p.n_classes, size=p.n_samples)
    images = _draw_class_images(rng, model, labels, c_img, p)
    y_pred = _predict_argmax(images.X_img, model.T, True)
    y_correct = (y_pred == labels).astype(np.int64)
    if return_X_y:
        return images.X_img, model.T, y_correct
    acc = float(y_correct.mean())
    description = (
        f"Synthetic CLIP-like embeddings: {p.n_samples} images, {p.n_classes} "
        f"classes, dim {p.dim}; zero-shot accuracy {acc:.3f} (target {p.accuracy}); "
        f"{len(pairs)} confusable class pairs; anchor cosine ~{p.rho}; "
        f"logit_scale {p.logit_scale:g}. Generated by "
        "vilu_sklearn.datasets.make_vlm_embeddings."
    )
    return Bunch(
        X_img=images.X_img,
        X_txt=model.T,
        labels=labels.astype(np.int64),
        y_pred=y_pred,
        y_correct=y_correct,
        logit_scale=p.logit_scale,
        class_names=[f"class_{k}" for k in range(p.n_classes)],
        difficulty=images.difficulty,
        modes=images.modes,
        backgrounds=images.backgrounds,
        confusable_pairs=pairs.astype(np.int64),
        groups=geo["groups"].astype(np.int64),
        noise_scale=images.sigma,
        accuracy=acc,
        description=description,
    )


def _check_caption_params(**params: Any) -> Bunch:
    """Validated parameters of :func:`make_caption_embeddings`, checked in order.

    ``topic_similarity`` is returned as ``q``, ``text_similarity`` as ``rho``;
    ``structure`` holds the visual structure (see :func:`_check_shared`).
    """
    p = Bunch(**params)
    p.n_pairs = _check_int(p.n_pairs, "n_pairs", 2)
    p.dim = _check_int(p.dim, "dim", 2)
    p.group_size = _check_int(p.group_size, "group_size", 2)
    p.n_topics = _check_int(p.n_topics, "n_topics", 1)
    p.n_nuisance = _check_int(p.n_nuisance, "n_nuisance", 1)
    _check_dim_room(p.dim, p.n_nuisance)
    g_eff = min(p.group_size, p.n_pairs)
    p.retrieval_accuracy = _check_fraction(
        p.retrieval_accuracy, "retrieval_accuracy", 0.0, 1.0
    )
    if not 1.0 / g_eff < p.retrieval_accuracy < 1.0:
        raise ValueError(
            "retrieval_accuracy must be above chance (1 / group_size = "
            f"{1.0 / g_eff:.4g}) and below 1; got {p.retrieval_accuracy}."
        )
    p.q = _check_fraction(p.topic_similarity, "topic_similarity", 0.0, 0.99)
    p.rho = _check_fraction(p.text_similarity, "text_similarity", 0.0, 0.99)
    p.atypicality = _check_fraction(p.atypicality, "atypicality", 0.0, 5.0)
    _check_shared(p)
    return p


class _CaptionModel:
    """Captions drawn around topics; images by :class:`_ImageModel` (topics as classes).

    The constructor draws, in this order, the image-only basis, the common text
    direction, the topic directions, the topic of every pair and the visual
    structure; :meth:`chunk` then draws the pairs of consecutive rows.
    """

    def __init__(self, rng: np.random.Generator, p: Bunch) -> None:
        # image-only directions orthogonal to every caption (see make_vlm_embeddings)
        side = np.linalg.qr(rng.standard_normal((p.dim, p.n_nuisance + 1)))[0].T
        self.side, self.q, self.rho = side, p.q, p.rho
        self.c_txt = _off_side(_unit_rows(rng, 1, p.dim), side)[0]
        self.topic_dirs = topic_dirs = _off_side(
            _unit_rows(rng, p.n_topics, p.dim), side
        )
        self.topics = rng.integers(0, p.n_topics, size=p.n_pairs)
        # topics play the part of classes: modes drifting towards a look-alike
        # topic, backgrounds shared by all topics, image-only looks
        geo = _visual_structure(
            rng, topic_dirs, np.empty((0, 2), np.int64), p.n_nuisance, p.structure
        )
        geo.update(
            T=topic_dirs,
            centres=topic_dirs.astype(np.float32),
            Q=side[1:].astype(np.float32),
            partner_dir=np.zeros(topic_dirs.shape, dtype=np.float32),
            class_scale=np.ones(p.n_topics),
            residual_noise=1.0,
        )
        self.image = _ImageModel(geo, p.atypicality)

    def chunk(
        self, rng: np.random.Generator, start: int, stop: int
    ) -> tuple[np.ndarray, ...]:
        """Captions, image base (the captions), unit-sigma deviations, difficulty."""
        m, dim = stop - start, self.side.shape[1]
        topics = self.topics[start:stop]
        concept = np.sqrt(self.q) * self.topic_dirs[topics] + np.sqrt(
            1 - self.q
        ) * _off_side(_unit_rows(rng, m, dim), self.side)
        _normalize_(concept)
        txt = _normalize_(
            np.sqrt(self.rho) * self.c_txt + np.sqrt(1 - self.rho) * concept
        )
        txt = txt.astype(np.float32)
        lat = self.image.latents(rng, topics)
        dev = self.image.parts(topics, lat)[1]
        return txt, txt, dev, lat["z"]


def _draw_caption_pairs(
    rng: np.random.Generator, model: _CaptionModel, p: Bunch
) -> Bunch:
    """Calibrate the noise on a pilot of whole groups, then draw every pair.

    Returns ``X_img``, ``X_txt``, ``difficulty`` and ``sigma``.
    """
    n_pairs, group_size = p.n_pairs, p.group_size
    # pilot: whole groups, at most about 8 of them
    n_groups_pilot = max(1, min(-(-n_pairs // group_size), 8))
    n_pilot = min(n_pairs, n_groups_pilot * group_size)
    txt_p, base_p, noise_p, z_p = model.chunk(rng, 0, n_pilot)
    groups = [(a, min(a + group_size, n_pilot)) for a in range(0, n_pilot, group_size)]
    sigma = _calibrate_captions(
        [(base_p[a:b] @ txt_p[a:b].T, noise_p[a:b] @ txt_p[a:b].T) for a, b in groups],
        p.retrieval_accuracy,
    )
    gap = _modality_gap(base_p + sigma * noise_p, txt_p, p.image_text_cosine)
    gap_vec = (gap * model.side[0]).astype(np.float32)
    out = Bunch(
        X_img=np.empty((n_pairs, p.dim), dtype=np.float32),
        X_txt=np.empty((n_pairs, p.dim), dtype=np.float32),
        difficulty=np.empty(n_pairs),
        sigma=sigma,
    )

    def fill(start: int, stop: int, parts: tuple[np.ndarray, ...]) -> None:
        txt, base, noise, z = parts
        out.X_txt[start:stop] = txt
        out.X_img[start:stop] = _normalize_(base + np.float32(sigma) * noise + gap_vec)
        out.difficulty[start:stop] = z

    fill(0, n_pilot, (txt_p, base_p, noise_p, z_p))
    del txt_p, base_p, noise_p
    for start in range(n_pilot, n_pairs, _GEN_CHUNK):
        stop = min(start + _GEN_CHUNK, n_pairs)
        fill(start, stop, model.chunk(rng, start, stop))
    return out


def make_caption_embeddings(
    n_pairs: int = 2048,
    dim: int = 512,
    *,
    retrieval_accuracy: float = 0.6,
    group_size: int = 1024,
    n_topics: int = 64,
    topic_similarity: float = 0.5,
    text_similarity: float = 0.6,
    atypicality: float = 0.2,
    n_nuisance: int = 16,
    image_text_cosine: float = 0.3,
    logit_scale: float = 100.0,
    return_X_y: bool = False,
    random_state: Any = None,
    n_modes: int = 4,
    mode_drift: float = 5.0,
    n_backgrounds: int = 8,
    background_strength: float = 1.0,
    visual_separation: float = 0.15,
) -> Any:
    """Synthetic paired image and caption embeddings for caption mode.

    Every pair has a latent "concept" drawn around one of ``n_topics`` topics
    (captions of the same topic are similar, which makes in-batch retrieval hard
    as on web image-text data). The caption embedding is the concept plus a
    shared text direction; the image embedding is the caption embedding plus a
    shared image direction (modality gap), the visual structure of
    :func:`make_vlm_embeddings` with topics in the part of classes (modes
    drifting towards a look-alike topic, backgrounds shared across topics,
    image-only looks) and noise, so that retrieval failures cluster in image
    neighbourhoods as they do for classes. The deviation scale is calibrated so
    that in-batch image-to-caption retrieval over consecutive groups of
    ``group_size`` rows (see :func:`vilu_sklearn.caption_correctness`) has
    accuracy ``retrieval_accuracy`` (CLIP on CC12M with groups of 1024: about 0.5-0.7).

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
    atypicality : float, default=0.2
        Strength of the latent difficulty (see :func:`make_vlm_embeddings`).
    n_nuisance : int, default=16
        Dimension of the image-only subspace holding the topic, mode and
        background looks.
    image_text_cosine : float, default=0.3
        Typical cosine between an image and its caption, when the noise allows.
    logit_scale : float, default=100.0
        Temperature returned in the bunch.
    return_X_y : bool, default=False
        Return ``(X_img, X_txt, y_correct)`` instead of a bunch.
    random_state : int, RandomState instance or None, default=None
        Seed; the same seed gives identical arrays.
    n_modes, mode_drift, n_backgrounds, background_strength, visual_separation
        The visual structure of :func:`make_vlm_embeddings`, with topics in the
        part of classes: a pair's image may belong to a mode of its topic that
        drifts towards a look-alike topic (and looks like its images), carry a
        background shared by all topics, and shows image-only topic, mode and
        background looks that its caption does not describe.

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
    p = _check_caption_params(
        n_pairs=n_pairs, dim=dim, retrieval_accuracy=retrieval_accuracy,
        group_size=group_size, n_topics=n_topics, topic_similarity=topic_similarity,
        text_similarity=text_similarity, atypicality=atypicality,
        n_nuisance=n_nuisance, image_text_cosine=image_text_cosine,
        logit_scale=logit_scale, n_modes=n_modes, mode_drift=mode_drift,
        n_backgrounds=n_backgrounds, background_strength=background_strength,
        visual_separation=visual_separation,
    )  # fmt: skip
    rng = _generator(random_state)
    model = _CaptionModel(rng, p)
    pairs = _draw_caption_pairs(rng, model, p)
    y_correct = caption_correctness(pairs.X_img, pairs.X_txt, group_size=group_size)
    if return_X_y:
        return pairs.X_img, pairs.X_txt, y_correct
    acc = float(y_correct.mean())
    return Bunch(
        X_img=pairs.X_img,
        X_txt=pairs.X_txt,
        y_correct=y_correct,
        group_size=p.group_size,
        topics=model.topics.astype(np.int64),
        difficulty=pairs.difficulty,
        logit_scale=p.logit_scale,
        noise_scale=pairs.sigma,
        accuracy=acc,
        description=(
            f"Synthetic CLIP-like image-caption pairs: {p.n_pairs} pairs, dim {p.dim}, "
            f"{p.n_topics} topics; in-batch retrieval accuracy {acc:.3f} with groups "
            f"of {p.group_size} (target {p.retrieval_accuracy}). Generated by "
            "vilu_sklearn.datasets.make_caption_embeddings."
        ),
    )
