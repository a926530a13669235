"""Property-based fuzzing of the public entry points (issue 11).

Every generated input gets a finite answer or an error (ValueError or
TypeError) whose message names the argument at fault. Example counts are small
so that the default test run stays fast.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vilu_sklearn import baselines as bl
from vilu_sklearn import correctness, l2_normalize, similarity_logits
from vilu_sklearn import metrics as M
from vilu_sklearn.datasets import load_embeddings

_FUZZ = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, 1.0, -1.0, 1e-30, 1e30, 1e300, -1e-300]),
)


@st.composite
def arrays(draw, max_rows=6, max_cols=5, ndim=None):
    """Arrays of any small shape and of numeric, bool, string or object dtype."""
    ndim = draw(st.sampled_from([1, 2, 3]) if ndim is None else st.just(ndim))
    shape = tuple(
        draw(st.integers(0, max_rows if i == 0 else max_cols)) for i in range(ndim)
    )
    kind = draw(st.sampled_from(["f8", "f4", "f2", "i8", "bool", "str", "object"]))
    n = int(np.prod(shape))
    if kind == "str":
        return np.array(
            draw(st.lists(st.text(max_size=3), min_size=n, max_size=n)), dtype=str
        ).reshape(shape)
    if kind == "object":
        items = draw(
            st.lists(
                st.one_of(st.none(), st.text(max_size=2), _VALUES),
                min_size=n,
                max_size=n,
            )
        )
        out = np.empty(n, dtype=object)
        out[:] = items
        return out.reshape(shape)
    values = draw(st.lists(_VALUES, min_size=n, max_size=n))
    with np.errstate(all="ignore"):
        return np.array(values, dtype=np.float64).astype(kind).reshape(shape)


@st.composite
def labels(draw, n):
    kind = draw(
        st.sampled_from(["01", "bool", "pm1", "other", "str", "float", "wrong_n"])
    )
    m = n if kind != "wrong_n" else draw(st.integers(0, n + 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if kind == "bool":
        return rng.random(m) < 0.5
    if kind == "pm1":
        return rng.choice([-1, 1], m)
    if kind == "other":
        return rng.choice([1, 2, 3], m)
    if kind == "str":
        return rng.choice(["correct", "incorrect"], m)
    if kind == "float":
        return rng.random(m)
    return rng.integers(0, 2, m)


def _names_argument(exc, names):
    message = str(exc)
    assert any(name in message for name in names), f"{type(exc).__name__}: {message}"


def _call(fn, names):
    """fn() must return something finite, or raise an error naming an argument."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = fn()
        except (ValueError, TypeError) as exc:
            _names_argument(exc, names)
            return None
    arr = np.asarray(out, dtype=float)
    assert np.all(np.isfinite(arr)), out
    return out


@_FUZZ
@given(X=arrays(ndim=2), T=arrays(ndim=2))
def test_fuzz_similarity_and_normalize(X, T):
    _call(lambda: similarity_logits(X, T, logit_scale=10.0), ["X_img", "X_txt"])
    if X.dtype.kind == "f" and X.ndim == 2 and np.isfinite(X).all():
        assert np.isfinite(l2_normalize(X)).all()


@_FUZZ
@given(
    data=st.data(),
    estimator=st.sampled_from(
        [bl.MSP, bl.Doctor, bl.Entropy, bl.TrustScore, bl.TemperatureScaling, bl.RelU]
    ),
)
def test_fuzz_baselines(data, estimator):
    X = data.draw(arrays(ndim=2), label="X_img")
    T = data.draw(arrays(ndim=2), label="X_txt")
    y = data.draw(labels(max(len(X), 1)), label="y_correct")
    est = estimator()
    names = ["X_img", "X_txt", "y_correct", "sample", "feature"]
    if _call(lambda: est.fit(X, T, y) and 0, names) is None:
        return
    _call(lambda: est.decision_function(X), names)


@_FUZZ
@given(data=st.data())
def test_fuzz_metrics(data):
    n = data.draw(st.integers(0, 8))
    y = data.draw(labels(n), label="y_correct")
    conf = data.draw(
        st.one_of(arrays(ndim=1), st.just(np.linspace(0, 1, n))), label="confidence"
    )
    for metric in (M.auroc, M.fpr_at_tpr, M.aupr_error, M.aurc, M.augrc):
        _call(lambda metric=metric: metric(y, conf), ["y_correct", "confidence"])


@_FUZZ
@given(data=st.data())
def test_fuzz_correctness_labels(data):
    X = data.draw(arrays(ndim=2), label="X_img")
    T = data.draw(arrays(ndim=2), label="X_txt")
    y = data.draw(arrays(ndim=1), label="labels")
    _call(lambda: correctness(X, T, y), ["X_img", "X_txt", "labels"])


@_FUZZ
@given(data=st.data())
def test_fuzz_load_embeddings(data, tmp_path):
    names = data.draw(
        st.lists(
            st.sampled_from(
                [
                    "X_img",
                    "X_txt",
                    "y",
                    "y_correct",
                    "logit_scale",
                    "classes",
                    "X_img_train",
                    "y_train",
                ]
            ),
            unique=True,
            max_size=6,
        )
    )
    arrs = {name: data.draw(arrays(), label=name) for name in names}
    path = tmp_path / "fuzz.npz"
    np.savez(path, **arrs)
    try:
        out = load_embeddings(path)
    except (ValueError, TypeError) as exc:
        _names_argument(exc, [*names, "X_img", "X_txt", str(path)])
        return
    assert out.X_txt.ndim == 2


@pytest.mark.parametrize(
    "payload", [b"", b"\x80\x04K\x01.", b"PK\x03\x04garbage", b"\x93NUMPY\x01\x00"]
)
def test_fuzz_load_embeddings_raw_bytes(tmp_path, payload):
    path = tmp_path / "raw.npz"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match="raw.npz"):
        load_embeddings(path)
