"""Which predictions of a CLIP model can be trusted? From a folder of images.

Pipeline:

1. embed the images of ``--images DIR`` (one subfolder per class, named after
   the class) and the class prompts with a CLIP model; embeddings are cached in
   ``--cache-dir``, so a second run reads them instead of recomputing;
2. split the labelled images into a part to fit a ViLU failure predictor, a
   held-out part to choose a confidence threshold, and "new" images;
3. calibrate, on the held-out part, the threshold that
   ``vilu_sklearn.selective.calibrate_threshold`` certifies: on new images of the
   same kind, the error rate among trusted predictions is at most
   ``--target-error`` with probability at least ``1 - --delta`` (no threshold
   can be certified from too few held-out images: then nothing is trusted and
   a warning says how many would be needed);
4. for the new images, print which zero-shot predictions to trust and which to
   send to a human, and write them to ``--output`` (CSV).

Offline demo with a tiny random-weight model (meaningless predictions, but the
whole pipeline runs)::

    python examples/images_to_trust.py --images my_images --random-weights

With a real model (needs ``pip install 'vilu-sklearn[clip]'``)::

    python examples/images_to_trust.py --images my_images \
        --backend transformers --model openai/clip-vit-base-patch32
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from vilu_sklearn import zero_shot_predict

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def list_images(
    folder: Path, classes: list[str] | None
) -> tuple[list[Path], np.ndarray, list[str]]:
    """Image files and labels from ``folder/<class>/*``."""
    if not folder.is_dir():
        raise SystemExit(f"--images: {folder} is not a folder")
    if classes is None:
        classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise SystemExit(f"--images: need at least 2 class subfolders in {folder}")
    paths, labels = [], []
    for k, name in enumerate(classes):
        sub = folder / name
        if not sub.is_dir():
            raise SystemExit(f"--classes: no subfolder {sub}")
        for p in sorted(sub.iterdir()):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(p)
                labels.append(k)
    return paths, np.array(labels, dtype=np.int64), classes


def build_embedder(args: argparse.Namespace):
    from vilu_sklearn.embed import CLIPEmbedder

    if args.random_weights:
        from vilu_sklearn.embed import make_random_transformers_clip

        model, processor, tokenizer = make_random_transformers_clip(dim=32, seed=0)
        return CLIPEmbedder(
            "transformers",
            "random-tiny-clip",
            model=model,
            preprocess=processor,
            tokenizer=tokenizer,
            device=args.device,
            cache_dir=args.cache_dir,
            batch_size=args.batch_size,
            progress=args.progress,
        )
    return CLIPEmbedder(
        args.backend,
        args.model,
        args.pretrained,
        device=args.device,
        cache_dir=args.cache_dir,
        batch_size=args.batch_size,
        progress=args.progress,
    )


def add_calibration_arguments(parser: argparse.ArgumentParser) -> None:
    """--target-error, --delta and --method of the certified threshold."""
    parser.add_argument(
        "--target-error",
        type=float,
        default=0.05,
        help="largest acceptable error rate among trusted predictions",
    )
    parser.add_argument(
        "--delta",
        type=float,
        default=0.1,
        help="allowed probability that the certified error rate is exceeded",
    )
    parser.add_argument(
        "--method",
        choices=["ltt", "sgr", "scan", "crc"],
        default="ltt",
        help="calibration method of vilu_sklearn.selective.calibrate_threshold",
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--images",
        type=Path,
        required=True,
        help="folder with one subfolder of images per class",
    )
    parser.add_argument(
        "--classes",
        nargs="+",
        default=None,
        help="class names = subfolder names, in label order "
        "(default: all subfolders, sorted)",
    )
    parser.add_argument(
        "--backend", choices=["open_clip", "transformers"], default="transformers"
    )
    parser.add_argument(
        "--model",
        default="openai/clip-vit-base-patch32",
        help="open_clip architecture or Hugging Face model id",
    )
    parser.add_argument(
        "--pretrained",
        default=None,
        help="open_clip pretrained tag (or transformers revision)",
    )
    parser.add_argument(
        "--templates",
        default="base",
        help="prompt templates: base, imagenet7 or imagenet80",
    )
    parser.add_argument("--cache-dir", type=Path, default=Path(".vilu_cache"))
    add_calibration_arguments(parser)
    parser.add_argument(
        "--new-fraction",
        type=float,
        default=0.25,
        help="share of the images treated as new, unlabelled ones",
    )
    parser.add_argument(
        "--calib-fraction",
        type=float,
        default=0.25,
        help="share of the images held out to choose the threshold",
    )
    parser.add_argument("--max-epochs", type=int, default=50)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="use a tiny random-weight transformers CLIP (offline demo)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="CSV of the decisions for the new images",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    if not 0 < args.target_error < 1:
        parser.error("--target-error must be in (0, 1)")
    if not 0 < args.delta < 1:
        parser.error("--delta must be in (0, 1)")
    return args


def write_decisions(rows: list[dict], output: Path | None) -> None:
    """Print the decisions, and write them to ``output`` (CSV) if given."""
    if output is not None:
        with open(output, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    for row in rows:
        print(
            f"{row['decision']:>5}  {row['prediction']:<20} "
            f"P(correct)={row['p_correct']:.2f}  {row['image']}"
        )


def main(argv: list[str] | None = None) -> dict:
    """Run the pipeline; returns a summary dict (also printed as JSON)."""
    from vilu_sklearn import ViLUClassifier
    from vilu_sklearn.selective import calibrate_threshold

    args = parse_args(argv)
    paths, labels, classes = list_images(args.images, args.classes)
    embedder = build_embedder(args)
    X_img = embedder.embed_images(paths)
    X_txt = embedder.embed_class_prompts(
        [c.replace("_", " ") for c in classes], args.templates
    )
    logit_scale = embedder.logit_scale
    y_pred, proba = zero_shot_predict(X_img, X_txt, logit_scale=logit_scale)
    y_correct = (y_pred == labels).astype(np.int64)

    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(paths))
    n_new = max(1, int(round(args.new_fraction * len(paths))))
    n_cal = max(1, int(round(args.calib_fraction * len(paths))))
    new, cal, fit = order[:n_new], order[n_new : n_new + n_cal], order[n_new + n_cal :]
    if len(np.unique(y_correct[fit])) < 2:
        raise SystemExit(
            "The fitting split has only correct or only wrong zero-shot predictions; "
            "a failure predictor needs both (add images or change --seed)."
        )

    clf = ViLUClassifier(
        max_epochs=args.max_epochs, random_state=args.seed, device=args.device
    )
    clf.fit(X_img[fit], X_txt, y_correct[fit])
    threshold = calibrate_threshold(
        clf.decision_function(X_img[cal], X_txt),
        y_correct[cal],
        target_risk=args.target_error,
        delta=args.delta,
        method=args.method,
    )
    scores_new = clf.decision_function(X_img[new], X_txt)
    p_correct = clf.predict_proba(X_img[new], X_txt)[:, 1]
    trusted = scores_new >= threshold

    rows = []
    for i, idx in enumerate(new):
        rows.append(
            {
                "image": str(paths[idx]),
                "prediction": classes[y_pred[idx]],
                "clip_confidence": float(proba[idx].max()),
                "p_correct": float(p_correct[i]),
                "decision": "trust" if trusted[i] else "human",
            }
        )
    write_decisions(rows, args.output)
    n_trusted = int(trusted.sum())
    summary = {
        "n_images": len(paths),
        "n_fit": len(fit),
        "n_calibration": len(cal),
        "n_new": len(new),
        "zero_shot_accuracy": float(y_correct.mean()),
        "threshold": threshold,
        "certified": bool(np.isfinite(threshold)),
        "target_error": args.target_error,
        "delta": args.delta,
        "method": args.method,
        "n_trusted": n_trusted,
        "n_to_human": len(new) - n_trusted,
        "trusted_error_on_new": (
            float(1 - y_correct[new][trusted].mean()) if n_trusted else None
        ),
        "rows": rows,
    }
    printable = {k: v for k, v in summary.items() if k != "rows"}
    print(json.dumps(printable, indent=2), file=sys.stderr)
    return summary


if __name__ == "__main__":
    main()
