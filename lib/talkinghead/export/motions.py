"""Motions for int8 calibration and for measuring the exported renderer (notebooks/05_export.ipynb): held-out frames
of the dataset when there is one, else small random motions around zero. Motion arrays are (N, 69) (`layout`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import layout
from ..dataset import load_dataset
from ..errors import TalkingHeadError


def random_motions(n: int, seed: int = 0) -> np.ndarray:
    """`n` small random motions around zero (N, 69): exp ~ N(0, 0.01), pose ~ N(0, 5 deg), t ~ N(0, 0.02),
    log_scale ~ N(0, 0.02). The stand-in for dataset motions when no dataset is given."""
    rng = np.random.default_rng(seed)
    m = np.zeros((n, layout.MOTION_DIM), np.float32)
    m[:, layout.EXP] = rng.normal(0, 0.01, (n, 63))
    m[:, layout.POSE] = rng.normal(0, 5.0, (n, 3))
    m[:, layout.T] = rng.normal(0, 0.02, (n, 2))
    m[:, layout.LOG_SCALE] = rng.normal(0, 0.02, (n, 1))
    return m


def dataset_motions(dataset, n_calibration: int = 16, n_eval: int = 4,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(calibration (n_cal, 69), evaluation (n_eval, 69), description) from a dataset's valid frames.

    Frames are split by corpus line (`a2m.split_lines`): calibration from one set of lines, evaluation from the
    others, so evaluation motions are held out; with fewer than two lines, disjoint random frames.
    """
    rng = np.random.default_rng(seed)
    valid = np.flatnonzero(dataset.valid)
    if len(valid) < 2:
        raise TalkingHeadError(f"{dataset.name()}: fewer than 2 frames with a face; cannot sample calibration motions.")
    try:
        from ..a2m import spans, split_lines      # torch-bearing: imported where used (see __init__)

        split = split_lines(dataset, 0.3, seed)
        cal_pool = np.concatenate([np.arange(s, e) for s, e in spans(dataset, split["train"])])
        ev_pool = np.concatenate([np.arange(s, e) for s, e in spans(dataset, split["val"])])
        cal_pool = cal_pool[dataset.valid[cal_pool]]
        ev_pool = ev_pool[dataset.valid[ev_pool]]
        how = "held-out corpus lines"
        if not len(cal_pool) or not len(ev_pool):
            raise ValueError
    except Exception:
        perm = rng.permutation(valid)
        half = max(1, len(perm) // 2)
        cal_pool, ev_pool, how = perm[:half], perm[half:], "disjoint frames"
    cal = rng.choice(cal_pool, size=min(n_calibration, len(cal_pool)), replace=False)
    ev = rng.choice(ev_pool, size=min(n_eval, len(ev_pool)), replace=False)
    return dataset.motion[np.sort(cal)].copy(), dataset.motion[np.sort(ev)].copy(), \
        f"dataset {dataset.name()}: {len(cal)} calibration frames, {len(ev)} evaluation frames from {how}"


def motions_for(dataset_path, n_calibration: int = 16, n_eval: int = 4,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(calibration (n_calibration, 69), evaluation (n_eval, 69), description): `dataset_motions` of the dataset at
    `dataset_path` when that file exists, else `random_motions` split in two (notebook 05 takes a held-out motion)."""
    if dataset_path is not None and Path(dataset_path).exists():
        return dataset_motions(load_dataset(dataset_path, min_valid_s=0.0), n_calibration, n_eval, seed)
    m = random_motions(n_calibration + n_eval, seed)
    return m[:n_calibration], m[n_calibration:], "random motions around zero (no dataset given)"
