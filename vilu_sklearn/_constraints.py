"""Parameter constraints shared by the estimators of the package.

Estimators declare ``_parameter_constraints`` with scikit-learn's vocabulary
(``StrOptions``, ``"boolean"``, ``"random_state"``, ``None``, ...) and the
constraints below, and call ``self._validate_params()`` once at the start of
``fit``. The errors are scikit-learn's ``InvalidParameterError`` (a ``ValueError``
and a ``TypeError``), which names the parameter, the estimator, what was expected
and what was received.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.utils._param_validation import Interval, Options

__all__ = [
    "Device",
    "NumberInterval",
    "PositiveIntSequence",
    "PositiveRealPair",
    "positive_int",
    "positive_real",
]


class NumberInterval(Interval):
    """An :class:`~sklearn.utils._param_validation.Interval` that rejects booleans.

    ``True`` is an ``int`` to Python, but ``max_epochs=True`` or ``lr=False`` is
    always a mistake. NaN is outside every interval.

    Examples
    --------
    >>> from numbers import Integral
    >>> from vilu_sklearn._constraints import NumberInterval
    >>> c = NumberInterval(Integral, 1, None, closed="left")
    >>> c.is_satisfied_by(3), c.is_satisfied_by(True), c.is_satisfied_by(0)
    (True, False, False)
    """

    def is_satisfied_by(self, val: Any) -> bool:
        if isinstance(val, bool | np.bool_):
            return False
        return bool(super().is_satisfied_by(val))


class _Predicate(Options):
    """A constraint given by a predicate and a description.

    It derives from ``Options`` only because scikit-learn's validation accepts
    instances of its own constraint classes; subclasses define
    ``is_satisfied_by`` and ``__str__``.
    """

    def __init__(self) -> None:
        super().__init__(object, set())


def positive_int() -> NumberInterval:
    """Integers >= 1 (booleans excluded)."""
    return NumberInterval(Integral, 1, None, closed="left")


def positive_real() -> NumberInterval:
    """Finite real numbers > 0 (booleans, NaN and infinity excluded)."""
    return NumberInterval(Real, 0, None, closed="neither")


class PositiveIntSequence(_Predicate):
    """A tuple or list of positive integers (possibly empty).

    Examples
    --------
    >>> from vilu_sklearn._constraints import PositiveIntSequence
    >>> c = PositiveIntSequence()
    >>> c.is_satisfied_by((512, 256)), c.is_satisfied_by([0]), c.is_satisfied_by(8)
    (True, False, False)
    """

    def is_satisfied_by(self, val: Any) -> bool:
        if not isinstance(val, tuple | list):
            return False
        return all(positive_int().is_satisfied_by(w) for w in val)

    def __str__(self) -> str:
        return "a tuple of positive ints"


class Device(_Predicate):
    """``"auto"``, None, or a torch device (a ``torch.device`` or its name).

    Examples
    --------
    >>> from vilu_sklearn._constraints import Device
    >>> c = Device()
    >>> [c.is_satisfied_by(v) for v in ("auto", "cpu", "cuda:1", "gpu", 3)]
    [True, True, True, False, False]
    """

    def is_satisfied_by(self, val: Any) -> bool:
        import torch

        if val is None or val == "auto" or isinstance(val, torch.device):
            return True
        if not isinstance(val, str):
            return False
        try:
            torch.device(val)
        except (RuntimeError, ValueError):
            return False
        return True

    def __str__(self) -> str:
        return "'auto', None or a torch device such as 'cpu', 'cuda' or 'cuda:1'"


class PositiveRealPair(_Predicate):
    """A tuple or list of two finite positive reals, such as bounds ``(low, high)``.

    Examples
    --------
    >>> from vilu_sklearn._constraints import PositiveRealPair
    >>> c = PositiveRealPair()
    >>> c.is_satisfied_by((0.01, 100)), c.is_satisfied_by((0, 1)), c.is_satisfied_by(1)
    (True, False, False)
    """

    def is_satisfied_by(self, val: Any) -> bool:
        if not isinstance(val, tuple | list) or len(val) != 2:
            return False
        return all(positive_real().is_satisfied_by(v) for v in val)

    def __str__(self) -> str:
        return "a pair (low, high) of positive floats"
