"""Does the default ViLU overfit with few images per class? (validation only)

Fits ViLU variants and the label-trained ``LinearProbe`` on a development split
of the *training* rows (the first 20 % of ``numpy.random.default_rng(1000)
.permutation`` held out for validation; the test split is never read) and prints
their validation AUROC, with MSP for reference:

* the main job's default data (``vilu-sklearn benchmark --seed S``: 50
  synthetic classes, 10,000 training rows, so 160 fit images per class), one row
  per ``--seeds`` entry (the data's seed; every model has ``random_state=0``,
  ``--model-seed`` changes it), and
* optionally a real ``.npz`` file (``--data``; the shared CIFAR-10 surrogate has
  40,000 training rows, 3,200 fit images per class).

Every fit gets the class labels. The variants (``--variants``):
``default`` (``ViLUClassifier()``), ``early_stopping`` (``early_stopping=True``:
10 % of the fit rows held out again, the best epoch's weights restored),
``epochs10`` and ``epochs40`` (``max_epochs``). docs/vilu.md ("Fewer images per
class") quotes its output::

    OMP_NUM_THREADS=1 python examples/small_data.py --seeds 0,1,2 \\
        --data ../shared/data/cifar10_mbv2_minilm.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from vilu_sklearn import ViLUClassifier, correctness
from vilu_sklearn._cli import _file_data, _synthetic_data
from vilu_sklearn.baselines import MSP, LinearProbe

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "early_stopping": {"early_stopping": True},
    "epochs10": {"max_epochs": 10},
    "epochs40": {"max_epochs": 40},
}
VALIDATION_SHARE = 0.2


def dev_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, validation rows) of ``n`` training rows."""
    perm = np.random.default_rng(1000).permutation(n)
    n_val = int(round(VALIDATION_SHARE * n))
    return perm[n_val:], perm[:n_val]


def _estimator(name: str, logit_scale: float, seed: int, max_epochs: int | None) -> Any:
    if name == "MSP":
        return MSP(logit_scale=logit_scale)
    if name == "LinearProbe":
        return LinearProbe(logit_scale=logit_scale, random_state=seed)
    params = dict(VARIANTS[name])
    if max_epochs is not None:  # quick runs: scale every variant's epochs down
        params["max_epochs"] = max(1, max_epochs * params.get("max_epochs", 20) // 20)
    return ViLUClassifier(logit_scale=logit_scale, random_state=seed, **params)


def validation_aurocs(
    data: dict[str, Any], variants: list[str], seed: int, max_epochs: int | None
) -> dict[str, float]:
    """Validation AUROC (%) of MSP, LinearProbe and each ViLU variant."""
    X, T, y = data["X_img_train"], data["X_txt"], data["y_train"]
    X = np.asarray(X, dtype=np.float32)
    y_correct = correctness(X, np.asarray(T, np.float32), y, normalize=False)
    fit, val = dev_split(len(X))
    out = {}
    for name in ["MSP", "LinearProbe", *variants]:
        scale = float(data["logit_scale"] or 100.0)
        est = _estimator(name, scale, seed, max_epochs)
        kwargs = {} if name == "MSP" else {"labels": y[fit]}
        est.fit(X[fit], T, y_correct[fit], **kwargs)
        score = est.decision_function(X[val], T)
        out[name] = 100 * roc_auc_score(y_correct[val], score)
        print(f"  {data['name']}: {name} {out[name]:.2f}", file=sys.stderr)
    return out


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--data", help="a real .npz file (as for --data)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--model-seed", type=int, default=0)
    parser.add_argument("--max-epochs", type=int, help="quick runs only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Print one table row per data set; return the rows."""
    args = _parse(argv)
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    sources = []
    for seed in (int(s) for s in args.seeds.split(",") if s):
        name = f"default data, seed {seed}"
        sources.append(dict(_synthetic_data(seed), name=name))
    if args.data:
        real = _file_data(Path(args.data), "classification", 0.3, 0)
        sources.append(dict(real, name=Path(args.data).name))
    names = ["MSP", "LinearProbe", *variants]
    print("| data | fit rows | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    rows = []
    for data in sources:
        aurocs = validation_aurocs(data, variants, args.model_seed, args.max_epochs)
        n_fit = len(dev_split(len(data["X_img_train"]))[0])
        cells = " | ".join(f"{aurocs[n]:.2f}" for n in names)
        print(f"| {data['name']} | {n_fit} | {cells} |", flush=True)
        rows.append({"data": data["name"], **aurocs})
    return rows


if __name__ == "__main__":
    main()
