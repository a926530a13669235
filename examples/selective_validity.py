"""Do the certified thresholds and PPI intervals of vilu_sklearn.selective hold?

Acceptance script of issues 9 and 18 (prints numbers; not a timed test). For each
data set it repeats, over many random calibration/test splits (1,000 by default),

* calibration of a threshold for ``--target-risk`` with each method, and
  measures how often the selective risk of the returned threshold exceeded the
  target: on the test split, and on the whole population (exact for the
  synthetic model, the whole pool of rows for CIFAR-10). For "ltt" and "sgr"
  the population frequency must be at most ``delta`` plus the Monte-Carlo slack
  ``2.33 * sqrt(delta * (1 - delta) / n_splits)``, a one-sided 99 % binomial
  margin. "crc_joint" (conformal risk control) bounds the *expected* share of
  all predictions that are accepted and wrong: its mean population share must
  be at most the target plus 2.33 Monte-Carlo standard errors. "scan" is a
  heuristic without guarantee, shown for comparison. Coverage is compared with
  the oracle threshold chosen on the test split itself;
* prediction-powered inference of the VLM's accuracy from an audit set of
  ``--n-audit`` labelled samples (coverage of the 90 % interval, width against
  the labelled-only one);
* the PPI coverage table of issue 18: the 90 % interval of
  ``estimate_accuracy`` over audit sizes 20/50/200/1,000 and accuracies
  0.7/0.95/0.99/0.995 (each cell must be at least 0.87), and of
  ``estimate_selective_risk`` at a true selective risk of 1 %.

Data sets: a synthetic score-level population with a known P(correct |
confidence), drawn afresh for every split, and, with ``--data``, the shared
real-image CIFAR-10 embeddings with MSP confidences (``--vilu`` adds the
confidences of ONE ViLU trained on a separate part of X_img_train, its scores
reused for all splits; that takes minutes).

    OMP_NUM_THREADS=1 python examples/selective_validity.py \
        --data ../shared/data/cifar10_mbv2_minilm.npz
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from vilu_sklearn.metrics import coverage_at_risk
from vilu_sklearn.selective import (
    certify_threshold,
    estimate_accuracy,
    estimate_selective_risk,
)

METHODS: dict[str, dict[str, str]] = {
    "ltt": {"method": "ltt"},
    "ltt-hb": {"method": "ltt", "p_value": "hoeffding_bentkus"},
    "sgr": {"method": "sgr"},
    "crc_joint": {"method": "crc_joint"},
    "scan": {"method": "scan"},
}
PPI_SIZES = (20, 50, 200, 1000)
PPI_ACCURACIES = (0.7, 0.95, 0.99, 0.995)


def _test_risk(conf: np.ndarray, y: np.ndarray, t: float) -> tuple[float, float, float]:
    """Selective risk, coverage and share accepted-and-wrong of ``conf >= t``."""
    accepted = conf >= t
    if not accepted.any():
        return 0.0, 0.0, 0.0
    wrong = float(np.sum(accepted & (y == 0)))
    return wrong / accepted.sum(), float(accepted.mean()), wrong / len(y)


def threshold_validity(
    draw: Any,
    *,
    n_splits: int,
    target_risk: float,
    delta: float,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Repeat calibration on ``draw(rng) -> (conf_cal, y_cal, conf_te, y_te)``."""
    rng = np.random.default_rng(seed)
    keys = ("exceed", "exceed_pop", "risk", "coverage", "none", "joint", "joint_pop")
    stats: dict[str, dict[str, list[float]]] = {
        m: {k: [] for k in keys} for m in METHODS
    }
    population_risk = getattr(draw, "exact_risk", None)
    population_joint = getattr(draw, "exact_joint", None)
    oracle = []
    for _ in range(n_splits):
        c_cal, y_cal, c_te, y_te = draw(rng)
        oracle.append(coverage_at_risk(y_te, c_te, risk=target_risk))
        for name, kw in METHODS.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = certify_threshold(
                    c_cal, y_cal, target_risk=target_risk, delta=delta, **kw
                )
            risk, cov, joint = _test_risk(c_te, y_te, res.threshold)
            s = stats[name]
            s["exceed"].append(float(risk > target_risk))
            if population_risk is not None:
                s["exceed_pop"].append(
                    float(population_risk(res.threshold) > target_risk)
                )
            if population_joint is not None:
                s["joint_pop"].append(population_joint(res.threshold))
            s["risk"].append(risk)
            s["coverage"].append(cov)
            s["joint"].append(joint)
            s["none"].append(float(np.isinf(res.threshold)))
    return _summarise(stats, float(np.mean(oracle)))


def _summarise(
    stats: dict[str, dict[str, list[float]]], mean_oracle: float
) -> dict[str, dict[str, float]]:
    def mean(v: list[float]) -> float:
        return float(np.mean(v)) if v else math.nan

    out = {}
    for name, s in stats.items():
        cov = mean(s["coverage"])
        joint = s["joint_pop"] or s["joint"]
        out[name] = {
            "exceed_freq": mean(s["exceed"]),
            "exceed_freq_population": mean(s["exceed_pop"]),
            "mean_test_risk": mean(s["risk"]),
            "mean_joint_share": mean(joint),
            "joint_share_se": float(np.std(joint) / math.sqrt(len(joint))),
            "mean_coverage": cov,
            "oracle_coverage": mean_oracle,
            "coverage_vs_oracle": cov / mean_oracle if mean_oracle > 0 else math.nan,
            "share_nothing_certified": mean(s["none"]),
        }
    return out


def ppi_validity(
    draw: Any, *, n_reps: int, confidence_level: float = 0.9, seed: int = 0
) -> dict[str, float]:
    """Repeat PPI on ``draw(rng) -> (p_unlab, p_audit, y_audit, truth)``."""
    rng = np.random.default_rng(seed)
    hit, hit_lab, width, width_lab = [], [], [], []
    for _ in range(n_reps):
        p_u, p_a, y_a, truth = draw(rng)
        r = estimate_accuracy(p_u, p_a, y_a, confidence_level=confidence_level)
        hit.append(r.low <= truth <= r.high)
        hit_lab.append(r.labelled_only_low <= truth <= r.labelled_only_high)
        width.append(r.high - r.low)
        width_lab.append(r.labelled_only_high - r.labelled_only_low)
    return {
        "coverage": float(np.mean(hit)),
        "labelled_only_coverage": float(np.mean(hit_lab)),
        "mean_width": float(np.mean(width)),
        "labelled_only_mean_width": float(np.mean(width_lab)),
        "width_ratio": float(np.mean(width) / np.mean(width_lab)),
    }


def pool_draws(
    conf: np.ndarray, p_correct: np.ndarray, y: np.ndarray, n_cal: int, n_audit: int
) -> tuple[Any, Any]:
    """Split draws from a fixed pool of scored samples (exchangeable rows)."""

    def split(rng: np.random.Generator):
        perm = rng.permutation(len(y))
        cal, te = perm[:n_cal], perm[n_cal:]
        return conf[cal], y[cal], conf[te], y[te]

    order = np.argsort(-conf, kind="stable")
    sorted_conf, cum_err = conf[order], np.cumsum(1 - y[order])

    def pool_risk(t: float) -> float:
        """Selective risk of ``conf >= t`` on the whole pool."""
        m = int(np.searchsorted(-sorted_conf, -t, side="right"))
        return float(cum_err[m - 1] / m) if m else 0.0

    def pool_joint(t: float) -> float:
        """Share of the pool accepted by ``conf >= t`` and wrong."""
        m = int(np.searchsorted(-sorted_conf, -t, side="right"))
        return float(cum_err[m - 1] / len(y)) if m else 0.0

    split.exact_risk = pool_risk  # type: ignore[attr-defined]
    split.exact_joint = pool_joint  # type: ignore[attr-defined]
    truth = float(y.mean())

    def audit(rng: np.random.Generator):
        perm = rng.permutation(len(y))
        a, u = perm[:n_audit], perm[n_audit:]
        return p_correct[u], p_correct[a], y[a], truth

    return split, audit


def synthetic_draws(n_cal: int, n_test: int, n_audit: int, n_unlab: int):
    """Fresh draws of a population with P(correct | s) = 0.35 + 0.65 s**0.7."""

    def sample(rng: np.random.Generator, n: int):
        s = rng.uniform(size=n)
        p = 0.35 + 0.65 * s**0.7
        return s, p, (rng.uniform(size=n) < p).astype(np.int64)

    def split(rng: np.random.Generator):
        s_cal, _, y_cal = sample(rng, n_cal)
        s_te, _, y_te = sample(rng, n_test)
        return s_cal, y_cal, s_te, y_te

    def exact_risk(t: float) -> float:
        """Selective risk of ``s >= t`` on the population itself."""
        t = min(max(t, 0.0), 1.0)
        if t >= 1:
            return 0.0
        acc = 0.35 * (1 - t) + 0.65 * (1 - t**1.7) / 1.7
        return 1 - acc / (1 - t)

    def exact_joint(t: float) -> float:
        """P(s >= t and wrong) on the population itself."""
        t = min(max(t, 0.0), 1.0)
        return (1 - t) - (0.35 * (1 - t) + 0.65 * (1 - t**1.7) / 1.7)

    split.exact_risk = exact_risk  # type: ignore[attr-defined]
    split.exact_joint = exact_joint  # type: ignore[attr-defined]

    truth = 0.35 + 0.65 / 1.7  # E[0.35 + 0.65 U**0.7]

    def audit(rng: np.random.Generator):
        # a model of P(correct) that is informative but miscalibrated
        s_u, p_u, _ = sample(rng, n_unlab)
        s_a, p_a, y_a = sample(rng, n_audit)
        return np.clip(p_u + 0.05, 0, 1), np.clip(p_a + 0.05, 0, 1), y_a, truth

    return split, audit


def ppi_table(
    *, n_reps: int, sizes=PPI_SIZES, accuracies=PPI_ACCURACIES, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Coverage of the 90 % ``estimate_accuracy`` interval, per audit size and
    accuracy. P(correct) ~ Beta(4 a, 4 (1 - a)) (mean exactly ``a``), labels
    drawn from it, predictions ``p ** 0.8`` (informative, overconfident);
    3,000 unlabelled samples per draw."""
    out: dict[str, dict[str, float]] = {}
    for acc in accuracies:
        for n in sizes:
            rng = np.random.default_rng([seed, n, int(acc * 1000)])
            p = rng.beta(4 * acc, 4 * (1 - acc), size=(n_reps, n + 3000))
            y = (rng.uniform(size=p.shape) < p).astype(np.int64)
            f = p**0.8
            hit, exact, width = 0, 0, 0.0
            for i in range(n_reps):
                r = estimate_accuracy(f[i, n:], f[i, :n], y[i, :n])
                hit += r.low <= acc <= r.high
                exact += r.interval == "exact"
                width += r.high - r.low
            out[f"{acc}/{n}"] = {
                "coverage": hit / n_reps,
                "share_exact": exact / n_reps,
                "mean_width": width / n_reps,
            }
    return out


def selective_risk_table(
    *, n_reps: int, sizes=(50, 200, 1000), risk: float = 0.01, seed: int = 0
) -> dict[int, float]:
    """Coverage of the 90 % ``estimate_selective_risk`` interval at a true
    selective risk of ``risk``: confidence s uniform, accepted where s >= 0.5,
    P(wrong) = ``risk`` there and 0.5 below; predicted P(correct) 0.97 / 0.5."""
    out = {}
    for n in sizes:
        rng = np.random.default_rng([seed, n])
        hit = 0
        for _ in range(n_reps):
            s = rng.uniform(size=n + 2000)
            wrong = rng.uniform(size=s.size) < np.where(s >= 0.5, risk, 0.5)
            y, p = (~wrong).astype(np.int64), np.where(s >= 0.5, 0.97, 0.5)
            try:
                r = estimate_selective_risk(
                    p[n:], p[:n], y[:n], threshold=0.5,
                    confidence_unlabelled=s[n:], confidence_audit=s[:n],
                )  # fmt: skip
            except ValueError:  # fewer than 2 accepted audit samples: no interval
                continue
            hit += r.low <= risk <= r.high
        out[n] = hit / n_reps
    return out


def cifar_scores(
    path: Path, n_vilu_train: int, max_epochs: int, seed: int, vilu: bool = True
):
    """MSP and ViLU scores on the rows not used to train the one ViLU."""
    from vilu_sklearn import ViLUClassifier, correctness, zero_shot_predict

    with np.load(path, allow_pickle=False) as d:
        X_tr, y_tr = d["X_img_train"].astype(np.float32), d["y_train"]
        X_te, y_te = d["X_img_test"].astype(np.float32), d["y_test"]
        X_txt, s = d["X_txt"].astype(np.float32), float(d["logit_scale"])
    perm = np.random.default_rng(seed).permutation(len(y_tr))
    n_fit = n_vilu_train if vilu else 0
    fit, rest = perm[:n_fit], perm[n_fit:]
    X_pool = np.concatenate([X_tr[rest], X_te])
    labels_pool = np.concatenate([y_tr[rest], y_te])
    y_pool = correctness(X_pool, X_txt, labels_pool)
    _, proba = zero_shot_predict(X_pool, X_txt, logit_scale=s)
    msp = proba.max(axis=1)
    if not vilu:
        return y_pool, msp, None, 0.0
    start = time.perf_counter()
    clf = ViLUClassifier(logit_scale=s, max_epochs=max_epochs, random_state=seed)
    clf.fit(X_tr[fit], X_txt, correctness(X_tr[fit], X_txt, y_tr[fit]))
    fit_time = time.perf_counter() - start
    # thresholds on the logit: P(correct) saturates at 1.0 in float32 and ties
    vilu_conf = clf.decision_function(X_pool, X_txt)
    vilu_p = clf.predict_proba(X_pool, X_txt)[:, 1]
    return y_pool, msp, (vilu_conf, vilu_p), fit_time


def _print_block(
    title: str,
    res: dict[str, dict[str, float]],
    slack: float,
    delta: float,
    target: float,
) -> None:
    print(f"\n{title}")
    print(
        "method    | exceed freq: population (verdict), test split | mean test "
        "risk | joint share | mean cov | oracle cov | cov/oracle | none certified"
    )
    for name, r in res.items():
        pop = r["exceed_freq_population"]
        if name == "crc_joint":
            ok = r["mean_joint_share"] <= target + 2.33 * r["joint_share_se"]
            verdict = "E[joint] " + ("OK" if ok else "FAIL")
        elif name == "scan":
            verdict = "heuristic"
        else:
            freq = pop if np.isfinite(pop) else r["exceed_freq"]
            verdict = "OK" if freq <= delta + slack else "FAIL"
        print(
            f"{name:<9} | {pop:.3f} ({verdict}), {r['exceed_freq']:.3f} | "
            f"{r['mean_test_risk']:.4f} | {r['mean_joint_share']:.4f} | "
            f"{r['mean_coverage']:.3f} | {r['oracle_coverage']:.3f} | "
            f"{r['coverage_vs_oracle']:.3f} | {r['share_nothing_certified']:.3f}"
        )


def _print_ppi_tables(table: dict, sr: dict, n_reps: int) -> None:
    print(
        f"\nestimate_accuracy, 90 % interval, {n_reps} draws per cell "
        "(coverage, share of exact intervals; pass: coverage >= 0.87)"
    )
    print("accuracy | " + " | ".join(f"audit {n:>5}" for n in PPI_SIZES))
    for acc in PPI_ACCURACIES:
        cells = []
        for n in PPI_SIZES:
            c = table[f"{acc}/{n}"]
            mark = "" if c["coverage"] >= 0.87 else " FAIL"
            cells.append(f"{c['coverage']:.3f} ({c['share_exact']:.2f}){mark}")
        print(f"{acc:<8} | " + " | ".join(cells))
    print(
        "\nestimate_selective_risk at a true selective risk of 0.01, 90 % "
        "interval: " + ", ".join(f"audit {n}: {c:.3f}" for n, c in sr.items())
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--n-splits", type=int, default=1000)
    parser.add_argument("--n-cal", type=int, default=3000)
    parser.add_argument("--n-audit", type=int, default=300)
    parser.add_argument("--target-risk", type=float, default=0.10)
    parser.add_argument("--delta", type=float, default=0.10)
    parser.add_argument("--n-vilu-train", type=int, default=15000)
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument(
        "--vilu", action="store_true", help="also train one ViLU (minutes)"
    )
    parser.add_argument("--no-vilu", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--synthetic-test", type=int, default=20000)
    parser.add_argument("--ppi-reps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    t, dl, R = args.target_risk, args.delta, args.n_splits
    slack = 2.33 * math.sqrt(dl * (1 - dl) / R)
    print(
        f"target_risk {t}, delta {dl}, {R} splits, {args.n_cal} calibration "
        f"samples; Monte-Carlo slack on the exceedance frequency {slack:.3f} "
        f"(pass: <= {dl + slack:.3f})"
    )
    out: dict[str, Any] = {"slack": slack}
    split, audit = synthetic_draws(
        args.n_cal, args.synthetic_test, args.n_audit, args.synthetic_test
    )
    kw = dict(n_splits=R, target_risk=t, delta=dl, seed=args.seed)
    out["synthetic"] = threshold_validity(split, **kw)
    _print_block("synthetic scores (exact population risk)", out["synthetic"],
                 slack, dl, t)  # fmt: skip
    out["synthetic_ppi"] = ppi_validity(audit, n_reps=R, seed=args.seed)
    if args.data is not None and not args.data.exists():
        print(f"\n{args.data} not found: CIFAR-10 part skipped")
    elif args.data is not None:
        _cifar(args, out, kw, slack)
    print(f"\nPPI of the VLM accuracy, 90 % interval, audit {args.n_audit}:")
    for key, r in out.items():
        if key.endswith("_ppi"):
            print(
                f"{key[:-4]:<12} coverage {r['coverage']:.3f} (labelled only "
                f"{r['labelled_only_coverage']:.3f}), width {r['mean_width']:.4f}"
                f" vs {r['labelled_only_mean_width']:.4f} labelled only "
                f"(ratio {r['width_ratio']:.2f})"
            )
    n_ppi = args.ppi_reps or R
    out["ppi_table"] = ppi_table(n_reps=n_ppi, seed=args.seed)
    out["selective_risk_ppi"] = selective_risk_table(n_reps=n_ppi, seed=args.seed)
    _print_ppi_tables(out["ppi_table"], out["selective_risk_ppi"], n_ppi)
    print(json.dumps(out, indent=1, default=str))
    return out


def _cifar(args: argparse.Namespace, out: dict, kw: dict, slack: float) -> None:
    y, msp, vilu, fit_time = cifar_scores(
        args.data, args.n_vilu_train, args.max_epochs, args.seed, args.vilu
    )
    trained = (
        ""
        if vilu is None
        else f"; ViLU fitted on {args.n_vilu_train} other rows in {fit_time:.0f} s"
    )
    print(f"\nCIFAR-10 pool: {len(y)} rows, VLM accuracy {y.mean():.4f}{trained}")
    scores = {"MSP": (msp, msp)}
    if vilu is not None:
        scores["ViLU"] = vilu
    for name, (score, p_correct) in scores.items():
        split, audit = pool_draws(score, p_correct, y, args.n_cal, args.n_audit)
        out[f"cifar_{name}"] = threshold_validity(split, **kw)
        _print_block(
            f"CIFAR-10, {name} (population = the whole pool)",
            out[f"cifar_{name}"], slack, kw["delta"], kw["target_risk"],
        )  # fmt: skip
        out[f"cifar_{name}_ppi"] = ppi_validity(
            audit, n_reps=kw["n_splits"], seed=args.seed
        )


if __name__ == "__main__":
    main()
