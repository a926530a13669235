"""Do the methods rank, and ViLU lead, on the default data as on real embeddings?

Runs the estimators of :func:`vilu_sklearn.default_estimators` on

* the README main command's data (``vilu-sklearn benchmark`` without ``--data``:
  :func:`vilu_sklearn.datasets.make_vlm_embeddings` with the CLI defaults), and
* a real embeddings file, with the protocol of ``vilu-sklearn benchmark --data``,

under two protocols: **fixed** classes (train and test on the same classes) and
**unseen** classes (``benchmark(..., protocol="unseen-classes")``: fitted on
the seen half of the classes, tested on the test images of the other half
against their prompts, mean over class splits). For each protocol and data set
it prints the test AUROC of every method and

* **lead**: ViLU's AUROC minus that of the best *other* method trained with no
  more supervision than ``y_correct`` (supervision "none" or "y_correct"; ViLU's
  own variants and the label-trained probes are not "other methods" here), and
  the ratio of the synthetic lead to the real one;
* **label value**: ViLU fitted with the class labels minus ViLU fitted on
  ``y_correct`` only, and the ratio of the synthetic to the real one;
* the **Spearman** rank correlation of the methods' AUROCs between the two data
  sets, and the **minimum AUROC** on the default data (every method should be
  above chance).

Targets (issue 20): both effects within a factor 1.5 of the real ones (ratio
in [1/1.5, 1.5]), Spearman >= 0.8 and every default-data AUROC > 50. Where the
real effect is within 1 AUROC point of zero (ViLU against MSP on unseen
classes: a tie) a ratio means nothing (its sign and size follow the noise of
the denominator), so the two effects are compared as a difference instead,
which must then be at most 1 AUROC point (:func:`effect_check`).

Example (the shared CIFAR-10 surrogate embeddings)::

    python examples/synthetic_realism.py ../shared/data/cifar10_mbv2_minilm.npz \
        --cache realism_cache.json

``--published-real`` takes the real AUROCs from the CIFAR-10 tables of
docs/benchmark.md (both protocols) instead of refitting (only meaningful for that
file; ViLU fitted on ``y_correct`` only is not in the unseen-classes table and is
fitted). ``--reuse-real`` / ``--reuse-real-unseen`` take real-data AUROCs
measured elsewhere as JSON.
``--max-epochs`` shortens the torch-based estimators (for quick iterations; the
acceptance run uses the defaults). ``--cache`` keeps the real-data AUROC of every
estimator in a JSON file, keyed by the estimator's parameters, the source of its
module, the data file and the protocol, so that reruns only refit what changed.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from vilu_sklearn import benchmark, default_estimators
from vilu_sklearn._cli import _file_data, _synthetic_data

#: row name of ViLU fitted on ``y_correct`` only (the label-value comparison)
NO_LABELS = "ViLU (y_correct only)"
REFERENCE = "ViLU"
#: fixed-protocol test AUROCs on the shared CIFAR-10 file (docs/benchmark.md,
#: seed 0; ViLU without labels, the paper configuration and the probes from
#: the measurements quoted in issues 17 and 20)
PUBLISHED_CIFAR10 = {
    "ViLU": 0.840, NO_LABELS: 0.8274, "ViLU (paper)": 0.8235, "LVU": 0.792,
    "MSP": 0.802, "MCM": 0.770, "Entropy": 0.802, "Doctor": 0.803,
    "Energy": 0.734, "MaxLogit": 0.754, "Margin": 0.795,
    "TemperatureScaling": 0.804, "RelU": 0.803, "TrustScore": 0.769, "KNN": 0.648,
    "Mahalanobis": 0.614, "RelativeMahalanobis": 0.743, "TrustVLM": 0.803,
    "ICPE": 0.803, "LinearProbe": 0.8288, "MLPProbe": 0.8356,
}  # fmt: skip
#: unseen-classes test AUROCs on the shared CIFAR-10 file (docs/benchmark.md,
#: 5 class splits of 5 / 5, seed 0; the applicable methods)
PUBLISHED_CIFAR10_UNSEEN = {
    "ViLU": 0.833, "ViLU (paper)": 0.563, "LVU": 0.557, "MSP": 0.833,
    "MCM": 0.801, "Entropy": 0.831, "Doctor": 0.833, "Energy": 0.725,
    "MaxLogit": 0.746, "Margin": 0.831, "TemperatureScaling": 0.834, "KNN": 0.531,
}  # fmt: skip
FACTOR = 1.5
#: below this real effect (AUROC, as a fraction) effects are compared as a
#: difference, within the same tolerance
TIE = 0.01


def _auroc_table(
    estimators: Mapping[str, Any],
    data: Mapping[str, Any],
    protocol: str = "fixed",
    fit_labels: bool = True,
    n_class_splits: int = 5,
) -> dict:
    """Test AUROC of every (applicable) estimator under ``protocol``."""
    kwargs: dict[str, Any] = {}
    if protocol == "unseen":
        kwargs = dict(
            protocol="unseen-classes",
            unseen_fraction=0.5,
            n_class_splits=n_class_splits,
        )
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
        fit_labels=fit_labels,
        reference=None,
        **kwargs,
    )
    return {
        row["method"]: float(row["auroc"])
        for row in rows
        if row.get("variant", "unseen") == "unseen" and "auroc" in row
    }


def _cache_key(estimator: Any, data_id: str) -> str:
    """Identifies one (estimator class and configuration, code, data) combination.

    The class name matters: several estimators share a module and parameters
    (``MSP``, ``MaxLogit`` and ``Margin`` all take ``logit_scale`` only).
    """
    cls = type(estimator)
    source = inspect.getsource(sys.modules[cls.__module__])
    params = repr(sorted(estimator.get_params().items()))
    text = "\n".join([cls.__qualname__, params, source, data_id])
    return hashlib.sha256(text.encode()).hexdigest()


def cached_aurocs(
    estimators: Mapping[str, Any],
    data: Mapping[str, Any],
    data_id: str,
    cache: dict[str, float] | None = None,
    **table_kwargs: Any,
) -> dict[str, float]:
    """AUROCs on ``data``, fitting only the estimators missing from ``cache``.

    ``table_kwargs`` (protocol, fit_labels, n_class_splits) go to the table and
    into the cache key.
    """
    cache = {} if cache is None else cache
    data_id = f"{data_id}|{sorted(table_kwargs.items())}" if table_kwargs else data_id
    keys = {name: _cache_key(est, data_id) for name, est in estimators.items()}
    todo = {name: est for name, est in estimators.items() if keys[name] not in cache}
    if todo:
        for name, value in _auroc_table(todo, data, **table_kwargs).items():
            cache[keys[name]] = value
    return {name: cache[keys[name]] for name in estimators if keys[name] in cache}


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
        "min_auroc": float(min(default.values())) if default else float("nan"),
    }


def effect_sizes(table: Mapping[str, float], eligible: set[str]) -> dict:
    """ViLU's lead over the best eligible other method, and the labels' value.

    ``eligible``: the methods trained with no more supervision than
    ``y_correct`` (ViLU variants excluded by the caller). NaN where a row is
    missing.
    """
    others = {n: v for n, v in table.items() if n in eligible}
    nan = float("nan")
    best = max(others, key=lambda n: others[n]) if others else None
    vilu = table.get(REFERENCE, nan)
    return {
        "best_other": best,
        "lead": vilu - others[best] if best else nan,
        "label_value": vilu - table.get(NO_LABELS, nan),
    }


def effect_check(synthetic: float, real: float) -> tuple[bool, str]:
    """Whether a default-data effect matches the real one, and how it was judged.

    A ratio within ``[1 / FACTOR, FACTOR]`` when the real effect is at least
    ``TIE`` away from zero; otherwise (a real tie, where a ratio is meaningless)
    an absolute difference of at most ``TIE``.
    """
    if math.isnan(synthetic) or math.isnan(real):
        return False, "missing"
    if abs(real) < TIE:
        diff = synthetic - real
        ok = abs(diff) <= TIE
        return (
            ok,
            f"real effect below {100 * TIE:g} point: difference "
            f"{100 * diff:+.2f} (target within ±{100 * TIE:g})",
        )
    ratio = synthetic / real
    ok = 1.0 / FACTOR <= ratio <= FACTOR
    return ok, f"ratio {ratio:.2f} (target in [{1 / FACTOR:.2f}, {FACTOR}])"


def report(
    default: Mapping[str, float],
    real: Mapping[str, float],
    eligible: set[str] | None = None,
    protocol: str = "fixed",
) -> str:
    """Printable table, effect sizes and verdict for one protocol."""
    result = compare(default, real)
    names = result["methods"]
    rank_d = {n: r for r, n in enumerate(sorted(names, key=lambda n: -default[n]), 1)}
    rank_r = {n: r for r, n in enumerate(sorted(names, key=lambda n: -real[n]), 1)}
    lines = [
        f"Protocol: {protocol} classes",
        "| Method | AUROC default data | rank | AUROC real data | rank |",
        "|---|---|---|---|---|",
    ]
    for n in sorted(names, key=lambda n: -real[n]):
        lines.append(
            f"| {n} | {100 * default[n]:.1f} | {rank_d[n]} | "
            f"{100 * real[n]:.1f} | {rank_r[n]} |"
        )
    ok = result["spearman"] >= 0.8 and not result["below_chance"]
    lines += [""]
    if eligible is not None:
        eff_d, eff_r = effect_sizes(default, eligible), effect_sizes(real, eligible)
        lead_ok, lead_how = effect_check(eff_d["lead"], eff_r["lead"])
        label_ok, label_how = effect_check(eff_d["label_value"], eff_r["label_value"])
        lines += [
            "Lead: ViLU minus the best other method trained with no more "
            "supervision than y_correct (none / y_correct; ViLU variants and "
            "label-trained probes excluded).",
            f"  default data: {100 * eff_d['lead']:+.2f} (vs {eff_d['best_other']}); "
            f"real data: {100 * eff_r['lead']:+.2f} (vs {eff_r['best_other']}); "
            f"{lead_how}",
            f"Label value (ViLU with labels minus {NO_LABELS}): default data "
            f"{100 * eff_d['label_value']:+.2f}; real data "
            f"{100 * eff_r['label_value']:+.2f}; {label_how}",
        ]
        ok = ok and lead_ok and label_ok
    lines += [
        f"Spearman rank correlation: {result['spearman']:.3f} (target >= 0.8)",
        f"Minimum AUROC on the default data: {100 * result['min_auroc']:.1f}",
        f"Below chance on the default data: {result['below_chance'] or 'none'}",
        f"Acceptance ({protocol}): {'PASS' if ok else 'FAIL'}",
    ]
    return "\n".join(lines)


def _eligible(estimators: Mapping[str, Any], fit_labels: bool = True) -> set[str]:
    """Non-ViLU methods whose supervision is "none" or "y_correct"."""
    from vilu_sklearn._protocols import accepts_labels, requires_labels, supervision

    out = set()
    for name, est in estimators.items():
        given = fit_labels and (requires_labels(est) or accepts_labels(est))
        if not name.startswith("ViLU") and supervision(est, given) != "labels":
            out.add(name)
    return out


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("real", help=".npz embeddings file (as for --data)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--methods", help="comma-separated subset")
    parser.add_argument(
        "--unseen-methods", help="comma-separated subset for the unseen protocol"
    )
    parser.add_argument("--protocols", default="fixed,unseen")
    parser.add_argument("--class-splits", type=int, default=5)
    parser.add_argument("--cache", help="JSON file caching the real-data AUROCs")
    parser.add_argument(
        "--published-real",
        action="store_true",
        help="fixed protocol: the CIFAR-10 AUROCs of docs/benchmark.md, no refit",
    )
    parser.add_argument(
        "--reuse-real",
        help=(
            'JSON {"method": auroc} of real-data AUROCs measured elsewhere with '
            "the fixed protocol; those methods are not refitted on the real data"
        ),
    )
    parser.add_argument(
        "--reuse-real-unseen",
        help="as --reuse-real, for the unseen-classes protocol",
    )
    return parser.parse_args(argv)


def _tables(
    args: argparse.Namespace,
    protocol: str,
    est: Any,
    synth: Mapping[str, Any],
    real_data: Mapping[str, Any],
    data_id: str,
    cache_path: Path | None,
) -> tuple[dict[str, float], dict[str, float]]:
    """Default-data and real-data AUROCs of one protocol (ViLU twice).

    The cache file is read after the default-data fits (another run may have
    filled it meanwhile) and written back after the real-data ones.
    """
    subset = args.unseen_methods if protocol == "unseen" else None

    def pick(logit_scale: float) -> dict[str, Any]:
        out = est(logit_scale)
        return {m: out[m] for m in subset.split(",")} if subset else out

    kw = dict(protocol=protocol, n_class_splits=args.class_splits)
    s_est, r_est = pick(synth["logit_scale"]), pick(real_data["logit_scale"] or 100.0)
    default = _auroc_table(s_est, synth, **kw)
    if REFERENCE in s_est:
        one = {NO_LABELS: s_est[REFERENCE]}
        default.update(_auroc_table(one, synth, fit_labels=False, **kw))
    reused: dict[str, float] = {}
    if args.published_real:
        reused = dict(
            PUBLISHED_CIFAR10 if protocol == "fixed" else PUBLISHED_CIFAR10_UNSEEN
        )
    given = args.reuse_real if protocol == "fixed" else args.reuse_real_unseen
    if given:
        reused.update(json.loads(given))
    exists = cache_path is not None and cache_path.exists()
    cache = json.loads(cache_path.read_text()) if cache_path and exists else {}
    real = cached_aurocs(
        {n: e for n, e in r_est.items() if n not in reused},
        real_data,
        data_id,
        cache,
        **kw,
    )
    if REFERENCE in r_est and NO_LABELS not in reused:
        one = {NO_LABELS: r_est[REFERENCE]}
        real.update(
            cached_aurocs(one, real_data, data_id, cache, fit_labels=False, **kw)
        )
    if cache_path:
        cache_path.write_text(json.dumps(cache, indent=1))
    real.update(
        {n: float(v) for n, v in reused.items() if n in r_est or n == NO_LABELS}
    )
    if reused:
        print(f"{protocol}: real-data AUROCs reused, not refitted: {sorted(reused)}")
    return default, real


def main(argv: list[str] | None = None) -> dict:
    """Run both benchmarks under each protocol and print the comparison."""
    args = _parse(argv)

    def estimators(logit_scale: float) -> dict[str, Any]:
        est = default_estimators(
            logit_scale=logit_scale, random_state=args.seed, max_epochs=args.max_epochs
        )
        if args.methods:
            est = {m: est[m] for m in args.methods.split(",")}
        return est

    synth = _synthetic_data(args.seed)
    path = Path(args.real)
    real_data = _file_data(path, "classification", 0.3, args.seed)
    stat = path.stat()
    data_id = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|seed={args.seed}"
    cache_path = Path(args.cache) if args.cache else None
    print(f"default data: {synth['description']}")
    print(f"real data: {real_data['description']}\n")
    out: dict[str, Any] = {}
    for protocol in args.protocols.split(","):
        default, real = _tables(
            args, protocol, estimators, synth, real_data, data_id, cache_path
        )
        eligible = _eligible(estimators(synth["logit_scale"]))
        print(report(default, real, eligible, protocol) + "\n", flush=True)
        out[protocol] = {
            "default": default,
            "real": real,
            **compare(default, real),
            "default_effects": effect_sizes(default, eligible),
            "real_effects": effect_sizes(real, eligible),
        }
    first = out[next(iter(out))]
    return {"default": first["default"], "real": first["real"], **out}


if __name__ == "__main__":
    main()
