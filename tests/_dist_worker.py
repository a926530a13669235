"""Run by tests/test_distributed.py under ``accelerate launch`` / torchrun.

Trains ViLU with ``distributed=True`` on a sharded store (or one process when
the script is run directly) and, in the main process, saves the confidences
and the weights to ``--out`` (npz). ``--kill-at N`` ends process 1 abruptly
(os._exit) at its N-th training step (counted from 1).
"""

import argparse
import os

import numpy as np
from skorch.callbacks import Callback

from vilu_sklearn import ViLUClassifier
from vilu_sklearn.datasets import open_embedding_store


class KillRank(Callback):
    def __init__(self, at):
        self.at = at
        self.steps = 0

    def on_batch_end(self, net, training=False, **kwargs):
        self.steps += training
        rank = int(os.environ.get("RANK", "0"))
        if rank == 1 and self.steps == self.at:
            os._exit(3)


class Killable(ViLUClassifier):
    kill_at = 0

    def _callbacks(self, *, early, verbose):
        callbacks = super()._callbacks(early=early, verbose=verbose)
        if self.kill_at:
            callbacks.append(("kill", KillRank(self.kill_at)))
        return callbacks


def main():
    p = argparse.ArgumentParser()
    p.add_argument("store")
    p.add_argument("--mode", default="classification")
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--checkpoint-dir", default=None)
    p.add_argument("--kill-at", type=int, default=0)
    p.add_argument("--no-distributed", action="store_true")
    args = p.parse_args()
    store = open_embedding_store(args.store)
    clf = Killable(
        mode=args.mode,
        batch_size=args.batch,
        caption_group_size=args.batch,
        hidden_layer_sizes=(16,),
        posterior_hidden_size=32,
        freeze_proj_epochs=1,
        warmup_epochs=1,
        max_epochs=args.epochs,
        device="cpu",
        random_state=0,
        distributed=not args.no_distributed,
        checkpoint_dir=args.checkpoint_dir,
    )
    clf.kill_at = args.kill_at
    if args.mode == "caption":
        clf.fit(store.img, store.text)
        conf = clf.decision_function(store.img, store.text)
    else:
        X_txt = np.load(os.path.join(args.store, "classes.npy"))
        y = np.load(os.path.join(args.store, "y_correct.npy"))
        clf.fit(store.img, X_txt, y)
        conf = clf.decision_function(store.img)
    if int(os.environ.get("RANK", "0")) == 0:
        state = {k: v.numpy() for k, v in clf.net_.module_.state_dict().items()}
        np.savez(
            args.out,
            conf=conf,
            n_epochs=clf.n_epochs_,
            n_steps=sum(len(row["batches"]) for row in clf.history_),
            train_loss=np.array(clf.history_[:, "train_loss"]),
            **{"w:" + k: v for k, v in state.items()},
        )


if __name__ == "__main__":
    main()
