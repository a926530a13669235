"""Compare ViLU settings on a validation split carved from the training data.

This is the script behind the defaults table of docs/vilu.md. It never reads a
test split: only ``X_img_train``, ``y_train`` (or ``y_correct_train``),
``X_txt`` and ``logit_scale`` are loaded from the file, and a stratified
validation part of the training rows (``--validation-fraction``, fixed by
``--split-seed``) scores every configuration. Each configuration is fitted once
per seed (``--seeds``, at least 2) and the table reports the mean and the spread
(half the range across seeds) of the validation AUROC and FPR@95%TPR, with MSP
on the same rows as the reference. Read the test split once, for the final
table, with ``vilu-sklearn benchmark --data FILE``.

Example (the shared CIFAR-10 surrogate embeddings)::

    python examples/compare_recipes.py ../shared/data/cifar10_mbv2_minilm.npz \
        '{"name": "default"}' \
        '{"name": "paper", "posterior_head": false, "weight_averaging": null}'

Each configuration is a JSON object of ``ViLUClassifier`` parameters, with an
optional ``"name"`` and an optional ``"fit_labels"`` (default true: when the
file has class labels ``y_train``, they are passed to ``fit(..., labels=...)``,
as ``vilu-sklearn benchmark`` does; false trains on ``y_correct`` only).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from vilu_sklearn import ViLUClassifier, correctness, zero_shot_predict
from vilu_sklearn.metrics import auroc, fpr_at_tpr

TRAIN_KEYS = ("X_img_train", "y_train", "y_correct_train", "X_txt", "logit_scale")


def load_training_part(path: str) -> dict[str, Any]:
    """Read only the training arrays of an ``.npz`` file (never the test split)."""
    with np.load(path, allow_pickle=False) as f:
        data = {k: f[k] for k in TRAIN_KEYS if k in f.files}
    if "X_img_train" not in data or "X_txt" not in data:
        raise ValueError(f"{path} needs the arrays X_img_train and X_txt")
    if "y_correct_train" not in data:
        if "y_train" not in data:
            raise ValueError(f"{path} needs y_train or y_correct_train")
        data["y_correct_train"] = correctness(
            data["X_img_train"], data["X_txt"], data["y_train"]
        )
    data["logit_scale"] = float(data.get("logit_scale", 100.0))
    return data


def validation_split(
    y_correct: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (fit, validation) row indices of the training data."""
    idx = np.arange(len(y_correct))
    fit_idx, val_idx = train_test_split(
        idx, test_size=fraction, stratify=y_correct, random_state=seed
    )
    return np.sort(fit_idx), np.sort(val_idx)


def _spread(values: list[float]) -> tuple[float, float]:
    arr = 100 * np.asarray(values)
    return float(arr.mean()), float((arr.max() - arr.min()) / 2)


def run_config(
    data: dict[str, Any],
    split: tuple[np.ndarray, np.ndarray],
    params: dict[str, Any],
    seeds: list[int],
) -> dict[str, Any]:
    """Fit one configuration once per seed; validation AUROC/FPR95 mean and spread."""
    fit_idx, val_idx = split
    X, T, y = data["X_img_train"], data["X_txt"], data["y_correct_train"]
    params = dict(params)
    fit_kw = {}
    if params.pop("fit_labels", True) and "y_train" in data:
        fit_kw["labels"] = data["y_train"][fit_idx]  # as the benchmark does
    aurocs, fprs, secs, epochs = [], [], [], []
    for seed in seeds:
        start = time.perf_counter()
        clf = ViLUClassifier(
            logit_scale=data["logit_scale"], random_state=seed, **params
        ).fit(X[fit_idx], T, y[fit_idx], **fit_kw)
        secs.append(time.perf_counter() - start)
        conf = clf.decision_function(X[val_idx], T)
        aurocs.append(auroc(y[val_idx], conf))
        fprs.append(fpr_at_tpr(y[val_idx], conf))
        epochs.append(int(clf.n_epochs_))
    (a, da), (f, df) = _spread(aurocs), _spread(fprs)
    return {
        "auroc": a,
        "auroc_spread": da,
        "fpr95": f,
        "fpr95_spread": df,
        "fit_seconds": float(np.mean(secs)),
        "epochs": epochs,
        "seeds": list(seeds),
    }


def msp_reference(data: dict[str, Any], val_idx: np.ndarray) -> dict[str, float]:
    """MSP (max softmax of logit_scale * cos) on the validation rows."""
    _, proba = zero_shot_predict(
        data["X_img_train"][val_idx], data["X_txt"], logit_scale=data["logit_scale"]
    )
    y = data["y_correct_train"][val_idx]
    msp = proba.max(axis=1)
    return {"auroc": 100 * auroc(y, msp), "fpr95": 100 * fpr_at_tpr(y, msp)}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help=".npz file with X_img_train, y_train, X_txt")
    parser.add_argument(
        "configs", nargs="*", default=['{"name": "default"}'], help="JSON objects"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--validation-fraction", type=float, default=0.2)
    parser.add_argument("--split-seed", type=int, default=0)
    args = parser.parse_args(argv)
    if len(args.seeds) < 2:
        parser.error("--seeds: give at least 2 seeds, to report a spread")
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run every configuration, print a markdown table, return its rows."""
    args = _parse_args(argv)
    data = load_training_part(args.data)
    split = validation_split(
        data["y_correct_train"], args.validation_fraction, args.split_seed
    )
    msp = msp_reference(data, split[1])
    print(
        f"fit rows {len(split[0])}, validation rows {len(split[1])} "
        f"(split seed {args.split_seed}); MSP validation AUROC {msp['auroc']:.2f}, "
        f"FPR95 {msp['fpr95']:.2f}"
    )
    print("| configuration | val AUROC | val FPR95 | fit (s) | epochs |")
    print("|---|---|---|---|---|")
    rows = []
    for i, raw in enumerate(args.configs):
        params = json.loads(raw)
        name = params.pop("name", f"config {i}")
        res = {
            "name": name,
            "params": params,
            **run_config(data, split, params, args.seeds),
        }
        rows.append(res)
        print(
            f"| {name} | {res['auroc']:.2f} ± {res['auroc_spread']:.2f} "
            f"| {res['fpr95']:.2f} ± {res['fpr95_spread']:.2f} "
            f"| {res['fit_seconds']:.0f} | {res['epochs']} |",
            flush=True,
        )
    print(json.dumps({"msp": msp, "rows": rows}))
    return rows


if __name__ == "__main__":
    main()
