"""Measuring exported graphs: PSNR, per-frame latency (median, round-robin across variants) and a variant's size and
error against the PyTorch output (notebooks/05_export.ipynb)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..live import choice
from ..progress import Estimate
from .graph import session


def psnr(a, b, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio (dB) of `a` against `b` on a `data_range` scale; inf when they are equal."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(data_range ** 2 / mse)


def latency_ms(sess, feeds: dict, frames: int = 5, warmup: int = 2) -> float:
    """Median wall time (ms) of one `sess.run` over `frames` runs after `warmup` runs."""
    return choice.round_robin_ms({"graph": sess}, feeds, frames, warmup)["graph"]


def latencies(paths: dict, feeds: dict, frames: int = 5, warmup: int = 2, providers=None,
              progress: bool = False) -> dict:
    """Median ms per run (batch 1) of several graphs, measured round-robin so that load from other processes on a
    shared machine hits every variant alike. `progress`: a bar over the runs, and the estimate when long."""
    from tqdm.auto import tqdm

    sessions = {k: session(p, providers) for k, p in paths.items()}
    rounds = warmup + max(1, frames)
    est = Estimate("latency of " + ", ".join(sessions), rounds, "round", enabled=progress)
    with tqdm(total=rounds, desc="latency", unit="round", disable=not progress) as bar:
        def on_round(r):
            bar.update(1)
            if r == 1:                    # the first round pays for each session's first run
                est.restart()
            elif r == 2:
                est.update(1)

        ms = choice.round_robin_ms(sessions, feeds, frames, warmup, on_round)
    return {k: round(v, 3) for k, v in ms.items()}


def evaluate_variant(path: Path, motions: np.ndarray, reference: np.ndarray) -> dict:
    """Size and error against the PyTorch output (max, mean, PSNR on [0, 1]) on `motions`, one frame per run."""
    s = session(path)
    got = np.concatenate([s.run(None, {"motion": motions[i:i + 1]})[0] for i in range(len(motions))])
    d = np.abs(got.astype(np.float64) - reference)
    return {"bytes": Path(path).stat().st_size, "max_abs_err": float(d.max()), "mean_abs_err": float(d.mean()),
            "psnr_db": round(psnr(got, reference), 2), "eval_motions": int(len(motions))}
