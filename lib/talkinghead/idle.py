"""Idle motion played back: one loop of offsets, numpy only (notebooks/04_training.ipynb builds it, 06 plays it).

What audio cannot explain (blinks, head sway) is replayed from the recording as a loop (M, D) of offsets on D dims
of the motion vector. `make_loop` turns a track into a seamless loop; `IdleLoop.frames(start, n, seed)` gives the
offsets for frames start..start+n-1 of a stream whose loop position is chosen by `seed`. Training
(`talkinghead.a2m.IdleMotion`) and the live runtime both play idle motion through this module, so
`IdleMotion.sample(n, seed)` equals `IdleLoop(loop, dims).frames(0, n, seed)`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import layout

CROSSFADE = 12   # frames of raised-cosine cross-fade at the loop seam (0.48 s at 25 fps)


def longest_valid_run(valid: np.ndarray) -> tuple[int, int]:
    """(start, end) of the longest run of True in `valid` (end exclusive); (0, 0) when there is none."""
    v = np.concatenate([[0], np.asarray(valid, np.int8), [0]])
    edges = np.flatnonzero(np.diff(v))
    starts, ends = edges[::2], edges[1::2]
    if len(starts) == 0:
        return 0, 0
    i = int(np.argmax(ends - starts))
    return int(starts[i]), int(ends[i])


def make_loop(track: np.ndarray, fade: int) -> tuple[np.ndarray, int]:
    """A track (M, D) -> (loop (cut, D) float32, cut). loop[:fade] fades from track[cut:cut+fade] into track[:fade].

    Played periodically, loop[cut-1] = track[cut-1] is followed by loop[0] ~= track[cut]: a natural step of the
    track. The cut (searched in the second half) is the one whose seam and cross-fade have the smallest largest
    frame-to-frame step, measured per dim in units of the track's own largest step (<= 1: no visible jump).
    """
    track = np.asarray(track, np.float32)
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


@dataclass
class IdleLoop:
    """A loop of idle offsets (M, D) on motion dims `dims` (D,), played cyclically from a seeded start."""

    loop: np.ndarray
    dims: np.ndarray

    def __post_init__(self):
        self.loop = np.asarray(self.loop, np.float32)
        self.dims = np.asarray(self.dims, np.int64)
        if self.loop.ndim != 2 or len(self.loop) == 0 or self.loop.shape[1] != len(self.dims):
            raise ValueError(f"an idle loop needs shape (M > 0, {len(self.dims)}) for {len(self.dims)} dims, "
                             f"not {self.loop.shape}")

    @classmethod
    def from_track(cls, track: np.ndarray, dims, crossfade: int = CROSSFADE) -> "IdleLoop":
        """Loop a raw track (M, D) with `make_loop`."""
        return cls(make_loop(track, int(crossfade))[0], dims)

    def start(self, seed: int = 0) -> int:
        """The loop position of frame 0 for this seed."""
        return int(np.random.default_rng(seed).integers(len(self.loop)))

    def frames(self, start: int, n: int, seed: int = 0) -> np.ndarray:
        """Idle offsets as full motion vectors (n, 69) (zero outside `dims`) for frames start..start+n-1."""
        out = np.zeros((n, layout.MOTION_DIM), np.float32)
        out[:, self.dims] = self.loop[(self.start(seed) + start + np.arange(n)) % len(self.loop)]
        return out

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """The first `n` frames (n, 69) of a stream: `frames(0, n, seed)`."""
        return self.frames(0, n, seed)
