"""Training data for Audio2Motion: corpus lines split into training and held-out sets, and random crops of lines
(notebooks/04_training.ipynb). Frame indices are video frames of the dataset (`layout.FPS`); features (N, 4, 80)."""
from __future__ import annotations

import numpy as np

from .. import layout
from ..dataset import Dataset
from ..errors import DatasetError


def split_lines(dataset: Dataset, holdout: float = 0.2, seed: int = 0) -> dict:
    """Split the corpus lines (never frames) into {'train': [ids], 'val': [ids]}, seeded; at least one line each."""
    ids = dataset.line_ids
    if len(ids) < 2:
        raise DatasetError(f"{dataset.name()}: the dataset has {len(ids)} corpus line(s) with valid frames; training "
                           "needs at least 2 (one to learn from, one to check on): record more lines.")
    order = np.random.default_rng(seed).permutation(len(ids))
    n_val = min(len(ids) - 1, max(1, int(round(holdout * len(ids)))))
    val = sorted(ids[i] for i in order[:n_val])
    return {"train": [i for i in ids if i not in val], "val": val}


def spans(dataset: Dataset, line_ids) -> list[tuple[int, int]]:
    """(start, end) frame ranges of every take of the given corpus lines."""
    return [sp for i in line_ids for sp in dataset.line_spans(i)]


def padded_features(dataset: Dataset, silence: float, L: int) -> np.ndarray:
    """The dataset's features with L frames of silence appended (so every frame has its lookahead)."""
    pad = np.full((L,) + dataset.features.shape[1:], silence, np.float32)
    return np.concatenate([dataset.features, pad])


def crops(dataset: Dataset, ranges, feats: np.ndarray, length: int, n: int, L: int, rng: np.random.Generator):
    """n random crops of `length` frames inside the frame `ranges` of lines (from `spans`) -> arrays features
    (n, length+L, 4, 80), emotion (n, length+L), motion (n, length, 69), mask (n, length) (valid frames inside the line)."""
    lens = np.array([e - s for s, e in ranges], float)
    pick = rng.choice(len(ranges), size=n, p=lens / lens.sum())
    fx = np.empty((n, length + L) + feats.shape[1:], np.float32)
    ex = np.zeros((n, length + L), np.int64)
    my = np.zeros((n, length, layout.MOTION_DIM), np.float32)
    mk = np.zeros((n, length), np.float32)
    for j, i in enumerate(pick):
        s, e = ranges[i]
        a = int(rng.integers(s, max(s, e - length) + 1))
        m = min(length, e - a)
        fx[j] = feats[a:a + length + L] if a + length + L <= len(feats) else np.concatenate(
            [feats[a:], np.repeat(feats[-1:], a + length + L - len(feats), 0)])
        ex[j, :] = dataset.emotion[min(a, len(dataset) - 1)]
        my[j, :m] = dataset.motion[a:a + m]
        mk[j, :m] = dataset.valid[a:a + m]
    return fx, ex, my, mk
