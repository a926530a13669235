"""How much can any failure predictor gain over MSP on these embeddings?

Issue 17 asks ViLU to beat the VLM's own softmax (MSP) by 2 AUROC on classes it
never saw in training, and the best label-trained probe by 1 AUROC on fixed
classes. This script measures what the data allow, on a validation split of the
training rows only (the test arrays of the file are not used):

* **unseen classes, oracle**: for each class split (the benchmark's
  ``class_splits``), a probe fitted *on the unseen classes' own training
  images with their labels* -- information no method of the unseen-classes
  protocol has -- scored on held-out images of those classes against their
  prompts. Its gain over MSP is a practical ceiling for any predictor that
  only saw the other classes.
* **unseen classes, transfer**: temperature scaling fitted on the seen
  classes (a class-agnostic method that transfers).
* **fixed classes**: the probes and the default ViLU (with the labels) on the
  same rows, the ViLU score split into its two terms (the posterior head and
  the ViLU branch: attention over the candidates, predicted text, MLP), and
  the rank average of the two probes as an ensemble hint.

Run (about 10 minutes on one core)::

    python examples/headroom.py ../shared/data/cifar10_mbv2_minilm.npz

``--skip-vilu`` leaves out the ViLU fit of the fixed-class part.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
from scipy.stats import rankdata

from vilu_sklearn import ViLUClassifier
from vilu_sklearn._protocols import class_splits
from vilu_sklearn.baselines import MSP, LinearProbe, MLPProbe, TemperatureScaling
from vilu_sklearn.datasets import load_embeddings
from vilu_sklearn.metrics import auroc as _auroc


def dev_split(
    X: np.ndarray, y: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (fit, validation) of the training arrays."""
    order = np.random.default_rng(seed).permutation(len(X))
    n_val = int(round(fraction * len(X)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def subset(
    X: np.ndarray, labels: np.ndarray, T: np.ndarray, classes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of ``classes``, their prompts, re-indexed labels and y_correct."""
    rows = np.isin(labels, classes)
    position = np.full(len(T), -1)
    position[classes] = np.arange(len(classes))
    lab = position[labels[rows]]
    Tc = T[classes]
    y_correct = ((X[rows] @ Tc.T).argmax(axis=1) == lab).astype(int)
    return X[rows], Tc, lab, y_correct


def probes(scale: float, seed: int) -> dict[str, Any]:
    return {
        "LinearProbe": LinearProbe(logit_scale=scale, random_state=seed),
        "MLPProbe": MLPProbe(logit_scale=scale, random_state=seed),
    }


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    return 100 * float(_auroc(y, score))


def unseen_split(
    data: dict[str, np.ndarray], seen: np.ndarray, unseen: np.ndarray, seed: int
) -> dict[str, float]:
    """MSP, transfer (temperature scaling) and in-domain oracle probes."""
    X, lab, T, s = data["X"], data["labels"], data["T"], data["scale"]
    fit, val = data["fit"], data["val"]
    Xs, Ts, _, ys = subset(X[fit], lab[fit], T, seen)
    Xo, To, lo, yo = subset(X[fit], lab[fit], T, unseen)
    Xv, Tv, _, yv = subset(X[val], lab[val], T, unseen)
    out = {
        "MSP": auroc(yv, MSP(logit_scale=s).fit(Xv, Tv, yv).decision_function(Xv, Tv))
    }
    ts = TemperatureScaling(logit_scale=s).fit(Xs, Ts, ys)
    out["TemperatureScaling (seen classes)"] = auroc(yv, ts.decision_function(Xv, Tv))
    ranks = []
    for name, est in probes(s, seed).items():
        score = est.fit(Xo, To, yo, labels=lo).decision_function(Xv, Tv)
        out[f"{name} (oracle: unseen classes' labels)"] = auroc(yv, score)
        ranks.append(rankdata(score))
    out["rank average of the two oracles"] = auroc(yv, sum(ranks))
    return out


def vilu_terms(clf: ViLUClassifier, X: np.ndarray, T: np.ndarray) -> np.ndarray:
    """(rows, 2): the posterior head's logit and the ViLU branch's logit."""
    import torch

    m = clf.net_.module_
    m.eval()
    with torch.no_grad():
        parts = m(
            torch.as_tensor(X, dtype=torch.float32),
            torch.as_tensor(T, dtype=torch.float32),
            return_parts=True,
        )
    return parts.numpy()[:, ::-1].copy()


def fixed_classes(
    data: dict[str, np.ndarray], seed: int, vilu: bool
) -> dict[str, float]:
    X, lab, T, s = data["X"], data["labels"], data["T"], data["scale"]
    fit, val = data["fit"], data["val"]
    all_classes = np.arange(len(T))
    Xf, _, lf, yf = subset(X[fit], lab[fit], T, all_classes)
    Xv, _, _, yv = subset(X[val], lab[val], T, all_classes)
    out = {"MSP": auroc(yv, MSP(logit_scale=s).fit(Xv, T, yv).decision_function(Xv, T))}
    ranks = []
    for name, est in probes(s, seed).items():
        score = est.fit(Xf, T, yf, labels=lf).decision_function(Xv, T)
        out[name] = auroc(yv, score)
        ranks.append(rankdata(score))
    out["rank average of the two probes"] = auroc(yv, sum(ranks))
    if vilu:
        clf = ViLUClassifier(logit_scale=s, random_state=seed)
        clf.fit(Xf, T, yf, labels=lf)
        terms = vilu_terms(clf, Xv, T)
        out["ViLU (labels)"] = auroc(yv, clf.decision_function(Xv, T))
        out["  its posterior term alone"] = auroc(yv, terms[:, 0])
        out["  its ViLU branch alone"] = auroc(yv, terms[:, 1])
    return out


def _print(title: str, rows: dict[str, float], ref: str = "MSP") -> None:
    print(f"\n{title}")
    for name, value in rows.items():
        print(f"  {name:<52} {value:6.2f}  ({value - rows[ref]:+.2f} vs {ref})")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", help=".npz embeddings file (as for --data)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--class-splits", type=int, default=5)
    p.add_argument("--unseen-fraction", type=float, default=0.5)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--skip-vilu", action="store_true")
    args = p.parse_args(argv)
    d = load_embeddings(args.data)
    X = np.asarray(d.X_img_train, dtype=np.float32)
    labels = np.asarray(d.y_train)
    fit, val = dev_split(X, labels, args.val_fraction, 1000 + args.seed)
    data = {"X": X, "labels": labels, "T": np.asarray(d.X_txt, dtype=np.float32),
            "scale": float(d.logit_scale), "fit": fit, "val": val}  # fmt: skip
    print(f"{args.data}: {len(fit)} fit / {len(val)} validation rows of the training "
          "arrays (the test arrays are not used)")  # fmt: skip
    splits = class_splits(
        len(data["T"]), args.unseen_fraction, args.class_splits, args.seed
    )
    per_split = [unseen_split(data, seen, unseen, args.seed) for seen, unseen in splits]
    mean = {k: float(np.mean([r[k] for r in per_split])) for k in per_split[0]}
    _print(f"Unseen classes: mean over {len(splits)} class splits", mean)
    best = [max(v for k, v in r.items() if "oracle" in k) - r["MSP"] for r in per_split]
    print("  best oracle minus MSP, per split: " + ", ".join(f"{g:+.2f}" for g in best))
    fixed = fixed_classes(data, args.seed, not args.skip_vilu)
    _print("Fixed classes", fixed)
    return {"unseen": mean, "unseen_per_split": per_split, "fixed": fixed}


if __name__ == "__main__":
    main()
