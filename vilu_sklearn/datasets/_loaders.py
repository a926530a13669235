"""Loaders for embeddings that users computed themselves and stored as numpy files."""

from __future__ import annotations

import os
import zipfile

import numpy as np
from sklearn.utils import Bunch

from .._validation import check_logit_scale

__all__ = ["load_embeddings", "load_npy_embeddings"]

_IMG_NAMES = ("X_img", "X_img_train", "X_img_test")
_LABEL_NAMES = ("y", "y_train", "y_test")


def _check_matrix(X: np.ndarray, name: str, source: str, dim: int | None) -> None:
    if X.dtype.kind != "f":
        raise ValueError(
            f"{name} in {source} must hold floats (float16, float32 or float64); "
            f"got dtype {X.dtype}."
        )
    if X.ndim != 2:
        raise ValueError(
            f"{name} in {source} must be a 2-D array of shape (n, dim); got shape "
            f"{X.shape}."
        )
    if X.shape[0] == 0:
        raise ValueError(f"{name} in {source} is empty (shape {X.shape}).")
    if dim is not None and X.shape[1] != dim:
        raise ValueError(
            f"{name} in {source} has dimension {X.shape[1]} (shape {X.shape}), but "
            f"X_txt has dimension {dim}: image and text embeddings must come from "
            "the same model."
        )


def _check_vector(
    y: np.ndarray, name: str, source: str, n: int, n_from: str, kind: str
) -> None:
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(
            f"{name} in {source} must have shape ({n},) to match {n_from}; got shape "
            f"{y.shape}."
        )
    if y.dtype.kind not in kind:
        raise ValueError(f"{name} in {source} must hold integers; got dtype {y.dtype}.")


def _check_labels(y: np.ndarray, name: str, source: str, n_classes: int) -> None:
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(
            f"{name} in {source} must hold class indices in [0, {n_classes}) (row k "
            f"of X_txt is class k); got values in [{y.min()}, {y.max()}]."
        )


def _check_y_correct(y: np.ndarray, name: str, source: str) -> None:
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError(
            f"{name} in {source} must be binary (1 where the VLM's prediction is "
            "correct, 0 where it is wrong)."
        )


def load_embeddings(path: str | os.PathLike[str]) -> Bunch:
    """Load image and text embeddings stored in a ``.npz`` file.

    The file must be written with :func:`numpy.savez` or
    :func:`numpy.savez_compressed` from plain numeric or string arrays (pickled
    object arrays are refused). Recognised array names:

    ========================== ==============================================
    ``X_img``                  image embeddings (n, d), or
    ``X_img_train``,           a split into train and test image embeddings
    ``X_img_test``             (either or both)
    ``X_txt``                  text embeddings (K, d): one prompt per class, or
                               captions paired with the image rows
    ``y`` / ``y_train`` /      integer class labels in ``[0, K)``, one per row
    ``y_test``                 of the matching image array
    ``y_correct`` /            binary correctness labels (1 = the VLM was right)
    ``y_correct_train`` /
    ``y_correct_test``
    ``logit_scale``            optional scalar temperature (CLIP's is 100)
    ``classes``                optional class names, shape (K,)
    ========================== ==============================================

    Other arrays are ignored (and listed in ``extra``). This accepts, for
    example, files with ``X_img_train, y_train, X_img_test, y_test, X_txt,
    classes, logit_scale``.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        The arrays found, under the names above, with their stored dtype
        (``.npz`` members cannot be memory-mapped: every array is read into
        memory; use :func:`load_npy_embeddings` for large sets). ``logit_scale``
        is a float or None, ``classes`` a list of str or None, ``extra`` the
        names of the ignored arrays.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not an ``.npz`` archive, holds pickled objects, misses
        required arrays (the message lists the arrays found) or has inconsistent
        shapes.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from vilu_sklearn.datasets import load_embeddings
    >>> path = os.path.join(tempfile.mkdtemp(), "emb.npz")
    >>> rng = np.random.default_rng(0)
    >>> np.savez(path, X_img=rng.normal(size=(6, 4)), X_txt=np.eye(4)[:3],
    ...          y=np.array([0, 1, 2, 0, 1, 2]), logit_scale=100.0)
    >>> data = load_embeddings(path)
    >>> data.X_img.shape, data.X_txt.shape, data.logit_scale
    ((6, 4), (3, 4), 100.0)
    """
    path = os.fspath(path)
    names, arrays = _read_npz(path)
    found = ", ".join(sorted(names)) or "none"
    src = repr(path)
    X_txt = arrays["X_txt"]
    _check_matrix(X_txt, "X_txt", src, None)
    out = Bunch(X_txt=X_txt)
    for suffix in ("", "_train", "_test"):
        out.update(_image_split(arrays, suffix, src, found, X_txt.shape))
    out["logit_scale"] = _stored_logit_scale(arrays.get("logit_scale"), src)
    out["classes"] = _stored_classes(arrays.get("classes"), src, X_txt.shape)
    out["extra"] = sorted(n for n in names if n not in _KNOWN_NAMES)
    return out


_KNOWN_NAMES = frozenset(
    {
        *(_IMG_NAMES),
        *(_LABEL_NAMES),
        "X_txt",
        "y_correct",
        "y_correct_train",
        "y_correct_test",
        "logit_scale",
        "classes",
    }
)


def _read_npz(path: str) -> tuple[list[str], dict[str, np.ndarray]]:
    """Names and arrays of an ``.npz`` archive, refusing pickles and non-archives.

    Also checks that the required arrays (an image array and ``X_txt``) are there.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such embeddings file: {path!r}.")
    _check_magic(path, "an .npz archive (np.savez)", (_ZIP_MAGIC, _NPY_MAGIC))
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(
            f"Could not read {path!r} without unpickling objects ({exc}); store "
            "plain numeric and string arrays (no dtype=object)."
        ) from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path!r} is not a readable numpy file: {exc}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(
            f"{path!r} holds a single array, not an .npz archive; use "
            "load_npy_embeddings for .npy files or np.savez(path, X_img=..., "
            "X_txt=..., y=...)."
        )
    with archive:
        names = list(archive.files)
        _check_required(names, path)
        arrays: dict[str, np.ndarray] = {}
        for name in names:
            try:
                arrays[name] = archive[name]
            except ValueError:
                raise ValueError(
                    f"Array {name!r} in {path!r} holds pickled Python objects, which "
                    "are refused for safety (allow_pickle=False); store numeric or "
                    "string arrays."
                ) from None
    return names, arrays


def _check_required(names: list[str], path: str) -> None:
    missing = []
    if not any(n in names for n in _IMG_NAMES):
        missing.append("X_img (or X_img_train / X_img_test)")
    if "X_txt" not in names:
        missing.append("X_txt")
    if missing:
        found = ", ".join(sorted(names)) or "none"
        raise ValueError(
            f"{path!r} misses required array(s): {'; '.join(missing)}. Arrays "
            f"found: {found}."
        )


def _image_split(
    arrays: dict[str, np.ndarray],
    suffix: str,
    src: str,
    found: str,
    txt_shape: tuple[int, ...],
) -> dict[str, np.ndarray]:
    """The checked ``X_img``, ``y``, ``y_correct`` arrays of one split (suffix)."""
    K, dim = txt_shape
    img_name = "X_img" + suffix
    X = arrays.get(img_name)
    label_name, correct_name = "y" + suffix, "y_correct" + suffix
    if X is None:
        for orphan in (label_name, correct_name):
            if orphan in arrays:
                raise ValueError(
                    f"{src} has {orphan!r} but no {img_name!r} to match it. "
                    f"Arrays found: {found}."
                )
        return {}
    _check_matrix(X, img_name, src, dim)
    out = {img_name: X}
    n = X.shape[0]
    if label_name in arrays:
        y = arrays[label_name]
        _check_vector(y, label_name, src, n, f"{img_name} {X.shape}", "iu")
        _check_labels(y, label_name, src, K)
        out[label_name] = y.astype(np.int64, copy=False)
    if correct_name in arrays:
        y = arrays[correct_name]
        _check_vector(y, correct_name, src, n, f"{img_name} {X.shape}", "biuf")
        _check_y_correct(y, correct_name, src)
        out[correct_name] = y.astype(np.int64)
    return out


def _stored_logit_scale(logit_scale: np.ndarray | None, src: str) -> float | None:
    if logit_scale is None:
        return None
    if logit_scale.size != 1 or logit_scale.dtype.kind not in "iuf":
        raise ValueError(
            f"logit_scale in {src} must be a single number; got shape "
            f"{logit_scale.shape} and dtype {logit_scale.dtype}."
        )
    return check_logit_scale(float(logit_scale.reshape(())))


def _stored_classes(
    classes: np.ndarray | None, src: str, txt_shape: tuple[int, ...]
) -> list[str] | None:
    if classes is None:
        return None
    K = txt_shape[0]
    if classes.shape != (K,):
        raise ValueError(
            f"classes in {src} must have shape ({K},) (one name per row of "
            f"X_txt {txt_shape}); got shape {classes.shape}."
        )
    return [str(c) for c in classes]


_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"


def _check_magic(path: str, expected: str, magics: tuple[bytes, ...]) -> None:
    """Say what a file is when it is not a numpy file (numpy says "pickled")."""
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory, not {expected}.")
    with open(path, "rb") as f:
        head = f.read(8)
    if any(head.startswith(m) for m in magics):
        return
    if head[:1] == b"\x80":
        kind = "a Python pickle, which is refused (loading it could run code)"
    elif not head:
        kind = "empty"
    else:
        kind = f"not a numpy file (it starts with {head!r})"
    raise ValueError(f"{path!r} is {kind}; expected {expected}.")


def _load_npy(path: str | os.PathLike[str], name: str, mmap: bool) -> np.ndarray:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{name}: no such file {path!r}.")
    try:
        _check_magic(path, "an .npy file (np.save)", (_NPY_MAGIC, _ZIP_MAGIC))
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(
            f"{name}: could not read {path!r} without unpickling objects ({exc}); "
            "store a plain numeric array."
        ) from None
    if not isinstance(arr, np.ndarray):
        raise ValueError(
            f"{name}: {path!r} is an .npz archive, not an .npy file; use "
            "load_embeddings for .npz files."
        )
    return arr


def load_npy_embeddings(
    img_path: str | os.PathLike[str],
    txt_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str] | None = None,
    *,
    y_correct_path: str | os.PathLike[str] | None = None,
    logit_scale: float | None = None,
    mmap: bool = True,
) -> Bunch:
    """Load image and text embeddings from ``.npy`` files, memory-mapped.

    With ``mmap=True`` (the default) the arrays are opened read-only with
    ``np.load(..., mmap_mode="r")``: nothing is copied into memory, so sets
    larger than the RAM can be used. Only shapes and dtypes are checked here
    (no pass over the data); the estimators check values when they read them.

    Parameters
    ----------
    img_path : str or path-like
        ``.npy`` file of image embeddings, shape (n, d), float.
    txt_path : str or path-like
        ``.npy`` file of text embeddings, shape (K, d), float.
    labels_path : str or path-like, default=None
        Optional ``.npy`` file of integer class labels, shape (n,).
    y_correct_path : str or path-like, default=None
        Optional ``.npy`` file of binary correctness labels, shape (n,).
    logit_scale : float, default=None
        Optional temperature stored in the result.
    mmap : bool, default=True
        Memory-map the files instead of reading them.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``X_img``, ``X_txt`` (memory-maps if ``mmap``), ``y`` and ``y_correct``
        (or None when not given) and ``logit_scale``.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from vilu_sklearn.datasets import load_npy_embeddings
    >>> folder = tempfile.mkdtemp()
    >>> np.save(os.path.join(folder, "img.npy"), np.ones((5, 4), np.float32))
    >>> np.save(os.path.join(folder, "txt.npy"), np.eye(4, dtype=np.float32))
    >>> data = load_npy_embeddings(
    ...     os.path.join(folder, "img.npy"), os.path.join(folder, "txt.npy")
    ... )
    >>> type(data.X_img).__name__, data.X_img.shape
    ('memmap', (5, 4))
    """
    X_img = _load_npy(img_path, "img_path", mmap)
    X_txt = _load_npy(txt_path, "txt_path", mmap)
    src_t, src_i = (
        f"txt_path {os.fspath(txt_path)!r}",
        f"img_path {os.fspath(img_path)!r}",
    )
    _check_matrix(X_txt, "X_txt", src_t, None)
    _check_matrix(X_img, "X_img", src_i, X_txt.shape[1])
    n = X_img.shape[0]
    out = Bunch(X_img=X_img, X_txt=X_txt, y=None, y_correct=None)
    if labels_path is not None:
        y = np.asarray(_load_npy(labels_path, "labels_path", False))
        src = f"labels_path {os.fspath(labels_path)!r}"
        _check_vector(y, "y", src, n, f"X_img {X_img.shape}", "iu")
        _check_labels(y, "y", src, X_txt.shape[0])
        out["y"] = y.astype(np.int64, copy=False)
    if y_correct_path is not None:
        y = np.asarray(_load_npy(y_correct_path, "y_correct_path", False))
        src = f"y_correct_path {os.fspath(y_correct_path)!r}"
        _check_vector(y, "y_correct", src, n, f"X_img {X_img.shape}", "biuf")
        _check_y_correct(y, "y_correct", src)
        out["y_correct"] = y.astype(np.int64)
    out["logit_scale"] = None if logit_scale is None else check_logit_scale(logit_scale)
    return out
