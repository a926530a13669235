"""Do the methods rank the same on the default synthetic data and on real embeddings?

Runs every estimator of :func:`vilu_sklearn.default_estimators` on

* the README main command's data (``vilu-sklearn benchmark`` without ``--data``:
  :func:`vilu_sklearn.datasets.make_vlm_embeddings` with the CLI defaults), and
* a real embeddings file, with the protocol of ``vilu-sklearn benchmark --data``,

and prints both test AUROCs per method, the Spearman rank correlation between
them, and whether every method is above chance (AUROC > 0.5) on the default
data. Those are the acceptance numbers of the synthetic generator: its
failures should be ordered by the methods as real failures are.

Example (the shared CIFAR-10 surrogate embeddings)::

    python examples/synthetic_realism.py ../shared/data/cifar10_mbv2_minilm.npz \
        --cache realism_cache.json

``--max-epochs`` shortens the torch-based estimators (for quick iterations; the
acceptance run uses the defaults). ``--cache`` keeps the real-data AUROC of every
estimator in a JSON file, keyed by the estimator's parameters, the source of its
module and the data file, so that reruns only refit what changed.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from vilu_sklearn import benchmark, default_estimators
from vilu_sklearn._cli import _file_data, _synthetic_data


def _auroc_table(estimators: Mapping[str, Any], data: Mapping[str, Any]) -> dict:
    """Test AUROC of every estimator on one train/test split."""
    rows = benchmark(
        estimators,
        data["X_img_train"],
        data["X_txt"],
        data["y_train"],
        data["X_img_test"],
        data["y_test"],
        y_kind=data.get("y_kind", "labels"),
        n_resamples=0,
        as_frame=False,
        progress=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    return {row["method"]: float(row["auroc"]) for row in rows}


def _cache_key(estimator: Any, data_id: str) -> str:
    """Identifies one (estimator configuration, code, data) combination."""
    source = inspect.getsource(sys.modules[type(estimator).__module__])
    text = "\n".join([repr(sorted(estimator.get_params().items())), source, data_id])
    return hashlib.sha256(text.encode()).hexdigest()


def cached_aurocs(
    estimators: Mapping[str, Any],
    data: Mapping[str, Any],
    data_id: str,
    cache: dict[str, float] | None = None,
) -> dict[str, float]:
    """AUROCs on ``data``, fitting only the estimators missing from ``cache``."""
    cache = {} if cache is None else cache
    keys = {name: _cache_key(est, data_id) for name, est in estimators.items()}
    todo = {name: est for name, est in estimators.items() if keys[name] not in cache}
    if todo:
        for name, value in _auroc_table(todo, data).items():
            cache[keys[name]] = value
    return {name: cache[keys[name]] for name in estimators}


def compare(default: Mapping[str, float], real: Mapping[str, float]) -> dict:
    """Rank agreement of two AUROC tables and the below-chance methods."""
    names = [name for name in default if name in real]
    a = np.array([default[n] for n in names])
    b = np.array([real[n] for n in names])
    rho = float(spearmanr(a, b).statistic) if len(names) > 2 else float("nan")
    return {
        "methods": names,
        "spearman": rho,
        "below_chance": [n for n in names if default[n] <= 0.5],
    }


def report(default: Mapping[str, float], real: Mapping[str, float]) -> str:
    """Printable table and verdict."""
    result = compare(default, real)
    names = result["methods"]
    rank_d = {n: r for r, n in enumerate(sorted(names, key=lambda n: -default[n]), 1)}
    rank_r = {n: r for r, n in enumerate(sorted(names, key=lambda n: -real[n]), 1)}
    lines = [
        "| Method | AUROC default data | rank | AUROC real data | rank |",
        "|---|---|---|---|---|",
    ]
    for n in sorted(names, key=lambda n: -real[n]):
        lines.append(
            f"| {n} | {100 * default[n]:.1f} | {rank_d[n]} | "
            f"{100 * real[n]:.1f} | {rank_r[n]} |"
        )
    ok = result["spearman"] >= 0.8 and not result["below_chance"]
    lines += [
        "",
        f"Spearman rank correlation: {result['spearman']:.3f} (target >= 0.8)",
        f"Below chance on the default data: {result['below_chance'] or 'none'}",
        f"Acceptance: {'PASS' if ok else 'FAIL'}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Run both benchmarks and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("real", help=".npz embeddings file (as for --data)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--methods", help="comma-separated subset")
    parser.add_argument("--cache", help="JSON file caching the real-data AUROCs")
    parser.add_argument(
        "--reuse-real",
        help=(
            'JSON {"method": auroc} of real-data AUROCs measured elsewhere with '
            "the same protocol; those methods are not refitted on the real data"
        ),
    )
    args = parser.parse_args(argv)

    def estimators(logit_scale: float) -> dict[str, Any]:
        est = default_estimators(
            logit_scale=logit_scale, random_state=args.seed, max_epochs=args.max_epochs
        )
        if args.methods:
            est = {m: est[m] for m in args.methods.split(",")}
        return est

    synth = _synthetic_data(args.seed)
    default = _auroc_table(estimators(synth["logit_scale"]), synth)
    path = Path(args.real)
    real_data = _file_data(path, "classification", 0.3, args.seed)
    stat = path.stat()
    data_id = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|seed={args.seed}"
    cache_path = Path(args.cache) if args.cache else None
    cache = (
        json.loads(cache_path.read_text()) if cache_path and cache_path.exists() else {}
    )
    reused = json.loads(args.reuse_real) if args.reuse_real else {}
    real_est = estimators(real_data["logit_scale"] or 100.0)
    real = cached_aurocs(
        {n: e for n, e in real_est.items() if n not in reused},
        real_data,
        data_id,
        cache,
    )
    real.update({n: float(v) for n, v in reused.items() if n in real_est})
    if reused:
        print(f"real-data AUROCs reused, not refitted: {sorted(reused)}")
    if cache_path:
        cache_path.write_text(json.dumps(cache, indent=1))
    print(f"default data: {synth['description']}")
    print(f"real data: {real_data['description']}\n")
    print(report(default, real))
    return {"default": default, "real": real, **compare(default, real)}


if __name__ == "__main__":
    main()
