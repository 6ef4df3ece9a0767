"""Training throughput (images/s) per backbone and input size on this machine.

Times `train_on_batch` on random data after a warm-up, with the same model builder
and optimizer as `agegate train`: it measures the model, not the input pipeline.
"""
from __future__ import annotations

import time

import numpy as np

from .environment import environment


def bench_training(backbones: list[str], sizes: list[int], batch_size: int = 32, steps: int = 5,
                   warmup: int = 2, echo=print) -> dict:
    from agegate.train.backbones import build_model
    from agegate.train.tfenv import import_tf

    tf, keras = import_tf()
    rows = []
    for bb in backbones:
        for size in sizes:
            model, _ = build_model(bb, size, "none")
            model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mae")
            x = np.random.default_rng(0).uniform(-1, 1, (batch_size, size, size, 3)).astype(np.float32)
            y = np.full((batch_size, 1), 30.0, np.float32)
            for _ in range(warmup):
                model.train_on_batch(x, y)
            t0 = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(x, y)
            dt = time.perf_counter() - t0
            row = {"backbone": bb, "input_size": size, "batch_size": batch_size, "steps": steps,
                   "images_per_s": round(steps * batch_size / dt, 1), "params_m": round(model.count_params() / 1e6, 2)}
            echo(f"{bb:>20} {size:>4}px  {row['images_per_s']:>7.1f} img/s")
            rows.append(row)
            keras.backend.clear_session()
    return {"kind": "train", "environment": environment("tensorflow", tf.__version__, "cpu"), "results": rows}
