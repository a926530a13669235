"""Run by tests/test_distributed.py under torchrun (and imported by it).

Trains ViLU with ``distributed=True`` on a sharded store and, in the main
process, saves the confidences, the weights and the history counts to ``--out``
(npz). ``--kill-at N`` stops process ``--kill-rank`` at its N-th training step
(counted from 1): abruptly (os._exit) or with a KeyboardInterrupt; only in the
first attempt when torchrun restarts the processes (``--max-restarts``).
"""

import argparse
import os

import numpy as np
from skorch.callbacks import Callback

from vilu_sklearn import ViLUClassifier
from vilu_sklearn.datasets import open_embedding_store


class Kill(Callback):
    def __init__(self, at, rank, how):
        self.at, self.rank, self.how = at, rank, how
        self.steps = 0

    def on_batch_end(self, net, training=False, **kwargs):
        self.steps += bool(training)
        first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
        rank = int(os.environ.get("RANK", "0"))
        if first_attempt and rank == self.rank and self.steps == self.at:
            if self.how == "exit":
                os._exit(3)
            raise KeyboardInterrupt


class Killable(ViLUClassifier):
    kill = None

    def _callbacks(self, *, early):
        callbacks = super()._callbacks(early=early)
        if self.kill is not None:
            callbacks.append(("kill", Kill(*self.kill)))
        return callbacks


def fit_store(
    store_path,
    *,
    mode="classification",
    epochs=3,
    batch=64,
    distributed=True,
    checkpoint_dir=None,
    kill=None,
    verbose=0,
    branch_loss="joint",
):
    """Fit on the store; the confidences, weights and history counts."""
    store = open_embedding_store(store_path)
    clf = Killable(
        mode=mode,
        batch_size=batch,
        caption_group_size=batch,
        hidden_layer_sizes=(16,),
        posterior_hidden_size=32,
        freeze_proj_epochs=1,
        warmup_epochs=1,
        max_epochs=epochs,
        device="cpu",
        random_state=0,
        distributed=distributed,
        checkpoint_dir=checkpoint_dir,
        verbose=verbose,
        branch_loss=branch_loss,
    )
    clf.kill = kill
    if mode == "caption":
        clf.fit(store.img, store.text)
        conf = clf.decision_function(store.img, store.text)
    else:
        X_txt = np.load(os.path.join(store_path, "classes.npy"))
        y = np.load(os.path.join(store_path, "y_correct.npy"))
        clf.fit(store.img, X_txt, y)
        conf = clf.decision_function(store.img)
    state = {k: v.numpy().copy() for k, v in clf.net_.module_.state_dict().items()}
    return {
        "conf": conf,
        "n_epochs": clf.n_epochs_,
        "n_steps": sum(len(row["batches"]) for row in clf.history_),
        "train_loss": np.array(clf.history_[:, "train_loss"]),
        **{"w:" + k: v for k, v in state.items()},
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("store")
    p.add_argument("--mode", default="classification")
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--checkpoint-dir", default=None)
    p.add_argument("--kill-at", type=int, default=0)
    p.add_argument("--kill-rank", type=int, default=1)
    p.add_argument("--verbose", type=int, default=0)
    p.add_argument("--branch-loss", default="joint")
    args = p.parse_args()
    kill = (args.kill_at, args.kill_rank, "exit") if args.kill_at else None
    result = fit_store(
        args.store,
        mode=args.mode,
        epochs=args.epochs,
        batch=args.batch,
        checkpoint_dir=args.checkpoint_dir,
        kill=kill,
        verbose=args.verbose,
        branch_loss=args.branch_loss,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        np.savez(args.out, **result)


if __name__ == "__main__":
    main()
