"""Label-trained probes: a classifier of the image embeddings on the class labels.

:class:`LinearProbe` (multinomial logistic regression) and :class:`MLPProbe`
(one hidden layer, torch) learn the true class of a training image from its
embedding; their confidence that the VLM is right is the probe's probability
of the class the VLM predicts (``argmax`` of ``logit_scale * cos`` over the
candidate texts). They need the training class labels, which no other
baseline gets: they are the supervision-matched comparison for a ViLU trained
with ``labels`` (docs/benchmark.md).
"""

from __future__ import annotations

import numbers
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from .._base import FitInputs
from .._constraints import NumberInterval
from .._persistence import register_estimator
from .._zero_shot import check_class_labels
from ._base import (
    CLASSIFICATION_TEXTS_DOC,
    BaseBaseline,
    ThresholdPredictMixin,
    fill_doc,
)
from ._image_space import best_by_auroc, image_points, validation_split

__all__ = ["LinearProbe", "MLPProbe"]

_NEEDS_LABELS = (
    "{name} is trained on the class labels: call fit(X_img, X_txt, y_correct, "
    "labels=labels) with labels[i] the true class of image i (an index into "
    "X_txt). Without labels use a y_correct-trained baseline (e.g. "
    "TemperatureScaling, LVU) or ViLUClassifier."
)

_SHARED_PARAMS = (
    CLASSIFICATION_TEXTS_DOC
    + """
    logit_scale : float, default=100.0
        CLIP's temperature: the VLM's prediction is the argmax of
        ``logit_scale * cos(X_img, X_txt)`` (the scale does not change it).
    normalize : bool, default=True
        L2-normalise image and text embeddings (the probe sees normalised
        images)."""
)

_SHARED_ATTRIBUTES = """classes_ : ndarray of shape (2,)
        ``[0, 1]`` for 0/1 labels: the first means the VLM is wrong, the second
        that it is right.
    n_features_in_ : int
        Embedding dimension d.
    text_embeddings_ : ndarray of shape (K, d)
        Candidate texts seen in ``fit`` (float64)."""

_FIT_DOC = """Fit the probe on the class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, d)
            Image embeddings ``X_img``.
        y : array-like of shape (K, d) or (n_samples,)
            The candidate texts ``X_txt`` (three-argument form), or
            ``y_correct`` with ``text_embeddings`` set.
        y_correct : array-like of shape (n_samples,), default=None
            1 where the VLM's prediction is correct, 0 where it is wrong (used
            to choose the regularisation on the validation split).
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights of the probe's loss.
        labels : array-like of int of shape (n_samples,)
            Required: the true class of each image, an index into the
            candidate texts.

        Returns
        -------
        self : object
            The fitted probe."""


_doc = fill_doc(shared_params=_SHARED_PARAMS, shared_attributes=_SHARED_ATTRIBUTES)


class _LabelProbe(ThresholdPredictMixin, BaseBaseline):
    """Shared part: label checks, the VLM's prediction, the score."""

    _caption_support = False
    _fixed_candidates = True
    _predict_threshold = 0.5
    _supervision: ClassVar[str] = "labels"
    _requires_labels: ClassVar[bool] = True
    _unseen_classes: ClassVar[str] = "n/a"

    validation_fraction: float
    random_state: Any

    def fit(
        self,
        X: Any,
        y: Any = None,
        y_correct: Any = None,
        *,
        sample_weight: Any = None,
        labels: Any = None,
    ) -> Any:
        self._check_params()
        inputs = self._fit_inputs(X, y, y_correct, sample_weight)
        if labels is None:
            raise ValueError(_NEEDS_LABELS.format(name=type(self).__name__))
        assert inputs.X_txt is not None
        labels = check_class_labels(labels, inputs.X_img.shape[0], len(inputs.X_txt))
        self._fit(inputs._replace(labels=labels))
        return self

    fit.__doc__ = _FIT_DOC

    def _split(self, inputs: FitInputs) -> tuple[FitInputs, FitInputs] | None:
        return validation_split(
            inputs, float(self.validation_fraction), self.random_state
        )

    def _vlm_predictions(self, X_img: np.ndarray, texts: np.ndarray) -> np.ndarray:
        pred = np.empty(X_img.shape[0], dtype=np.int64)
        for sl, logits in self._blocks(X_img, texts):
            pred[sl] = logits.argmax(axis=1)
        return pred

    def _proba(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """Class probabilities (rows, K) of normalised image rows."""
        raise NotImplementedError

    def _scores(self, X_img: np.ndarray, texts: np.ndarray) -> np.ndarray:
        pred = self._vlm_predictions(X_img, texts)
        out = np.empty(X_img.shape[0], dtype=np.float64)
        for start in range(0, len(out), 8192):
            rows = slice(start, start + 8192)
            P = self._proba(image_points(X_img[rows], bool(self.normalize)))
            out[rows] = P[np.arange(P.shape[0]), pred[rows]]
        return out

    def _decision_classification(
        self, X_img: np.ndarray, texts: np.ndarray
    ) -> np.ndarray:
        return self._scores(X_img, texts)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = False
        return tags


@_doc
@register_estimator
class LinearProbe(_LabelProbe):
    """Logistic regression on the class labels, scoring the VLM's predicted class.

    A multinomial logistic regression (:class:`sklearn.linear_model.LogisticRegression`,
    lbfgs) on the standardised, L2-normalised image embeddings learns the true
    class of each training image. The confidence that the VLM is right on an
    image is the probe's probability of the class the VLM predicts. Classes
    absent from the training labels get probability 0.

    This baseline needs the training **class labels** (``fit(..., labels=...)``),
    not only ``y_correct``: it is the supervision-matched comparison for a
    :class:`~vilu_sklearn.ViLUClassifier` trained with labels. It is tied to
    the candidate set of ``fit``: it cannot score classes it never saw
    (classification mode only, prediction with the K texts of ``fit``).

    With ``C="auto"`` (default) ``fit`` holds out a stratified
    ``validation_fraction`` of the training rows, fits one model per value of
    ``Cs`` on the rest and keeps the value whose failure score (the probability
    of the VLM's class) has the best validation AUROC (ties go to the earlier
    value); the final model is then fitted on all the training rows.
    ``predict`` returns ``classes_[1]`` where that probability exceeds 0.5.

    Conventions: docs/conventions.md.

    Parameters
    ----------
    {shared_params}
    C : float or "auto", default="auto"
        Inverse L2 regularisation strength (``"auto"``: chosen from ``Cs``).
    Cs : tuple of float, default=(0.003, 0.01, 0.03, 0.1)
        Values tried by ``C="auto"``.
    max_iter : int, default=300
        Iterations of lbfgs.
    validation_fraction : float in (0, 1), default=0.2
        Share of the training rows held out to choose ``C``.
    random_state : int, RandomState instance or None, default=0
        Seed of the validation split.
    predict_batch_size : int, default=None
        Image rows per (rows, K) block of logits.

    Attributes
    ----------
    C_ : float
        The regularisation used.
    n_iter_ : int
        Iterations of lbfgs in the final fit (0 with a single class).
    validation_aurocs_ : ndarray or None
        Validation AUROC of each value of ``Cs`` (None when not tuned).
    coef_ : ndarray of shape (K, d)
        Weights on the standardised features (zero rows for absent classes).
    intercept_ : ndarray of shape (K,)
        Intercepts (``-inf`` for absent classes).
    {shared_attributes}

    Examples
    --------
    >>> from vilu_sklearn.baselines import LinearProbe
    >>> from vilu_sklearn.datasets import make_vlm_embeddings
    >>> d = make_vlm_embeddings(400, 4, 24, accuracy=0.7, random_state=0)
    >>> probe = LinearProbe(logit_scale=d.logit_scale).fit(
    ...     d.X_img, d.X_txt, d.y_correct, labels=d.labels)
    >>> probe.decision_function(d.X_img[:3]).shape
    (3,)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseBaseline._parameter_constraints,
        "C": [Interval(numbers.Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "Cs": [tuple, list],
        "max_iter": [NumberInterval(numbers.Integral, 1, None, closed="left")],
        "validation_fraction": [NumberInterval(numbers.Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        text_embeddings: Any = None,
        mode: str = "classification",
        logit_scale: float = 100.0,
        normalize: bool = True,
        C: float | str = "auto",
        Cs: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1),
        max_iter: int = 300,
        validation_fraction: float = 0.2,
        random_state: Any = 0,
        predict_batch_size: int | None = None,
    ) -> None:
        self.text_embeddings = text_embeddings
        self.mode = mode
        self.logit_scale = logit_scale
        self.normalize = normalize
        self.C = C
        self.Cs = Cs
        self.max_iter = max_iter
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.predict_batch_size = predict_batch_size

    def _check_extra_params(self) -> None:
        if self.C == "auto" and (
            len(self.Cs) == 0
            or not all(
                isinstance(c, numbers.Real) and not isinstance(c, bool) and c > 0
                for c in self.Cs
            )
        ):
            raise ValueError(
                f"Cs must be a non-empty tuple of positive numbers; got {self.Cs!r}."
            )

    def _fit_model(
        self, inputs: FitInputs, C: float, K: int
    ) -> tuple[np.ndarray, np.ndarray]:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        assert inputs.labels is not None
        X = image_points(inputs.X_img, bool(self.normalize))
        Z = (X - self.mean_) / self.scale_
        coef = np.zeros((K, X.shape[1]))
        intercept = np.full(K, -np.inf)
        present = np.unique(inputs.labels)
        self.n_iter_ = 0
        if len(present) == 1:  # one class: probability 1 for it
            intercept[present[0]] = 0.0
            return coef, intercept
        model = LogisticRegression(C=float(C), max_iter=int(self.max_iter))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(Z, inputs.labels, sample_weight=inputs.sample_weight)
        self.n_iter_ = int(np.max(model.n_iter_))
        if len(present) == 2:  # binary: one row of coefficients
            coef[present[1]], intercept[present[1]] = (
                model.coef_[0],
                model.intercept_[0],
            )
            coef[present[0]], intercept[present[0]] = 0.0, 0.0
        else:
            coef[present], intercept[present] = model.coef_, model.intercept_
        return coef, intercept

    def _fit_scorer(self, inputs: FitInputs) -> None:
        assert inputs.X_txt is not None
        K = len(inputs.X_txt)
        X = image_points(inputs.X_img, bool(self.normalize))
        w = inputs.sample_weight
        self.mean_ = np.average(X, axis=0, weights=w)
        std = np.sqrt(np.average((X - self.mean_) ** 2, axis=0, weights=w))
        self.scale_ = np.where(std > 1e-12, std, 1.0)
        C = self.C
        self.validation_aurocs_: np.ndarray | None = None
        split = self._split(inputs) if C == "auto" else None
        if C == "auto":
            C = float(self.Cs[0])
        if split is not None:
            fit, val = split
            texts = inputs.X_txt
            assert val.y is not None

            def scores(c: float) -> np.ndarray:
                self.coef_, self.intercept_ = self._fit_model(fit, c, K)
                return self._scores(val.X_img, texts)

            C, self.validation_aurocs_ = best_by_auroc(
                [float(c) for c in self.Cs], scores, val.y, val.sample_weight
            )
        self.C_ = float(C)
        self.coef_, self.intercept_ = self._fit_model(inputs, self.C_, K)

    def _proba(self, X: np.ndarray) -> np.ndarray:
        logits = ((X - self.mean_) / self.scale_) @ self.coef_.T + self.intercept_
        logits -= logits.max(axis=1, keepdims=True)
        P = np.exp(logits)
        P /= P.sum(axis=1, keepdims=True)
        return P


@_doc
@register_estimator
class MLPProbe(_LabelProbe):
    """A one-hidden-layer MLP on the class labels, scoring the VLM's predicted class.

    The network ``d -> hidden_size -> K`` (ReLU; 2048 units by default, the
    width of ViLU's posterior head) is trained with a (weighted) cross-entropy
    on the true class of each L2-normalised training image embedding, by AdamW
    in mini-batches. The confidence that the VLM is right on an image is the
    network's softmax probability of the class the VLM predicts.

    This baseline needs the training **class labels** (``fit(..., labels=...)``),
    not only ``y_correct``: it is the supervision-matched comparison for a
    :class:`~vilu_sklearn.ViLUClassifier` trained with labels. It cannot score
    classes it never saw (classification mode only, prediction with the K
    texts of ``fit``).

    Regularisation: weight decay, and early stopping on a stratified
    ``validation_fraction`` of the training rows: after every epoch the
    validation AUROC of the failure score is measured, training stops after
    ``patience`` epochs without improvement and the weights of the best epoch
    are kept; with ``refit=True`` (default) a new network is then trained on
    all the training rows for that number of epochs. Without enough
    rows to split (fewer than 4 of either outcome), it trains for
    ``max_epochs`` on all rows. ``predict`` returns ``classes_[1]`` where the
    probability exceeds 0.5.

    Conventions: docs/conventions.md.

    Parameters
    ----------
    {shared_params}
    hidden_size : int, default=2048
        Width of the hidden layer.
    max_epochs : int, default=30
        Most training epochs.
    patience : int, default=4
        Epochs without a better validation AUROC before stopping.
    batch_size : int, default=256
        Mini-batch size.
    lr : float, default=1e-3
        AdamW learning rate.
    weight_decay : float, default=1e-4
        AdamW (decoupled) weight decay.
    validation_fraction : float in (0, 1), default=0.2
        Share of the training rows held out for early stopping.
    refit : bool, default=True
        After early stopping, train a new network on all the training rows
        for the best epoch's number of epochs (False: keep the network
        trained on the other rows, at its best epoch).
    device : str, default="auto"
        Torch device ("auto": CUDA when available).
    random_state : int or None, default=0
        Seed of the split, the initialisation and the batches.
    verbose : int, default=0
        Print the validation AUROC of each epoch.
    predict_batch_size : int, default=None
        Image rows per (rows, K) block of logits.

    Attributes
    ----------
    module_ : torch.nn.Sequential
        The trained network (on the CPU, in eval mode).
    best_epoch_ : int
        Epoch (1-based) of the best validation AUROC (the epochs of the
        refit).
    validation_aurocs_ : ndarray or None
        Validation AUROC after each epoch (None without a split).
    {shared_attributes}

    Examples
    --------
    >>> from vilu_sklearn.baselines import MLPProbe
    >>> from vilu_sklearn.datasets import make_vlm_embeddings
    >>> d = make_vlm_embeddings(400, 4, 24, accuracy=0.7, random_state=0)
    >>> probe = MLPProbe(hidden_size=32, max_epochs=5, logit_scale=d.logit_scale)
    >>> probe = probe.fit(d.X_img, d.X_txt, d.y_correct, labels=d.labels)
    >>> probe.decision_function(d.X_img[:3]).shape
    (3,)
    """

    module_: torch.nn.Sequential
    best_epoch_: int
    validation_aurocs_: np.ndarray | None

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseBaseline._parameter_constraints,
        "hidden_size": [NumberInterval(numbers.Integral, 1, None, closed="left")],
        "max_epochs": [NumberInterval(numbers.Integral, 1, None, closed="left")],
        "patience": [NumberInterval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [NumberInterval(numbers.Integral, 1, None, closed="left")],
        "lr": [NumberInterval(numbers.Real, 0, None, closed="neither")],
        "weight_decay": [NumberInterval(numbers.Real, 0, None, closed="left")],
        "validation_fraction": [NumberInterval(numbers.Real, 0, 1, closed="neither")],
        "refit": ["boolean"],
        "device": [str],
        "random_state": [
            NumberInterval(numbers.Integral, 0, None, closed="left"),
            None,
        ],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        text_embeddings: Any = None,
        mode: str = "classification",
        logit_scale: float = 100.0,
        normalize: bool = True,
        hidden_size: int = 2048,
        max_epochs: int = 30,
        patience: int = 4,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        validation_fraction: float = 0.2,
        refit: bool = True,
        device: str = "auto",
        random_state: int | None = 0,
        verbose: int = 0,
        predict_batch_size: int | None = None,
    ) -> None:
        self.text_embeddings = text_embeddings
        self.mode = mode
        self.logit_scale = logit_scale
        self.normalize = normalize
        self.hidden_size = hidden_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.refit = refit
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.predict_batch_size = predict_batch_size

    def _torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            return torch.device(self.device)
        except RuntimeError as exc:
            raise ValueError(
                f"device must be a torch device name; got {self.device!r}."
            ) from exc

    def _tensors(self, inputs: FitInputs) -> tuple[torch.Tensor, ...]:
        assert inputs.labels is not None
        X = image_points(inputs.X_img, bool(self.normalize))
        sw = inputs.sample_weight
        return (
            torch.as_tensor(X, dtype=torch.float32),
            torch.as_tensor(inputs.labels, dtype=torch.int64),
            torch.ones(len(X))
            if sw is None
            else torch.as_tensor(sw, dtype=torch.float32),
        )

    def _fit_scorer(self, inputs: FitInputs) -> None:
        assert inputs.X_txt is not None
        device = self._torch_device()
        seed = 0 if self.random_state is None else int(self.random_state)
        gen = torch.Generator().manual_seed(seed)
        if self.random_state is None:
            gen.seed()
        split = self._split(inputs)
        train, val = (inputs, None) if split is None else split
        self._fit_module(train, val, gen, device, inputs.X_txt, int(self.max_epochs))
        if self.refit and val is not None:
            aurocs, best = self.validation_aurocs_, self.best_epoch_
            self._fit_module(inputs, None, gen, device, inputs.X_txt, best)
            self.validation_aurocs_, self.best_epoch_ = aurocs, best
        self.module_ = self.module_.cpu().eval()

    def _fit_module(
        self,
        train: FitInputs,
        val: FitInputs | None,
        gen: torch.Generator,
        device: torch.device,
        texts: np.ndarray,
        epochs: int,
    ) -> None:
        X, labels, sw = self._tensors(train)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            module = torch.nn.Sequential(
                torch.nn.Linear(X.shape[1], int(self.hidden_size)),
                torch.nn.ReLU(),
                torch.nn.Linear(int(self.hidden_size), len(texts)),
            ).to(device)
        opt = torch.optim.AdamW(
            module.parameters(),
            lr=float(self.lr),
            weight_decay=float(self.weight_decay),
        )
        self.module_ = module
        self._train(opt, (X, labels, sw), gen, device, val, texts, epochs)

    def _epoch(
        self,
        opt: torch.optim.Optimizer,
        data: tuple[torch.Tensor, ...],
        gen: torch.Generator,
        device: torch.device,
    ) -> None:
        X, labels, sw = data
        bs = int(self.batch_size)
        order = torch.randperm(len(X), generator=gen)
        self.module_.train()
        for start in range(0, len(X), bs):
            idx = order[start : start + bs]
            out = self.module_(X[idx].to(device))
            loss = torch.nn.functional.cross_entropy(
                out, labels[idx].to(device), reduction="none"
            )
            w = sw[idx].to(device)
            loss = (loss * w).sum() / w.sum().clamp_min(1e-12)
            opt.zero_grad()
            loss.backward()
            opt.step()

    def _train(
        self,
        opt: torch.optim.Optimizer,
        data: tuple[torch.Tensor, ...],
        gen: torch.Generator,
        device: torch.device,
        val: FitInputs | None,
        texts: np.ndarray,
        epochs: int,
    ) -> None:
        from sklearn.metrics import roc_auc_score

        self.validation_aurocs_ = None
        self.best_epoch_ = epochs
        if val is None:
            for _ in range(epochs):
                self._epoch(opt, data, gen, device)
            return
        aurocs: list[float] = []
        best_state, waited = None, 0
        for epoch in range(1, epochs + 1):
            self._epoch(opt, data, gen, device)
            auroc = float(
                roc_auc_score(
                    val.y,
                    self._scores(val.X_img, texts),
                    sample_weight=val.sample_weight,
                )
            )
            aurocs.append(auroc)
            if self.verbose:
                print(f"MLPProbe epoch {epoch}: validation AUROC {auroc:.4f}")
            if best_state is None or auroc > max(aurocs[:-1]):
                best_state = {
                    k: v.clone() for k, v in self.module_.state_dict().items()
                }
                self.best_epoch_, waited = epoch, 0
            else:
                waited += 1
                if waited >= int(self.patience):
                    break
        assert best_state is not None
        self.module_.load_state_dict(best_state)
        self.validation_aurocs_ = np.asarray(aurocs)

    def _proba(self, X: np.ndarray) -> np.ndarray:
        module = self.module_
        device = next(module.parameters()).device
        was_training = module.training
        module.eval()
        with torch.no_grad():
            out = module(torch.as_tensor(X, dtype=torch.float32, device=device))
            P = torch.softmax(out.double(), dim=1).cpu().numpy()
        module.train(was_training)
        return P
