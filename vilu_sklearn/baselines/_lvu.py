"""LVU: a visual-only learned confidence head (the ViLU reference's LVU baseline).

:class:`LVU` is the reference's LVU (MLP on the image embedding, sigmoid
output, MSE to the true-class probability); :func:`make_lvu` is the earlier
adaptation, ViLU's visual-only head trained with ViLU's weighted BCE.
"""

from __future__ import annotations

import numbers
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.utils._param_validation import StrOptions

from .._base import FitInputs
from .._constraints import NumberInterval
from .._modules import failure_weight, weighted_bce_loss
from .._persistence import register_estimator
from .._vilu import ViLUClassifier
from ._base import BaseBaseline, ThresholdPredictMixin
from ._image_space import image_points
from ._training_free import max_softmax_inplace

__all__ = ["LVU", "make_lvu"]


def _mlp(d: int, hidden: tuple[int, ...]) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    for width in hidden:
        layers += [torch.nn.Linear(d, width), torch.nn.ReLU()]
        d = width
    layers.append(torch.nn.Linear(d, 1))
    return torch.nn.Sequential(*layers)


@torch.no_grad()
def _zero_subnormal_weights(module: torch.nn.Module) -> None:
    """Set the weights below float32's smallest normal number to exactly 0.

    Adam's coupled weight decay drives the weights of unused inputs and dead
    units into subnormal numbers after about 10 epochs, and CPU products with
    subnormals are an order of magnitude slower: a 20-epoch fit on 40,000 rows
    took 192 s instead of 34 s (same machine and load), with the same loss curve
    to the printed digits. They are 0 to float32 precision anyway. (Zeroing the
    optimiser's subnormal moments too was slower, and torch's flush-denormal
    mode does not reach its already running worker threads.)
    """
    for p in module.parameters():
        p.masked_fill_(p.abs() < torch.finfo(p.dtype).tiny, 0.0)


@register_estimator
class LVU(ThresholdPredictMixin, BaseBaseline):
    """LVU: an MLP on the image embedding regressing the true-class probability.

    The LVU baseline of the ViLU reference code ("Learning Visual
    Uncertainties", after Kirchhof et al., 2024, as adapted there): an MLP
    ``d -> 512 -> 256 -> 128 -> 1`` (ReLU) on the L2-normalised image embedding
    alone, with a sigmoid output trained by mean squared error towards the
    VLM's true-class probability ``TCP = softmax(logit_scale * cos)[label]``
    (ConfidNet-style), failures weighted by ViLU's adaptive weight
    ``-log(1 - batch accuracy)``.

    The TCP needs the true label, but only ``y_correct`` is known here. For a
    correct prediction the true class is the predicted one, so ``TCP = p_max``
    exactly. For a failure the true class is unknown and ``TCP < p_max`` is
    all that is known; the target used is ``0`` (``target = y_correct * p_max``;
    the TCP of a failure is usually small, and 0 keeps the ranking
    objective: failures below successes). ``loss="bce"`` trains the same MLP
    with ViLU's weighted binary cross-entropy on ``y_correct`` instead (the
    "ConfidNet v-only" variant of the reference; see also :func:`make_lvu`).

    Training (an adaptation to CPU budgets, not the reference's SGD for 500-800
    epochs): Adam, ``max_epochs`` epochs of shuffled mini-batches, seeded by
    ``random_state``. The score is the sigmoid output (estimated TCP, or
    P(correct) with ``loss="bce"``); ``predict`` is 1 where it exceeds 0.5 (a
    true-class probability above 1/2 implies a correct argmax). Classification
    mode only: ``fit`` needs the candidate texts for the TCP target, prediction
    does not use them.

    Conventions: docs/conventions.md.

    Parameters
    ----------
    text_embeddings : array-like of shape (K, d), default=None
        Candidate text embeddings used when ``fit`` gets no ``X_txt``.
    mode : {"classification"}, default="classification"
        Only classification mode is supported (caption mode raises an error).
    logit_scale : float, default=100.0
        CLIP's temperature, for the target ``p_max``.
    normalize : bool, default=True
        L2-normalise image and text embeddings.
    loss : {"tcp_mse", "bce"}, default="tcp_mse"
        MSE to the true-class probability (reference LVU) or weighted BCE on
        ``y_correct``.
    hidden_layer_sizes : tuple of int, default=(512, 256, 128)
        Widths of the hidden layers.
    max_epochs : int, default=20
        Training epochs.
    batch_size : int, default=256
        Mini-batch size (the reference's is 128).
    lr : float, default=1e-3
        Adam learning rate.
    weight_decay : float, default=5e-4
        Adam weight decay (the reference's, with SGD).
    device : str, default="auto"
        Torch device ("auto": CUDA when available).
    random_state : int or None, default=0
        Seed of the initialisation and of the shuffling.
    verbose : int, default=0
        Print the training loss every epoch when positive.
    predict_batch_size : int, default=None
        Image rows per (rows, K) block of logits when computing the targets.

    Attributes
    ----------
    module_ : torch.nn.Sequential
        The trained MLP (on CPU).
    loss_curve_ : list of float
        Mean training loss per epoch.
    classes_ : ndarray of shape (2,)
        ``[0, 1]`` for 0/1 labels: the first means the VLM is wrong, the second
        that it is right.
    n_features_in_ : int
        Embedding dimension d.
    text_embeddings_ : ndarray of shape (K, d)
        Candidate texts seen in ``fit`` (float64).

    See Also
    --------
    make_lvu : ViLU's visual-only head with ViLU's loss and optimiser.

    References
    ----------
    .. [1] M. Kirchhof, M. Collier, S. J. Oh and E. Kasneci. "Pretrained Visual
       Uncertainties", arXiv:2402.16569, 2024.
    .. [2] C. Corbiere, N. Thome, A. Bar-Hen, M. Cord and P. Perez. "Addressing
       Failure Prediction by Learning Model Confidence", NeurIPS 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn import correctness
    >>> from vilu_sklearn.baselines import LVU
    >>> rng = np.random.default_rng(0)
    >>> X_txt = rng.normal(size=(3, 8))
    >>> labels = rng.integers(0, 3, size=200)
    >>> X = X_txt[labels] + rng.normal(size=(200, 8))
    >>> lvu = LVU(hidden_layer_sizes=(16,), max_epochs=5, logit_scale=10.0)
    >>> conf = lvu.fit(X, X_txt, correctness(X, X_txt, labels)).decision_function(X)
    >>> conf.shape, bool(((conf > 0) & (conf < 1)).all())
    ((200,), True)
    """

    _caption_support = False
    _predict_threshold = 0.5
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseBaseline._parameter_constraints,
        "loss": [StrOptions({"tcp_mse", "bce"})],
        "hidden_layer_sizes": [tuple],
        "max_epochs": [NumberInterval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [NumberInterval(numbers.Integral, 1, None, closed="left")],
        "lr": [NumberInterval(numbers.Real, 0, None, closed="neither")],
        "weight_decay": [NumberInterval(numbers.Real, 0, None, closed="left")],
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
        loss: str = "tcp_mse",
        hidden_layer_sizes: tuple[int, ...] = (512, 256, 128),
        max_epochs: int = 20,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 5e-4,
        device: str = "auto",
        random_state: int | None = 0,
        verbose: int = 0,
        predict_batch_size: int | None = None,
    ) -> None:
        self.text_embeddings = text_embeddings
        self.mode = mode
        self.logit_scale = logit_scale
        self.normalize = normalize
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.predict_batch_size = predict_batch_size

    def _check_extra_params(self) -> None:
        sizes = self.hidden_layer_sizes
        if not all(
            isinstance(h, numbers.Integral) and not isinstance(h, bool) and h > 0
            for h in sizes
        ):
            raise ValueError(
                "hidden_layer_sizes must be a tuple of positive integers; "
                f"got {sizes!r}."
            )
        device = self._torch_device()
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device={self.device!r} asks for CUDA, but CUDA is not available "
                "on this machine; use device='auto' or 'cpu'."
            )

    def _torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            return torch.device(self.device)
        except RuntimeError as exc:
            raise ValueError(
                f"device must be a torch device name; got {self.device!r}."
            ) from exc

    def _targets(self, inputs: FitInputs) -> np.ndarray:
        assert inputs.X_txt is not None and inputs.y is not None
        y = inputs.y.astype(np.float64)
        if self.loss == "bce":
            return y
        p_max = np.empty(len(y))
        for sl, logits in self._blocks(inputs.X_img, inputs.X_txt):
            p_max[sl] = max_softmax_inplace(logits)
        return y * p_max

    def _batch_loss(
        self, out: torch.Tensor, target: torch.Tensor, y: torch.Tensor, sw: torch.Tensor
    ) -> torch.Tensor:
        if self.loss == "bce":
            return weighted_bce_loss(out, y, sample_weight=sw)
        w_fail = failure_weight(y, "adaptive")
        weights = (y + (1 - y) * w_fail) * sw
        return (weights * (torch.sigmoid(out) - target) ** 2).mean()

    def _fit_scorer(self, inputs: FitInputs) -> None:
        assert inputs.y is not None
        device = self._torch_device()
        gen = torch.Generator().manual_seed(
            0 if self.random_state is None else int(self.random_state)
        )
        if self.random_state is None:
            gen.seed()
        X = torch.as_tensor(
            image_points(inputs.X_img, bool(self.normalize)), dtype=torch.float32
        )
        target = torch.as_tensor(self._targets(inputs), dtype=torch.float32)
        y = torch.as_tensor(inputs.y, dtype=torch.float32)
        sw = (
            torch.ones(len(y))
            if inputs.sample_weight is None
            else torch.as_tensor(inputs.sample_weight, dtype=torch.float32)
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            module = _mlp(X.shape[1], tuple(self.hidden_layer_sizes)).to(device)
        opt = torch.optim.Adam(
            module.parameters(),
            lr=float(self.lr),
            weight_decay=float(self.weight_decay),
        )
        self.loss_curve_: list[float] = []
        self._train(module, opt, (X, target, y, sw), gen, device)
        self.module_ = module.cpu().eval()

    def _train(
        self,
        module: torch.nn.Module,
        opt: torch.optim.Optimizer,
        data: tuple[torch.Tensor, ...],
        gen: torch.Generator,
        device: torch.device,
    ) -> None:
        X, target, y, sw = data
        bs = int(self.batch_size)
        for epoch in range(int(self.max_epochs)):
            order = torch.randperm(len(y), generator=gen)
            total = 0.0
            for start in range(0, len(y), bs):
                idx = order[start : start + bs]
                out = module(X[idx].to(device)).squeeze(1)
                loss = self._batch_loss(
                    out, target[idx].to(device), y[idx].to(device), sw[idx].to(device)
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
                _zero_subnormal_weights(module)
                total += float(loss.detach()) * len(idx)
            self.loss_curve_.append(total / len(y))
            if self.verbose:
                print(f"LVU epoch {epoch + 1}: loss {self.loss_curve_[-1]:.5f}")

    def _decision_classification(
        self, X_img: np.ndarray, texts: np.ndarray
    ) -> np.ndarray:
        out = np.empty(X_img.shape[0], dtype=np.float64)
        rows = 8192
        with torch.no_grad():
            for start in range(0, X_img.shape[0], rows):
                X = image_points(X_img[start : start + rows], bool(self.normalize))
                logit = self.module_(torch.as_tensor(X, dtype=torch.float32)).squeeze(1)
                out[start : start + rows] = torch.sigmoid(logit.double()).numpy()
        return out


def make_lvu(**params: Any) -> ViLUClassifier:
    """ViLU's visual-only head: a ConfidNet-style MLP with ViLU's weighted BCE.

    Returns ``ViLUClassifier(use_attention=False, use_predicted_text=False,
    **params)``: ViLU's MLP head (d -> 512 -> 256 -> 128 -> 1 by default) on
    ``z_v`` alone, without the predicted text nor the cross-attention, trained
    with ViLU's weighted binary cross-entropy on ``y_correct``. This is the
    visual-only variant of the ViLU reference code, with ViLU's loss and
    optimiser: an adaptation of the reference's LVU baseline (which regresses
    the true-class probability with an MSE loss: see :class:`LVU`, the
    benchmark's "LVU" row), kept as the BCE option that only needs
    correctness.

    The result is a plain :class:`~vilu_sklearn.ViLUClassifier` (so ``clone``,
    ``get_params`` and pickling behave as usual). It needs no candidate texts:
    ``fit(X_img, y_correct)`` works; ``fit(X_img, X_txt, y_correct)`` is accepted
    too and ignores ``X_txt``. ``predict_proba[:, 1]`` is P(correct) and
    ``decision_function`` its logit (conventions: docs/conventions.md).

    Parameters
    ----------
    **params
        Any other :class:`~vilu_sklearn.ViLUClassifier` parameter (e.g.
        ``max_epochs``, ``lr``, ``random_state``). ``use_attention`` and
        ``use_predicted_text`` are fixed to False.

    Returns
    -------
    lvu : ViLUClassifier
        The unfitted, visual-only estimator.

    Raises
    ------
    TypeError
        If ``use_attention`` or ``use_predicted_text`` is set to True.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn.baselines import make_lvu
    >>> rng = np.random.default_rng(0)
    >>> X_img = rng.normal(size=(100, 8))
    >>> y_correct = (X_img[:, 0] > 0).astype(int)
    >>> lvu = make_lvu(hidden_layer_sizes=(16,), max_epochs=3, random_state=0)
    >>> lvu.use_attention, lvu.use_predicted_text
    (False, False)
    >>> lvu.fit(X_img, y_correct).predict_proba(X_img[:2]).shape
    (2, 2)
    """
    for name in ("use_attention", "use_predicted_text"):
        if params.pop(name, False):
            raise TypeError(
                f"make_lvu() fixes {name}=False (LVU sees the image embedding "
                f"only); use ViLUClassifier({name}=True, ...) for a head with texts."
            )
    return ViLUClassifier(
        use_attention=False, use_predicted_text=False, posterior_head=False, **params
    )
