"""Safe persistence: est.save(path) and vilu_sklearn.load(path), never pickle.

Tampered files are written here the way a careful third party would, with the
``safetensors`` package and valid checksums (``_write``), so that each test
reaches the check it is about; damaged files keep their old checksums.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from _helpers import FAST_VILU, make_toy
from sklearn.base import clone

import vilu_sklearn
from vilu_sklearn import ViLUClassifier
from vilu_sklearn import baselines as bl
from vilu_sklearn._base import FailurePredictorMixin
from vilu_sklearn.selective import SelectiveClassifier

safetensors_numpy = pytest.importorskip("safetensors.numpy")

_SMALL_TORCH = dict(max_epochs=2, hidden_layer_sizes=(8,), random_state=0)
DATA = Path(__file__).parent / "data"
PACKAGE = Path(vilu_sklearn.__file__).parent


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


@pytest.fixture(scope="module")
def vilu(data):
    X_img, X_txt, y = data
    return ViLUClassifier(**_SMALL_TORCH).fit(X_img, X_txt, y)


def _make(cls):
    params = inspect.signature(cls).parameters
    kwargs = {k: v for k, v in _SMALL_TORCH.items() if k in params}
    return cls(**kwargs)


def _roundtrip(est, tmp_path, **kwargs):
    path = tmp_path / "model.safetensors"
    est.save(path)
    return vilu_sklearn.load(path, **kwargs), path


def _read(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata())
    return safetensors_numpy.load_file(str(path)), meta


def _write(path, tensors, meta):
    """A safetensors file with the checksums a model file carries."""
    meta = {k: v for k, v in meta.items() if not k.endswith("_sha256")}
    text = json.dumps(meta, sort_keys=True, separators=(",", ":"))
    blob = safetensors_numpy.save(tensors, metadata=meta)
    n = int.from_bytes(blob[:8], "little")
    meta["payload_sha256"] = hashlib.sha256(blob[8 + n :]).hexdigest()
    meta["metadata_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    Path(path).write_bytes(safetensors_numpy.save(tensors, metadata=meta))


def _rewrite(path, tensors=None, **changes):
    old, meta = _read(path)
    meta.update(changes)
    _write(path, {**old, **(tensors or {})}, meta)


def _edit_json(path, key, edit):
    _, meta = _read(path)
    node = json.loads(meta[key])
    edit(node)
    _rewrite(path, **{key: json.dumps(node)})


def _tensor_of(path, weight):
    """Name of the tensor holding ``weight`` of a ViLU file's net."""
    _, meta = _read(path)
    pairs = json.loads(meta["attributes"])["net_"]["state"]["$dict"]
    return dict((k, v["$tensor"]) for k, v in pairs)[weight]


# ----------------------------------------------------------------- round trips
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


def test_registry_is_exactly_the_package_estimators():
    from vilu_sklearn._persistence import registered_estimators

    expected = set(_package_estimator_classes()) | {SelectiveClassifier}
    assert set(registered_estimators()) == expected


def test_persistence_imports_no_estimator_module():
    # the format modules know no estimator: each estimator describes its state
    for name in ("_persistence.py", "_safetensors.py"):
        tree = ast.parse((PACKAGE / name).read_text())
        imported = [
            node.module or ""
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level > 0
        ]
        assert set(imported) <= {"", "_version", "_safetensors"}, (name, imported)


def test_lvu_and_text_embeddings_param(data, tmp_path):
    X_img, X_txt, y = data
    est = bl.make_lvu(**_SMALL_TORCH).fit(X_img, y)
    again, _ = _roundtrip(est, tmp_path)
    np.testing.assert_array_equal(again.predict_proba(X_img), est.predict_proba(X_img))
    msp = bl.MSP(text_embeddings=X_txt).fit(X_img, y)
    again, _ = _roundtrip(msp, tmp_path)
    np.testing.assert_array_equal(again.text_embeddings, X_txt)


def test_file_is_plain_safetensors_with_checksums(vilu, tmp_path):
    _, path = _roundtrip(vilu, tmp_path)
    tensors, meta = _read(path)
    assert len(tensors) > 3
    assert meta["format"] == "vilu_sklearn.estimator" and meta["format_version"] == "2"
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    assert meta["payload_sha256"] == hashlib.sha256(raw[8 + n :]).hexdigest()
    # a file rewritten by the safetensors package with the same content loads
    _write(path, tensors, meta)
    again = vilu_sklearn.load(path)
    np.testing.assert_array_equal(
        again.decision_function(np.eye(8)), vilu.decision_function(np.eye(8))
    )


def test_strided_big_endian_and_empty_arrays_round_trip(data, tmp_path):
    X_img, X_txt, y = data
    est = bl.MSP().fit(X_img, X_txt, y)
    est.strided_ = np.arange(6, dtype=">f8").reshape(2, 3).T
    est.empty_ = np.zeros((0, 3), dtype=np.float32)
    est.scalar_ = np.array(2.5)
    again, _ = _roundtrip(est, tmp_path)
    for name in ("strided_", "empty_", "scalar_"):
        np.testing.assert_array_equal(getattr(again, name), getattr(est, name))
        assert getattr(again, name).shape == getattr(est, name).shape


def test_load_never_unpickles(vilu, tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    vilu.save(path)

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used")

    import torch

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    again = vilu_sklearn.load(path)
    X = np.eye(8)
    np.testing.assert_array_equal(again.decision_function(X), vilu.decision_function(X))


def test_save_is_atomic(data, tmp_path, monkeypatch):
    X_img, X_txt, y = data
    path = tmp_path / "m.safetensors"
    bl.MSP().fit(X_img, X_txt, y).save(path)
    before = path.read_bytes()

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space"):
        bl.Entropy().fit(X_img, X_txt, y).save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_missing_safetensors_says_which_extra(data, tmp_path, monkeypatch):
    X_img, X_txt, y = data
    est = bl.MSP().fit(X_img, X_txt, y)
    est.save(tmp_path / "m.safetensors")
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(ImportError, match=r"pip install vilu-sklearn\[persist\]"):
        est.save(tmp_path / "other.safetensors")
    with pytest.raises(ImportError, match=r"pip install vilu-sklearn\[persist\]"):
        vilu_sklearn.load(tmp_path / "m.safetensors")


# ------------------------------------------------- files of earlier releases
_LEGACY = json.loads((DATA / "legacy_models.json").read_text())


@pytest.mark.parametrize("name", sorted(_LEGACY))
def test_files_of_earlier_releases_load(name):
    # written by the hand-written writer of 88e3eac (format version 1, no
    # checksums) and, for the linear posterior head, of f97cf65; the inputs
    # are make_toy(n=120, K=4, d=8, scale=1.0)
    X_img = make_toy(n=120, K=4, d=8, scale=1.0)[0]
    est = vilu_sklearn.load(DATA / f"{name}.safetensors")
    np.testing.assert_allclose(
        est.decision_function(X_img[:10]), _LEGACY[name], rtol=1e-5, atol=1e-6
    )


def test_file_without_posterior_hidden_size_keeps_its_linear_head(data, tmp_path):
    # defect 5: files written before posterior_hidden_size existed
    X_img, X_txt, y = data
    old = vilu_sklearn.load(DATA / "vilu_f97cf65_linear_posterior.safetensors")
    assert old.posterior_hidden_size == 0
    refit = clone(old).set_params(max_epochs=1).fit(X_img, X_txt, y)
    state = refit.net_.module_.state_dict()
    assert "posterior.img.weight" in state and "posterior.hidden.weight" not in state
    again, path = _roundtrip(old, tmp_path)
    assert json.loads(_read(path)[1]["params"])["posterior_hidden_size"] == 0
    assert again.posterior_hidden_size == 0


def test_missing_parameter_without_a_known_old_value_refused(data, tmp_path):
    X_img, X_txt, y = data
    _, path = _roundtrip(bl.KNN(k=3).fit(X_img, X_txt, y), tmp_path)
    _edit_json(path, "params", lambda params: params.pop("k"))
    with pytest.raises(ValueError, match=r"lacks the parameter\(s\) \['k'\]"):
        vilu_sklearn.load(path)


def test_file_from_a_newer_release_names_file_parameter_and_versions(data, tmp_path):
    # defect 16
    X_img, X_txt, y = data
    _, path = _roundtrip(bl.MSP().fit(X_img, X_txt, y), tmp_path)
    _edit_json(path, "params", lambda params: params.update(new_option=1))
    _rewrite(path, vilu_sklearn_version="9.0.0")
    with pytest.raises(ValueError) as info:
        vilu_sklearn.load(path)
    text = str(info.value)
    for part in (str(path), "new_option", "9.0.0", vilu_sklearn.__version__):
        assert part in text


# ------------------------------------------------------ damaged or hostile files
@pytest.mark.parametrize(
    "cls_ref",
    [
        "builtins:eval",
        "os:system",
        "subprocess:Popen",
        "vilu_sklearn._cli:main",
        # defect 15: importable classes that are not the package's estimators
        "torch.nn.modules.loss:BCEWithLogitsLoss",
        "sklearn.neighbors._unsupervised:NearestNeighbors",
        "vilu_sklearn._net:ViLUNet",
        "vilu_sklearn.baselines._base:BaseBaseline",
    ],
)
def test_unknown_classes_refused(data, tmp_path, cls_ref):
    X_img, X_txt, y = data
    _, path = _roundtrip(bl.MSP().fit(X_img, X_txt, y), tmp_path)
    _rewrite(path, **{"class": cls_ref})
    with pytest.raises(ValueError, match="Refusing"):
        vilu_sklearn.load(path)


def test_subclass_of_a_package_estimator_not_saved(data, tmp_path):
    class MyMSP(bl.MSP):
        pass

    X_img, X_txt, y = data
    with pytest.raises(ValueError, match="Refusing .*MyMSP"):
        MyMSP().fit(X_img, X_txt, y).save(tmp_path / "m.safetensors")


def test_tampered_module_factory_refused(vilu, tmp_path):
    _, path = _roundtrip(vilu, tmp_path)
    _, meta = _read(path)
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
    with pytest.raises(ValueError, match="not a valid safetensors"):
        vilu_sklearn.load(path)
    path.write_bytes(raw)
    _rewrite(path, format_version="99")
    with pytest.raises(ValueError, match="format version"):
        vilu_sklearn.load(path)
    plain = tmp_path / "plain.safetensors"
    safetensors_numpy.save_file({"w": np.ones(2)}, str(plain))
    with pytest.raises(ValueError, match="not a vilu_sklearn model"):
        vilu_sklearn.load(plain)


def test_bit_flips_are_refused(vilu, tmp_path):
    # defect 6: single-bit flips in the weights loaded with other scores
    _, path = _roundtrip(vilu, tmp_path)
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    for i, pos in enumerate(np.linspace(8 + n, len(raw) - 1, 20).astype(int)):
        flipped = bytearray(raw)
        flipped[pos] ^= 1 << (i % 8)
        path.write_bytes(bytes(flipped))
        with pytest.raises(ValueError, match="corrupt") as info:
            vilu_sklearn.load(path)
        assert str(path) in str(info.value)
    # a changed digit in the metadata (same length, still valid JSON)
    header = raw[: 8 + n]
    text = header.replace(b'\\"n_features_in_\\": 8', b'\\"n_features_in_\\": 9')
    assert len(text) == 8 + n and text != header
    path.write_bytes(text + raw[8 + n :])
    with pytest.raises(ValueError, match="corrupt"):
        vilu_sklearn.load(path)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_weights_refused(vilu, data, tmp_path, value):
    # defect 6: a NaN weight gave all-NaN scores
    _, path = _roundtrip(vilu, tmp_path)
    name = _tensor_of(path, "mlp.0.weight")
    tensors, _ = _read(path)
    bad = tensors[name].copy()
    bad[0, 0] = value
    _rewrite(path, tensors={name: bad})
    with pytest.raises(ValueError, match="NaN or infinite"):
        vilu_sklearn.load(path)
    X_img, X_txt, y = data
    _, path = _roundtrip(bl.LVU(**_SMALL_TORCH).fit(X_img, X_txt, y), tmp_path)
    tensors, meta = _read(path)
    state = json.loads(meta["attributes"])["module_"]["state"]["$dict"]
    name = state[0][1]["$tensor"]
    _rewrite(path, tensors={name: np.full_like(tensors[name], value)})
    with pytest.raises(ValueError, match="NaN or infinite"):
        vilu_sklearn.load(path)


def test_wrong_shaped_vilu_weight_is_a_clear_error(vilu, tmp_path):
    # defect 11: a raw torch error before
    _, path = _roundtrip(vilu, tmp_path)
    name = _tensor_of(path, "mlp.0.weight")
    tensors, _ = _read(path)
    _rewrite(path, tensors={name: tensors[name][:, :-1].copy()})
    with pytest.raises(ValueError, match="'mlp.0.weight'.*declared architecture"):
        vilu_sklearn.load(path)


class _BuildRecorder:
    """Records the sizes of torch layers built outside the meta device."""

    def __init__(self, monkeypatch):
        import torch

        from vilu_sklearn._modules import ViLUModule

        self.built = []
        for cls, attr in ((torch.nn.Linear, "in_features"), (ViLUModule, "dim")):
            monkeypatch.setattr(cls, "__init__", self._wrap(cls.__init__, attr))

    def _wrap(self, init, what):
        import torch

        def wrapper(module, *args, **kwargs):
            if torch.empty(()).device.type != "meta":
                size = args[0] if args else kwargs.get(what)
                self.built.append(size)
            return init(module, *args, **kwargs)

        return wrapper


def test_declared_architecture_checked_before_allocation(data, tmp_path, monkeypatch):
    # defect 12: an 8 KB file declaring a huge layer was built before refused
    X_img, X_txt, y = data
    _, path = _roundtrip(bl.LVU(**_SMALL_TORCH).fit(X_img, X_txt, y), tmp_path)

    def widen(attrs):
        attrs["module_"]["$sequential"][0] = ["Linear", 4000, 4000, True]

    _edit_json(path, "attributes", widen)
    assert path.stat().st_size < 8192
    recorder = _BuildRecorder(monkeypatch)
    with pytest.raises(ValueError, match="declared architecture"):
        vilu_sklearn.load(path)
    assert 4000 not in recorder.built


def test_declared_vilu_width_checked_before_allocation(vilu, tmp_path, monkeypatch):
    _, path = _roundtrip(vilu, tmp_path)

    def widen(attrs):
        attrs["net_"]["module"]["args"] = {"$tuple": [4000]}

    _edit_json(path, "attributes", widen)
    recorder = _BuildRecorder(monkeypatch)
    with pytest.raises(ValueError, match="declared architecture"):
        vilu_sklearn.load(path)
    assert 4000 not in recorder.built


def test_deeply_nested_metadata_is_a_clear_error(data, tmp_path):
    # defect 11: RecursionError before
    X_img, X_txt, y = data
    _, path = _roundtrip(bl.MSP().fit(X_img, X_txt, y), tmp_path)
    _, meta = _read(path)
    for depth in (100, 100_000):
        nested = '{"$list": [' * depth + "1" + "]}" * depth
        attrs = meta["attributes"][:-1] + f', "deep_": {nested}}}'
        _rewrite(path, attributes=attrs)
        with pytest.raises(ValueError, match="nested deeper than 64"):
            vilu_sklearn.load(path)


def test_missing_device_is_a_clear_error(vilu, tmp_path):
    # defect 11: AssertionError ("Torch not compiled with CUDA enabled") before
    import torch

    _, path = _roundtrip(vilu, tmp_path)
    with pytest.raises(ValueError, match="not a torch device"):
        vilu_sklearn.load(path, device="nonsense")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="device='cuda' is not available"):
        vilu_sklearn.load(path, device="cuda")


def test_gpu_trained_model_loads_on_cpu(vilu, tmp_path):
    # the file of a CUDA-trained model differs only in its recorded device
    _, path = _roundtrip(vilu, tmp_path)
    attrs = json.loads(_read(path)[1]["attributes"])
    assert attrs["device_"] == {"$device": "cpu"}
    attrs["device_"] = {"$device": "cuda:0"}
    _rewrite(path, attributes=json.dumps(attrs))
    again = vilu_sklearn.load(path)
    assert str(again.device_) == "cpu"
    assert next(again.net_.module_.parameters()).device.type == "cpu"
    X = np.eye(8)
    np.testing.assert_array_equal(again.decision_function(X), vilu.decision_function(X))


# ----------------------------------------------------------- values and files
def test_numpy_integer_seed_is_kept(data, tmp_path):
    # defect 13: np.int64(3) was taken for a generator and dropped
    X_img, X_txt, y = data
    est = bl.TrustVLM(random_state=np.int64(3)).fit(X_img, X_txt, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again, _ = _roundtrip(est, tmp_path)
    assert again.random_state == 3 and type(again.random_state) is int
    est.set_params(random_state=np.random.RandomState(0))
    with pytest.warns(UserWarning, match="generator"):
        again, _ = _roundtrip(est, tmp_path)
    assert again.random_state is None


def test_bytes_arrays_round_trip_exactly(data, tmp_path):
    # defect 13: [b"a", b"bb"] came back as ["b'a'", "b'bb'"]
    X_img, X_txt, y = data
    est = bl.MSP().fit(X_img, X_txt, y)
    est.names_ = np.array([b"a", b"bb"])
    est.grid_ = np.array([[b"x\x00y", b""], [b"zz", b"\xff"]])
    est.words_ = np.array(["é", "ab"])
    again, _ = _roundtrip(est, tmp_path)
    for name in ("names_", "grid_", "words_"):
        assert getattr(again, name).dtype == getattr(est, name).dtype
        np.testing.assert_array_equal(getattr(again, name), getattr(est, name))
    est.mixed_ = np.array([b"a", "b"], dtype=object)
    with pytest.raises(TypeError, match="mixed_"):
        est.save(tmp_path / "x.safetensors")


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_saved_file_respects_umask(data, tmp_path):
    # defect 13: always 0600 before
    X_img, X_txt, y = data
    est = bl.MSP().fit(X_img, X_txt, y)
    old = os.umask(0o022)
    try:
        est.save(tmp_path / "a.safetensors")
        os.umask(0o077)
        est.save(tmp_path / "b.safetensors")
    finally:
        os.umask(old)
    assert (tmp_path / "a.safetensors").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.safetensors").stat().st_mode & 0o777 == 0o600


def test_selective_classifier_round_trips(data, tmp_path):
    # defect 14: SelectiveClassifier could not be saved
    X_img, X_txt, y = data
    split = SelectiveClassifier(
        bl.MSP(), target_risk=0.3, method="sgr", random_state=0
    ).fit(X_img, X_txt, y)
    prefit = SelectiveClassifier(
        ViLUClassifier(**_SMALL_TORCH).fit(X_img, X_txt, y),
        cv="prefit",
        target_risk=None,
        target_coverage=0.5,
    ).fit(X_img, X_txt, y)
    for est in (split, prefit):
        again, _ = _roundtrip(est, tmp_path)
        assert type(again.estimator_) is type(est.estimator_)
        assert type(again.estimator) is type(est.estimator)
        for name in ("threshold_", "risk_bound_", "coverage_", "n_calibration_"):
            assert getattr(again, name) == getattr(est, name)
        np.testing.assert_array_equal(
            again.predict(X_img, X_txt), est.predict(X_img, X_txt)
        )
        np.testing.assert_array_equal(
            again.confidence(X_img, X_txt), est.confidence(X_img, X_txt)
        )
    assert again.get_params()["estimator__hidden_layer_sizes"] == (8,)


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


def test_learned_attention_projections_survive_save_and_load(tmp_path):
    # the freeze is a flag of the module, not a weight: the reloaded model had
    # its trained projections bypassed (rebuilt as at the start of training)
    X, T, _, y = make_toy(n=200)
    clf = ViLUClassifier(**{**FAST_VILU, "max_epochs": 4, "freeze_proj_epochs": 2})
    clf.fit(X, T, y)
    assert not clf.net_.module_.projections_frozen
    path = tmp_path / "vilu.safetensors"
    clf.save(path)
    again = vilu_sklearn.load(path)
    assert not again.net_.module_.projections_frozen
    np.testing.assert_array_equal(again.decision_function(X), clf.decision_function(X))
