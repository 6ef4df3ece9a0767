"""`agegate eval --bands`: MAE and bias by age band, a line per data set, as a PNG.

The per-band figures decide whether a model is fair across ages (regression to the mean ages the young up and the old
down), and across sets they are twelve numbers per set in a table; the chart shows at a glance which band and which
population breaks the |bias| target. Rendering only: the figures are `metrics.age_metrics`'s `bands`.
"""
from __future__ import annotations

from pathlib import Path

from agegate.edge.bands import BAND_LABELS, BANDS
from agegate.edge.contracts import MINOR_AGE

from .metrics import BAND_BIAS_TARGET


def plot_bands(path: Path, sets: list[tuple[str, dict]]) -> None:
    """The PNG of `draw_bands`."""
    from agegate.edge.figures import save_figure

    save_figure(draw_bands(sets), path)


def draw_bands(sets: list[tuple[str, dict]]):
    """MAE (left) and bias (right) by age band for each (name, bands) of `sets`; on the bias panel the target
    |bias| <= BAND_BIAS_TARGET from 18 up shaded, and each band outside it marked. Bands without images are gaps."""
    from agegate.edge.figures import pyplot

    fig, (mae_ax, bias_ax) = pyplot().subplots(1, 2, figsize=(11, 3.8))
    x = range(len(BAND_LABELS))
    first_adult = next(i for i, (_, lo, _) in enumerate(BANDS) if lo >= MINOR_AGE)
    bias_ax.fill_between([first_adult - 0.3, len(BAND_LABELS) - 0.7], -BAND_BIAS_TARGET, BAND_BIAS_TARGET,
                         color="#d5e8d4", label=f"target from 18 up: |bias| <= {BAND_BIAS_TARGET:g}", zorder=0)
    bias_ax.axhline(0, color="black", linewidth=0.8)
    for name, bands in sets:
        def series(key: str) -> list[float]:
            return [bands[b][key] if bands.get(b, {}).get("n") else float("nan") for b in BAND_LABELS]

        mae_line, = mae_ax.plot(x, series("mae"), "o-", label=name)
        bias = series("bias")
        bias_ax.plot(x, bias, "o-", color=mae_line.get_color(), label=name)
        off = [(i, v) for i, v in enumerate(bias) if i >= first_adult and abs(v) > BAND_BIAS_TARGET]
        if off:
            bias_ax.plot(*zip(*off), "x", color="red", markersize=9, zorder=3)
    bias_ax.plot([], [], "x", color="red", markersize=9, label="outside the target")
    for ax, title, unit in ((mae_ax, "MAE by age band", "MAE (years)"),
                            (bias_ax, "Bias by age band (estimate - true age)", "bias (years)")):
        ax.set_xticks(x, BAND_LABELS, fontsize=8)
        ax.set_xlabel("true age band")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig
