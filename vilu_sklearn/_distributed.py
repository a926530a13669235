"""Data-parallel ViLU training through Hugging Face Accelerate, and streaming.

``ViLUClassifier(distributed=True)`` trains the usual skorch net composed with
skorch's :class:`~skorch.hf.AccelerateMixin` (:class:`AcceleratedViLUNet`):
Accelerate wraps the module in ``DistributedDataParallel`` and the optimiser,
skorch runs the loop. What ViLU adds to that:

* :class:`StreamLoader` cuts the same sequence of global batches in every
  process (it depends on the seed and the epoch only) and gives each process
  its slice of every global batch, so the rows of an epoch are split across the
  processes without overlap and N processes train on what one process trains
  on with the same global ``batch_size``. On a :class:`ShardedArray` it
  streams a window of a few shards at a time (shard order and the rows inside a
  window reshuffled each epoch);
* caption mode gathers the captions of the global batch: every image's
  candidates are the global batch's captions, as in one process, and its
  correctness label is computed among them;
* the adaptive failure weight uses the VLM's accuracy on the global batch
  (the correctness labels are gathered), and the loss recorded in the history
  is the global batch's mean;
* only the main process prints and writes checkpoints; the fitted estimator
  holds a plain :class:`~vilu_sklearn._net.ViLUNet`, identical in every
  process.

Checkpoints (``checkpoint_dir``, also without ``distributed``) are skorch's
:class:`~skorch.callbacks.Checkpoint` written after every epoch and
:class:`~skorch.callbacks.LoadInitState` at the start of ``fit``: a run that is
killed resumes at the start of the epoch it was in, with the same weights,
optimiser state, history, learning rate and batch order as the uninterrupted
run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from skorch.callbacks import Callback, Checkpoint, LoadInitState
from skorch.hf import AccelerateMixin  # imports no Hugging Face library

from ._data import EmbeddingDataset
from ._modules import failure_weight
from ._net import ViLUNet, autocast

__all__ = [
    "AcceleratedViLUNet",
    "StreamLoader",
    "checkpoint_callbacks",
    "completed_epochs",
    "make_accelerator",
    "plain_net",
]

_HISTORY = "history.json"


class StreamLoader:
    """Seeded global batches streamed shard by shard; each process gets its share.

    Every epoch the shards (of a :class:`~vilu_sklearn.datasets.ShardedArray`;
    a plain array is one shard) are put in a random order, taken ``window`` at
    a time, and the rows of a window are shuffled; consecutive
    ``batch_size`` rows of that stream form a global batch. Process ``rank`` of
    ``world_size`` gets rows ``[rank * b, (rank + 1) * b)`` of each global batch
    (sorted by row; ``b = batch_size // world_size``), so the processes share
    every row of an epoch without overlap. The order depends on ``seed`` and
    the epoch only (each pass is the next epoch, starting from
    :meth:`set_epoch`'s): the same for any number of processes, and the same
    again when a checkpoint is resumed. Memory: the indices of one
    window and the rows of one batch.

    Parameters
    ----------
    dataset : EmbeddingDataset
        The rows (its ``indices`` sorted, as every view of it is).
    batch_size : int
        Rows of a global batch (all processes together).
    shuffle : bool, default=True
        Shuffle shards and rows (else shard and row order).
    drop_last : bool, default=True
        Drop a last incomplete global batch (when there is more than one).
    seed : int, default=0
        Seed of the shuffles.
    dtype : torch.dtype, default=torch.float32
        Floating dtype of the tensors.
    rank, world_size : int, default=0 and 1
        This process and the number of processes.
    window : int, default=2
        Shards shuffled together.
    """

    def __init__(
        self,
        dataset: EmbeddingDataset,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        rank: int = 0,
        world_size: int = 1,
        window: int = 2,
    ) -> None:
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = int(seed)
        self.dtype = dtype
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.window = max(1, int(window))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch of the next pass (each pass is the next epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n, b = len(self.dataset), self.batch_size
        if self.drop_last and n > b:
            return n // b
        return -(-n // b)

    def _bounds(self) -> np.ndarray:
        """Positions where each shard starts in the dataset (and the end)."""
        offsets = getattr(self.dataset.img, "offsets", None)
        if offsets is None:
            return np.array([0, len(self.dataset)])
        return np.searchsorted(self.dataset.indices, offsets)

    def windows(self, epoch: int) -> Iterator[np.ndarray]:
        """The positions of an epoch, one shuffled window of shards at a time."""
        rng = np.random.default_rng([self.seed, epoch])
        bounds = self._bounds()
        n_shards = len(bounds) - 1
        order = rng.permutation(n_shards) if self.shuffle else np.arange(n_shards)
        for w in range(0, n_shards, self.window):
            parts = [
                np.arange(bounds[s], bounds[s + 1]) for s in order[w : w + self.window]
            ]
            positions = np.concatenate(parts)
            yield rng.permutation(positions) if self.shuffle else positions

    def global_batches(self, epoch: int | None = None) -> Iterator[np.ndarray]:
        """The sorted positions of each global batch of an epoch (default: next)."""
        epoch = self.epoch if epoch is None else int(epoch)
        size, left = self.batch_size, len(self)
        buffer = np.empty(0, dtype=np.int64)
        for positions in self.windows(epoch):
            buffer = np.concatenate([buffer, positions])
            while len(buffer) >= size and left:
                yield np.sort(buffer[:size])
                buffer, left = buffer[size:], left - 1
        if left and len(buffer):
            yield np.sort(buffer)

    def __iter__(self) -> Iterator[tuple[dict[str, torch.Tensor], Any]]:
        epoch, self.epoch = self.epoch, self.epoch + 1  # skorch reuses the loader
        for batch in self.global_batches(epoch):
            share = np.array_split(batch, self.world_size)[self.rank]
            yield self.dataset.gather(share, self.dtype)


class AcceleratedViLUNet(AccelerateMixin, ViLUNet):
    """:class:`ViLUNet` trained through skorch's ``AccelerateMixin``.

    Data parallel over ``accelerator.num_processes`` processes; see the module
    docstring for what is global (captions, failure weight, recorded loss).
    """

    def _world(self) -> int:
        return int(self.accelerator.num_processes)

    def _initialize_accelerator(self) -> Any:
        # the criterion has no parameter (get_loss computes ViLU's loss): DDP
        # refuses such a module, so it is left out of accelerator.prepare
        criterion = self.__dict__["criterion_"]
        self.__dict__["criterion_"] = None
        try:
            return super()._initialize_accelerator()
        finally:
            self.__dict__["criterion_"] = criterion

    def infer(
        self, x: Any, candidates: torch.Tensor | None = None, **fit_params: Any
    ) -> Any:
        if not (self.vilu_caption and self.module_.training and self._world() > 1):
            return super().infer(x, candidates, **fit_params)
        img = x["img"].to(self.device, non_blocking=True)
        txt = x["txt"].to(self.device, non_blocking=True)
        # the candidates are the global batch's captions, in rank order
        everyone = self.accelerator.gather(txt)
        offset = int(self.accelerator.process_index) * txt.shape[0]
        with autocast(self.vilu_autocast):
            return self.module_(
                img,
                everyone,
                return_correct=True,
                return_parts=self.training_parts(),
                own_offset=offset,
            )

    def failure_weight_mode(self, y_true: torch.Tensor, sw: Any) -> Any:
        mode = self.vilu_failure_weight
        if not (isinstance(mode, str) and self._world() > 1):
            return mode
        y_all = self.accelerator.gather(y_true.detach().float())
        sw_all = None if sw is None else self.accelerator.gather(sw.detach())
        return float(failure_weight(y_all, mode, sw_all))

    def train_step(self, batch: Any, **fit_params: Any) -> dict[str, Any]:
        step: dict[str, Any] = super().train_step(batch, **fit_params)
        if self._world() > 1:
            loss = step["loss"].detach().float()
            out = (
                step["y_pred"][0]
                if isinstance(step["y_pred"], tuple)
                else step["y_pred"]
            )
            bad = (~torch.isfinite(loss)).float() + (~torch.isfinite(out)).any().float()
            bad, loss = self.accelerator.reduce(
                torch.stack([bad, loss]), reduction="sum"
            )
            # the global batch's mean loss; NaN everywhere when one process diverged
            step["loss"] = torch.where(bad > 0, torch.nan, loss / self._world())
        return step


def make_accelerator(device: str) -> Any:
    """An ``Accelerator`` for the process group this script was launched in.

    Batches are put on the device by the net (``device_placement=False``);
    ``find_unused_parameters`` because the attention projections are bypassed
    during the first ``freeze_proj_epochs``.
    """
    try:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError(
            "distributed=True trains through Hugging Face Accelerate: install it "
            'with pip install "vilu-sklearn[distributed]".'
        ) from None
    return Accelerator(
        cpu=device == "cpu",
        device_placement=False,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )


def plain_net(net: AcceleratedViLUNet) -> ViLUNet:
    """The trained (unwrapped) net as a plain :class:`ViLUNet`, for the estimator.

    It pickles and saves like one trained in one process.
    """
    plain = ViLUNet.__new__(ViLUNet)
    state = dict(net.__dict__)
    for key in ("accelerator", "unwrap_after_train", "_wrapped_with_accelerator"):
        state.pop(key, None)
    optimizer = state.get("optimizer_")
    state["optimizer_"] = getattr(optimizer, "optimizer", optimizer)
    plain.__dict__.update(state)
    return plain


def checkpoint_callbacks(dirname: str) -> list[tuple[str, Callback]]:
    """Skorch's epoch-end ``Checkpoint`` and the ``LoadInitState`` that resumes it.

    Put them before the LR schedule, so that a resumed schedule starts from
    the loaded optimizer and history.
    """
    checkpoint = Checkpoint(
        monitor=None,
        dirname=dirname,
        f_params="params.pt",
        f_optimizer="optimizer.pt",
        f_criterion=None,
        f_history=_HISTORY,
        load_best=False,
    )
    return [
        ("load_checkpoint", LoadInitState(checkpoint)),
        ("checkpoint", checkpoint),
    ]


def completed_epochs(dirname: str | os.PathLike[str] | None) -> int:
    """Epochs recorded by the checkpoint in ``dirname`` (0: none there)."""
    if dirname is None:
        return 0
    path = Path(dirname) / _HISTORY
    if not path.is_file():
        return 0
    try:
        with open(path) as fh:
            return len(json.load(fh))
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"The checkpoint history {path} is unreadable ({exc}); delete the "
            "checkpoint folder to start over."
        ) from None


_RUN = "run.json"
# parameters that do not change what is trained
_NOT_TRAINING = {
    "verbose",
    "checkpoint_dir",
    "distributed",
    "device",
    "predict_batch_size",
}


def check_training_setup(est: Any) -> None:
    """Rules of ``distributed`` and ``checkpoint_dir`` between parameters."""
    if est.distributed:
        if est.early_stopping:
            raise ValueError(
                "distributed=True does not support early_stopping (its validation "
                "split would be scored by every process); set early_stopping=False."
            )
        if est.dtype != "float32":
            raise ValueError(
                f"distributed=True needs dtype='float32'; got dtype={est.dtype!r}."
            )
        if est.device not in ("auto", "cpu", "cuda"):
            raise ValueError(
                f"distributed=True places each process on its own device: use "
                f"device='auto', 'cuda' or 'cpu', not {est.device!r}."
            )
    if (est.distributed or est.checkpoint_dir is not None) and (
        isinstance(est.random_state, bool)
        or not isinstance(est.random_state, int | np.integer)
    ):
        raise ValueError(
            "distributed=True and checkpoint_dir need an integer random_state, "
            "so that every process (and a resumed run) draws the same batches; "
            f"got random_state={est.random_state!r}."
        )
    if est.checkpoint_dir is not None:
        if est.early_stopping or est.weight_averaging_epochs is not None:
            raise ValueError(
                "checkpoint_dir cannot resume early stopping or weight averaging "
                "(their state is not checkpointed); set early_stopping=False and "
                "weight_averaging_epochs=None."
            )


def accelerator_for(est: Any, n_samples: int) -> Any:
    """The Accelerator of a data-parallel fit, after checking the global batch."""
    accelerator = make_accelerator(str(est.device))
    world, batch = int(accelerator.num_processes), est._batch_size
    if batch % world:
        raise ValueError(
            f"batch_size={batch} is the global batch of the {world} processes: it "
            f"must be a multiple of {world}."
        )
    if n_samples < batch:
        raise ValueError(
            f"distributed=True needs at least one full global batch: {n_samples} "
            f"samples < batch_size={batch}."
        )
    return accelerator


def stream_kwargs(accelerator: Any) -> dict[str, Any]:
    """Net arguments that make skorch train on :class:`StreamLoader` batches."""
    return {
        "iterator_train": StreamLoader,
        "iterator_train__rank": 0 if accelerator is None else accelerator.process_index,
        "iterator_train__world_size": (
            1 if accelerator is None else accelerator.num_processes
        ),
    }


def _fingerprint(est: Any, n_samples: int, n_features: int, seed: int) -> dict:
    params = {
        k: repr(v)
        for k, v in sorted(est.get_params(deep=False).items())
        if k not in _NOT_TRAINING and k != "text_embeddings"
    }
    return {"n_samples": n_samples, "n_features": n_features, "seed": seed, **params}


def start_checkpoint(
    est: Any, accelerator: Any, n_samples: int, n_features: int, seed: int
) -> int | None:
    """Epochs left to run under ``est.checkpoint_dir`` (None: no checkpoints).

    The folder's ``run.json`` records what was trained there; a checkpoint of a
    different run is refused rather than resumed.
    """
    if est.checkpoint_dir is None:
        return None
    folder = Path(est.checkpoint_dir)
    print_ = _fingerprint(est, n_samples, n_features, seed)
    path = folder / _RUN
    if path.is_file():
        with open(path) as fh:
            found = json.load(fh)
        if found != print_:
            diff = sorted(
                k for k in set(found) | set(print_) if found.get(k) != print_.get(k)
            )
            raise ValueError(
                f"checkpoint_dir={str(folder)!r} holds a checkpoint of another "
                f"training run (differences: {', '.join(diff)}); use a new folder "
                "or delete it to start over."
            )
    elif accelerator is None or accelerator.is_main_process:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(print_, indent=1))
        os.replace(tmp, path)
    return max(0, int(est.max_epochs) - completed_epochs(folder))
