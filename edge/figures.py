"""Charts written as files: matplotlib on its file backend, one way to save a figure, and an axis of counts.

Every chart agegate draws (reports, `--png`, `--curve`, training curves) goes to a file: Agg needs no display (a
box and a CI runner have none), and is set before pyplot is first imported. matplotlib is imported when a chart is
drawn, so the box pays for it only then.
"""
from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg (file) backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def counts_axis(ax) -> None:
    """Whole numbers on the y axis: people are counted (the demo's two buyers were ticked 0.2, 0.4, ...)."""
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def save_figure(fig, path: Path, dpi: int = 90) -> Path:
    """Lay `fig` out (unless it has its own layout engine), write it to `path` (its folder made) and free it
    (pyplot keeps every open figure)."""
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path
