"""
# From images to trusted predictions

``examples/images_to_trust.py`` is the whole path from a folder of images (one
subfolder per class) to a decision per image: embed the images and the class
prompts with a CLIP model (cached on disk), fit ViLU on part of the labelled
images, choose on a held-out part the confidence threshold whose trusted
predictions have at most a target error rate, and decide for new images which
zero-shot predictions to trust and which to send to a human.

This page runs it offline on a few generated images with a tiny CLIP model of
random weights (``--random-weights``): the predictions are meaningless, but every
step runs. With a real model, pass ``--backend transformers --model
openai/clip-vit-base-patch32`` (needs ``pip install 'vilu-sklearn[clip]'``).
"""

# %%
import importlib.util
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
script = here.parent / "images_to_trust.py"
spec = importlib.util.spec_from_file_location("images_to_trust", script)
images_to_trust = importlib.util.module_from_spec(spec)
spec.loader.exec_module(images_to_trust)

# %%
# A folder of images, one subfolder per class
# -------------------------------------------
work = Path(tempfile.mkdtemp())
rng = np.random.default_rng(0)
colours = {"red apple": (200, 30, 30), "green leaf": (30, 180, 40)}
colours |= {"blue sky": (40, 80, 220), "night": (20, 20, 20)}
for name, colour in colours.items():
    (work / "images" / name).mkdir(parents=True)
    for i in range(12):
        noise = rng.integers(-60, 60, size=(24, 24, 3))
        pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(work / "images" / name / f"{i:02d}.png")

# %%
# Run the pipeline
# ----------------
# It prints one line per new image and a JSON summary, and writes the decisions
# to a CSV file.
summary = images_to_trust.main(
    [
        "--images",
        str(work / "images"),
        "--random-weights",
        "--cache-dir",
        str(work / "cache"),
        "--target-error",
        "0.5",
        "--max-epochs",
        "3",
        "--output",
        str(work / "decisions.csv"),
        "--device",
        "cpu",
    ]
)
print(f"trusted {summary['n_trusted']} of {summary['n_new']} new images")
