"""Data-parallel training (Accelerate through skorch), sharded stores, checkpoints.

The default tier checks the pieces in this process (the store reader and its
errors, the batch stream, one-process training through Accelerate, resume from
a checkpoint); the slow tier launches 2 CPU processes (gloo) with torchrun and
compares them with one process at the same global batch, and kills a process
mid-epoch and resumes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import make_toy
from sklearn.base import clone

from vilu_sklearn import ViLUClassifier, load
from vilu_sklearn._data import EmbeddingDataset
from vilu_sklearn._distributed import StreamLoader
from vilu_sklearn.datasets import open_embedding_store

pytest.importorskip("accelerate", reason="needs vilu-sklearn[distributed]")

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "_dist_worker.py"
SHARDS = (150, 100, 200, 150)  # uneven, as real shards are


def write_store(root, *, n_shards=None, d=16, seed=0, metadata=False):
    """A clip-retrieval store of toy pairs, plus classes.npy and y_correct.npy."""
    sizes = SHARDS if n_shards is None else (100,) * n_shards
    X, T, labels, y = make_toy(n=sum(sizes), K=5, d=d, seed=seed)
    captions = X + np.random.default_rng(seed).normal(size=X.shape)
    for sub in ("img_emb", "text_emb") + (("metadata",) if metadata else ()):
        (root / sub).mkdir(parents=True, exist_ok=True)
    start = 0
    for i, size in enumerate(sizes):
        rows = slice(start, start + size)
        np.save(root / "img_emb" / f"img_emb_{i}.npy", X[rows].astype(np.float16))
        np.save(
            root / "text_emb" / f"text_emb_{i}.npy", captions[rows].astype(np.float16)
        )
        if metadata:
            (root / "metadata" / f"metadata_{i}.parquet").write_bytes(b"PAR1")
        start += size
    np.save(root / "classes.npy", T.astype(np.float32))
    np.save(root / "y_correct.npy", y)
    return root


# ------------------------------------------------------------------ the store
def test_store_reads_rows_like_the_concatenated_arrays(tmp_path):
    store = open_embedding_store(write_store(tmp_path, metadata=True))
    full = np.concatenate([np.load(p) for p in store.img.paths])
    assert store.img.shape == full.shape and store.img.n_shards == 4
    assert store.text.shape == full.shape and len(store.metadata) == 4
    rows = np.array([599, 0, 150, 149, 250, 250])
    np.testing.assert_array_equal(store.img[rows], full[rows])
    np.testing.assert_array_equal(store.img[140:460], full[140:460])
    np.testing.assert_array_equal(store.img[::97], full[::97])
    np.testing.assert_array_equal(store.img[-1], full[-1])
    np.testing.assert_array_equal(np.asarray(store.img), full)
    assert len(store.img._open) <= store.img.max_open
    with pytest.raises(IndexError):
        store.img[[600]]


def test_plain_folder_of_shards_in_natural_order(tmp_path):
    for i in (0, 2, 10):
        np.save(tmp_path / f"part_{i}.npy", np.full((2, 3), i, dtype=np.float32))
    X = open_embedding_store(tmp_path).img
    assert [p.name for p in X.paths] == ["part_0.npy", "part_2.npy", "part_10.npy"]
    assert X[:, 0].tolist() == [0, 0, 2, 2, 10, 10]


def test_missing_shard_is_named(tmp_path):
    write_store(tmp_path)
    (tmp_path / "img_emb" / "img_emb_2.npy").unlink()
    with pytest.raises(FileNotFoundError, match="img_emb_2.npy is missing"):
        open_embedding_store(tmp_path)
    write_store(tmp_path)
    (tmp_path / "text_emb" / "text_emb_3.npy").unlink()
    with pytest.raises(FileNotFoundError, match="text_emb_3.npy is missing"):
        open_embedding_store(tmp_path)


def test_truncated_shard_is_named_before_training(tmp_path):
    write_store(tmp_path)
    path = tmp_path / "text_emb" / "text_emb_1.npy"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"text_emb_1.npy is truncated"):
        open_embedding_store(tmp_path)
    path.write_bytes(b"not a npy file")
    with pytest.raises(ValueError, match=r"text_emb_1.npy is not a readable"):
        open_embedding_store(tmp_path)


def test_mismatched_shards_are_refused(tmp_path):
    write_store(tmp_path)
    (tmp_path / "metadata_only").mkdir()
    np.save(tmp_path / "text_emb" / "text_emb_0.npy", np.ones((149, 16), np.float16))
    with pytest.raises(ValueError, match="paired row by row"):
        open_embedding_store(tmp_path)
    np.save(tmp_path / "img_emb" / "img_emb_1.npy", np.ones((100, 8), np.float16))
    with pytest.raises(ValueError, match="all shards must match"):
        open_embedding_store(tmp_path)
    with pytest.raises(FileNotFoundError, match="No file matches"):
        open_embedding_store(tmp_path / "metadata_only")


def test_store_is_never_written(tmp_path):
    root = write_store(tmp_path)
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*.npy")}
    store = open_embedding_store(root)
    ViLUClassifier(
        mode="caption",
        batch_size=100,
        caption_group_size=100,
        hidden_layer_sizes=(8,),
        posterior_hidden_size=0,
        max_epochs=1,
        device="cpu",
        random_state=0,
    ).fit(store.img, store.text)
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*.npy")}
    assert after == before


# ----------------------------------------------------------------- the stream
def _stream(n_rows, batch, *, rank=0, world=1, epoch=0, window=2, shards=(5, 7, 3, 9)):
    class Sharded:
        offsets = np.concatenate([[0], np.cumsum(shards)])

    dataset = EmbeddingDataset(np.zeros((n_rows, 1)))
    dataset.img = Sharded()  # only the shard offsets are read
    loader = StreamLoader(dataset, batch, rank=rank, world_size=world, window=window)
    loader.set_epoch(epoch)
    return loader


def test_stream_splits_global_batches_without_overlap():
    one = list(_stream(24, 6).global_batches())
    assert len(one) == 4 and len(_stream(24, 6)) == 4
    assert sorted(np.concatenate(one).tolist()) == list(range(24))
    for world in (2, 3):
        shares = [
            [b for b in _stream(24, 6, rank=r, world=world).global_batches()]
            for r in range(world)
        ]
        assert all(np.array_equal(s, o) for s, o in zip(shares[0], one, strict=True))
        cut = [np.array_split(b, world) for b in one]
        seen = np.concatenate([c[r] for c in cut for r in range(world)])
        assert len(seen) == 24 and len(np.unique(seen)) == 24


def test_stream_reshuffles_per_epoch_and_windows_shards():
    e0 = np.concatenate(list(_stream(24, 4).windows(0)))
    e1 = np.concatenate(list(_stream(24, 4).windows(1)))
    assert sorted(e0.tolist()) == sorted(e1.tolist()) == list(range(24))
    assert not np.array_equal(e0, e1)
    np.testing.assert_array_equal(e0, np.concatenate(list(_stream(24, 4).windows(0))))
    # a window holds whole shards: at most `window` shards are read together
    bounds = np.array([0, 5, 12, 15, 24])
    for w in _stream(24, 4, window=1).windows(0):
        assert len(np.unique(np.searchsorted(bounds, w, side="right"))) == 1


def test_each_pass_of_the_stream_is_the_next_epoch():
    # skorch iterates one training loader over all epochs
    X = np.arange(32, dtype=np.float64)[:, None]
    loader = StreamLoader(EmbeddingDataset(X), 8, seed=1)
    loader.set_epoch(2)
    passes = [
        np.concatenate([b["img"][:, 0].numpy() for b, _ in loader]) for _ in range(3)
    ]
    assert not np.array_equal(passes[0], passes[1])
    assert not np.array_equal(passes[1], passes[2])
    resumed = StreamLoader(EmbeddingDataset(X), 8, seed=1)
    resumed.set_epoch(3)
    np.testing.assert_array_equal(
        np.concatenate([b["img"][:, 0].numpy() for b, _ in resumed]), passes[1]
    )


def test_stream_batches_are_this_rank_share(tmp_path):
    X = np.arange(40, dtype=np.float64).reshape(20, 2)
    dataset = EmbeddingDataset(X, y=np.arange(20) % 2)
    loaders = [StreamLoader(dataset, 8, rank=r, world_size=2, seed=3) for r in (0, 1)]
    got = [[Xb["img"][:, 0].numpy() / 2 for Xb, _ in loader] for loader in loaders]
    assert [len(g) for g in got] == [2, 2] and all(len(b) == 4 for b in got[0])
    rows = np.concatenate([np.concatenate(g) for g in got])
    assert len(np.unique(rows)) == 16  # 2 global batches of 8, no row twice


# ------------------------------------------------------- training in-process
FAST = dict(
    hidden_layer_sizes=(16,),
    posterior_hidden_size=32,
    freeze_proj_epochs=1,
    max_epochs=3,
    device="cpu",
    random_state=0,
)


def test_fit_accepts_a_store_wherever_it_accepts_arrays(tmp_path):
    store = open_embedding_store(write_store(tmp_path))
    X_txt, y = np.load(tmp_path / "classes.npy"), np.load(tmp_path / "y_correct.npy")
    clf = ViLUClassifier(batch_size=64, **FAST).fit(store.img, X_txt, y)
    ref = ViLUClassifier(batch_size=64, **FAST).fit(np.asarray(store.img), X_txt, y)
    assert clf.n_epochs_ == ref.n_epochs_ == 3
    # the same batches in another order: close, not equal
    assert (
        np.corrcoef(clf.decision_function(store.img), ref.decision_function(store.img))[
            0, 1
        ]
        > 0.9
    )
    cap = ViLUClassifier(mode="caption", batch_size=64, caption_group_size=64, **FAST)
    cap.fit(store.img, store.text)
    assert cap.decision_function(store.img, store.text).shape == (600,)
    assert 0.0 <= cap.score(store.img, store.text) <= 1.0


@pytest.mark.parametrize("mode", ["classification", "caption"])
def test_one_process_through_accelerate_equals_plain_fit(tmp_path, mode):
    store = open_embedding_store(write_store(tmp_path))
    kw = dict(mode=mode, batch_size=64, caption_group_size=64, **FAST)
    args = (store.img, store.text)
    if mode == "classification":
        args = (
            store.img,
            np.load(tmp_path / "classes.npy"),
            np.load(tmp_path / "y_correct.npy"),
        )
    plain = ViLUClassifier(**kw).fit(*args)
    acc = ViLUClassifier(distributed=True, **kw).fit(*args)
    pred = (store.img, store.text) if mode == "caption" else (store.img,)
    np.testing.assert_array_equal(
        acc.decision_function(*pred), plain.decision_function(*pred)
    )
    assert type(acc.net_) is type(plain.net_)  # a plain ViLUNet: saves and loads
    acc.save(tmp_path / "m.safetensors")
    back = load(tmp_path / "m.safetensors")
    assert back.get_params()["distributed"] is True
    saved, trained = back.net_.module_.state_dict(), acc.net_.module_.state_dict()
    assert all(torch.equal(saved[k], trained[k]) for k in trained)


def test_parameters_are_stored_cloned_and_checked(tmp_path):
    clf = ViLUClassifier(distributed=True, checkpoint_dir=str(tmp_path), random_state=0)
    assert clone(clf).get_params()["distributed"] is True
    assert clone(clf).get_params()["checkpoint_dir"] == str(tmp_path)
    X, T, _, y = make_toy(n=64)
    bad = [
        (dict(distributed=True, early_stopping=True), "early_stopping"),
        (dict(distributed=True, dtype="float64"), "float32"),
        (dict(distributed=True, device="cpu:0"), "its own device"),
        (dict(distributed=True, random_state=None), "integer random_state"),
        (dict(distributed=True, random_state=0, batch_size=100), "at least one full"),
        (dict(distributed="yes"), "distributed"),
        (
            dict(
                checkpoint_dir=str(tmp_path),
                weight_averaging_epochs=1.0,
                random_state=0,
            ),
            "weight averaging",
        ),
        (dict(checkpoint_dir=3), "checkpoint_dir"),
        (dict(checkpoint_dir=str(tmp_path), random_state=None), "integer random_state"),
    ]
    for params, match in bad:
        with pytest.raises(ValueError, match=match):
            ViLUClassifier(**params).fit(X, T, y)


def test_checkpoint_resumes_to_the_uninterrupted_weights(tmp_path):
    import _dist_worker

    store = write_store(tmp_path / "store")
    kw = dict(epochs=3, batch=64, distributed=True)
    ref = _dist_worker.fit_store(str(store), **kw)
    ck = str(tmp_path / "ck")
    # Ctrl-C at step 22 (epoch 3 of 3, 9 steps each): epochs 1-2 are checkpointed
    # the incomplete model is kept, and the interrupt goes on to the caller
    with pytest.raises(KeyboardInterrupt, match="interrupted after 2 of 3 epochs"):
        _dist_worker.fit_store(str(store), checkpoint_dir=ck, kill=(22, 0, "int"), **kw)
    assert open_history_epochs(ck) == 2
    resumed = _dist_worker.fit_store(str(store), checkpoint_dir=ck, **kw)
    assert resumed["n_epochs"] == 3 and resumed["n_steps"] == ref["n_steps"]
    weights = [k for k in ref if k.startswith("w:")]
    assert max(np.abs(ref[k] - resumed[k]).max() for k in weights) <= 1e-6
    # a finished checkpoint trains no more; another run's is refused
    again = _dist_worker.fit_store(str(store), checkpoint_dir=ck, **kw)
    assert max(np.abs(ref[k] - again[k]).max() for k in weights) <= 1e-6
    with pytest.raises(ValueError, match="another training run.*max_epochs"):
        _dist_worker.fit_store(str(store), checkpoint_dir=ck, **{**kw, "epochs": 4})


# ---------------------------------------------------------- two processes
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(store, out, *args, expect_ok=True):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(WORKER),
        str(store),
        "--out",
        str(out),
        *args,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if expect_ok:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def _one_process(store, mode, branch_loss="joint"):
    import _dist_worker

    return _dist_worker.fit_store(
        str(store),
        mode=mode,
        epochs=3,
        batch=64,
        distributed=False,
        branch_loss=branch_loss,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "branch_loss"),
    [("classification", "joint"), ("caption", "joint"), ("caption", "separate")],
)
def test_two_processes_match_one_process(tmp_path, mode, branch_loss):
    store = write_store(tmp_path / "store")
    args = ("--mode", mode, "--verbose", "1", "--branch-loss", branch_loss)
    proc = _launch(store, tmp_path / "two.npz", *args)
    two = np.load(tmp_path / "two.npz")
    # only the main process prints the per-epoch table
    assert proc.stdout.count("train_loss") == 1, proc.stdout
    one = _one_process(store, mode, branch_loss)
    assert int(two["n_epochs"]) == one["n_epochs"] == 3
    assert int(two["n_steps"]) == one["n_steps"] == 3 * (600 // 64)
    delta = np.abs(two["conf"] - one["conf"]).max()
    print(f"{mode}: max |delta decision_function| = {delta:.2g}")
    assert delta <= 1e-4
    np.testing.assert_allclose(two["train_loss"], one["train_loss"], rtol=1e-5)


@pytest.mark.slow
def test_killed_process_resumes_to_the_same_weights(tmp_path):
    store = write_store(tmp_path / "store")
    _launch(store, tmp_path / "ref.npz", "--checkpoint-dir", str(tmp_path / "ck_ref"))
    ck = str(tmp_path / "ck")
    # process 1 dies at step 22 (epoch 3 of 3, 9 steps each); torchrun stops both
    killed = _launch(
        store,
        tmp_path / "x.npz",
        "--checkpoint-dir",
        ck,
        "--kill-at",
        "22",
        expect_ok=False,
    )
    assert killed.returncode != 0 and not (tmp_path / "x.npz").exists()
    assert open_history_epochs(ck) == 2
    _launch(store, tmp_path / "resumed.npz", "--checkpoint-dir", ck)
    ref, resumed = np.load(tmp_path / "ref.npz"), np.load(tmp_path / "resumed.npz")
    weights = [k for k in ref.files if k.startswith("w:")]
    assert weights and int(resumed["n_epochs"]) == 3
    assert max(np.abs(ref[k] - resumed[k]).max() for k in weights) <= 1e-6


def open_history_epochs(folder):
    from vilu_sklearn._distributed import completed_epochs

    return completed_epochs(folder)


def test_nan_in_a_shard_is_found_unless_assumed_finite(tmp_path):
    from vilu_sklearn._validation import check_embeddings

    write_store(tmp_path)
    bad = np.load(tmp_path / "img_emb" / "img_emb_2.npy")
    bad[7, 3] = np.nan
    np.save(tmp_path / "img_emb" / "img_emb_2.npy", bad)
    with pytest.raises(ValueError, match="X_img contains NaN.*row 257"):
        check_embeddings(open_embedding_store(tmp_path).img)
    check_embeddings(open_embedding_store(tmp_path, assume_finite=True).img)


def test_training_example_runs_in_one_process(tmp_path, capsys):
    import importlib.util

    path = ROOT / "examples" / "distributed_training.py"
    spec = importlib.util.spec_from_file_location("distributed_training", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    store = str(tmp_path / "store")
    example.main(
        ["make-store", store, "--rows", "600", "--shard-rows", "256", "--dim", "32"]
    )
    assert open_embedding_store(store).img.shape == (600, 32)
    out, js = tmp_path / "m.safetensors", tmp_path / "fit.json"
    example.main(["train", store, "--batch", "128", "--epochs", "2", "--device", "cpu",
                  "--out", str(out), "--json", str(js)])  # fmt: skip
    assert out.is_file() and "AUROC" in capsys.readouterr().out
    assert load(out).n_epochs_ == 2


@pytest.mark.slow
def test_benchmark_script_runs(tmp_path):
    cmd = [
        sys.executable, str(ROOT / "examples" / "distributed_benchmark.py"),
        "--rows", "1024", "--dim", "32", "--batch", "128", "--epochs", "2",
        "--shard-rows", "128", "--processes", "1", "--memory-shards", "2", "8",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    table = out.stdout.split("sharded reader")[1].split("### LAION")[0]
    rows = [line.split("|") for line in table.splitlines() if line.startswith("| ")]
    assert [int(r[1]) for r in rows[1:]] == [2, 8]
    assert "| 400,000,000 | 32 |" in out.stdout


@pytest.mark.slow
def test_reader_memory_does_not_grow_with_the_number_of_shards(tmp_path):
    import importlib.util

    path = ROOT / "examples" / "distributed_benchmark.py"
    spec = importlib.util.spec_from_file_location("distributed_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    peaks = {}
    for shards in (4, 32):  # 4 MiB per shard (image + text): 16 and 128 MiB
        store = tmp_path / f"s{shards}"
        bench.make_store(store, shards * 4096, 4096, 256)
        peaks[shards] = bench.reader_memory(store, 512)
        assert peaks[shards]["rows"] == shards * 4096
    small, large = peaks[4], peaks[32]
    # the store grows by 112 MiB; the reader's memory by far less than a shard
    assert large["numpy_peak"] < small["numpy_peak"] * 1.5 + 2**20
    assert large["anon_growth"] < small["anon_growth"] + 4 * 2**20
