"""The facts every room shares, written once: the ages the law and the product turn on,
the image files agegate reads, the threads a model may run on, and the names of the files a run folder holds.

Age bands live in `bands.py` beside their lookup functions; the decision vocabulary in
`decision.py`. Anything that compares an age with 18 or 25 imports it from here.
"""
from __future__ import annotations

#: Under this age a buyer is a minor: the figure every Challenge-25 metric counts ("minors passed").
MINOR_AGE = 18.0
#: Challenge 25: a buyer who looks younger than this is asked for ID. The box's default threshold.
CHALLENGE_AGE = 25.0
#: Image files the readers, the box's folder source and the demo accept.
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
#: LiteRT threads that a command's --threads or box.toml's model.threads may ask for.
THREADS_RANGE = (1, 64)
#: A training run folder: the exported Keras model (its metadata `model.json` sits beside it).
MODEL_FILE = "model.keras"
#: A bundle and an installed release: the model and its metadata sidecar.
RELEASE_MODEL, RELEASE_META = "model.tflite", "model.json"
