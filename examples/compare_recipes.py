"""Train ViLU with given settings on an embeddings file and print its test AUROC.

This is the script behind the table of docs/vilu.md, which chose the defaults of
``ViLUClassifier``. Each run prints the VLM's accuracy, MSP's AUROC (the reference
to beat) and ViLU's AUROC on the test split, with the epochs run and the fit time.

Example (the shared CIFAR-10 surrogate embeddings)::

    python examples/compare_recipes.py ../shared/data/cifar10_mbv2_minilm.npz \
        '{"optimizer": "adamw", "lr": 1e-3, "max_epochs": 20, "warmup_epochs": 0}'

The file needs ``X_img_train``, ``y_train``, ``X_img_test``, ``y_test``, ``X_txt``
and optionally ``logit_scale`` (see docs/benchmark.md).
"""

from __future__ import annotations

import argparse
import json
import time

from sklearn.metrics import roc_auc_score

from vilu_sklearn import ViLUClassifier, correctness, zero_shot_predict
from vilu_sklearn.datasets import load_embeddings


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run one configuration and return its measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help=".npz file with a train/test split")
    parser.add_argument(
        "params", nargs="?", default="{}", help="ViLUClassifier parameters as JSON"
    )
    args = parser.parse_args(argv)
    d = load_embeddings(args.data)
    scale = d.logit_scale or 100.0
    y_tr = correctness(d.X_img_train, d.X_txt, d.y_train)
    y_te = correctness(d.X_img_test, d.X_txt, d.y_test)
    _, proba = zero_shot_predict(d.X_img_test, d.X_txt, logit_scale=scale)
    params = {"random_state": 0, **json.loads(args.params)}
    start = time.perf_counter()
    clf = ViLUClassifier(logit_scale=scale, **params).fit(d.X_img_train, d.X_txt, y_tr)
    out = {
        "vlm_accuracy": float(y_te.mean()),
        "msp_auroc": float(roc_auc_score(y_te, proba.max(axis=1))),
        "vilu_auroc": float(roc_auc_score(y_te, clf.decision_function(d.X_img_test))),
        "epochs": clf.n_epochs_,
        "best_epoch": clf.best_epoch_,
        "fit_seconds": time.perf_counter() - start,
    }
    print(json.dumps({"params": params, **out}))
    return out


if __name__ == "__main__":
    main()
