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
from ..idle import CROSSFADE, IdleLoop, longest_valid_run, make_loop
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
    cross-fade of `crossfade` frames, so replay has no jump (`talkinghead.idle.make_loop`, the one implementation the
    runtime also uses).
    """
    track: np.ndarray
    dims: np.ndarray = field(default_factory=lambda: IDLE_DIMS.copy())
    fps: float = float(layout.FPS)
    crossfade: int = CROSSFADE
    loop: np.ndarray = field(init=False, repr=False)
    cut: int = field(init=False)

    def __post_init__(self):
        self.track = np.asarray(self.track, np.float32)
        self.dims = np.asarray(self.dims, np.int64)
        self.loop, self.cut = make_loop(self.track, self.crossfade)

    @classmethod
    def from_dataset(cls, dataset: Dataset, model: Audio2Motion | None = None, crossfade_s: float = 0.5,
                     dims: np.ndarray = IDLE_DIMS) -> "IdleMotion":
        s, e = longest_valid_run(dataset.valid)
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
        """`n_frames` of idle offsets as full motion vectors (n_frames, 69) (zero outside `dims`), from a seeded start:
        the runtime's player (`talkinghead.idle.IdleLoop`) on this loop."""
        return IdleLoop(self.loop, self.dims).sample(n_frames, seed)

    def to_dict(self) -> dict:
        """Plain tensors and numbers, for the checkpoint (loadable with weights_only=True)."""
        return dict(track=torch.from_numpy(self.track), dims=torch.from_numpy(self.dims), fps=float(self.fps),
                    crossfade=int(self.crossfade))

    @classmethod
    def from_dict(cls, d: dict) -> "IdleMotion":
        return cls(np.asarray(d["track"]), np.asarray(d["dims"]), float(d["fps"]), int(d["crossfade"]))


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
