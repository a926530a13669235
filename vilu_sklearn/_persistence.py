"""Save and load fitted estimators without pickle: safetensors + JSON.

``est.save(path)`` writes one safetensors file: every array and torch tensor
of the estimator (weights, fitted arrays) as a tensor, and, in the file's
string metadata, the format name and version, the estimator's class, its
parameters (``get_params()``) and its other attributes as JSON.
:func:`load` reads it back. Nothing is unpickled and nothing is evaluated:
JSON is parsed, tensors are checked against the file size, and classes are
looked up in an allow-list (the estimators, skorch nets and torch modules
defined in this package, scikit-learn's ``NearestNeighbors``, ICPE's Gaussians
stored as their arrays, and ``torch.nn.Sequential`` stacks of ``Linear`` and
``ReLU`` layers stored as their sizes and state_dict).

The encoding is generic over an estimator's ``__getstate__`` (what pickling
would store), so estimators added to the package later are covered as long as
their attributes are numbers, strings, arrays, tensors, lists, tuples, dicts or
the objects above.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import os
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .baselines._image_text import _Gaussians

__all__ = ["FORMAT", "FORMAT_VERSION", "load", "save"]

FORMAT = "vilu_sklearn.estimator"
FORMAT_VERSION = 1


# ------------------------------------------------------------------ classes
def _class_ref(cls: Any) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _allowed_bases() -> tuple[type, ...]:
    import torch
    from skorch import NeuralNet

    from ._base import FailurePredictorMixin

    return (FailurePredictorMixin, NeuralNet, torch.nn.Module)


def _resolve_class(ref: Any, what: str) -> type:
    """The class named ``module:qualname``, if the allow-list permits it."""
    from sklearn.neighbors import NearestNeighbors

    if ref == _class_ref(NearestNeighbors):
        return NearestNeighbors
    module, _, qualname = str(ref).partition(":")
    if module == "torch.nn.modules.loss":
        import torch

        cls = getattr(torch.nn, qualname, None)
        if isinstance(cls, type) and issubclass(cls, torch.nn.modules.loss._Loss):
            return cls
    if module.split(".")[0] == "vilu_sklearn" and "." not in qualname:
        try:
            cls = getattr(importlib.import_module(module), qualname, None)
        except ImportError:
            cls = None
        if isinstance(cls, type) and issubclass(cls, _allowed_bases()):
            return cls
    raise ValueError(
        f"Refusing {what} of class {ref!r}: only the estimators, nets and "
        "modules of vilu_sklearn can be saved and loaded."
    )


def _gaussians_class() -> type[_Gaussians]:
    from .baselines._image_text import _Gaussians

    return _Gaussians


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
        from sklearn.neighbors import NearestNeighbors
        from skorch import NeuralNet
        from skorch.history import History

        if value is None or isinstance(value, bool | int | str):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"$float": repr(value)}
        if isinstance(value, np.generic):
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
        if isinstance(value, NearestNeighbors):
            return {
                "$neighbors": self(value.get_params(), where),
                "X": self._array(np.asarray(value._fit_X), where),
            }
        if isinstance(value, NeuralNet):
            return self._net(value, where)
        if isinstance(value, torch.nn.Sequential):
            return self._sequential(value, where)
        if isinstance(value, _gaussians_class()):
            return {"$gaussians": self(value.to_arrays(), where)}
        raise TypeError(
            f"Cannot save {where}: values of type {type(value).__name__} have no "
            "safe encoding (numbers, strings, arrays, tensors, lists, dicts)."
        )

    def _array(self, value: np.ndarray, where: str) -> Any:
        if value.dtype.kind in "biuf":
            return {"$array": self._store(value)}
        if value.dtype.kind in "US" or (
            value.dtype.kind == "O" and all(isinstance(v, str) for v in value.flat)
        ):
            return {
                "$strings": [str(v) for v in value.ravel()],
                "shape": list(value.shape),
                "dtype": "object" if value.dtype.kind == "O" else value.dtype.str,
            }
        raise TypeError(f"Cannot save {where}: an array of dtype {value.dtype}.")

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


# ----------------------------------------------------------------- decoding
class _Decoder:
    """The inverse of :class:`_Encoder`, with tensors mapped to ``device``."""

    def __init__(self, tensors: dict[str, np.ndarray], device: Any) -> None:
        self.tensors = tensors
        self.device = device

    def _stored(self, name: Any) -> np.ndarray:
        if name not in self.tensors:
            raise ValueError(f"The file has no tensor {name!r}.")
        return self.tensors[name]

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

    def _float(self, node: dict) -> float:
        if node["$float"] not in ("nan", "inf", "-inf"):
            raise ValueError(f"Malformed float {node['$float']!r} in the file.")
        return float(node["$float"])

    def _scalar(self, node: dict) -> Any:
        return np.dtype(str(node["dtype"])).type(self(node["$scalar"]))

    def _array(self, node: dict) -> np.ndarray:
        return self._stored(node["$array"])

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
        func = _resolve_class(node["$partial"], "a module")
        return functools.partial(func, *self(node["args"]), **self(node["kwargs"]))

    def _neighbors(self, node: dict) -> Any:
        from sklearn.neighbors import NearestNeighbors

        return NearestNeighbors(**self(node["$neighbors"])).fit(self(node["X"]))

    def _gaussians(self, node: dict) -> Any:
        return _gaussians_class().from_arrays(self(node["$gaussians"]))

    def _sequential(self, node: dict) -> Any:
        """A plain module (LVU's MLP), on the CPU like after ``fit``."""
        import torch

        module = torch.nn.Sequential(*(_build_layer(s) for s in node["$sequential"]))
        state = {k: v.cpu() for k, v in self(node["state"]).items()}
        dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
        if len(dtypes) == 1:
            module.to(dtypes.pop())
        try:
            module.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"The file's module weights do not fit: {exc}") from None
        return module.train(bool(node["training"]))

    def _net(self, node: dict) -> Any:
        import torch

        cls = _resolve_class(node["$net"], "a net")
        module = self(node["module"])
        criterion = _resolve_class(node["criterion"], "a loss")
        net = cls(module, criterion=criterion, device=self.device)
        net.initialize()
        state = self(node["state"])
        dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
        if len(dtypes) == 1:
            net.module_.to(dtypes.pop())
        net.module_.load_state_dict(state)
        net.module_.to(torch.device(self.device))
        net.module_.train(bool(node["training"]))
        net.history = self(node["history"])
        return net


# ---------------------------------------------------------------------- API
def save(estimator: Any, path: str | os.PathLike[str]) -> None:
    """Save a fitted estimator of the package to a safetensors file, no pickle.

    See :meth:`vilu_sklearn.ViLUClassifier.save`.
    """
    from ._safetensors import write_safetensors
    from ._version import __version__

    _resolve_class(_class_ref(type(estimator)), "an estimator")
    state = dict(estimator.__getstate__())
    state.pop("_sklearn_version", None)
    params = estimator.get_params(deep=False)
    encode = _Encoder()
    random_state = params.get("random_state")
    if random_state is not None and not isinstance(random_state, int):
        warnings.warn(
            "random_state is a generator, which is not saved: the loaded "
            "estimator has random_state=None (it only matters for refitting).",
            UserWarning,
            stacklevel=3,
        )
        params["random_state"] = None
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "class": _class_ref(type(estimator)),
        "vilu_sklearn_version": __version__,
        "params": json.dumps({k: encode(v, k) for k, v in params.items()}),
        "attributes": json.dumps(
            {k: encode(v, k) for k, v in state.items() if k not in params}
        ),
    }
    write_safetensors(path, encode.tensors, metadata)


def _default_device(device: Any) -> Any:
    import torch

    if device is not None:
        return torch.device(device)
    return torch.device("cpu")


def load(path: str | os.PathLike[str], *, device: Any = None) -> Any:
    """Load an estimator saved with ``est.save(path)``, without unpickling.

    Parameters
    ----------
    path : str or path-like
        A file written by ``save``.
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
        If the file is not a model file of this package, has another format
        version, or names a class outside the package's allow-list.

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
    from ._safetensors import read_safetensors

    path = os.fspath(path)
    tensors, meta = read_safetensors(path)
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{path!r} is not a vilu_sklearn model file (format "
            f"{meta.get('format')!r}; expected {FORMAT!r})."
        )
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise ValueError(
            f"{path!r} has format version {meta.get('format_version')!r}; this "
            f"version of vilu_sklearn reads version {FORMAT_VERSION}."
        )
    cls = _resolve_class(meta.get("class"), "an estimator")
    decode = _Decoder(tensors, _default_device(device))
    try:
        params = {k: decode(v) for k, v in json.loads(meta["params"]).items()}
        attributes = {k: decode(v) for k, v in json.loads(meta["attributes"]).items()}
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path!r} has malformed metadata ({exc!r}).") from None
    estimator = cls(**params)
    estimator.__dict__.update(attributes)
    return estimator
