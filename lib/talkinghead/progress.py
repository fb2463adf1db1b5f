"""Progress of the long stages: before a stage that will take more than `ESTIMATE_S` seconds, one line with the
estimate measured on its first steps (tqdm's bar then keeps its ETA current). Issue 13: a long run is never silent.

    est = Estimate("render", total=1000, unit="frame")
    ... first batch of 4 frames ...
    est.update(4)      # -> "render: 1000 frames, 0.82 s each here (measured on the first 4): about 14 min"
"""
from __future__ import annotations

import time
from typing import Callable

ESTIMATE_S = 30.0   # stages expected to take longer than this say so, with the estimate, once


def duration_text(seconds: float) -> str:
    """12.3 -> "12 s", 200 -> "3.3 min", 7200 -> "2.0 h"."""
    if seconds < 90:
        return f"{max(seconds, 0.0):.0f} s" if seconds >= 1 else "under a second"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def write(line: str) -> None:
    """Print a line without breaking a tqdm bar that is running (tqdm.write; print without tqdm)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        print(line, flush=True)
        return
    tqdm.write(line)


class Estimate:
    """Says once, after the first `update`, how long `total` units of `what` will take at the pace measured so far,
    when that is more than `min_s` seconds (default `ESTIMATE_S`). `note`: appended to the line (e.g. "early
    stopping usually ends it sooner"). `start`: when the clock started (default: now)."""

    def __init__(self, what: str, total: int, unit: str = "frame", log: Callable | None = None,
                 min_s: float | None = None, note: str = "", enabled: bool = True, start: float | None = None):
        self.what, self.total, self.unit, self.note = what, int(total), unit, note
        self.min_s = ESTIMATE_S if min_s is None else float(min_s)
        self.log = log or write
        self.enabled = enabled
        self.t0 = time.perf_counter() if start is None else start
        self.done = 0
        self.said: str | None = None

    def restart(self) -> None:
        """Start the clock now (after a first step that paid for loading something)."""
        self.t0, self.done = time.perf_counter(), 0

    def update(self, n: int = 1) -> str | None:
        """`n` more units done; returns the line when it is said (once)."""
        self.done += n
        if self.said is not None or self.done <= 0 or not self.enabled:
            return None
        each = (time.perf_counter() - self.t0) / self.done
        total_s = each * max(self.total, self.done)
        self.said = ""
        if total_s <= self.min_s:
            return None
        pace = f"{each:.2f} s" if each >= 0.1 else f"{1000 * each:.0f} ms"
        self.said = (f"{self.what}: {self.total} {self.unit}s, {pace} each here (measured on the first {self.done}): "
                     f"about {duration_text(total_s)}" + (f" ({self.note})" if self.note else ""))
        self.log(self.said)
        return self.said
