"""skorch glue of ViLUClassifier: the net, its callbacks, schedules and training.

:class:`ViLUNet` computes ViLU's weighted loss and receives the shared candidate
texts as the ``candidates`` fit parameter (skorch routes fit parameters to
``infer``), so nothing is set on or cleared from the net around training.
:func:`train_net` seeds and runs it without touching the global generators.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from typing import Any, NamedTuple

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, LRScheduler

from ._modules import class_label_loss, weighted_bce_loss

__all__ = [
    "OPTIMIZERS",
    "FreezeProjections",
    "DivergenceGuard",
    "TrainResult",
    "divergence_callbacks",
    "ValidAUROC",
    "ViLUNet",
    "WeightAveraging",
    "autocast",
    "EpochProgressBar",
    "log_sink",
    "lr_scheduler",
    "resolve_device",
    "train_net",
    "training_callbacks",
    "uses_autocast",
]

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adamw": torch.optim.AdamW,
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` (or None): CUDA when available, else CPU; otherwise as given."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def uses_autocast(device: torch.device, mixed_precision: str | bool) -> bool:
    """Whether bfloat16 autocast is on: CUDA and ``mixed_precision`` "auto"/True."""
    return device.type == "cuda" and mixed_precision in ("auto", True)


def autocast(enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """The bfloat16 CUDA autocast context when ``enabled``, else a no-op context."""
    if enabled:
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _warmup_cosine(epoch: int, *, warmup_epochs: int, max_epochs: int) -> float:
    """LR factor: linear warm-up from 0.1 over ``warmup_epochs``, then cosine to 0."""
    if epoch < warmup_epochs:
        return 0.1 + 0.9 * epoch / warmup_epochs
    span = max(1, max_epochs - warmup_epochs)
    return 0.5 * (1.0 + math.cos(math.pi * min(epoch - warmup_epochs, span) / span))


def _warmup_constant(epoch: int, *, warmup_epochs: int) -> float:
    return 0.1 + 0.9 * epoch / warmup_epochs if epoch < warmup_epochs else 1.0


def lr_scheduler(schedule: str, *, warmup_epochs: int, max_epochs: int) -> LRScheduler:
    """Per-epoch ``LambdaLR`` callback: warm-up, then cosine or constant."""
    if schedule == "cosine":
        lr_lambda = functools.partial(
            _warmup_cosine, warmup_epochs=warmup_epochs, max_epochs=max_epochs
        )
    else:
        lr_lambda = functools.partial(_warmup_constant, warmup_epochs=warmup_epochs)
    return LRScheduler(
        policy=torch.optim.lr_scheduler.LambdaLR,
        lr_lambda=lr_lambda,
        step_every="epoch",
    )


def divergence_callbacks() -> list[tuple[str, Callback]]:
    """The callback that stops training at a non-finite loss."""
    return [("divergence_guard", DivergenceGuard())]


def training_callbacks(
    *,
    freeze_proj_epochs: int,
    lr_schedule: str,
    warmup_epochs: int,
    max_epochs: int,
    weight_averaging_epochs: float | None,
    early_stopping_metric: str | None,
    patience: int,
    tol: float,
    verbose: int,
) -> list[tuple[str, Callback]]:
    """Every callback of a ViLU fit, in order.

    The divergence guard, the projection freeze, the LR schedule, weight
    averaging (unless None), early stopping (unless the metric is None: it
    monitors ``valid_auroc``, recorded by :class:`ValidAUROC`, or
    ``valid_loss``) and, with ``verbose >= 1`` and tqdm installed, an
    :class:`EpochProgressBar` showing the epochs with the loss and validation
    AUROC.
    """
    callbacks: list[tuple[str, Callback]] = [
        *divergence_callbacks(),
        ("freeze_projections", FreezeProjections(freeze_proj_epochs)),
        (
            "lr_scheduler",
            lr_scheduler(
                lr_schedule, warmup_epochs=warmup_epochs, max_epochs=max_epochs
            ),
        ),
    ]
    if weight_averaging_epochs is not None:
        callbacks.append(("weight_averaging", WeightAveraging(weight_averaging_epochs)))
    by_auroc = early_stopping_metric == "auroc"
    if by_auroc:
        callbacks.append(("valid_auroc", ValidAUROC()))
    if verbose and _tqdm() is not None:
        callbacks.append(("progress_bar", EpochProgressBar(total=max_epochs)))
    if early_stopping_metric is not None:
        stopper = EarlyStopping(
            monitor="valid_auroc" if by_auroc else "valid_loss",
            lower_is_better=not by_auroc,
            patience=patience,
            threshold=tol,
            threshold_mode="rel",
            load_best=True,
            sink=log_sink(verbose),
        )
        callbacks.append(("early_stopping", stopper))
    return callbacks


class FreezeProjections(Callback):
    """Bypass the attention projections during the first ``n_epochs`` epochs.

    Counted in epochs, so the freeze is the same share of training whatever the
    number of rows; the module's projections are identity-initialised, so
    unfreezing does not change the function.
    """

    def __init__(self, n_epochs: int) -> None:
        self.n_epochs = n_epochs

    def on_epoch_begin(self, net: Any, **kwargs: Any) -> None:
        # skorch has appended this epoch's history row: len() is its number
        module = net.module_
        if isinstance(module, torch.nn.parallel.DistributedDataParallel):
            module = module.module  # data-parallel training (vilu_sklearn._distributed)
        module.projections_frozen = len(net.history) <= self.n_epochs


class WeightAveraging(Callback):
    """Exponential moving average of the weights, swapped in when training ends.

    The time constant is ``epochs`` epochs of optimiser steps (the decay per
    step is ``1 - 1 / (epochs * steps_per_epoch)``), so it means the same on 1k
    and on 1M rows; early steps use the warm-up decay ``(1 + t) / (10 + t)`` so
    the average forgets the initial weights quickly. Parameters only (buffers
    are left as trained).
    """

    def __init__(self, epochs: float) -> None:
        self.epochs = epochs

    def on_train_begin(self, net: Any, X: Any = None, **kwargs: Any) -> None:
        steps = max(1, len(X) // int(net.batch_size)) if X is not None else 1
        self.decay_ = 1.0 - 1.0 / max(1.0, self.epochs * steps)
        self.n_steps_ = 0
        self.average_ = [p.detach().clone() for p in net.module_.parameters()]

    def on_batch_end(self, net: Any, training: bool = False, **kwargs: Any) -> None:
        if not training:
            return
        t, self.n_steps_ = self.n_steps_, self.n_steps_ + 1
        weight = 1.0 - min(self.decay_, (1.0 + t) / (10.0 + t))
        with torch.no_grad():
            for avg, p in zip(self.average_, net.module_.parameters(), strict=True):
                avg.lerp_(p, weight)

    def on_train_end(self, net: Any, **kwargs: Any) -> None:
        if not getattr(self, "n_steps_", 0):
            return
        with torch.no_grad():
            for p, avg in zip(net.module_.parameters(), self.average_, strict=True):
                p.copy_(avg)
        del self.average_  # not pickled with the fitted net


def _tqdm() -> Any:
    """The progress bar class of tqdm, or None when tqdm is not installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def log_sink(verbose: int) -> Any:
    """Where skorch's messages go.

    Dropped at ``verbose=0``; otherwise printed to stdout, through
    ``tqdm.write`` when tqdm is installed, so that they appear above the
    progress bar instead of breaking it.
    """
    if not verbose:
        return _silent
    tqdm = _tqdm()
    return print if tqdm is None else tqdm.write


class EpochProgressBar(Callback):
    """A tqdm bar over the epochs, with the latest losses and validation AUROC.

    It is drawn on stderr and removed at the end of training (the per-epoch
    lines stay), and holds no bar once training ends, so the fitted net
    pickles as before.

    Parameters
    ----------
    total : int
        Maximum number of epochs.
    """

    _KEYS = ("train_loss", "valid_loss", "valid_auroc")

    def __init__(self, total: int) -> None:
        self.total = total

    def on_train_begin(self, net: Any, **kwargs: Any) -> None:
        self.bar_ = _tqdm()(total=self.total, desc="epochs", unit="epoch", leave=False)

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        row = net.history[-1]
        postfix = {key: f"{row[key]:.4f}" for key in self._KEYS if key in row}
        self.bar_.set_postfix(postfix, refresh=False)
        self.bar_.update(1)

    def on_train_end(self, net: Any, **kwargs: Any) -> None:
        bar, self.bar_ = getattr(self, "bar_", None), None
        if bar is not None:
            bar.close()


class ValidAUROC(Callback):
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


class ViLUNet(NeuralNet):
    """skorch net that computes ViLU's loss; candidate texts come as a fit param.

    ``partial_fit(dataset, None, candidates=T)`` trains against the (K, d)
    candidate tensor ``T`` (classification mode); in caption mode the batch
    carries its own captions and ``candidates`` is not given.
    """

    def __init__(
        self,
        module: Any,
        *,
        vilu_caption: bool = False,
        vilu_failure_weight: str | float | None = "adaptive",
        vilu_autocast: bool = False,
        vilu_separate_losses: bool = False,
        **kwargs: Any,
    ) -> None:
        self.vilu_caption = vilu_caption
        self.vilu_failure_weight = vilu_failure_weight
        self.vilu_autocast = vilu_autocast
        self.vilu_separate_losses = vilu_separate_losses
        super().__init__(module, **kwargs)

    def infer(
        self, x: Any, candidates: torch.Tensor | None = None, **fit_params: Any
    ) -> Any:
        img = x["img"].to(self.device, non_blocking=True)
        parts = self.training_parts()
        with autocast(self.vilu_autocast):
            if self.vilu_caption:
                txt = x["txt"].to(self.device, non_blocking=True)
                return self.module_(img, txt, return_correct=True, return_parts=parts)
            if "lbl" in x and self.module_.training:
                return self.module_(
                    img, candidates, return_candidate_logits=True, return_parts=parts
                )
            return self.module_(img, candidates, return_parts=parts)

    def training_parts(self) -> bool:
        """Whether this forward returns the logit's two terms (separate losses)."""
        return bool(
            getattr(self, "vilu_separate_losses", False) and self.module_.training
        )

    def get_iterator(self, dataset: Any, training: bool = False) -> Any:
        """Skorch's iterator; one that has ``set_epoch`` is told the epoch.

        The number of epochs already trained (a resumed checkpoint's included)
        is the epoch of the next pass of
        :class:`~vilu_sklearn._distributed.StreamLoader`, whose shuffle it
        seeds, so a run resumed from a checkpoint sees the batches the
        uninterrupted run saw.
        """
        iterator = super().get_iterator(dataset, training=training)
        if training and hasattr(iterator, "set_epoch"):
            iterator.set_epoch(sum("train_loss" in row for row in self.history))
        return iterator

    def failure_weight_mode(self, y_true: torch.Tensor, sw: Any) -> Any:
        """The ``failure_weight_mode`` of this batch's loss (data parallel: a float)."""
        return self.vilu_failure_weight

    def get_loss(
        self, y_pred: Any, y_true: Any, X: Any = None, training: bool = False
    ) -> torch.Tensor:
        candidate_logits = None
        if self.vilu_caption:
            logits, y_true = y_pred
        else:
            logits = y_pred
            if isinstance(y_pred, tuple):  # training with class labels
                logits, candidate_logits = y_pred
            y_true = y_true.to(self.device, non_blocking=True)
        sw = X.get("sw") if isinstance(X, dict) else None
        if sw is not None:
            sw = sw.to(self.device, non_blocking=True).float()
        mode = self.failure_weight_mode(y_true, sw)
        # (B, 2) logits: the ViLU branch and the posterior head, each with its
        # own loss (branch_loss="separate"); the score is still their sum
        terms = logits.float().unsqueeze(1) if logits.ndim == 1 else logits.float()
        loss = sum(
            weighted_bce_loss(
                term, y_true.float(), failure_weight_mode=mode, sample_weight=sw
            )
            for term in terms.unbind(dim=1)
        )
        assert isinstance(loss, torch.Tensor)
        if candidate_logits is None:
            return loss
        labels = X["lbl"].to(self.device, non_blocking=True)
        return loss + class_label_loss(candidate_logits, labels, sw)


class Diverged(Exception):
    """Raised inside the training loop at the first non-finite loss."""


class DivergenceGuard(Callback):
    """Stop at the first non-finite loss or output; restore finite weights.

    The weights restored are those of early stopping's best epoch when it kept
    some, else those at the start of the last epoch whose first training batch
    gave a finite loss and finite outputs (one copy of the weights per epoch).
    ``diverged_at_`` is the epoch that diverged (None if none did) and
    ``restored_epoch_`` the epoch whose weights were restored (0: none).
    """

    def on_train_begin(self, net: Any, **kwargs: Any) -> None:
        self.diverged_at_: int | None = None
        self.restored_epoch_ = 0
        self._weights: dict[str, torch.Tensor] | None = None
        self._pending: dict[str, torch.Tensor] | None = None

    def on_epoch_begin(self, net: Any, **kwargs: Any) -> None:
        state = net.module_.state_dict()
        self._pending = {k: v.detach().clone() for k, v in state.items()}

    def on_batch_end(
        self,
        net: Any,
        training: bool = False,
        loss: Any = None,
        y_pred: Any = None,
        **kwargs: Any,
    ) -> None:
        outputs = y_pred[0] if isinstance(y_pred, tuple) else y_pred
        if _finite(loss) and _finite(outputs):
            if training and self._pending is not None:
                # the weights at the start of this epoch gave a finite batch
                self._weights, self._pending = self._pending, None
                self.restored_epoch_ = len(net.history) - 1
            return
        self.diverged_at_ = len(net.history)
        self._restore(net)
        raise Diverged

    def _restore(self, net: Any) -> None:
        stopper = dict(net.callbacks_).get("early_stopping")
        best = getattr(stopper, "best_model_weights_", None)
        if stopper is not None and best is not None:
            net.module_.load_state_dict(best)
            self.restored_epoch_ = int(stopper.best_epoch_)
        elif self._weights is not None:
            net.module_.load_state_dict(self._weights)


def _finite(value: Any) -> bool:
    if value is None:
        return True
    return bool(torch.isfinite(torch.as_tensor(value).detach()).all())


class TrainResult(NamedTuple):
    """What :func:`train_net` reports besides the trained net."""

    fit_time: float
    """Wall time in seconds."""
    interrupted: bool
    """A KeyboardInterrupt (Ctrl-C) ended training before its end."""
    diverged_at: int | None
    """Epoch whose loss was not finite (None: training did not diverge)."""
    restored_epoch: int
    """After divergence, the epoch whose weights were restored (0: none)."""


def train_net(
    net: ViLUNet,
    dataset: Any,
    *,
    candidates: Any,
    seed: int,
    dtype: torch.dtype,
    epochs: int | None = None,
) -> TrainResult:
    """Initialise and train ``net`` under its own seed.

    The global torch generators (CPU, and the net's CUDA device) are forked, so
    they are left untouched. ``candidates`` is the (K, d) array of candidate texts
    or None; the module ends in eval mode. skorch swallows KeyboardInterrupt
    (early stopping raises it too): an interruption is told apart from early
    stopping by the epochs run and the stopper's misses. ``epochs`` (default
    ``net.max_epochs``) is the number of epochs to run, fewer when a
    checkpoint is resumed.
    """
    device = torch.device(net.device)
    fork_devices = [device] if device.type == "cuda" else []
    start = time.perf_counter()
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        net.initialize()
        net.module_.to(dtype)
        fit_params: dict[str, Any] = {} if epochs is None else {"epochs": epochs}
        if candidates is not None:
            fit_params["candidates"] = torch.as_tensor(
                np.ascontiguousarray(candidates), dtype=dtype, device=device
            )
        try:
            net.partial_fit(dataset, None, **fit_params)
        except Diverged:
            pass
    elapsed = time.perf_counter() - start
    net.module_.eval()
    callbacks = dict(net.callbacks_)
    guard = callbacks["divergence_guard"]
    if guard.diverged_at_ is None and not _final_weights_finite(
        net, dataset, dtype, fit_params
    ):  # the last step (or the weight average) broke weights no batch has seen
        guard.diverged_at_ = len(net.history)
        guard._restore(net)
    stopper = callbacks.get("early_stopping")
    finished = len(net.history) == net.max_epochs and "dur" in net.history[-1]
    stopped = stopper is not None and stopper.misses_ >= stopper.patience
    interrupted = guard.diverged_at_ is None and not (finished or stopped)
    return TrainResult(elapsed, interrupted, guard.diverged_at_, guard.restored_epoch_)


def _final_weights_finite(
    net: ViLUNet, dataset: Any, dtype: torch.dtype, fit_params: dict[str, Any]
) -> bool:
    """Finite weights, and finite outputs on the first training batch."""
    if not all(_finite(p) for p in net.module_.parameters()):
        return False
    n = min(len(dataset), int(net.batch_size))
    if n == 0:
        return True
    X, _ = dataset.gather(np.arange(n), dtype)
    with torch.no_grad():
        out = net.infer(X, **fit_params)
    return _finite(out[0] if isinstance(out, tuple) else out)


def _silent(*args: Any, **kwargs: Any) -> None:
    """Sink that drops skorch's messages when ``verbose=0``."""
