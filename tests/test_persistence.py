"""Safe persistence: est.save(path) and vilu_sklearn.load(path), never pickle."""

from __future__ import annotations

import inspect
import json
import pickle

import numpy as np
import pytest
from _helpers import make_toy

import vilu_sklearn
from vilu_sklearn import ViLUClassifier
from vilu_sklearn import baselines as bl
from vilu_sklearn._base import FailurePredictorMixin
from vilu_sklearn._safetensors import read_safetensors, write_safetensors

_SMALL_TORCH = dict(max_epochs=2, hidden_layer_sizes=(8,), random_state=0)


def _package_estimator_classes():
    """Every public estimator class of the package, including future ones."""
    found = set()
    for module in (vilu_sklearn, bl):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) and issubclass(obj, FailurePredictorMixin):
                found.add(obj)
    return sorted(found, key=lambda c: c.__name__)


@pytest.fixture(scope="module")
def data():
    X_img, X_txt, _, y = make_toy(n=120, K=4, d=8, scale=1.0)
    return X_img, X_txt, y


def _make(cls):
    params = inspect.signature(cls).parameters
    kwargs = {k: v for k, v in _SMALL_TORCH.items() if k in params}
    return cls(**kwargs)


def _roundtrip(est, tmp_path, **kwargs):
    path = tmp_path / "model.safetensors"
    est.save(path)
    return vilu_sklearn.load(path, **kwargs), path


@pytest.mark.parametrize("cls", _package_estimator_classes(), ids=lambda c: c.__name__)
def test_every_estimator_round_trips(cls, data, tmp_path):
    X_img, X_txt, y = data
    # the label-trained probes also need the class labels
    labels = make_toy(n=120, K=4, d=8, scale=1.0)[2]
    kwargs = {"labels": labels} if getattr(cls, "_requires_labels", False) else {}
    est = _make(cls).fit(X_img, X_txt, y, **kwargs)
    again, _ = _roundtrip(est, tmp_path)
    assert type(again) is cls
    assert again.get_params().keys() == est.get_params().keys()
    np.testing.assert_array_equal(
        again.decision_function(X_img), est.decision_function(X_img)
    )
    np.testing.assert_array_equal(again.classes_, est.classes_)


def test_estimator_list_covers_the_package():
    names = {c.__name__ for c in _package_estimator_classes()}
    assert {"ViLUClassifier", "MSP", "TrustScore", "RelU"} <= names
    assert names >= set(bl.__all__) - {"make_lvu"}


def test_lvu_and_text_embeddings_param(data, tmp_path):
    X_img, X_txt, y = data
    est = bl.make_lvu(**_SMALL_TORCH).fit(X_img, y)
    again, _ = _roundtrip(est, tmp_path)
    np.testing.assert_array_equal(again.predict_proba(X_img), est.predict_proba(X_img))
    msp = bl.MSP(text_embeddings=X_txt).fit(X_img, y)
    again, _ = _roundtrip(msp, tmp_path)
    np.testing.assert_array_equal(again.text_embeddings, X_txt)


def test_file_is_read_by_the_safetensors_package(data, tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open

    X_img, X_txt, y = data
    _, path = _roundtrip(ViLUClassifier(**_SMALL_TORCH).fit(X_img, X_txt, y), tmp_path)
    theirs = safetensors_numpy.load_file(str(path))
    ours, meta = read_safetensors(path)
    assert theirs.keys() == ours.keys() and len(ours) > 3
    for name in ours:
        np.testing.assert_array_equal(theirs[name], ours[name])
    with safe_open(str(path), framework="numpy") as f:
        assert f.metadata() == meta
    assert meta["format"] == "vilu_sklearn.estimator" and meta["format_version"] == "1"
    # and a file written by the package is read here
    other = tmp_path / "theirs.safetensors"
    safetensors_numpy.save_file({"a": np.arange(6.0).reshape(2, 3)}, str(other))
    np.testing.assert_array_equal(
        read_safetensors(other)[0]["a"], np.arange(6.0).reshape(2, 3)
    )


def test_load_never_unpickles(data, tmp_path, monkeypatch):
    X_img, X_txt, y = data
    est = ViLUClassifier(**_SMALL_TORCH).fit(X_img, X_txt, y)
    path = tmp_path / "m.safetensors"
    est.save(path)

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used")

    import torch

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    again = vilu_sklearn.load(path)
    np.testing.assert_array_equal(
        again.decision_function(X_img), est.decision_function(X_img)
    )


def _rewrite(path, **changes):
    tensors, meta = read_safetensors(path)
    meta.update(changes)
    write_safetensors(path, tensors, meta)


@pytest.mark.parametrize(
    "cls_ref",
    ["builtins:eval", "os:system", "subprocess:Popen", "vilu_sklearn._cli:main"],
)
def test_unknown_classes_refused(data, tmp_path, cls_ref):
    X_img, X_txt, y = data
    _, path = _roundtrip(bl.MSP().fit(X_img, X_txt, y), tmp_path)
    _rewrite(path, **{"class": cls_ref})
    with pytest.raises(ValueError, match="Refusing"):
        vilu_sklearn.load(path)


def test_tampered_module_factory_refused(data, tmp_path):
    X_img, X_txt, y = data
    _, path = _roundtrip(ViLUClassifier(**_SMALL_TORCH).fit(X_img, X_txt, y), tmp_path)
    _, meta = read_safetensors(path)
    text = meta["attributes"].replace("vilu_sklearn._modules:ViLUModule", "os:system")
    assert text != meta["attributes"]
    _rewrite(path, attributes=text)
    with pytest.raises(ValueError, match="Refusing"):
        vilu_sklearn.load(path)


def test_bad_files(tmp_path, data):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="not a valid safetensors"):
        vilu_sklearn.load(evil)
    X_img, X_txt, y = data
    _, path = _roundtrip(bl.MSP().fit(X_img, X_txt, y), tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[:-3])
    with pytest.raises(ValueError, match="does not fit"):
        vilu_sklearn.load(path)
    path.write_bytes(raw)
    _rewrite(path, format_version="99")
    with pytest.raises(ValueError, match="format version"):
        vilu_sklearn.load(path)
    plain = tmp_path / "plain.safetensors"
    write_safetensors(plain, {"w": np.ones(2)}, {})
    with pytest.raises(ValueError, match="not a vilu_sklearn model"):
        vilu_sklearn.load(plain)


def test_gpu_trained_model_loads_on_cpu(data, tmp_path):
    # the file of a CUDA-trained model differs only in its recorded device
    X_img, X_txt, y = data
    est = ViLUClassifier(**_SMALL_TORCH).fit(X_img, X_txt, y)
    _, path = _roundtrip(est, tmp_path)
    _, meta = read_safetensors(path)
    attrs = json.loads(meta["attributes"])
    assert attrs["device_"] == {"$device": "cpu"}
    attrs["device_"] = {"$device": "cuda:0"}
    _rewrite(path, attributes=json.dumps(attrs))
    again = vilu_sklearn.load(path)
    assert str(again.device_) == "cpu"
    assert next(again.net_.module_.parameters()).device.type == "cpu"
    np.testing.assert_array_equal(
        again.decision_function(X_img), est.decision_function(X_img)
    )


def test_unsavable_attribute_named(data, tmp_path):
    X_img, X_txt, y = data
    est = bl.MSP().fit(X_img, X_txt, y)
    est.extra_ = object()
    with pytest.raises(TypeError, match="extra_"):
        est.save(tmp_path / "x.safetensors")


def test_plain_module_layers_are_allow_listed(data, tmp_path):
    import torch

    X_img, X_txt, y = data
    est = bl.LVU(**_SMALL_TORCH).fit(X_img, X_txt, y)
    again, _ = _roundtrip(est, tmp_path)
    assert isinstance(again.module_, torch.nn.Sequential)
    assert not again.module_.training
    est.module_ = torch.nn.Sequential(torch.nn.Linear(8, 1), torch.nn.Tanh())
    with pytest.raises(TypeError, match="Linear"):
        est.save(tmp_path / "bad.safetensors")
