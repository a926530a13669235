"""Benchmark of data-parallel ViLU training and of the sharded store reader.

Prints, as markdown tables:

1. training throughput (rows/s) of ``ViLUClassifier(mode="caption",
   distributed=True)`` on a synthetic sharded store, launched by ``torchrun``
   with 1 and 2 processes (CPU, gloo; on a GPU machine pass ``--device cuda``
   and process counts up to the number of GPUs). Rows/s counts the global
   batches of the epochs after the first (the first includes warm-up), over the
   epochs' wall time;
2. the peak memory of one epoch of the sharded reader (``StreamLoader`` over
   ``open_embedding_store``: every batch of images and captions gathered and
   cast to float32) on stores of the same shard size and a growing number of
   shards, each in a fresh subprocess: anonymous resident memory (the page cache
   of the memory-mapped shards is not counted) and numpy's peak (tracemalloc);
3. the LAION-400M arithmetic: bytes and shards of the store, and the epoch
   time at the measured rows/s per process.

    python examples/distributed_benchmark.py            # ~5 minutes on 2 cores
    python examples/distributed_benchmark.py --device cuda --processes 1 2 4 8

Only the process counts asked for are launched; each launch is a separate
``torchrun`` (so the numbers include neither the interpreter's start nor the
store's checks).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TRAIN = HERE / "distributed_training.py"

_READER = textwrap.dedent(
    """
    import gc, json, sys, threading, time, tracemalloc
    import numpy as np, torch
    from vilu_sklearn._data import EmbeddingDataset
    from vilu_sklearn._distributed import StreamLoader
    from vilu_sklearn.datasets import open_embedding_store

    def anon():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        return 0

    store = open_embedding_store(sys.argv[1])
    data = EmbeddingDataset(store.img, texts=store.text)
    loader = StreamLoader(data, int(sys.argv[2]), window=2, seed=0)
    gc.collect()
    base, peak, done = anon(), [anon()], []
    def sample():
        while not done:
            peak[0] = max(peak[0], anon())
            time.sleep(0.002)
    t = threading.Thread(target=sample); t.start()
    tracemalloc.start()
    rows = 0
    for X, _ in loader:
        rows += len(X["img"])
    np_peak = tracemalloc.get_traced_memory()[1]
    done.append(1); t.join()
    print(json.dumps({"rows": rows, "anon_growth": peak[0] - base,
                      "numpy_peak": np_peak, "shards": store.img.n_shards,
                      "store_bytes": store.img.nbytes + store.text.nbytes}))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    root = str(HERE.parent)
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "PYTHONPATH": root + (os.pathsep + path if path else ""),
    }


def make_store(root: Path, rows: int, shard_rows: int, dim: int) -> None:
    """Random float16 pairs (the throughput does not depend on the values)."""
    rng = np.random.default_rng(0)
    for sub in ("img_emb", "text_emb"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, start in enumerate(range(0, rows, shard_rows)):
        n = min(shard_rows, rows - start)
        txt = rng.normal(size=(n, dim)).astype(np.float32)
        img = txt + rng.normal(scale=1.5, size=(n, dim)).astype(np.float32)
        np.save(root / "img_emb" / f"img_emb_{i}.npy", img.astype(np.float16))
        np.save(root / "text_emb" / f"text_emb_{i}.npy", txt.astype(np.float16))


def throughput(store: Path, processes: int, args: argparse.Namespace) -> dict:
    """Launch the training example under torchrun; its rows/s after epoch 1."""
    out = store.parent / f"fit_{processes}.json"
    cmd = [
        sys.executable, "-m", "torch.distributed.run",
        "--nproc_per_node", str(processes),
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        str(TRAIN), "train", str(store), "--batch", str(args.batch),
        "--epochs", str(args.epochs), "--device", args.device, "--json", str(out),
    ]  # fmt: skip
    subprocess.run(cmd, env=_env(), check=True, capture_output=True, timeout=3600)
    result = json.loads(out.read_text())
    seconds = sum(result["epoch_seconds"][1:])
    rows = sum(result["epoch_rows"][1:])
    return {"processes": processes, "rows": rows, "seconds": seconds,
            "rows_per_s": rows / seconds}  # fmt: skip


def reader_memory(store: Path, batch: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _READER, str(store), str(batch)],
        env=_env(), check=True, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def laion_table(per_process: float, args: argparse.Namespace) -> str:
    """Bytes, shards and epoch time of LAION-400M at ``per_process`` rows/s.

    400M pairs of ``args.dim`` float16 embeddings (image and caption), in shards
    of 1M rows; the rate is the one measured here, for this d and batch.
    """
    n, d = 400_000_000, args.dim
    lines = [
        "| pairs | d | image + text bytes (float16) | shards of 1M rows | device | "
        "rows/s per process (measured) | ms per 1000 rows | processes | epoch time |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for p in (1, 8, 64, 256):
        hours = n / (per_process * p) / 3600
        lines.append(
            f"| {n:,} | {d} | {2 * n * d * 2 / 1e9:,.0f} GB | {math.ceil(n / 1e6):,} | "
            f"{args.device} | {per_process:,.0f} | {1e6 / per_process:,.1f} | "
            f"{p} | {hours:,.1f} h |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=16384)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--shard-rows", type=int, default=2048)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--memory-shards", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    print(
        f"load average (1 min) at start: {os.getloadavg()[0]:.2f} on "
        f"{os.cpu_count()} cores; OMP_NUM_THREADS={_env()['OMP_NUM_THREADS']}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        make_store(store, args.rows, args.shard_rows, args.dim)
        print(
            f"\n### Training throughput, caption mode, n={args.rows}, d={args.dim}, "
            f"global batch {args.batch}, {args.epochs} epochs (first not timed), "
            f"device {args.device}\n"
        )
        print("| processes | rows timed | seconds | rows/s | rows/s per process |")
        print("|---:|---:|---:|---:|---:|")
        best = 0.0
        for p in args.processes:
            r = throughput(store, p, args)
            best = r["rows_per_s"] / p if p == max(args.processes) else best
            print(
                f"| {p} | {r['rows']:,} | {r['seconds']:.2f} | "
                f"{r['rows_per_s']:,.0f} | {r['rows_per_s'] / p:,.0f} |"
            )
        print(
            f"\n### Peak memory of one epoch of the sharded reader "
            f"({args.shard_rows} rows per shard, d={args.dim}, float16, "
            f"batch {args.batch}, window of 2 shards)\n"
        )
        print(
            "| shards | store MiB | rows read | peak anon RSS growth MiB | "
            "numpy peak MiB |"
        )
        print("|---:|---:|---:|---:|---:|")
        for shards in args.memory_shards:
            path = Path(tmp) / f"mem_{shards}"
            make_store(path, shards * args.shard_rows, args.shard_rows, args.dim)
            m = reader_memory(path, args.batch)
            print(
                f"| {m['shards']} | {m['store_bytes'] / 2**20:,.0f} | {m['rows']:,} | "
                f"{m['anon_growth'] / 2**20:.1f} | {m['numpy_peak'] / 2**20:.1f} |"
            )
            for sub in path.rglob("*.npy"):
                sub.unlink()
    print(
        f"\n### LAION-400M at the measured rate ({max(args.processes)} processes, "
        f"device {args.device})\n"
    )
    print(laion_table(best, args))
    print(f"\nload average (1 min) at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
