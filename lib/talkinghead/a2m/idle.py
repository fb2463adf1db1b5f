"""Idle motion: what audio cannot explain (blinks, head sway), replayed from the recording (notebooks/04_training.ipynb).

`IdleMotion` holds a loopable track of offsets on the eye-keypoint, pose, t and log_scale dims (`IDLE_DIMS`);
`combine` adds it to an audio-driven prediction according to the idle mode (`MODES`), as the runtime does.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .. import layout
from ..dataset import Dataset
from ..errors import DatasetError
from .evaluation import predict
from .model import Audio2Motion

MODES = ("audio_only", "idle_from_recording")


IDLE_DIMS = np.concatenate([np.array([3 * k + a for k in layout.EYE_KP for a in range(3)]),
                            np.arange(layout.POSE.start, layout.MOTION_DIM)])   # eye keypoints, pose, t, log_scale


@dataclass
class IdleMotion:
    """A loopable track of idle motion offsets (M, len(dims)) on `dims` of the motion vector, at `fps`.

    Built by `from_dataset`: the longest run of valid frames of the recording, on the eye-keypoint, pose, t and
    log_scale dims; with a model, the residual it cannot explain (truth - prediction), otherwise the track minus its
    median. The loop point is chosen where the track best matches its own beginning, and the seam is a raised-cosine
    cross-fade of `crossfade` frames, so replay has no jump.
    """
    track: np.ndarray
    dims: np.ndarray = field(default_factory=lambda: IDLE_DIMS.copy())
    fps: float = float(layout.FPS)
    crossfade: int = 12
    loop: np.ndarray = field(init=False, repr=False)
    cut: int = field(init=False)

    def __post_init__(self):
        self.track = np.asarray(self.track, np.float32)
        self.dims = np.asarray(self.dims, np.int64)
        self.loop, self.cut = _make_loop(self.track, self.crossfade)

    @classmethod
    def from_dataset(cls, dataset: Dataset, model: Audio2Motion | None = None, crossfade_s: float = 0.5,
                     dims: np.ndarray = IDLE_DIMS) -> "IdleMotion":
        s, e = _longest_valid_run(dataset.valid)
        fade = max(1, int(round(crossfade_s * dataset.fps)))
        if e - s < 4 * fade:
            raise DatasetError(f"{dataset.name()}: the longest stretch of frames with a face is {e - s} frames, too "
                               f"short to loop idle motion (needs {4 * fade}); record a longer take or use "
                               "mode='audio_only'.")
        truth = dataset.motion[s:e]
        if model is not None:
            pred = predict(model, dataset.features[s:e], dataset.emotion[s:e])
            track = truth[:, dims] - pred[:, dims]
        else:
            track = truth[:, dims] - np.median(truth[:, dims], axis=0)
        return cls(track, np.asarray(dims), dataset.fps, fade)

    def sample(self, n_frames: int, seed: int = 0) -> np.ndarray:
        """`n_frames` of idle offsets as full motion vectors (n_frames, 69) (zero outside `dims`), from a seeded start."""
        start = int(np.random.default_rng(seed).integers(len(self.loop)))
        out = np.zeros((n_frames, layout.MOTION_DIM), np.float32)
        out[:, self.dims] = self.loop[(start + np.arange(n_frames)) % len(self.loop)]
        return out

    def to_dict(self) -> dict:
        """Plain tensors and numbers, for the checkpoint (loadable with weights_only=True)."""
        return dict(track=torch.from_numpy(self.track), dims=torch.from_numpy(self.dims), fps=float(self.fps),
                    crossfade=int(self.crossfade))

    @classmethod
    def from_dict(cls, d: dict) -> "IdleMotion":
        return cls(np.asarray(d["track"]), np.asarray(d["dims"]), float(d["fps"]), int(d["crossfade"]))


def _longest_valid_run(valid: np.ndarray) -> tuple[int, int]:
    """(start, end) of the longest run of True in `valid` (end exclusive)."""
    v = np.concatenate([[0], np.asarray(valid, np.int8), [0]])
    edges = np.flatnonzero(np.diff(v))
    starts, ends = edges[::2], edges[1::2]
    if len(starts) == 0:
        return 0, 0
    i = int(np.argmax(ends - starts))
    return int(starts[i]), int(ends[i])


def _make_loop(track: np.ndarray, fade: int) -> tuple[np.ndarray, int]:
    """A track (M, D) -> (loop (cut, D), cut). loop[:fade] fades from track[cut:cut+fade] into track[:fade].

    Played periodically, loop[cut-1] = track[cut-1] is followed by loop[0] ~= track[cut]: a natural step of the
    track. The cut (searched in the second half) is the one whose seam and cross-fade have the smallest largest
    frame-to-frame step, measured per dim in units of the track's own largest step (<= 1: no visible jump).
    """
    M = len(track)
    w = (0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade))[:, None]    # 0 -> 1, raised cosine
    step = np.abs(np.diff(track, axis=0)).max(0) + 1e-12                         # the track's own largest steps
    best, cut = np.inf, M - fade
    for c in range(max(fade + 1, M // 2), M - fade + 1):
        blend = (1 - w) * track[c:c + fade] + w * track[:fade]
        seam = np.concatenate([track[c - 1:c], blend, track[fade:fade + 1]])
        cost = float((np.abs(np.diff(seam, axis=0)) / step).max())              # worst step, in units of the largest
        if cost < best:
            best, cut = cost, c
    loop = track[:cut].copy()
    loop[:fade] = (1 - w) * track[cut:cut + fade] + w * track[:fade]
    return loop.astype(np.float32), cut


def combine(pred, idle, mode: str):
    """Add idle motion to an audio-driven prediction (..., N, 69) according to `mode` (numpy or torch).

    mode "audio_only": the prediction as it is (idle motion regresses to the mean: a still head, no blinks).
    mode "idle_from_recording": plus `idle` -- an IdleMotion (a seed-0 sample of the right length is taken) or
    offsets (N, 69) from `IdleMotion.sample`.
    """
    if mode not in MODES:
        raise ValueError(f"unknown idle mode {mode!r}: use one of {', '.join(MODES)}")
    if mode == "audio_only":
        return pred
    if idle is None:
        raise ValueError("mode 'idle_from_recording' needs idle motion: IdleMotion.from_dataset(dataset)")
    if isinstance(idle, IdleMotion):
        idle = idle.sample(pred.shape[-2])
    if isinstance(pred, torch.Tensor):
        idle = torch.as_tensor(idle, dtype=pred.dtype, device=pred.device)
    return pred + idle
