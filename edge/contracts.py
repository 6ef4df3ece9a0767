"""The facts every room shares, written once: the ages the law and the product turn on,
the image files agegate reads, the threads a model may run on, the names of the files a run folder holds, and the
earliest time a box's clock may say.

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
#: No agegate box decided before this (2026-01-01, UTC): a decision time before it is a box clock not set yet (no
#: battery clock, NTP not reached). The box holds such decisions and times them once its clock is set; the fleet
#: report leaves out rows dated before it and names their boxes (a box at 1970 once made a report of 20,785 days).
CLOCK_FLOOR = 1767225600.0
CLOCK_FLOOR_DATE = "2026-01-01"
