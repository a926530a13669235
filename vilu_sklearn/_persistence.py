"""Save and load fitted estimators without pickle: safetensors + JSON.

``est.save(path)`` writes one safetensors file: every array and torch tensor
of the estimator (weights, fitted arrays) as a tensor, and, in the file's
string metadata, the format name and version, the estimator's class, its
parameters (``get_params()``), its fitted state as JSON and SHA-256 checksums
of the tensor bytes and of the metadata. :func:`load` reads it back. Nothing is
unpickled and nothing is evaluated: JSON is parsed (to a bounded depth), the
checksums are verified, the estimator class is looked up in a registry of the
package's own estimators, and the torch modules a file declares are built on
torch's ``meta`` device and compared with the stored weights' shapes before
anything is allocated.

This module only handles the format. Each estimator describes its own state
(:class:`PersistMixin`: ``_get_persist_state`` / ``_set_persist_state``, the
torch classes its state may hold, the values of parameters added after files
were written) and registers itself with :func:`register_estimator`; nothing
here imports an estimator module.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import os
import warnings
from typing import Any, ClassVar

import numpy as np

from . import _safetensors as st

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MAX_DEPTH",
    "PersistMixin",
    "load",
    "register_estimator",
    "registered_estimators",
    "save",
]

FORMAT = "vilu_sklearn.estimator"
FORMAT_VERSION = 2
# versions this release reads; version 1 files (no checksums) load unchecked
_READABLE = ("1", "2")
# deepest JSON nesting a file may have (the package's own files stay below 12)
MAX_DEPTH = 64

_REGISTRY: dict[str, type] = {}


def _class_ref(cls: Any) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def register_estimator(cls: type) -> type:
    """Class decorator: allow ``cls`` (an estimator of the package) in files.

    Only registered classes are saved and loaded; subclasses are not
    registered with their parent.

    Examples
    --------
    >>> from vilu_sklearn._persistence import registered_estimators
    >>> "MSP" in {c.__name__ for c in registered_estimators()}
    True
    """
    _REGISTRY[_class_ref(cls)] = cls
    return cls


def registered_estimators() -> list[type]:
    """The estimator classes files may name, sorted by name."""
    return sorted(set(_REGISTRY.values()), key=lambda c: c.__name__)


def _estimator_class(ref: Any, what: str = "an estimator") -> type:
    cls = _REGISTRY.get(str(ref))
    if cls is None:
        raise ValueError(
            f"Refusing {what} of class {str(ref)[:120]!r}: only the package's own "
            "estimator classes can be saved and loaded ("
            + ", ".join(c.__name__ for c in registered_estimators())
            + ")."
        )
    return cls


class PersistMixin:
    """``save`` and the state description used by :func:`save` / :func:`load`.

    A class overrides :meth:`_get_persist_state` / :meth:`_set_persist_state`
    when its fitted state holds objects other than numbers, strings, arrays,
    tensors, lists, tuples, dicts, ``torch.nn.Sequential`` stacks of
    ``Linear``/``ReLU`` layers and skorch nets, and lists in
    ``_persist_classes`` the torch classes (nets, modules, losses) its state
    may name. ``_persist_legacy_params`` maps each parameter added after
    model files were first written to the value that reproduces what older
    files describe.
    """

    _persist_classes: ClassVar[tuple[type, ...]] = ()
    _persist_legacy_params: ClassVar[dict[str, Any]] = {}

    def _get_persist_state(self) -> dict[str, Any]:
        """The fitted attributes to save (what pickling stores, less params)."""
        getstate: Any = self.__getstate__  # BaseEstimator's, or the class's own
        state = dict(getstate())
        state.pop("_sklearn_version", None)
        params = self.get_params(deep=False)  # type: ignore[attr-defined]
        return {k: v for k, v in state.items() if k not in params}

    def _set_persist_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`_get_persist_state` returned."""
        self.__dict__.update(state)

    def save(self, path: Any) -> None:
        """Save the fitted estimator to a file that cannot run code when loaded.

        Weights and arrays are stored as tensors of a safetensors file, the
        parameters and other fitted attributes as JSON in its metadata, with
        a format version and SHA-256 checksums; nothing is pickled. Load it
        with :func:`vilu_sklearn.load` (on the CPU by default, whatever device
        it was trained on). Needs the ``safetensors`` package (extra
        ``vilu-sklearn[persist]``). Pickle and joblib files, by contrast, run
        code when loaded: only load those from sources you trust.

        Parameters
        ----------
        path : str or path-like
            Destination file (``.safetensors`` by convention); written
            atomically, with the permissions of a new file under the umask.
        """
        save(self, path)


# ------------------------------------------------------------ torch layers
# Layers a saved torch.nn.Sequential may hold (e.g. LVU's MLP), rebuilt from
# their construction parameters; the weights come from the state_dict.
_LAYERS = ("Linear", "ReLU")


def _layer_spec(layer: Any, where: str) -> list[Any]:
    import torch

    if type(layer) is torch.nn.Linear:
        bias = layer.bias is not None
        return ["Linear", layer.in_features, layer.out_features, bias]
    if type(layer) is torch.nn.ReLU:
        return ["ReLU"]
    raise TypeError(
        f"Cannot save {where}: a torch.nn.Sequential may only hold the layers "
        f"{list(_LAYERS)}; got {type(layer).__name__}."
    )


def _build_layer(spec: Any) -> Any:
    import torch

    if not isinstance(spec, list) or not spec or spec[0] not in _LAYERS:
        raise ValueError(f"Malformed layer {str(spec)[:80]} in the file.")
    if spec[0] == "ReLU" and len(spec) == 1:
        return torch.nn.ReLU()
    if len(spec) == 4 and all(type(v) is int and v > 0 for v in spec[1:3]):
        return torch.nn.Linear(spec[1], spec[2], bias=bool(spec[3]))
    raise ValueError(f"Malformed layer {str(spec)[:80]} in the file.")


def _meta_shapes(build: Any, where: str) -> dict[str, tuple[int, ...]]:
    """State-dict shapes of the module ``build()`` makes, allocating nothing."""
    import torch

    try:
        with torch.device("meta"):
            module = build()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(
            f"The file declares {where} that cannot be built: {exc}"
        ) from None
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


# ----------------------------------------------------------------- encoding
class _Encoder:
    """Turns attribute values into JSON, collecting arrays as tensors."""

    def __init__(self) -> None:
        self.tensors: dict[str, np.ndarray] = {}

    def _store(self, array: np.ndarray) -> str:
        name = f"t{len(self.tensors)}"
        self.tensors[name] = array
        return name

    def __call__(self, value: Any, where: str) -> Any:
        import torch
        from skorch import NeuralNet
        from skorch.history import History

        if value is None or isinstance(value, bool | int | str):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"$float": repr(value)}
        if isinstance(value, np.generic) and value.dtype.kind in "biuf":
            return {"$scalar": self(value.item(), where), "dtype": value.dtype.str}
        if isinstance(value, np.ndarray):
            return self._array(value, where)
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu()
            return {"$tensor": self._store(tensor.numpy()), "dtype": str(tensor.dtype)}
        if isinstance(value, torch.device):
            return {"$device": str(value)}
        if isinstance(value, list | tuple):
            items = [self(v, f"{where}[{i}]") for i, v in enumerate(value)]
            if isinstance(value, History):
                return {"$history": items}
            return {"$tuple" if isinstance(value, tuple) else "$list": items}
        if isinstance(value, dict):
            pairs = [
                [self(k, where), self(v, f"{where}[{k!r}]")] for k, v in value.items()
            ]
            return {"$dict": pairs}
        if isinstance(value, functools.partial):
            return {
                "$partial": _class_ref(value.func),
                "args": self(value.args, where),
                "kwargs": self(value.keywords, where),
            }
        if isinstance(value, NeuralNet):
            return self._net(value, where)
        if isinstance(value, torch.nn.Sequential):
            return self._sequential(value, where)
        if isinstance(value, PersistMixin):
            return self._estimator(value, where)
        raise TypeError(
            f"Cannot save {where}: values of type {type(value).__name__} have no "
            "safe encoding (numbers, strings, arrays, tensors, lists, dicts)."
        )

    def _array(self, value: np.ndarray, where: str) -> Any:
        if value.dtype.kind in "biuf":
            return {"$array": self._store(value)}
        if value.dtype.kind == "S":  # bytes: stored as their raw bytes, exactly
            raw = np.frombuffer(np.ascontiguousarray(value).tobytes(), np.uint8)
            return {
                "$bytes": self._store(raw),
                "shape": list(value.shape),
                "dtype": value.dtype.str,
            }
        if value.dtype.kind == "U" or (
            value.dtype.kind == "O" and all(type(v) is str for v in value.flat)
        ):
            return {
                "$strings": [str(v) for v in value.ravel()],
                "shape": list(value.shape),
                "dtype": "object" if value.dtype.kind == "O" else value.dtype.str,
            }
        raise TypeError(
            f"Cannot save {where}: an array of dtype {value.dtype} (numbers, "
            "booleans, str and bytes arrays, and object arrays of str are saved)."
        )

    def _sequential(self, module: Any, where: str) -> Any:
        return {
            "$sequential": [_layer_spec(layer, where) for layer in module],
            "state": self(dict(module.state_dict()), f"{where}.state_dict()"),
            "training": bool(module.training),
        }

    def _net(self, net: Any, where: str) -> Any:
        if not isinstance(net.module, functools.partial | type):
            raise TypeError(f"Cannot save {where}: its module is not a class.")
        state = net.module_.state_dict()
        return {
            "$net": _class_ref(type(net)),
            "module": self(net.module, f"{where}.module"),
            "criterion": _class_ref(net.criterion),
            "state": self(dict(state), f"{where}.module_"),
            "history": self(net.history, f"{where}.history"),
            "training": bool(net.module_.training),
        }

    def _estimator(self, est: Any, where: str) -> Any:
        ref = _class_ref(type(est))
        _estimator_class(ref)
        params = _params_to_save(est)
        state = est._get_persist_state()
        return {
            "$estimator": ref,
            "params": {k: self(v, f"{where}.{k}") for k, v in params.items()},
            "state": {k: self(v, f"{where}.{k}") for k, v in state.items()},
        }


def _params_to_save(est: Any) -> dict[str, Any]:
    params = dict(est.get_params(deep=False))
    seed = params.get("random_state")
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        params["random_state"] = int(seed)  # e.g. np.int64(3): a seed, kept
    elif seed is not None:
        warnings.warn(
            "random_state is a generator, which is not saved: the loaded "
            "estimator has random_state=None (it only matters for refitting).",
            UserWarning,
            stacklevel=4,
        )
        params["random_state"] = None
    return params


# ----------------------------------------------------------------- decoding
class _Decoder:
    """The inverse of :class:`_Encoder`, tensors read on demand to ``device``.

    ``allowed`` names the torch classes (nets, modules, losses) the state of
    the estimator being decoded may hold.
    """

    def __init__(self, file: st.HeaderFile, device: Any, allowed: tuple) -> None:
        self.file = file
        self.device = device
        self.allowed = {_class_ref(c): c for c in allowed}
        self.depth = 0

    def __call__(self, node: Any) -> Any:
        if node is None or isinstance(node, bool | int | float | str):
            return node
        if isinstance(node, list) or not isinstance(node, dict) or len(node) == 0:
            raise ValueError(f"Malformed value in the file: {str(node)[:80]}.")
        kind = next(iter(node))
        handler = getattr(self, "_" + kind.lstrip("$"), None)
        if not kind.startswith("$") or handler is None:
            raise ValueError(f"Unknown value kind {kind!r} in the file.")
        return handler(node)

    def _resolve(self, ref: Any, what: str) -> Any:
        cls = self.allowed.get(str(ref))
        if cls is None:
            raise ValueError(
                f"Refusing {what} of class {str(ref)[:120]!r}: the estimator's "
                f"state holds only {sorted(self.allowed) or 'no torch classes'}."
            )
        return cls

    def _stored(self, name: Any) -> np.ndarray:
        if not isinstance(name, str):
            raise ValueError(f"Malformed tensor name {str(name)[:40]} in the file.")
        return self.file.tensor(name)

    def _float(self, node: dict) -> float:
        if node["$float"] not in ("nan", "inf", "-inf"):
            raise ValueError(f"Malformed float {node['$float']!r} in the file.")
        return float(node["$float"])

    def _scalar(self, node: dict) -> Any:
        dtype = np.dtype(str(node["dtype"]))
        if dtype.kind not in "biuf":
            raise ValueError(f"Malformed scalar dtype {dtype} in the file.")
        return dtype.type(self(node["$scalar"]))

    def _array(self, node: dict) -> np.ndarray:
        return self._stored(node["$array"])

    def _bytes(self, node: dict) -> np.ndarray:
        raw, dtype = self._stored(node["$bytes"]), np.dtype(str(node["dtype"]))
        shape = tuple(int(s) for s in node["shape"])
        if dtype.kind != "S" or raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError("Malformed bytes array in the file.")
        if math.prod(shape) * dtype.itemsize != raw.size:
            raise ValueError("Malformed bytes array in the file (size).")
        return np.frombuffer(raw.tobytes(), dtype=dtype).reshape(shape).copy()

    def _strings(self, node: dict) -> np.ndarray:
        dtype = "object" if node["dtype"] == "object" else np.dtype(str(node["dtype"]))
        values = [str(v) for v in node["$strings"]]
        return np.array(values, dtype=dtype).reshape(node["shape"])

    def _tensor(self, node: dict) -> Any:
        import torch

        tensor = torch.from_numpy(self._stored(node["$tensor"]))
        return tensor.to(self.device)

    def _device(self, node: dict) -> Any:
        return self.device

    def _list(self, node: dict) -> list:
        return [self(v) for v in node["$list"]]

    def _tuple(self, node: dict) -> tuple:
        return tuple(self(v) for v in node["$tuple"])

    def _history(self, node: dict) -> Any:
        from skorch.history import History

        return History(self(v) for v in node["$history"])

    def _dict(self, node: dict) -> dict:
        return {self(k): self(v) for k, v in node["$dict"]}

    def _partial(self, node: dict) -> functools.partial:
        func = self._resolve(node["$partial"], "a module")
        return functools.partial(func, *self(node["args"]), **self(node["kwargs"]))

    def _gaussians(self, node: dict) -> Any:
        # version 1 files: ICPE's Gaussians as their arrays (ICPE rebuilds them)
        return self(node["$gaussians"])

    def _estimator(self, node: dict) -> Any:
        cls = _estimator_class(node["$estimator"])
        sub = _Decoder(self.file, self.device, getattr(cls, "_persist_classes", ()))
        return _restore(cls, node["params"], node["state"], sub, self.file.path)

    # torch modules: shapes checked against the declaration, then weights
    def _weights(self, node: Any, declared: dict, where: str) -> dict[str, Any]:
        """The state dict of ``node`` once its shapes match ``declared``."""
        if not isinstance(node, dict) or not isinstance(node.get("$dict"), list):
            raise ValueError(f"Malformed weights of {where} in the file.")
        refs = {}
        for pair in node["$dict"]:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise ValueError(f"Malformed weights of {where} in the file.")
            key, ref = pair
            if not isinstance(ref, dict) or not isinstance(ref.get("$tensor"), str):
                raise ValueError(f"Malformed weight {key!r} of {where} in the file.")
            refs[key] = ref
        _check_shapes(refs, declared, self.file.shapes, where)
        state = {k: self(ref) for k, ref in refs.items()}
        for key, value in state.items():
            if value.is_floating_point() and not bool(value.isfinite().all()):
                raise ValueError(
                    f"Weight {key!r} of {where} holds NaN or infinite values: "
                    "the model is corrupt."
                )
        return state

    def _sequential(self, node: dict) -> Any:
        """A plain module (LVU's MLP), on the CPU like after ``fit``."""
        import torch

        specs = node["$sequential"]
        if not isinstance(specs, list):
            raise ValueError("Malformed torch.nn.Sequential in the file.")

        def build() -> Any:
            return torch.nn.Sequential(*(_build_layer(s) for s in specs))

        where = "a torch.nn.Sequential"
        state = self._weights(node["state"], _meta_shapes(build, where), where)
        module = build()
        state = {k: v.cpu() for k, v in state.items()}
        dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
        if len(dtypes) == 1:
            module.to(dtypes.pop())
        module.load_state_dict(state)
        return module.train(bool(node["training"]))

    def _net(self, node: dict) -> Any:
        import torch

        cls = self._resolve(node["$net"], "a net")
        module = self(node["module"])
        if not isinstance(module, functools.partial):
            module = self._resolve(_class_ref(module), "a module")
        criterion = self._resolve(node["criterion"], "a loss")
        where = f"the net's module {getattr(module, 'func', module).__name__}"
        state = self._weights(node["state"], _meta_shapes(module, where), where)
        net = cls(module, criterion=criterion, device=self.device)
        net.initialize()
        dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
        if len(dtypes) == 1:
            net.module_.to(dtypes.pop())
        net.module_.load_state_dict(state)
        net.module_.to(torch.device(self.device))
        net.module_.train(bool(node["training"]))
        net.history = self(node["history"])
        return net


def _check_shapes(
    refs: dict[str, dict], declared: dict, shapes: dict, where: str
) -> None:
    """Compare the file's weights with the declared module, from the header."""
    if set(refs) != set(declared):
        missing, extra = (
            sorted(set(declared) - set(refs)),
            sorted(set(refs) - set(declared)),
        )
        raise ValueError(
            f"The weights of {where} do not match its declared architecture "
            f"(missing {missing[:5]}, unexpected {extra[:5]})."
        )
    for key, ref in refs.items():
        got = shapes.get(ref["$tensor"])
        if got != declared[key]:
            raise ValueError(
                f"Weight {key!r} of {where} has shape {got} in the file, but its "
                f"declared architecture needs {declared[key]}."
            )


# ---------------------------------------------------------------------- API
def save(estimator: Any, path: str | os.PathLike[str]) -> None:
    """Save a fitted estimator of the package to a safetensors file, no pickle.

    See :meth:`vilu_sklearn.ViLUClassifier.save`.
    """
    from ._version import __version__

    st.require_safetensors()
    ref = _class_ref(type(estimator))
    _estimator_class(ref)
    encode = _Encoder()
    node = encode._estimator(estimator, type(estimator).__name__)
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "class": ref,
        "vilu_sklearn_version": __version__,
        "params": json.dumps(node["params"]),
        "attributes": json.dumps(node["state"]),
    }
    st.write_atomic(path, st.dumps(encode.tensors, metadata))


def _check_device(device: Any) -> Any:
    import torch

    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"device={device!r} is not a torch device: {exc}") from None
    try:
        torch.empty(0, device=dev)
    except (RuntimeError, AssertionError, ValueError) as exc:
        raise ValueError(
            f"device={device!r} is not available on this machine ({exc}); load "
            "on the CPU with device='cpu' (the default)."
        ) from None
    return dev


def _depth(node: Any, limit: int) -> int:
    """Nesting depth of parsed JSON, stopping once it passes ``limit``."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        value, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            break
        if isinstance(value, dict):
            stack.extend((v, level + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, level + 1) for v in value)
    return deepest


def _parse(path: str, meta: dict[str, str], key: str) -> dict:
    try:
        node = json.loads(meta[key])
    except KeyError:
        raise ValueError(f"{path!r} has no {key!r} in its metadata.") from None
    except RecursionError:
        node = None
    except ValueError as exc:
        raise ValueError(f"{path!r} has malformed {key!r} metadata ({exc}).") from None
    if node is None or _depth(node, MAX_DEPTH) > MAX_DEPTH:
        raise ValueError(
            f"{path!r}: its {key!r} metadata is nested deeper than {MAX_DEPTH} "
            "levels; files written by vilu_sklearn are not."
        )
    if not isinstance(node, dict):
        raise ValueError(f"{path!r}: its {key!r} metadata is not a JSON object.")
    return node


def _check_header(file: st.HeaderFile) -> None:
    """Format, version and (version 2) checksums, before anything is decoded."""
    path, meta = file.path, file.metadata
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{path!r} is not a vilu_sklearn model file (format "
            f"{meta.get('format')!r}; expected {FORMAT!r})."
        )
    version = meta.get("format_version")
    if version not in _READABLE:
        raise ValueError(
            f"{path!r} has format version {version!r} (written by vilu_sklearn "
            f"{meta.get('vilu_sklearn_version')!r}); this version of vilu_sklearn "
            f"reads versions {', '.join(_READABLE)}."
        )
    if version == "1":
        return
    if meta.get(st.METADATA_KEY) != file.metadata_digest():
        raise ValueError(
            f"{path!r} is corrupt: the SHA-256 of its metadata does not match "
            "the one stored in it."
        )
    if meta.get(st.PAYLOAD_KEY) != file.payload_digest():
        raise ValueError(
            f"{path!r} is corrupt: the SHA-256 of its tensor data does not match "
            "the one stored in it (a changed or damaged file)."
        )


def _legacy_params(cls: type, params: dict, path: str, meta: dict) -> dict:
    """Unknown parameters refused; those the file predates get their old value."""
    from ._version import __version__

    known = set(cls._get_param_names())  # type: ignore[attr-defined]
    unknown = sorted(set(params) - known)
    written = meta.get("vilu_sklearn_version")
    if unknown:
        raise ValueError(
            f"{path!r} sets parameter(s) {unknown} that {cls.__name__} does not "
            f"have in this version of vilu_sklearn ({__version__}); the file was "
            f"written by vilu_sklearn {written!r}: load it with that version or "
            "a newer one."
        )
    legacy: dict[str, Any] = getattr(cls, "_persist_legacy_params", {})
    missing = sorted(known - set(params))
    unexplained = [k for k in missing if k not in legacy]
    if unexplained:
        raise ValueError(
            f"{path!r} (written by vilu_sklearn {written!r}) lacks the "
            f"parameter(s) {unexplained} of {cls.__name__}, and no value is known "
            "that reproduces the saved model."
        )
    return {k: legacy[k] for k in missing}


def _restore(cls: type, params: Any, state: Any, decode: _Decoder, path: str) -> Any:
    if not isinstance(params, dict) or not isinstance(state, dict):
        raise ValueError("Malformed estimator in the file.")
    filled = _legacy_params(cls, params, path, decode.file.metadata)
    estimator = cls(**filled, **{k: decode(v) for k, v in params.items()})
    estimator._set_persist_state({k: decode(v) for k, v in state.items()})
    return estimator


def load(path: str | os.PathLike[str], *, device: Any = None) -> Any:
    """Load an estimator saved with ``est.save(path)``, without unpickling.

    Parameters
    ----------
    path : str or path-like
        A file written by ``save`` (by this or an earlier release).
    device : str or torch.device, default=None
        Where torch weights go; None means the CPU (a model trained on a GPU
        loads on a machine without one).

    Returns
    -------
    estimator : estimator
        The fitted estimator, predicting as the saved one did.

    Raises
    ------
    ValueError
        If the file is not a model file of this package, is damaged (its
        checksums differ), has another format version, names a class that is
        not one of the package's estimators, declares a torch module its
        weights do not fit, holds non-finite weights, or sets parameters this
        release does not know; or if ``device`` is not available.
    ImportError
        If the ``safetensors`` package is missing
        (``pip install vilu-sklearn[persist]``).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import vilu_sklearn
    >>> from vilu_sklearn.baselines import MSP
    >>> rng = np.random.default_rng(0)
    >>> X, T = rng.normal(size=(20, 4)), rng.normal(size=(3, 4))
    >>> msp = MSP().fit(X, T, np.arange(20) % 2)
    >>> path = os.path.join(tempfile.mkdtemp(), "msp.safetensors")
    >>> msp.save(path)
    >>> again = vilu_sklearn.load(path)
    >>> bool(np.allclose(again.decision_function(X), msp.decision_function(X)))
    True
    """
    st.require_safetensors()
    path = os.fspath(path)
    dev = _check_device(device)
    with st.open_file(path) as file:
        _check_header(file)
        meta = file.metadata
        try:
            cls = _estimator_class(meta.get("class"))
            params = _parse(path, meta, "params")
            state = _parse(path, meta, "attributes")
            decode = _Decoder(file, dev, getattr(cls, "_persist_classes", ()))
            return _restore(cls, params, state, decode, path)
        except _MALFORMED as exc:
            raise _in_file(exc, path, meta) from None


# what decoding a malformed (but checksum-valid) file can raise
_MALFORMED = (
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    IndexError,
    OverflowError,
    RuntimeError,
)


def _in_file(exc: Exception, path: str, meta: dict) -> ValueError:
    """``exc`` as a ValueError naming the file and the release that wrote it."""
    from ._version import __version__

    text = str(exc) if isinstance(exc, ValueError) else f"malformed ({exc!r})"
    if text.startswith(repr(path)):
        return ValueError(text)
    return ValueError(
        f"{path!r} (written by vilu_sklearn {meta.get('vilu_sklearn_version')!r}, "
        f"read by {__version__}): {text}"
    )
