"""Data-parallel ViLU on a sharded embedding store (caption mode).

Two sub-commands:

* ``make-store DIR``: write a synthetic store in the clip-retrieval layout
  (``img_emb/img_emb_{i}.npy``, ``text_emb/text_emb_{i}.npy``, float16), with
  paired image and caption embeddings from ``make_caption_embeddings``;
* ``train DIR``: train ``ViLUClassifier(mode="caption", distributed=True)`` on
  it. Launch it with one process per device; every process runs the same
  script, only the main one prints and writes.

    python examples/distributed_training.py make-store /tmp/store --rows 20000
    # 2 CPU processes (gloo), or 1 process:
    torchrun --nproc_per_node 2 examples/distributed_training.py train /tmp/store \\
        --out /tmp/vilu.safetensors --checkpoint-dir /tmp/vilu_ck
    # one machine, 8 GPUs:
    accelerate launch --multi_gpu --num_processes 8 \\
        examples/distributed_training.py train /data/emb --batch 1024 --device cuda
    # several nodes: see docs/scale.md

Start the same command again after a crash: with ``--checkpoint-dir`` it
resumes at the start of the epoch that was cut. ``--json FILE`` writes the fit
time and the rows trained (used by examples/distributed_benchmark.py).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from vilu_sklearn import ViLUClassifier
from vilu_sklearn.datasets import make_caption_embeddings, open_embedding_store


def make_store(root: str, rows: int, shard_rows: int, dim: int, seed: int = 0) -> None:
    """Write ``rows`` synthetic pairs as float16 shards of ``shard_rows`` rows."""
    data = make_caption_embeddings(
        rows, dim, group_size=min(1024, rows), random_state=seed
    )
    for sub in ("img_emb", "text_emb"):
        Path(root, sub).mkdir(parents=True, exist_ok=True)
    for i, start in enumerate(range(0, rows, shard_rows)):
        part = slice(start, start + shard_rows)
        np.save(
            Path(root, "img_emb", f"img_emb_{i}.npy"),
            data.X_img[part].astype(np.float16),
        )
        np.save(
            Path(root, "text_emb", f"text_emb_{i}.npy"),
            data.X_txt[part].astype(np.float16),
        )


def train(args: argparse.Namespace) -> ViLUClassifier:
    """Fit ViLU on the store with every process of the launch."""
    store = open_embedding_store(args.store)  # checks every shard first
    clf = ViLUClassifier(
        mode="caption",
        batch_size=args.batch,  # the global batch, all processes together
        caption_group_size=args.batch,
        max_epochs=args.epochs,
        device=args.device,
        random_state=0,  # the same in every process
        distributed=True,
        checkpoint_dir=args.checkpoint_dir,
        verbose=1,
    )
    clf.fit(store.img, store.text)
    main = int(os.environ.get("RANK", "0")) == 0
    if main and args.out:
        clf.save(args.out)
    if main and args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "fit_time": clf.fit_time_,
                    "epoch_seconds": [row["dur"] for row in clf.history_],
                    "epoch_rows": [
                        len(row["batches"]) * args.batch for row in clf.history_
                    ],
                    "processes": int(os.environ.get("WORLD_SIZE", "1")),
                },
                fh,
            )
    if main:
        n = min(len(store.img), 4 * args.batch)
        auroc = clf.score(store.img[:n], store.text[:n])
        print(
            f"trained {clf.n_epochs_} epochs in {clf.fit_time_:.1f} s; "
            f"AUROC on the first {n} training pairs: {auroc:.3f}"
        )
    return clf


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make-store", help="write a synthetic sharded store")
    make.add_argument("store")
    make.add_argument("--rows", type=int, default=20000)
    make.add_argument("--shard-rows", type=int, default=4096)
    make.add_argument("--dim", type=int, default=512)
    fit = sub.add_parser("train", help="train on a store (under torchrun/accelerate)")
    fit.add_argument("store")
    fit.add_argument("--batch", type=int, default=512)
    fit.add_argument("--epochs", type=int, default=3)
    fit.add_argument("--device", default="auto")
    fit.add_argument("--checkpoint-dir", default=None)
    fit.add_argument("--out", default=None, help="save the model (safetensors)")
    fit.add_argument("--json", default=None, help="write the fit time here")
    args = parser.parse_args(argv)
    if args.command == "make-store":
        make_store(args.store, args.rows, args.shard_rows, args.dim)
    else:
        train(args)


if __name__ == "__main__":
    main()
