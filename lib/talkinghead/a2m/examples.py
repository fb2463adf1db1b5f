"""Notebook 04's side-by-side examples: one held-out line predicted offline, frames picked across its mouth opening,
and several motion tracks rendered through the avatar (notebooks/04_training.ipynb)."""
from __future__ import annotations

import numpy as np

from .. import layout
from ..dataset import Dataset
from ..liveportrait import load_liveportrait
from ..render import BakedRenderer, render
from .evaluation import predict
from .idle import IdleMotion, combine
from .model import Audio2Motion


def line_example(model: Audio2Motion, dataset: Dataset, line_id: str, mode: str = "audio_only",
                 idle: IdleMotion | None = None, seed: int = 0) -> dict:
    """One corpus line (its first take) predicted offline, for plots and renders. Returns a dict:
    line, text, start/end (frames in the recording), fps, valid (N,), and motion arrays (N, 69): `true` (the
    recording), `pred` (the model's audio-only output), `runtime` (`pred` with idle motion added as `mode` says,
    seeded: what the avatar would do) and `baseline` (the mean training motion, every frame)."""
    s, e = dataset.line_spans(line_id)[0]
    pred = predict(model, dataset.features[s:e], dataset.emotion[s:e])
    runtime = combine(pred, idle.sample(e - s, seed) if mode != "audio_only" and idle is not None else idle, mode)
    seg = next((g for g in dataset.segments if str(g.get("id")) == line_id), {})
    return {"line": line_id, "text": seg.get("text", ""), "start": s, "end": e, "fps": dataset.fps,
            "valid": dataset.valid[s:e].copy(), "true": dataset.motion[s:e].copy(), "pred": pred,
            "runtime": np.asarray(runtime, np.float32),
            "baseline": np.repeat(model.motion_mean.cpu().numpy()[None], e - s, 0)}


def pick_frames(motion: np.ndarray, k: int = 4, valid: np.ndarray | None = None) -> np.ndarray:
    """`k` frame indices of `motion` (N, 69) that span its mouth opening, from most closed to most open (quantiles
    of `layout.mouth_open` over the valid frames), returned in time order and without repeats."""
    idx = np.arange(len(motion)) if valid is None else np.flatnonzero(valid)
    if len(idx) == 0:
        return idx
    order = idx[np.argsort(layout.mouth_open(motion[idx]), kind="stable")]
    picks = order[np.round(np.linspace(0, len(order) - 1, min(k, len(order)))).astype(int)]
    return np.unique(picks)


def render_comparison(bundle, rows: dict, frames, lp=None, paste: bool = False, fps: float = layout.FPS):
    """Render the same `frames` of several motion tracks through the avatar: rows {label: motion (N, 69)} ->
    (images, titles), one row per label, ready for `talkinghead.notebook.show_images(images, titles, cols=len(frames))`.

    `paste=False` shows the 512x512 face crop (the mouth is large); `paste=True` the whole portrait."""
    frames = np.asarray(frames, int)
    lp = lp or load_liveportrait(profile=bundle.profile)
    renderer = BakedRenderer(lp, bundle, paste=paste).eval()
    images, titles = [], []
    for label, motion in rows.items():
        m = np.asarray(motion, np.float32)[frames]
        images.extend(render(bundle, m, renderer=renderer, progress=False))
        titles.extend(f"{label}, {k / fps:.2f} s (open {o:+.4f})" for k, o in zip(frames, layout.mouth_open(m)))
    return images, titles
