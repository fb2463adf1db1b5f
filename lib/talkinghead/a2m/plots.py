"""Notebook 04's figures: training history, mouth opening over time, and the idle motion a mode adds
(notebooks/04_training.ipynb). Each returns a matplotlib Figure (matplotlib is imported on first use)."""
from __future__ import annotations

import numpy as np

from .. import layout
from .evaluation import pearson
from .idle import IdleMotion


def plot_history(history: dict):
    """Training and held-out loss per epoch (log scale), best epoch marked. Returns a matplotlib Figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(history["epoch"], history["train_loss"], label="train (crops)")
    ax.plot(history["epoch"], history["val_loss"], label="held-out lines")
    if history["val_loss"]:
        i = int(np.argmin(history["val_loss"]))
        ax.axvline(history["epoch"][i], color="grey", ls=":", label=f"best epoch {history['epoch'][i]}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (std units)")
    ax.legend()
    ax.set_title("Audio2Motion training")
    fig.tight_layout()
    return fig


def plot_mouth(pred: np.ndarray, true: np.ndarray, fps: float = layout.FPS, baseline: np.ndarray | None = None,
               title: str = "mouth opening"):
    """Mouth-opening proxy (`layout.mouth_open`) over time: prediction vs truth (motion arrays (N, 69)). A Figure."""
    import matplotlib.pyplot as plt

    t = np.arange(len(true)) / fps
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(t, layout.mouth_open(true), label="true", color="k", lw=1.5)
    ax.plot(t, layout.mouth_open(pred), label=f"predicted (r = {pearson(layout.mouth_open(pred), layout.mouth_open(true)):.2f})")
    if baseline is not None:
        ax.plot(t, layout.mouth_open(baseline), label="mean baseline", ls="--", color="grey")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("kp19.y - kp17.y")
    ax.set_title(title)
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig



def plot_idle(idle: IdleMotion | None, mode: str, seconds: float = 10.0, seed: int = 0):
    """What the idle mode adds: head pitch/yaw/roll offsets (degrees) and the eye keypoints' mean y offset over
    `seconds` of the looped track (a flat line for "audio_only"). Returns a matplotlib Figure."""
    import matplotlib.pyplot as plt

    fps = idle.fps if idle is not None else layout.FPS
    n = int(round(seconds * fps))
    off = idle.sample(n, seed) if (idle is not None and mode != "audio_only") else np.zeros((n, layout.MOTION_DIM))
    t = np.arange(n) / fps
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 2.8))
    for i, name in enumerate(("pitch", "yaw", "roll")):
        a.plot(t, off[:, layout.POSE.start + i], lw=1, label=name)
    a.set_ylabel("degrees")
    a.legend(fontsize=8, loc="upper right")
    eyes = layout.unpack(off)["exp"][:, list(layout.EYE_KP), 1].mean(-1)
    b.plot(t, eyes, lw=1, color="C3")
    b.set_ylabel("eye keypoints, mean y offset")
    for ax in (a, b):
        ax.set_xlabel("time (s)")
    loop = f", loop {len(idle.loop) / fps:.1f} s" if idle is not None and mode != "audio_only" else ""
    fig.suptitle(f"idle motion added at runtime: mode '{mode}'{loop}", fontsize=10)
    fig.tight_layout()
    return fig
