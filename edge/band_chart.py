"""Buyers stacked by age band: the one bar chart `edge stats --png --by hour|day` and the fleet report draw.

The caller makes the figure (`edge/figures.py`). The legend stands right of the bars, never over them: inside the
axes it once hid a weekday's and a store's top bands.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .bands import BAND_LABELS
from .figures import counts_axis


def stack_bands(ax, x: Sequence, rows: Sequence[Mapping[str, float]], width: float = 0.8) -> None:
    """One bar per `x` (labels, or datetimes with `width` in days), its buyers stacked by band; legend outside."""
    bottom = np.zeros(len(rows))
    for band in BAND_LABELS:
        vals = np.array([r.get(band, 0) for r in rows], float)
        ax.bar(x, vals, width, bottom=bottom, label=band)
        bottom += vals
    ax.legend(title="age band", fontsize=7, title_fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0),
              frameon=False)
    ax.set_ylabel("buyers")
    counts_axis(ax)
    ax.margins(x=0.01)


def time_axis(ax) -> None:
    """Date ticks that matplotlib spaces and names by the span shown (hours within a day, days within months)."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(maxticks=12)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))

