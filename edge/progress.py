"""Progress of long work: a bar in a terminal, a line a minute in a log.

A bar redraws itself with carriage returns, which in a log file (`nohup agegate calibrate ... > log 2>&1 &`, as
long CPU jobs are run here) is one ever-growing line; hidden there instead, a calibrate that replays every val
minor for tens of minutes said nothing until it ended. So in a terminal the work shows tqdm's bar, and anywhere
else a plain line at most every `every_s` seconds: what, how far, how long so far, about how long left.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")

#: How often a log hears of work in progress.
LOG_EVERY_S = 60.0
PLURALS = {"img": "images", "it": "items"}


class LogLines:
    """tqdm's `update`/`close` and context manager, saying a line (`say`) at most every `every_s` seconds; `note`,
    when set, ends the next line (training: the loss so far)."""

    def __init__(self, total: int | None, desc: str, unit: str, every_s: float, say: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.desc, self.every_s, self.say, self.clock = total, desc, every_s, say, clock
        self.unit = PLURALS.get(unit, unit if unit.endswith("s") else unit + "s")  # tqdm's unit is one "buyer"
        self.n, self.note = 0, ""
        self.t0 = self.last = clock()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.every_s:
            self.last = now
            self.say(self.line(now))

    def line(self, now: float) -> str:
        took = now - self.t0
        note = f"; {self.note}" if self.note else ""
        if not self.total:
            return f"{self.desc}: {self.n} {self.unit}, {took / 60:.1f} min{note}"
        left = (self.total - self.n) * took / self.n / 60 if self.n else float("nan")
        return (f"{self.desc}: {self.n}/{self.total} {self.unit} ({100 * self.n / self.total:.0f} %), "
                f"{took / 60:.1f} min, about {left:.1f} min left{note}")

    def close(self) -> None:
        pass

    def __enter__(self) -> "LogLines":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(total: int | None, desc: str, unit: str = "it", show: bool = True, every_s: float = LOG_EVERY_S,
             stream: TextIO | None = None):
    """Something with `update(n)` and `close()` (and `with`): tqdm's bar when `stream` (stderr) is a terminal, a
    line a minute otherwise (stdout stays the result's, `--json` too), nothing when not `show`."""
    from tqdm import tqdm

    stream = stream or sys.stderr
    if show and stream.isatty():
        return tqdm(total=total, desc=desc, unit=unit, leave=False, file=stream)
    if show:
        return LogLines(total, desc, unit, every_s, lambda line: (stream.write(line + "\n"), stream.flush()))
    return tqdm(total=total, disable=True)


def tracked(items: Iterable[T], total: int | None, desc: str, unit: str = "it", show: bool = True) -> Iterator[T]:
    """`items` as they come, with `progress` counting them."""
    bar = progress(total, desc, unit, show)
    try:
        for item in items:
            yield item
            bar.update()
    finally:
        bar.close()
