"""ViLUClassifier: the ViLU failure predictor as a scikit-learn estimator."""

from __future__ import annotations

import contextlib
import functools
import math
import time
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, LRScheduler

from ._base import (
    FailurePredictorMixin,
    check_candidate_texts,
    resolve_fit_inputs,
)
from ._data import BatchLoader, EmbeddingDataset, IndexSplit
from ._modules import EncodedCandidates, ViLUModule, weighted_bce_loss
from ._validation import check_embeddings, check_logit_scale
from ._zero_shot import caption_groups

__all__ = ["ViLUClassifier"]

_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adamw": torch.optim.AdamW,
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
}
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
# (rows x candidates) elements of one prediction batch's similarity matrix
_PREDICT_BUDGET = 1 << 24


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _warmup_cosine(epoch: int, *, warmup_epochs: int, max_epochs: int) -> float:
    """LR factor: linear warm-up from 0.1 over ``warmup_epochs``, then cosine to 0."""
    if epoch < warmup_epochs:
        return 0.1 + 0.9 * epoch / warmup_epochs
    span = max(1, max_epochs - warmup_epochs)
    return 0.5 * (1.0 + math.cos(math.pi * min(epoch - warmup_epochs, span) / span))


def _warmup_constant(epoch: int, *, warmup_epochs: int) -> float:
    return 0.1 + 0.9 * epoch / warmup_epochs if epoch < warmup_epochs else 1.0


class _ValidAUROC(Callback):
    """Record ``valid_auroc``: AUROC of the validation confidences, each epoch.

    It reuses the logits of skorch's validation step (no extra forward pass).
    Successes are the positive class; an epoch whose validation part holds a
    single class records 0.5.
    """

    def on_epoch_begin(self, net: Any, **kwargs: Any) -> None:
        self._scores: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []

    def on_batch_end(
        self,
        net: Any,
        batch: Any = None,
        training: bool = False,
        y_pred: Any = None,
        **kwargs: Any,
    ) -> None:
        if training or y_pred is None:
            return
        logits, y = y_pred if isinstance(y_pred, tuple) else (y_pred, batch[1])
        self._scores.append(logits.detach().float().cpu())
        self._targets.append(y.detach().float().cpu())

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        if not getattr(self, "_scores", None):
            return
        from sklearn.metrics import roc_auc_score

        scores = torch.cat(self._scores).numpy()
        targets = torch.cat(self._targets).numpy()
        auc = (
            float(roc_auc_score(targets, scores))
            if 0 < targets.sum() < len(targets)
            else 0.5
        )
        net.history.record("valid_auroc", auc)


class _ViLUNet(NeuralNet):
    """skorch net that feeds the shared candidate texts and computes ViLU's loss."""

    def __init__(
        self,
        module: Any,
        *,
        vilu_caption: bool = False,
        vilu_failure_weight: str | float | None = "adaptive",
        vilu_autocast: bool = False,
        **kwargs: Any,
    ) -> None:
        self.vilu_caption = vilu_caption
        self.vilu_failure_weight = vilu_failure_weight
        self.vilu_autocast = vilu_autocast
        self.candidates: torch.Tensor | None = None  # set by ViLUClassifier.fit
        super().__init__(module, **kwargs)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.vilu_autocast:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def infer(self, x: Any, **fit_params: Any) -> Any:
        img = x["img"].to(self.device, non_blocking=True)
        with self._autocast():
            if self.vilu_caption:
                txt = x["txt"].to(self.device, non_blocking=True)
                return self.module_(img, txt, return_correct=True)
            return self.module_(img, self.candidates)

    def get_loss(
        self, y_pred: Any, y_true: Any, X: Any = None, training: bool = False
    ) -> torch.Tensor:
        if self.vilu_caption:
            logits, y_true = y_pred
        else:
            logits = y_pred
            y_true = y_true.to(self.device, non_blocking=True)
        sw = X.get("sw") if isinstance(X, dict) else None
        if sw is not None:
            sw = sw.to(self.device, non_blocking=True)
        return weighted_bce_loss(
            logits.float(),
            y_true.float(),
            failure_weight_mode=self.vilu_failure_weight,
            sample_weight=None if sw is None else sw.float(),
        )


class ViLUClassifier(FailurePredictorMixin, ClassifierMixin, BaseEstimator):
    """ViLU failure predictor: predicts whether a VLM's prediction is correct.

    ViLU (Lafon, Karmim et al., ICCV 2025) learns, from embeddings alone, the
    probability that a CLIP-like model's zero-shot prediction is correct. For each
    image it concatenates the image embedding ``z_v``, the text embedding of the
    predicted candidate ``z_t_hat`` and an image-conditioned text representation
    ``z_t_alpha`` (cross-attention of ``z_v`` over all candidate texts), and an MLP
    outputs the logit of P(correct). It is trained with a weighted binary
    cross-entropy that up-weights the VLM's failures.

    Conventions: ``y_correct = 1`` means the VLM's prediction was correct. Scores
    are confidences (higher = more likely correct): ``predict_proba[:, 1]`` and
    ``decision_function`` grow with the chance that the prediction is correct, so
    ``roc_auc`` scorers take the successes as the positive class.

    Two call forms are supported:

    * ``fit(X_img, X_txt, y_correct)``, then ``predict_proba(X_img, X_txt)``;
    * ``ViLUClassifier(text_embeddings=X_txt).fit(X_img, y_correct)``, then
      ``predict_proba(X_img)`` (``X_txt`` optional): the standard ``fit(X, y)``
      form used by ``GridSearchCV``, ``cross_validate``, ``Pipeline`` and
      ``clone``. The (K, d) text matrix is a parameter, so cross-validation never
      slices it.

    In caption mode (``mode="caption"``) ``X_txt`` has one caption per image,
    paired row by row, and the candidates of an image are the captions of its
    group: during training the mini-batch, during prediction consecutive groups of
    ``caption_group_size`` rows. ``y_correct`` is then computed (the image's own
    caption is the most similar of its group) and must not be given: call
    ``fit(X_img, X_txt)``; ``GridSearchCV(...).fit(X_img, X_txt)`` slices images
    and captions together.

    Input embeddings may be float16, float32 or float64 and need not be
    normalised: they are cast to ``dtype`` batch by batch (the input arrays are
    never copied whole, so memory-mapped arrays stream from disk) and, with
    ``normalize=True``, L2-normalised inside the model.

    Parameters
    ----------
    text_embeddings : array-like of shape (K, d), default=None
        Candidate text embeddings (e.g. one prompt per class) used when ``fit`` and
        the prediction methods get no ``X_txt``. Classification mode only.
    mode : {"classification", "caption"}, default="classification"
        Shared class prompts (classification) or per-image captions (caption).
    caption_group_size : int, default=1024
        Caption mode: number of candidate captions per group at prediction time
        (the ViLU paper evaluates with 1024). Consecutive rows form a group; the
        last group may be smaller.
    logit_scale : float, default=100.0
        CLIP's temperature (100 for OpenAI CLIP), used by the ``"reference"``
        attention as ``softmax(logit_scale * cos)``.
    normalize : bool, default=True
        L2-normalise image and text embeddings inside the model.
    attention : {"reference", "paper"}, default="reference"
        ``"reference"``: as the authors' code, bias-free ``W_q`` and one ``W_kv``
        shared by keys and values, identity-initialised, temperature
        ``logit_scale``. ``"paper"``: as the paper writes it, separate
        ``W_Q, W_K, W_V`` with ``1/sqrt(d)`` scaling and ``n_heads`` heads.
    n_heads : int, default=1
        Heads of the ``"paper"`` attention.
    n_iter_freeze_proj : int, default=1000
        Training iterations during which the attention projections are kept at
        identity (bypassed), as in the reference CIFAR-10 recipe.
    keep_frozen : bool, default=False
        Keep the projections at identity throughout (parameter-free attention
        ``z_t_alpha = sum_k softmax(logit_scale * cos)_k z_t_k``).
    use_attention : bool, default=True
        Use ``z_t_alpha``. With ``use_predicted_text`` also False the head is
        visual-only (the paper's LVU-style ablation) and needs no texts.
    use_predicted_text : bool, default=True
        Use ``z_t_hat``.
    hidden_layer_sizes : tuple of int, default=(512, 256, 128)
        Hidden widths of the MLP (3d -> 512 -> 256 -> 128 -> 1 as in the paper).
    activation : {"relu", "leaky_relu", "gelu", "tanh"}, default="relu"
        Hidden activation.
    dropout : float, default=0.0
        Dropout after each hidden activation.
    failure_weight : "adaptive", float or None, default="adaptive"
        Weight of the failures in the loss: ``"adaptive"`` is the paper's
        ``log(1 + acc / (1 - acc))`` with ``acc`` the VLM's accuracy on the
        mini-batch; a number is a fixed weight; None weighs all samples equally.
    optimizer : {"sgd", "adamw", "adam"}, default="sgd"
        Optimiser. The defaults (SGD, momentum 0.9, weight decay 5e-4, 5 warm-up
        epochs, cosine schedule, batch 128) are the reference recipe, shortened to
        60 epochs: on the real-image embeddings of the docs it beat AdamW with
        early stopping (see docs/vilu.md for the measurements).
    lr : float, default=0.01
        Learning rate.
    weight_decay : float, default=5e-4
        Weight decay.
    momentum : float, default=0.9
        Momentum of SGD (ignored by the Adam optimisers).
    lr_schedule : {"cosine", "constant"}, default="cosine"
        Learning-rate schedule over ``max_epochs``, stepped once per epoch.
    warmup_epochs : int, default=5
        Linear warm-up epochs (from 0.1 x ``lr``).
    max_epochs : int, default=60
        Maximum number of epochs.
    batch_size : int, default=128
        Training mini-batch size (in caption mode also the number of candidate
        captions per training step; consider the evaluation's
        ``caption_group_size``).
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the training data, stop when the
        validation score has not improved by ``tol`` (relative) for
        ``n_iter_no_change`` epochs, and restore the best weights.
    early_stopping_metric : {"auroc", "loss"}, default="auroc"
        Validation score of early stopping: the AUROC of the confidences
        (successes positive; recorded as ``valid_auroc`` in ``history_``) or the
        weighted BCE loss (``valid_loss``).
    validation_fraction : float, default=0.1
        Held-out share for early stopping (stratified on ``y_correct``).
    n_iter_no_change : int, default=10
        Patience of early stopping, in epochs.
    tol : float, default=1e-4
        Minimum relative improvement of the validation score.
    device : str, default="auto"
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``, ...
    mixed_precision : "auto" or bool, default="auto"
        bfloat16 autocast; ``"auto"`` enables it on CUDA only.
    dtype : {"float32", "float64"}, default="float32"
        Parameter and computation dtype (float64 for exact reproducibility).
    predict_batch_size : int, default=None
        Rows per prediction batch; by default as many as keep the (rows x
        candidates) similarity matrix below 16M elements, at most 8192.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling and the validation split. The
        global NumPy and torch generators are left untouched.
    verbose : int, default=0
        0: silent; 1: one line per epoch.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        ``[0, 1]`` for 0/1 labels (``[False, True]`` for booleans): the first
        means the VLM is wrong, the second that it is right. Other binary labels
        are accepted as by any scikit-learn classifier; the greater is "right".
    n_features_in_ : int
        Embedding dimension d.
    text_embeddings_ : ndarray of shape (K, d) or None
        Candidate texts seen in ``fit`` (float32); None in caption mode and for
        the visual-only head.
    net_ : skorch.NeuralNet
        The trained skorch net; ``net_.module_`` is the torch module.
    history_ : skorch.History
        Per-epoch training (and validation) losses.
    n_epochs_ : int
        Epochs run.
    best_epoch_ : int
        Epoch whose weights were kept (the last one without early stopping).
    device_ : torch.device
        Device used for training.
    fit_time_ : float
        Training wall time in seconds.

    See Also
    --------
    vilu_sklearn.correctness : Build ``y_correct`` from class labels.
    vilu_sklearn.zero_shot_predict : The VLM's own zero-shot predictions.

    References
    ----------
    .. [1] M. Lafon, Y. Karmim, J. Silva-Rodriguez et al. "ViLU: Learning
       Vision-Language Uncertainties for Failure Prediction", ICCV 2025,
       arXiv:2507.07620.

    Examples
    --------
    >>> import numpy as np
    >>> from vilu_sklearn import ViLUClassifier, correctness
    >>> rng = np.random.default_rng(0)
    >>> X_txt = rng.normal(size=(5, 16))                  # 5 class prompts
    >>> labels = rng.integers(0, 5, size=200)
    >>> X_img = X_txt[labels] + rng.normal(scale=1.5, size=(200, 16))
    >>> y_correct = correctness(X_img, X_txt, labels)     # 1 = the VLM is right
    >>> clf = ViLUClassifier(hidden_layer_sizes=(32,), max_epochs=5, random_state=0)
    >>> clf = clf.fit(X_img, X_txt, y_correct)
    >>> clf.predict_proba(X_img[:3], X_txt).shape
    (3, 2)
    """

    def __init__(
        self,
        *,
        text_embeddings: Any = None,
        mode: str = "classification",
        caption_group_size: int = 1024,
        logit_scale: float = 100.0,
        normalize: bool = True,
        attention: str = "reference",
        n_heads: int = 1,
        n_iter_freeze_proj: int = 1000,
        keep_frozen: bool = False,
        use_attention: bool = True,
        use_predicted_text: bool = True,
        hidden_layer_sizes: tuple[int, ...] = (512, 256, 128),
        activation: str = "relu",
        dropout: float = 0.0,
        failure_weight: str | float | None = "adaptive",
        optimizer: str = "sgd",
        lr: float = 0.01,
        weight_decay: float = 5e-4,
        momentum: float = 0.9,
        lr_schedule: str = "cosine",
        warmup_epochs: int = 5,
        max_epochs: int = 60,
        batch_size: int = 128,
        early_stopping: bool = True,
        early_stopping_metric: str = "auroc",
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        device: str = "auto",
        mixed_precision: str | bool = "auto",
        dtype: str = "float32",
        predict_batch_size: int | None = None,
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        self.text_embeddings = text_embeddings
        self.mode = mode
        self.caption_group_size = caption_group_size
        self.logit_scale = logit_scale
        self.normalize = normalize
        self.attention = attention
        self.n_heads = n_heads
        self.n_iter_freeze_proj = n_iter_freeze_proj
        self.keep_frozen = keep_frozen
        self.use_attention = use_attention
        self.use_predicted_text = use_predicted_text
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.failure_weight = failure_weight
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.lr_schedule = lr_schedule
        self.warmup_epochs = warmup_epochs
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.early_stopping = early_stopping
        self.early_stopping_metric = early_stopping_metric
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.device = device
        self.mixed_precision = mixed_precision
        self.dtype = dtype
        self.predict_batch_size = predict_batch_size
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        def bad(name: str, expected: str) -> ValueError:
            return ValueError(
                f"{name} must be {expected}; got {getattr(self, name)!r}."
            )

        if self.mode not in ("classification", "caption"):
            raise bad("mode", "'classification' or 'caption'")
        if self.attention not in ("reference", "paper"):
            raise bad("attention", "'reference' or 'paper'")
        check_logit_scale(self.logit_scale)
        for name in ("caption_group_size", "n_heads", "max_epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise bad(name, "a positive integer")
            if value < 1:
                raise bad(name, "a positive integer")
        for name in ("n_iter_freeze_proj", "warmup_epochs", "n_iter_no_change"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 0:
                raise bad(name, "a non-negative integer")
        sizes = self.hidden_layer_sizes
        if not isinstance(sizes, tuple | list) or not all(
            isinstance(w, int | np.integer) and w > 0 for w in sizes
        ):
            raise bad("hidden_layer_sizes", "a tuple of positive integers")
        if self.activation not in ("relu", "leaky_relu", "gelu", "tanh"):
            raise bad("activation", "one of 'relu', 'leaky_relu', 'gelu', 'tanh'")
        if not 0 <= self.dropout < 1:
            raise bad("dropout", "in [0, 1)")
        fw = self.failure_weight
        if not (
            fw is None
            or fw == "adaptive"
            or (isinstance(fw, int | float) and not isinstance(fw, bool) and fw >= 0)
        ):
            raise bad("failure_weight", "'adaptive', a non-negative number or None")
        if not (isinstance(self.optimizer, str) and self.optimizer in _OPTIMIZERS):
            raise bad("optimizer", f"one of {sorted(_OPTIMIZERS)}")
        if not self.lr > 0:
            raise bad("lr", "a positive number")
        if not self.weight_decay >= 0:
            raise bad("weight_decay", "a non-negative number")
        if self.lr_schedule not in ("cosine", "constant"):
            raise bad("lr_schedule", "'cosine' or 'constant'")
        if self.early_stopping_metric not in ("auroc", "loss"):
            raise bad("early_stopping_metric", "'auroc' or 'loss'")
        if not 0 < self.validation_fraction < 1:
            raise bad("validation_fraction", "in (0, 1)")
        if self.mixed_precision not in ("auto", True, False):
            raise bad("mixed_precision", "'auto', True or False")
        if self.dtype not in _DTYPES:
            raise bad("dtype", "'float32' or 'float64'")
        if self.predict_batch_size is not None and self.predict_batch_size < 1:
            raise bad("predict_batch_size", "a positive integer or None")
        if self.mode == "caption" and self.text_embeddings is not None:
            raise ValueError(
                "text_embeddings must be None in caption mode: the candidates of an "
                "image are the captions of its group, passed as X_txt."
            )

    @property
    def _needs_texts(self) -> bool:
        return bool(self.use_attention or self.use_predicted_text)

    @staticmethod
    def _n_samples(X: Any) -> int:
        return int(check_embeddings(X, name="X_img").shape[0])

    # --------------------------------------------------------------------- fit
    def fit(
        self, X: Any, y: Any = None, y_correct: Any = None, *, sample_weight: Any = None
    ) -> ViLUClassifier:
        """Train the failure predictor.

        Call forms (classification mode):

        * ``fit(X_img, X_txt, y_correct)``;
        * ``fit(X_img, y_correct)`` with ``text_embeddings`` set, or with the
          visual-only head.

        Caption mode: ``fit(X_img, X_txt)``, with ``X_txt`` paired row by row.

        Parameters
        ----------
        X : array-like of shape (n_samples, d)
            Image embeddings ``X_img``.
        y : array-like of shape (n_samples,) or (K, d) or (n_samples, d)
            ``y_correct`` in the two-argument form; the candidate texts ``X_txt``
            in the three-argument form; the paired captions in caption mode.
        y_correct : array-like of shape (n_samples,), default=None
            Correctness labels of the three-argument form: 1 where the VLM's
            prediction is correct, 0 where it is wrong.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights multiplying the loss.

        Returns
        -------
        self : ViLUClassifier
            The fitted estimator.
        """
        self._check_params()
        caption = self.mode == "caption"
        if caption and self._n_samples(X) < 2:
            raise ValueError(
                "Caption mode needs at least 2 image-caption pairs; got 1 sample."
            )
        inputs = resolve_fit_inputs(
            self,
            X,
            y,
            y_correct,
            text_embeddings=self.text_embeddings,
            mode=self.mode,
            texts_required=self._needs_texts,
            sample_weight=sample_weight,
        )
        X_img, X_txt, captions = inputs.X_img, inputs.X_txt, inputs.captions
        y_arr, classes, sw = inputs.y, inputs.classes, inputs.sample_weight
        n, d = X_img.shape

        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        device = _resolve_device(self.device)
        torch_dtype = _DTYPES[self.dtype]
        autocast = device.type == "cuda" and self.mixed_precision in ("auto", True)

        module = functools.partial(
            ViLUModule,
            d,
            attention=self.attention,
            n_heads=self.n_heads,
            logit_scale=float(self.logit_scale),
            use_attention=self.use_attention,
            use_predicted_text=self.use_predicted_text,
            hidden_layer_sizes=tuple(int(w) for w in self.hidden_layer_sizes),
            activation=self.activation,
            dropout=float(self.dropout),
            n_iter_freeze_proj=int(self.n_iter_freeze_proj),
            keep_frozen=bool(self.keep_frozen),
            normalize=bool(self.normalize),
        )
        dataset = EmbeddingDataset(X_img, texts=captions, y=y_arr, sample_weight=sw)
        early = self.early_stopping
        n_valid = math.ceil(self.validation_fraction * n)
        if early and (n_valid < 2 or n - n_valid < 2):
            warnings.warn(
                f"early_stopping needs a validation split of at least 2 samples; "
                f"with {n} samples and validation_fraction="
                f"{self.validation_fraction} it is disabled for this fit.",
                UserWarning,
                stacklevel=2,
            )
            early = False

        callbacks: list[tuple[str, Any]] = []
        if self.lr_schedule == "cosine":
            lr_lambda = functools.partial(
                _warmup_cosine,
                warmup_epochs=int(self.warmup_epochs),
                max_epochs=int(self.max_epochs),
            )
        else:
            lr_lambda = functools.partial(
                _warmup_constant, warmup_epochs=int(self.warmup_epochs)
            )
        callbacks.append(
            (
                "lr_scheduler",
                LRScheduler(
                    policy=torch.optim.lr_scheduler.LambdaLR,
                    lr_lambda=lr_lambda,
                    step_every="epoch",
                ),
            )
        )
        if early:
            by_auroc = self.early_stopping_metric == "auroc"
            if by_auroc:
                callbacks.append(("valid_auroc", _ValidAUROC()))
            callbacks.append(
                (
                    "early_stopping",
                    EarlyStopping(
                        monitor="valid_auroc" if by_auroc else "valid_loss",
                        lower_is_better=not by_auroc,
                        patience=int(self.n_iter_no_change),
                        threshold=float(self.tol),
                        threshold_mode="rel",
                        load_best=True,
                        sink=print if self.verbose else _silent,
                    ),
                )
            )
        opt_kwargs: dict[str, Any] = {"optimizer__weight_decay": self.weight_decay}
        if self.optimizer == "sgd":
            opt_kwargs["optimizer__momentum"] = self.momentum
        net = _ViLUNet(
            module,
            vilu_caption=caption,
            vilu_failure_weight=self.failure_weight,
            vilu_autocast=autocast,
            criterion=torch.nn.BCEWithLogitsLoss,
            optimizer=_OPTIMIZERS[self.optimizer],
            lr=self.lr,
            max_epochs=int(self.max_epochs),
            batch_size=int(self.batch_size),
            iterator_train=BatchLoader,
            iterator_train__shuffle=True,
            iterator_train__drop_last=caption,
            iterator_train__seed=seed,
            iterator_train__dtype=torch_dtype,
            iterator_valid=BatchLoader,
            iterator_valid__dtype=torch_dtype,
            train_split=IndexSplit(self.validation_fraction, seed) if early else None,
            callbacks=callbacks,
            device=device,
            verbose=int(self.verbose),
            **opt_kwargs,
        )
        fork_devices = [device] if device.type == "cuda" else []
        start = time.perf_counter()
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(seed)
            net.initialize()
            net.module_.to(torch_dtype)
            if X_txt is not None and self._needs_texts:
                net.candidates = torch.as_tensor(
                    np.asarray(X_txt), dtype=torch_dtype, device=device
                )
            net.partial_fit(dataset, None)
        self.fit_time_ = time.perf_counter() - start
        net.candidates = None  # no device tensors outside the module: CPU unpickling
        net.module_.eval()

        self.net_ = net
        self.history_ = net.history
        self.n_epochs_ = len(net.history)
        self.best_epoch_ = self.n_epochs_
        if early:
            self.best_epoch_ = int(dict(net.callbacks_)["early_stopping"].best_epoch_)
        self.device_ = device
        self.text_embeddings_ = (
            None
            if X_txt is None or not self._needs_texts
            else np.asarray(X_txt, dtype=np.float32)
        )
        self.classes_ = classes
        self._cache: dict[str, Any] = {}
        return self

    # ------------------------------------------------------------- prediction
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_cache", None)  # device tensors: rebuilt lazily after loading
        return state

    def _module(self) -> ViLUModule:
        module: ViLUModule = self.net_.module_
        return module

    def _inference_device(self) -> torch.device:
        return next(self._module().parameters()).device

    def _encoded(
        self, texts: np.ndarray, *, cache_key: str | None
    ) -> EncodedCandidates:
        """Project candidate texts once; the fitted text set is cached."""
        cache = self.__dict__.setdefault("_cache", {})
        if cache_key is not None and cache_key in cache:
            enc: EncodedCandidates = cache[cache_key]
            return enc
        module = self._module()
        param = next(module.parameters())
        with torch.inference_mode():
            enc = module.encode_candidates(
                torch.as_tensor(np.asarray(texts), dtype=param.dtype).to(param.device)
            )
        if cache_key is not None:
            cache[cache_key] = enc
        return enc

    def _resolve_predict_texts(self, X_txt: Any, d: int) -> tuple[Any, str | None]:
        if X_txt is None:
            if self.text_embeddings_ is None:
                if self._module().needs_candidates:
                    raise ValueError(
                        "X_txt is required: this model was fitted without "
                        "text_embeddings, so pass the candidate texts, e.g. "
                        "predict_proba(X_img, X_txt)."
                    )
                return None, None
            return self.text_embeddings_, "fit"
        X_txt = check_candidate_texts(X_txt, d)
        if (
            self.text_embeddings_ is not None
            and X_txt.shape == self.text_embeddings_.shape
            and np.array_equal(
                np.asarray(X_txt, dtype=np.float32), self.text_embeddings_
            )
        ):
            return self.text_embeddings_, "fit"
        return X_txt, None

    def _batch_rows(self, n_candidates: int) -> int:
        if self.predict_batch_size is not None:
            return int(self.predict_batch_size)
        return int(max(64, min(8192, _PREDICT_BUDGET // max(1, n_candidates))))

    def decision_function(self, X: Any, X_txt: Any = None) -> np.ndarray:
        """Confidence logit that the VLM's prediction is correct.

        Higher means more likely correct; ``sigmoid`` of it is
        ``predict_proba(X)[:, 1]``. For AUROC and FPR@95%TPR the successes
        (``y_correct = 1``) are the positive class.

        Parameters
        ----------
        X : array-like of shape (n_samples, d)
            Image embeddings.
        X_txt : array-like of shape (K, d) or (n_samples, d), default=None
            Candidate texts (classification; defaults to those seen in ``fit``) or
            the paired captions (caption mode; required).

        Returns
        -------
        confidence : ndarray of shape (n_samples,)
            Logit of P(correct), float64.
        """
        check_is_fitted(self)
        X_img = check_embeddings(X, name="X_img")
        validate_data(self, X, skip_check_array=True, reset=False)
        n, d = X_img.shape
        module = self._module()
        device = self._inference_device()
        dtype = next(module.parameters()).dtype
        np_dtype = np.float64 if dtype == torch.float64 else np.float32
        autocast = device.type == "cuda" and self.mixed_precision in ("auto", True)
        ctx = (
            torch.autocast(device_type="cuda", dtype=torch.bfloat16)
            if autocast
            else contextlib.nullcontext()
        )
        out = np.empty(n, dtype=np.float64)
        module.eval()
        if self.mode == "caption":
            if X_txt is None:
                raise ValueError(
                    "Caption mode needs the paired captions: "
                    "decision_function(X_img, X_txt) with X_txt of shape (n, d)."
                )
            captions = check_candidate_texts(X_txt, d)
            if captions.shape[0] != n:
                raise ValueError(
                    "In caption mode X_img and X_txt are paired row by row; got "
                    f"{n} images and {captions.shape[0]} captions."
                )
            with torch.inference_mode(), ctx:
                for sl in caption_groups(n, int(self.caption_group_size)):
                    img = torch.as_tensor(
                        np.asarray(X_img[sl], dtype=np_dtype), device=device
                    )
                    txt = torch.as_tensor(
                        np.asarray(captions[sl], dtype=np_dtype), device=device
                    )
                    out[sl] = module(img, txt).float().cpu().numpy()
            return out
        texts, key = self._resolve_predict_texts(X_txt, d)
        enc = None if texts is None else self._encoded(texts, cache_key=key)
        rows = self._batch_rows(1 if texts is None else len(texts))
        with torch.inference_mode(), ctx:
            for start in range(0, n, rows):
                img = torch.as_tensor(
                    np.asarray(X_img[start : start + rows], dtype=np_dtype),
                    device=device,
                )
                out[start : start + rows] = module(img, enc).float().cpu().numpy()
        return out

    def predict_proba(self, X: Any, X_txt: Any = None) -> np.ndarray:
        """Probability that the VLM's prediction is wrong (column 0) or right (1).

        Parameters
        ----------
        X : array-like of shape (n_samples, d)
            Image embeddings.
        X_txt : array-like of shape (K, d) or (n_samples, d), default=None
            Candidate texts or, in caption mode, the paired captions.

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            ``proba[:, 1]`` = P(correct), ordered like ``classes_ = [0, 1]``.
        """
        logits = self.decision_function(X, X_txt)
        p1 = 1.0 / (1.0 + np.exp(-logits))
        return np.column_stack([1.0 - p1, p1])

    def predict(self, X: Any, X_txt: Any = None) -> np.ndarray:
        """Predicted correctness: 1 if P(correct) > 0.5, else 0.

        Parameters
        ----------
        X : array-like of shape (n_samples, d)
            Image embeddings.
        X_txt : array-like of shape (K, d) or (n_samples, d), default=None
            Candidate texts or, in caption mode, the paired captions.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Values of ``classes_``.
        """
        confidence = self.decision_function(X, X_txt)
        return self.classes_[(confidence > 0).astype(int)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = _resolve_device(self.device).type == "cuda"
        return tags


def _silent(*args: Any, **kwargs: Any) -> None:
    """Sink that drops skorch's messages when ``verbose=0``."""
