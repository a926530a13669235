"""End-to-end test of examples/images_to_trust.py, offline with random weights."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers", reason="needs vilu-sklearn[clip]")
PIL = pytest.importorskip("PIL", reason="needs pillow")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "images_to_trust.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("images_to_trust", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_images(root: Path, n_per_class: int = 10) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(0)
    classes = ["red_apple", "green_leaf", "blue_sky", "dark_night"]
    colours = [(200, 30, 30), (30, 180, 40), (40, 80, 220), (20, 20, 20)]
    for name, colour in zip(classes, colours, strict=True):
        (root / name).mkdir(parents=True)
        for i in range(n_per_class):
            noise = rng.integers(-60, 60, size=(20, 20, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")
    return classes


def test_images_to_trust_end_to_end(tmp_path, capsys):
    module = _load_example()
    images = tmp_path / "images"
    classes = _write_images(images)
    cache = tmp_path / "cache"
    out_csv = tmp_path / "decisions.csv"
    argv = [
        "--images",
        str(images),
        "--random-weights",
        "--cache-dir",
        str(cache),
        "--target-error",
        "0.5",
        "--max-epochs",
        "3",
        "--output",
        str(out_csv),
        "--device",
        "cpu",
    ]
    with pytest.warns(UserWarning, match="accept nothing"):
        summary = module.main(argv)  # 10 held-out images certify nothing
    assert summary["threshold"] == np.inf and not summary["certified"]
    assert summary["n_trusted"] == 0 and summary["method"] == "ltt"
    assert summary["n_images"] == 40
    assert summary["n_fit"] + summary["n_calibration"] + summary["n_new"] == 40
    assert summary["n_trusted"] + summary["n_to_human"] == summary["n_new"] == 10
    rows = list(csv.DictReader(open(out_csv)))
    assert len(rows) == 10
    assert {r["decision"] for r in rows} <= {"trust", "human"}
    assert all(r["prediction"] in classes for r in rows)
    assert all(0.0 <= float(r["p_correct"]) <= 1.0 for r in rows)
    assert "P(correct)=" in capsys.readouterr().out
    assert list(cache.rglob("*.emb.npy"))  # embeddings were cached
    # second run: same decisions, embeddings read from the cache
    with pytest.warns(UserWarning):
        again = module.main(argv)
    assert [r["decision"] for r in again["rows"]] == [r["decision"] for r in rows]
