"""Command line: ``vilu-sklearn benchmark`` (also ``python -m vilu_sklearn``)."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main"]


class UsageError(ValueError):
    """A user error: reported on one line, exit code 2 (no traceback)."""


# The default data of the main job: synthetic CLIP-like embeddings (documented in
# docs/benchmark.md). K = 50 classes in d = 512 with a zero-shot accuracy of 0.62
# (about CLIP ViT-B/32 on CIFAR-100), 200 training images per class.
DEFAULT_DATA = dict(
    n_train=10_000,
    n_test=5_000,
    n_classes=50,
    dim=512,
    accuracy=0.62,
    logit_scale=100.0,
    seed=0,
)


def _synthetic_data(seed: int) -> dict[str, Any]:
    from .datasets import make_vlm_embeddings

    cfg = DEFAULT_DATA
    n = int(cfg["n_train"]) + int(cfg["n_test"])
    data = make_vlm_embeddings(
        n,
        int(cfg["n_classes"]),
        int(cfg["dim"]),
        accuracy=float(cfg["accuracy"]),
        logit_scale=float(cfg["logit_scale"]),
        random_state=seed,
    )
    n_train = int(cfg["n_train"])
    return dict(
        X_img_train=data.X_img[:n_train],
        y_train=data.labels[:n_train],
        X_img_test=data.X_img[n_train:],
        y_test=data.labels[n_train:],
        X_txt=data.X_txt,
        logit_scale=float(data.logit_scale),
        y_kind="labels",
        description=(
            f"SYNTHETIC CLIP-like embeddings (vilu_sklearn.datasets."
            f"make_vlm_embeddings, seed {seed}): K={cfg['n_classes']} classes, "
            f"d={cfg['dim']}, {n_train} train / {cfg['n_test']} test images, "
            f"target zero-shot accuracy {cfg['accuracy']}"
        ),
    )


def _labels_note(
    args: argparse.Namespace, data: dict[str, Any], estimators: dict[str, Any]
) -> str:
    """Header sentence saying which estimators were trained with class labels.

    Only the estimators run that learn from ``labels`` (ViLU with its
    posterior head, the probes) are named; without one of them there is
    nothing to say.
    """
    from ._protocols import learns_from_labels

    if args.mode != "classification" or data.get("y_kind", "labels") != "labels":
        return ""
    takers = [name for name, est in estimators.items() if learns_from_labels(est)]
    if not takers:
        return ""
    names = ", ".join(takers[:-1]) + " and " + takers[-1] if takers[1:] else takers[0]
    who = names + (" was" if len(takers) == 1 else " were")
    if args.no_labels:
        return (
            f" {who} trained on y_correct only (--no-labels); the Supervision "
            "column says what each method used."
        )
    return (
        f" {who} also given the training class labels (--no-labels turns this "
        "off); the Supervision column says what each method used: none, "
        "y_correct, or labels (+ y_correct)."
    )


# names of earlier releases, accepted by --methods
_RENAMED = {"tempscaling": "TemperatureScaling", "rel-u": "RelU"}


def _select_methods(estimators: dict[str, Any], methods: str) -> dict[str, Any]:
    """The estimators named in a comma-separated list (case-insensitive).

    Examples
    --------
    >>> from vilu_sklearn._cli import _select_methods
    >>> list(_select_methods({"MSP": 1, "Doctor": 2, "RelU": 3}, "doctor, rel-u"))
    ['Doctor', 'RelU']
    """
    by_lower = {name.lower(): name for name in estimators}
    by_lower["viluclassifier"] = "ViLU"
    chosen: dict[str, Any] = {}
    unknown = []
    for m in (m.strip() for m in methods.split(",")):
        if not m:
            continue
        name = by_lower.get(_RENAMED.get(m.lower(), m).lower())
        if name is None or name not in estimators:
            unknown.append(m)
        else:
            chosen[name] = estimators[name]
    if unknown:
        raise UsageError(
            f"unknown method(s) {unknown}; available: {', '.join(estimators)} "
            "(case-insensitive)"
        )
    return chosen


def _split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(test_fraction * n))
    if n_test < 2 or n - n_test < 2:
        raise UsageError(
            f"--test-fraction {test_fraction:g} of {n} rows gives {n_test} test and "
            f"{n - n_test} training rows; both splits need at least 2 rows."
        )
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _file_data(
    path: Path, mode: str, test_fraction: float, seed: int
) -> dict[str, Any]:
    from .datasets import load_embeddings

    data = load_embeddings(path)
    get = data.get
    out: dict[str, Any] = {"X_txt": data.X_txt, "logit_scale": data.logit_scale}
    if mode == "caption":
        X_img = get("X_img")
        if X_img is None:
            raise UsageError(
                f"{path}: caption mode needs arrays X_img and X_txt (paired rows)."
            )
        if len(data.X_txt) != len(X_img):
            raise UsageError(
                f"{path}: caption mode pairs X_img and X_txt row by row, but X_img "
                f"has {len(X_img)} rows and X_txt {len(data.X_txt)}."
            )
        tr, te = _split(len(X_img), test_fraction, seed)
        out.update(
            X_img_train=X_img[tr],
            X_txt=data.X_txt[tr],
            X_img_test=X_img[te],
            X_txt_test=data.X_txt[te],
            y_kind="labels",
        )
    elif get("X_img_train") is not None and get("X_img_test") is not None:
        if get("y_train") is not None and get("y_test") is not None:
            out.update(y_train=data.y_train, y_test=data.y_test, y_kind="labels")
        elif get("y_correct_train") is not None and get("y_correct_test") is not None:
            out.update(
                y_train=data.y_correct_train,
                y_test=data.y_correct_test,
                y_kind="correct",
            )
        else:
            raise UsageError(
                f"{path}: needs y_train/y_test (class labels) or "
                "y_correct_train/y_correct_test next to X_img_train/X_img_test."
            )
        out.update(X_img_train=data.X_img_train, X_img_test=data.X_img_test)
    else:
        X_img = get("X_img")
        if X_img is None:
            raise UsageError(f"{path}: needs X_img or X_img_train/X_img_test.")
        if get("y") is not None:
            y, kind = data.y, "labels"
        elif get("y_correct") is not None:
            y, kind = data.y_correct, "correct"
        else:
            raise UsageError(f"{path}: needs y (class labels) or y_correct.")
        tr, te = _split(len(X_img), test_fraction, seed)
        out.update(
            X_img_train=X_img[tr],
            y_train=y[tr],
            X_img_test=X_img[te],
            y_test=y[te],
            y_kind=kind,
        )
    out["description"] = f"{path} ({mode})"
    return out


def _plots(table: list[dict[str, Any]], directory: Path) -> list[Path]:
    from .metrics import (
        ConfidenceHistogramDisplay,
        FailureRocDisplay,
        RiskCoverageDisplay,
    )

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError(
            "--plots needs matplotlib: pip install 'vilu-sklearn[plot]'"
        ) from None
    directory.mkdir(parents=True, exist_ok=True)
    # rows of methods that did not run (not applicable) have no arrays
    arrays = {row["method"]: row["_arrays"] for row in table if row.get("_arrays")}
    written = []
    for display, fname in (
        (FailureRocDisplay, "roc.png"),
        (RiskCoverageDisplay, "risk_coverage.png"),
    ):
        fig, ax = plt.subplots(figsize=(6, 5))
        cmap = plt.get_cmap("tab20")  # distinct colours for 11+ methods
        colors = [cmap(j) for j in range(20)]
        for i, (name, arr) in enumerate(arrays.items()):
            display.from_predictions(
                arr["y_correct"],
                arr["confidence"],
                name=name,
                ax=ax,
                color=colors[i % len(colors)],
            )
        fig.tight_layout()
        fig.savefig(directory / fname, dpi=120)
        plt.close(fig)
        written.append(directory / fname)
    for name, arr in arrays.items():
        fig, ax = plt.subplots(figsize=(6, 4))
        ConfidenceHistogramDisplay.from_predictions(
            arr["y_correct"], arr["confidence"], name=name, ax=ax
        )
        fig.tight_layout()
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
        fig.savefig(directory / f"hist_{safe}.png", dpi=120)
        plt.close(fig)
        written.append(directory / f"hist_{safe}.png")
    return written


def _benchmark_command(args: argparse.Namespace) -> int:
    from ._benchmark import benchmark, format_table

    started = time.perf_counter()
    log = (
        (lambda msg: None)
        if args.quiet
        else (lambda msg: print(msg, file=sys.stderr, flush=True))
    )
    _check_args(args)
    if args.data is None:
        if args.mode == "caption":
            raise UsageError("--mode caption needs --data FILE.npz")
        data = _synthetic_data(args.seed)
    else:
        data = _file_data(Path(args.data), args.mode, args.test_fraction, args.seed)
    logit_scale = args.logit_scale
    if logit_scale is None:
        logit_scale = 100.0 if data["logit_scale"] is None else data["logit_scale"]
    log(f"data: {data['description']}")
    estimators = _estimators(args, data, logit_scale)
    # training progress (per-epoch lines, bars) goes to stderr: stdout is the table
    with contextlib.redirect_stdout(sys.stderr):
        table = benchmark(
            estimators,
            data["X_img_train"],
            data["X_txt"],
            data.get("y_train"),
            data["X_img_test"],
            data.get("y_test"),
            X_txt_test=data.get("X_txt_test"),
            y_kind=data.get("y_kind", "labels"),
            mode=args.mode,
            caption_group_size=args.caption_group_size,
            n_resamples=args.n_resamples,
            random_state=args.seed,
            progress=not args.quiet,
            target_risk=args.target_risk,
            delta=args.delta,
            as_frame=False,
            fit_labels=not args.no_labels,
            **_protocol_kwargs(args),
        )
    text = format_table(table, args.format)
    if args.format == "markdown":
        header = (
            _unseen_header(table, data, logit_scale, args, estimators)
            if args.unseen_classes is not None
            else _markdown_header(table, data, logit_scale, args, estimators)
        )
        text = header + text
    print(text, flush=True)  # first: a failing --output must not lose the run
    status = 0
    if args.output:
        try:
            _write_atomically(Path(args.output), text + "\n")
            log(f"wrote {args.output}")
        except OSError as exc:
            print(
                f"vilu-sklearn: error: could not write --output: {exc}", file=sys.stderr
            )
            status = 1
    if args.plots:
        for path in _plots(table, Path(args.plots)):
            log(f"wrote {path}")
    log(f"total wall time {time.perf_counter() - started:.1f} s")
    return status


def _markdown_header(
    table: list,
    data: dict[str, Any],
    logit_scale: float,
    args: argparse.Namespace,
    estimators: dict[str, Any],
) -> str:
    """What the markdown table shows: the data, the VLM accuracy, the metrics."""
    acc = table[0]["accuracy"] if table else float("nan")
    return (
        f"Failure prediction on {data['description']}\n"
        f"VLM accuracy on the test split: {100 * acc:.1f} % "
        f"(logit_scale {logit_scale:g})\n"
        "Metrics in %, with 95 % bootstrap intervals "
        f"({args.n_resamples} resamples); AUROC and FPR95 take correct "
        "predictions as positives, AUPR-err failures; AURC x 100. "
        f"Cov@{100 * args.target_risk:g}%✓: share of test predictions "
        "accepted by the threshold that Learn-Then-Test certifies from the "
        f"test split for a selective risk <= {args.target_risk:g} with "
        f"probability >= {1 - args.delta:g} (vilu_sklearn.selective)."
        f"{_labels_note(args, data, estimators)}\n\n"
    )


def _estimators(
    args: argparse.Namespace, data: dict[str, Any], logit_scale: float
) -> dict[str, Any]:
    """The default estimators (with the probes when labels are passed), selected."""
    from ._benchmark import default_estimators

    labels = (
        args.mode == "classification"
        and data.get("y_kind", "labels") == "labels"
        and not args.no_labels
    )
    estimators = default_estimators(
        labels=labels,
        logit_scale=logit_scale,
        random_state=args.seed,
        device=args.device,
        mode=args.mode,
        caption_group_size=args.caption_group_size,
        max_epochs=args.max_epochs,
        verbose=0 if args.quiet else 1,
    )
    if args.methods:
        estimators = _select_methods(estimators, args.methods)
    return estimators


def _protocol_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    if args.unseen_classes is None:
        return {}
    return {
        "protocol": "unseen-classes",
        "unseen_fraction": args.unseen_classes,
        "n_class_splits": args.class_splits,
    }


def _unseen_header(
    table: list,
    data: dict[str, Any],
    logit_scale: float,
    args: argparse.Namespace,
    estimators: dict[str, Any],
) -> str:
    """What the unseen-classes tables show."""
    return (
        f"Failure prediction on classes unseen in training: {data['description']}\n"
        f"{args.class_splits} class splits (seed {args.seed}), "
        f"{100 * args.unseen_classes:g} % of the classes unseen: every method is "
        "fitted on the training images of the seen classes with the seen prompts "
        "as its candidates (y_correct against them), and tested on the test "
        "images of the unseen classes against the unseen prompts (first table) "
        "and on all test images against all prompts (second table); "
        f"logit_scale {logit_scale:g}. Metrics in %, means over the splits; "
        "AUROC with a 95 % interval and ΔAUROC (reference minus method) with a "
        "95 % paired interval, both from a bootstrap of the test rows within "
        f"each split ({args.n_resamples} resamples; the class splits fixed); "
        "worst split Δ: the smallest per-split difference. Methods that need "
        "statistics of each training class are not applicable."
        f"{_labels_note(args, data, estimators)}\n\n"
    )


def _check_output_path(option: str, value: str, *, directory: bool) -> None:
    """Fail before the run, not after it, when a result cannot be written."""
    path = Path(value)
    if not directory and path.is_dir():
        raise UsageError(f"{option} {value!r} is a directory; give a file name.")
    if directory and path.exists() and not path.is_dir():
        raise UsageError(f"{option} {value!r} exists and is not a directory.")
    target = path if path.exists() else path.parent
    while directory and not target.exists():
        target = target.parent
    if not target.is_dir() and not target.exists():
        raise UsageError(f"{option} {value!r}: folder {str(target)!r} does not exist.")
    if not os.access(path if path.exists() else target, os.W_OK):
        raise UsageError(f"{option} {value!r} is not writable.")


def _check_device(device: str) -> None:
    """A device torch knows, and that this machine has."""
    import torch

    try:
        kind = torch.device(device).type if device != "auto" else "auto"
    except (RuntimeError, ValueError):
        raise UsageError(
            f"--device {device!r} is not a device: use auto, cpu, cuda, cuda:1, mps ..."
        ) from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            f"--device {device!r}: CUDA is not available on this machine; use "
            "--device auto or cpu."
        )
    if kind == "mps" and not torch.backends.mps.is_available():
        raise UsageError(
            f"--device {device!r}: MPS is not available on this machine; use "
            "--device auto or cpu."
        )


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name the same existing file (links included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # b does not exist yet
        return False


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a new file next to ``path``, then rename it over ``path``.

    A failure (a full disk) leaves the previous file as it was and no partial
    file behind. The new file gets the usual permissions (umask applies); a
    symbolic link is written through, as before, not replaced.
    """
    path = Path(os.path.realpath(path))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _check_args(args: argparse.Namespace) -> None:
    """Check option values that argparse's types let through."""
    tf = args.test_fraction
    if not (math.isfinite(tf) and 0 < tf < 1):
        raise UsageError(f"--test-fraction must be in (0, 1); got {tf:g}.")
    ls = args.logit_scale
    if ls is not None and not (math.isfinite(ls) and ls > 0):
        raise UsageError(
            f"--logit-scale must be a positive finite number (CLIP's is 100); "
            f"got {ls:g}."
        )
    for option, value, low in (
        ("--max-epochs", args.max_epochs, 1),
        ("--n-resamples", args.n_resamples, 0),
        ("--caption-group-size", args.caption_group_size, 1),
        ("--seed", args.seed, 0),
        ("--class-splits", args.class_splits, 1),
    ):
        if value is not None and value < low:
            raise UsageError(f"{option} must be >= {low}; got {value}.")
    _check_device(args.device)
    if args.unseen_classes is not None and args.plots:
        raise UsageError(
            "--plots draws one split's curves; with --unseen-classes there are "
            "several class splits: leave out --plots."
        )
    if args.unseen_classes is not None and args.mode != "classification":
        raise UsageError(
            "--unseen-classes splits the classes: it needs --mode classification."
        )
    if args.data is not None and not Path(args.data).is_file():
        raise UsageError(f"--data {args.data!r}: no such file.")
    if args.output:
        _check_output_path("--output", args.output, directory=False)
        if args.data is not None and _same_file(args.data, args.output):
            raise UsageError(
                f"--output {args.output!r} is the --data file: writing the table "
                "there would destroy the embeddings; give another file name."
            )
    if args.plots:
        _check_output_path("--plots", args.plots, directory=True)


def _fraction(text: str) -> float:
    """A number strictly between 0 and 1, for argparse."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text}")
    return value


def _add_protocol_arguments(bench: argparse.ArgumentParser) -> None:
    bench.add_argument(
        "--unseen-classes",
        type=_fraction,
        default=None,
        metavar="FRACTION",
        help="new-vocabulary protocol: hold out this share of the classes "
        "(fit on the others, test on them; docs/benchmark.md)",
    )
    bench.add_argument(
        "--class-splits",
        type=int,
        default=5,
        help="class splits of --unseen-classes (default 5)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``vilu-sklearn``."""
    parser = argparse.ArgumentParser(
        prog="vilu-sklearn",
        description="Failure prediction for vision-language models (ViLU).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser(
        "benchmark",
        help="compare ViLU with the baselines (default: built-in synthetic data)",
        description=(
            "Train ViLU and every baseline on the training split and print "
            "AUROC, FPR95, AUPR-err and AURC on the test split. Without --data "
            "the data are synthetic CLIP-like embeddings made by the library."
        ),
    )
    bench.add_argument(
        "--data",
        help=(
            ".npz file with X_img_train, y_train, X_img_test, y_test, X_txt "
            "[, logit_scale] (or y_correct_train/y_correct_test instead of labels; "
            "or X_img with y or y_correct, split by --test-fraction)"
        ),
    )
    bench.add_argument(
        "--mode", choices=("classification", "caption"), default="classification"
    )
    bench.add_argument(
        "--methods",
        help="comma-separated subset of the table's method names (the class names; "
        "case-insensitive), e.g. ViLU,MSP,TrustVLM",
    )
    bench.add_argument(
        "--format", choices=("markdown", "csv", "json"), default="markdown"
    )
    bench.add_argument("--output", help="also write the table to this file")
    bench.add_argument("--plots", help="write ROC, risk-coverage and histogram PNGs")
    bench.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument(
        "--logit-scale",
        type=float,
        default=None,
        help="CLIP temperature (default: the file's, else 100)",
    )
    bench.add_argument("--max-epochs", type=int, default=None)
    bench.add_argument(
        "--n-resamples",
        type=int,
        default=200,
        help="bootstrap resamples for the intervals (0: none)",
    )
    bench.add_argument("--test-fraction", type=float, default=0.3)
    bench.add_argument(
        "--target-risk",
        type=_fraction,
        default=0.05,
        help="selective risk of the certified-coverage column (default 0.05)",
    )
    bench.add_argument(
        "--delta",
        type=_fraction,
        default=0.1,
        help="failure probability of that certificate (default 0.1)",
    )
    bench.add_argument("--caption-group-size", type=int, default=1024)
    bench.add_argument("--quiet", action="store_true", help="no progress messages")
    _add_protocol_arguments(bench)
    bench.add_argument(
        "--no-labels",
        action="store_true",
        help="train ViLU on y_correct only, without the training class labels",
    )
    bench.set_defaults(func=_benchmark_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vilu-sklearn`` command.

    Examples
    --------
    >>> from vilu_sklearn._cli import build_parser
    >>> build_parser().parse_args(["benchmark", "--methods", "MSP"]).methods
    'MSP'
    """
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except (ValueError, TypeError, OSError) as exc:
        # user errors (bad options, unreadable or inconsistent data): one line
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"vilu-sklearn: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vilu-sklearn: interrupted; no table was written.", file=sys.stderr)
        return 130
    return result
