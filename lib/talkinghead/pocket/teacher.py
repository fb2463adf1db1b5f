"""Teacher frames for distillation: the motions this avatar will be driven with, rendered by the full renderer
(notebooks/07_pocket_renderer.ipynb).

Motions (`gather_motions`), by kind:

    recording     the dataset's motion, every valid frame of each corpus line
    audio2motion  Audio2Motion's prediction on each line's audio (+ its idle track), when a trained checkpoint exists
    emotion       the same lines predicted under another emotion label (the emotion lines of the corpus move the face
                  differently; the runtime can be asked for any label)
    idle          the idle loop alone (blinks, head sway): what the avatar does between sentences
    perturbed     training motions plus Gaussian noise (a quarter of each dimension's spread): the space around them
    rest          zero motion, the portrait as it is

Whole corpus lines are held out (the same seeded split as Audio2Motion, `a2m.split_lines`): their recorded and
predicted motions are never trained on and measure the student. Training motions are a seeded random subset of the
pool (consecutive frames are nearly equal, a subset loses little); held-out motions stay in line order so that they
play as a video.

`Teacher` renders them with `render.BakedRenderer` (float32, on the GPU when there is one) with a progress bar.
Frames are kept as uint8 at the training resolution (a 512 crop is 0.8 MB per frame).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .. import a2m, layout
from ..errors import DatasetError

KINDS = ("recording", "audio2motion", "emotion", "idle", "perturbed", "rest")
PERTURB = 0.25        # perturbation noise, in units of each motion dimension's spread over the training pool


@dataclass
class MotionSet:
    """Motions (N, 69) with, per motion, its `kind` (`KINDS`), corpus `line` id ('' when none) and `held_out` flag."""
    motion: np.ndarray
    kind: np.ndarray
    line: np.ndarray
    held_out: np.ndarray

    def __len__(self) -> int:
        return len(self.motion)

    @property
    def train(self) -> "MotionSet":
        return self.subset(~self.held_out)

    @property
    def held(self) -> "MotionSet":
        return self.subset(self.held_out)

    def subset(self, index) -> "MotionSet":
        return MotionSet(self.motion[index], self.kind[index], self.line[index], self.held_out[index])

    def counts(self) -> dict:
        """{kind: (training motions, held-out motions)} for the kinds present."""
        return {k: (int(((self.kind == k) & ~self.held_out).sum()), int(((self.kind == k) & self.held_out).sum()))
                for k in KINDS if (self.kind == k).any()}

    def summary(self) -> str:
        held_lines = sorted(set(self.line[self.held_out].tolist()) - {""})
        parts = ", ".join(f"{k} {a}+{b}" for k, (a, b) in self.counts().items())
        return (f"{int((~self.held_out).sum())} training and {int(self.held_out.sum())} held-out motions "
                f"(train+held-out by kind: {parts}); held-out lines: {', '.join(held_lines) or 'none'}")


def _set(motion, kind, line, held) -> MotionSet:
    n = len(motion)
    return MotionSet(np.asarray(motion, np.float32).reshape(n, layout.MOTION_DIM), np.full(n, kind, object),
                     np.full(n, line, object), np.full(n, bool(held)))


def _cat(sets: list) -> MotionSet:
    sets = [s for s in sets if len(s)]
    if not sets:
        return _set(np.zeros((0, layout.MOTION_DIM)), "rest", "", False)
    return MotionSet(*(np.concatenate([getattr(s, f) for s in sets]) for f in ("motion", "kind", "line", "held_out")))


def _line_emotion(dataset, frames: np.ndarray) -> int:
    e = np.asarray(dataset.emotion[frames], np.int64)
    return int(np.bincount(e).argmax()) if len(e) else 0


def line_motions(dataset, line_id: str, held: bool, checkpoint=None) -> list:
    """The recorded and (with a checkpoint) predicted motions of one corpus line, each a MotionSet in frame order."""
    frames = dataset.line_frames(line_id)
    valid = frames[dataset.valid[frames]]
    out = [_set(dataset.motion[valid], "recording", line_id, held)]
    if checkpoint is not None:
        import torch

        emo = _line_emotion(dataset, frames)
        n_emo = int(checkpoint.config.n_emotions)
        def ids(e):                 # one emotion id per frame
            return np.full(len(frames), e, np.int64)

        with torch.no_grad():
            pred = a2m.predict(checkpoint.model, dataset.features[frames], ids(emo) if n_emo else None)
            out.append(_set(a2m.combine(pred, checkpoint.idle, checkpoint.mode) if checkpoint.idle is not None
                            else pred, "audio2motion", line_id, held))
            if n_emo > 1:
                other = (emo + 1 + sum(map(ord, line_id))) % n_emo
                other = other if other != emo else (emo + 1) % n_emo
                out.append(_set(a2m.predict(checkpoint.model, dataset.features[frames], ids(other)), "emotion",
                                line_id, held))
    return out


def gather_motions(dataset, checkpoint=None, n_train: int = 600, n_held: int = 120, holdout: float = 0.2,
                   seed: int = 0, perturb: float = PERTURB) -> MotionSet:
    """`n_train` training and up to `n_held` held-out motions for this avatar (see the module docstring).

    `dataset`: a `dataset.Dataset`; `checkpoint`: a loaded `a2m.Checkpoint` or None (then only recorded, perturbed and
    rest motions). A dataset with fewer than two corpus lines is one DatasetError sentence.
    """
    split = a2m.split_lines(dataset, holdout, seed)
    rng = np.random.default_rng(seed)
    train_pool = _cat([s for i in split["train"] for s in line_motions(dataset, i, False, checkpoint)]
                      + ([_set(checkpoint.idle.sample(max(50, n_train // 8), seed), "idle", "", False)]
                         if checkpoint is not None and checkpoint.idle is not None else []))
    if not len(train_pool):
        raise DatasetError(f"{dataset.name()}: the training lines have no valid frames; record more lines.")
    held = _cat([s for i in split["val"] for s in line_motions(dataset, i, True, checkpoint)])
    held = held.subset(np.arange(min(n_held, len(held))))
    n_perturb = n_train // 4
    n_pick = max(1, n_train - n_perturb - 1)
    picked = train_pool.subset(np.sort(rng.choice(len(train_pool), n_pick, replace=n_pick > len(train_pool))))
    spread = train_pool.motion.std(0)
    base = train_pool.motion[rng.integers(0, len(train_pool), n_perturb)]
    noisy = _set(base + perturb * spread * rng.standard_normal(base.shape), "perturbed", "", False)
    rest = _set(np.zeros((1, layout.MOTION_DIM)), "rest", "", False)
    return _cat([picked, noisy, rest, held])


# ======================================================================================================================
# the teacher


class Teacher:
    """The full renderer on the avatar bundle: motions -> face crops. `device` "auto" (a GPU when present) or a name.

    `lp`: LivePortrait networks already loaded (default: the bundle's profile, on `device`)."""

    def __init__(self, bundle, lp=None, device="auto"):
        import torch

        from ..device import get_device
        from ..render import BakedRenderer

        self.device = get_device(device) if lp is None else next(lp.warping_module.parameters()).device
        if lp is None:
            from ..liveportrait import load_liveportrait
            lp = load_liveportrait(profile=bundle.profile, device=self.device, dtype=torch.float32)
        self.profile = bundle.profile
        self.renderer = BakedRenderer(lp, bundle, paste=False).eval()
        self.batch = 16 if self.device.type == "cuda" else 8

    def render(self, motions: np.ndarray, size: int = layout.CROP_SIZE, progress: bool = True,
               desc: str = "teacher") -> np.ndarray:
        """Motions (N, 69) -> uint8 frames (N, 3, size, size) (area-downsampled from the 512 crop when smaller)."""
        import torch
        import torch.nn.functional as F
        from tqdm.auto import tqdm

        m = np.asarray(motions, np.float32).reshape(-1, layout.MOTION_DIM)
        out = np.empty((len(m), 3, size, size), np.uint8)
        with torch.inference_mode(), tqdm(total=len(m), desc=desc, unit="frame", disable=not progress) as bar:
            for i in range(0, len(m), self.batch):
                face = self.renderer(torch.from_numpy(m[i:i + self.batch]).to(self.device)).float()
                if size != face.shape[-1]:
                    face = F.interpolate(face, size=(size, size), mode="area")
                out[i:i + len(face)] = (face.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
                bar.update(len(face))
        return out

    def reference(self) -> np.ndarray:
        """The teacher's render of zero motion, float32 (3, 512, 512) in [0, 1] (not rounded): the student's start."""
        import torch

        with torch.inference_mode():
            z = torch.zeros(1, layout.MOTION_DIM, device=self.device)
            return self.renderer(z)[0].float().clamp(0, 1).cpu().numpy()

    def seconds_per_frame(self, frames: int = 1) -> float:
        """Measured wall time of one teacher frame (a warm-up run first, then `frames` frames in one batch)."""
        import torch

        z = torch.zeros(frames, layout.MOTION_DIM, device=self.device)
        with torch.inference_mode():
            self.renderer(z[:1])
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            self.renderer(z)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
        return (time.perf_counter() - t0) / frames


def estimate_note(profile: str, device, seconds_per_frame: float, n_frames: int) -> str:
    """One line: the measured teacher speed, the time the frames will take, and (full profile, no GPU) that a GPU is
    wanted."""
    total = seconds_per_frame * n_frames
    text = (f"teacher: {1000 * seconds_per_frame:.0f} ms per frame on {device}; {n_frames} frames will take about "
            f"{_duration(total)}")
    if profile != "sample" and getattr(device, "type", str(device)) == "cpu":
        text += (". The full renderer wants a GPU (a Colab T4 renders a frame in a fraction of a second): this CPU "
                 "will be slow; consider fewer frames (--frames) or a GPU runtime")
    return text


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


__all__ = ["MotionSet", "gather_motions", "line_motions", "Teacher", "estimate_note", "KINDS"]
