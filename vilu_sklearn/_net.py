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

from ._modules import weighted_bce_loss

__all__ = [
    "OPTIMIZERS",
    "DivergenceGuard",
    "TrainResult",
    "divergence_callbacks",
    "ValidAUROC",
    "ViLUNet",
    "autocast",
    "early_stopping_callbacks",
    "lr_scheduler",
    "resolve_device",
    "train_net",
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


def early_stopping_callbacks(
    metric: str, *, patience: int, tol: float, verbose: int
) -> list[tuple[str, Callback]]:
    """Callbacks of early stopping on ``valid_auroc`` or ``valid_loss``."""
    by_auroc = metric == "auroc"
    callbacks: list[tuple[str, Callback]] = []
    if by_auroc:
        callbacks.append(("valid_auroc", ValidAUROC()))
    stopper = EarlyStopping(
        monitor="valid_auroc" if by_auroc else "valid_loss",
        lower_is_better=not by_auroc,
        patience=patience,
        threshold=tol,
        threshold_mode="rel",
        load_best=True,
        sink=print if verbose else _silent,
    )
    callbacks.append(("early_stopping", stopper))
    return callbacks


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
        **kwargs: Any,
    ) -> None:
        self.vilu_caption = vilu_caption
        self.vilu_failure_weight = vilu_failure_weight
        self.vilu_autocast = vilu_autocast
        super().__init__(module, **kwargs)

    def infer(
        self, x: Any, candidates: torch.Tensor | None = None, **fit_params: Any
    ) -> Any:
        img = x["img"].to(self.device, non_blocking=True)
        with autocast(self.vilu_autocast):
            if self.vilu_caption:
                txt = x["txt"].to(self.device, non_blocking=True)
                return self.module_(img, txt, return_correct=True)
            return self.module_(img, candidates)

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
) -> TrainResult:
    """Initialise and train ``net`` under its own seed.

    The global torch generators (CPU, and the net's CUDA device) are forked, so
    they are left untouched. ``candidates`` is the (K, d) array of candidate texts
    or None; the module ends in eval mode. skorch swallows KeyboardInterrupt
    (early stopping raises it too): an interruption is told apart from early
    stopping by the epochs run and the stopper's misses.
    """
    device = torch.device(net.device)
    fork_devices = [device] if device.type == "cuda" else []
    start = time.perf_counter()
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        net.initialize()
        net.module_.to(dtype)
        fit_params = {}
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
    stopper = callbacks.get("early_stopping")
    finished = len(net.history) == net.max_epochs and "dur" in net.history[-1]
    stopped = stopper is not None and stopper.misses_ >= stopper.patience
    interrupted = guard.diverged_at_ is None and not (finished or stopped)
    return TrainResult(elapsed, interrupted, guard.diverged_at_, guard.restored_epoch_)


def _silent(*args: Any, **kwargs: Any) -> None:
    """Sink that drops skorch's messages when ``verbose=0``."""
