"""Which renderer variant runs on this machine: the fastest whose quality passes, measured here (notebook 06).

No variant is assumed fast: the int8 copy meant for CPUs was the slowest of the three on a 2-core AVX-512 CPU
(537.8 ms against 421.0 ms for fp32, issue 13). So `variant="auto"` (the runtime's default) decides in two steps:

Quality, from the manifest (measured at export; `quality`):
  fp32                the reference: always passes.
  fp16, int8, ...     copies of the same network: pass when their PSNR against the PyTorch float32 output
                      (`psnr_db`) is at least `MIN_PSNR_DB`.
  pocket              a distilled student, judged against its teacher on held-out lines: passes when its PSNR there
                      is at least `POCKET_MIN_PSNR_DB` and beats both baselines (the static face and the nearest
                      training frame, `held_out`).
  A variant without a quality figure does not pass.

Speed, on this machine (`measure`): each passing variant runs `WARMUP` frame(s), then `FRAMES` timed frames (batch 1),
round-robin so that other processes' load hits every variant alike; the lowest median wins. Without a GPU a passing
pocket is taken without measuring (it is built for CPUs). The choice, its reason and the figures are kept in
`Choice` (the runtime's `describe()` and the timing report name them); one process measures a bundle once.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
import time
from typing import Callable

import numpy as np

from .. import layout

MIN_PSNR_DB = 30.0          # fp16 / int8 against the PyTorch float32 output
POCKET_MIN_PSNR_DB = 25.0   # the pocket student against its teacher, on held-out lines
REFERENCE = "fp32"
POCKET = "pocket"
FRAMES = 3
WARMUP = 1
_CACHE: dict = {}


@dataclasses.dataclass
class Choice:
    """The variant chosen, why, the measured ms per frame of each measured variant, and each variant's quality
    verdict ({name: (passes, reason)})."""
    variant: str
    why: str
    ms: dict
    quality: dict

    def summary(self) -> str:
        return f"renderer variant {self.variant}: {self.why}"


def quality(name: str, entry: dict) -> tuple[bool, str]:
    """(passes, reason) for one variant's manifest entry (see the module docstring for the rule)."""
    if name == REFERENCE:
        return True, "the reference"
    psnr = _number(entry.get("psnr_db"))
    if psnr is None:
        return False, "no measured quality in the manifest"
    if name == POCKET:
        held = entry.get("held_out") or {}
        base = [b for b in (_number(held.get("psnr_db_static")), _number(held.get("psnr_db_nearest"))) if b is not None]
        student = _number(held.get("psnr_db_student"))
        if psnr < POCKET_MIN_PSNR_DB:
            return False, f"{psnr:.1f} dB against the teacher, under {POCKET_MIN_PSNR_DB:g} dB"
        if len(base) < 2 or student is None or student <= max(base):
            return False, "does not beat its held-out baselines (static face, nearest training frame)"
        return True, f"{psnr:.1f} dB against the teacher (at least {POCKET_MIN_PSNR_DB:g}), beats its baselines"
    if psnr < MIN_PSNR_DB:
        return False, f"{psnr:.1f} dB against float32, under {MIN_PSNR_DB:g} dB"
    return True, f"{psnr:.1f} dB against float32 (at least {MIN_PSNR_DB:g})"


def _number(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if not math.isnan(v) else None


def passing(variants: dict) -> dict:
    """{name: reason} of the variants whose quality passes, in the manifest's order."""
    verdicts = {n: quality(n, e if isinstance(e, dict) else {}) for n, e in variants.items()}
    return {n: why for n, (ok, why) in verdicts.items() if ok}


def round_robin_ms(sessions: dict, feed: dict, frames: int = FRAMES, warmup: int = WARMUP,
                   on_round: Callable | None = None) -> dict:
    """Median ms of one run of each session {name: onnxruntime session} on `feed` (float inputs cast to a float16
    graph's type), measured round-robin after `warmup` rounds so that load from other processes hits every session
    alike. `on_round(r)` is called after each round r (0-based, warm-up included). Export's latencies use it too."""
    rounds = warmup + max(1, frames)
    times: dict = {k: [] for k in sessions}
    feeds = {k: _typed(s, feed) for k, s in sessions.items()}
    for r in range(rounds):
        for k, s in sessions.items():
            t0 = time.perf_counter()
            s.run(None, feeds[k])
            if r >= warmup:
                times[k].append(1000 * (time.perf_counter() - t0))
        if on_round is not None:
            on_round(r)
    return {k: statistics.median(t) for k, t in times.items()}


def measure(sessions: dict, frames: int = FRAMES, warmup: int = WARMUP) -> dict:
    """Median ms per frame (batch 1, zero motion) of each renderer session {name: onnxruntime session}."""
    ms = round_robin_ms(sessions, {"motion": np.zeros((1, layout.MOTION_DIM), np.float32)}, frames, warmup)
    return {k: round(v, 2) for k, v in ms.items()}


def _typed(sess, feed: dict) -> dict:
    kind = sess.get_inputs()[0].type
    return {k: v.astype(np.float16) for k, v in feed.items()} if "float16" in kind else feed


def choose(variants: dict, open_session: Callable, gpu: bool, key=None, frames: int = FRAMES,
           warmup: int = WARMUP) -> Choice:
    """The variant to run among the manifest's `variants` ({name: entry}); `open_session(name)` opens one, `gpu`:
    whether the runtime's providers include an accelerator. `key`: measure once per process for this key."""
    if key is not None and key in _CACHE:
        return _CACHE[key]
    verdicts = {n: quality(n, e if isinstance(e, dict) else {}) for n, e in variants.items()}
    ok = [n for n, (p, _) in verdicts.items() if p]
    if not ok:
        raise ValueError("no renderer variant passes the quality rule")
    if POCKET in ok and not gpu:
        c = Choice(POCKET, f"no GPU, and its quality passes ({verdicts[POCKET][1]})", {}, verdicts)
    elif len(ok) == 1:
        bad = "; ".join(f"not {n}: {why}" for n, (p, why) in verdicts.items() if not p)
        c = Choice(ok[0], "the only variant in the bundle" if len(verdicts) == 1 else
                   f"the only variant whose quality passes ({bad})", {}, verdicts)
    else:
        ms = measure({n: open_session(n) for n in ok}, frames, warmup)
        best = min(ms, key=ms.get)
        others = ", ".join(f"{n} {v:.1f}" for n, v in ms.items() if n != best)
        failed = [n for n, (p, _) in verdicts.items() if not p]
        c = Choice(best, f"fastest measured here ({ms[best]:.1f} ms per frame; {others} ms) among those whose quality "
                         f"passes" + (f" (not {', '.join(failed)}: quality)" if failed else ""), ms, verdicts)
    if key is not None:
        _CACHE[key] = c
    return c
