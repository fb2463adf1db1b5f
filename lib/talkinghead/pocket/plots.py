"""Pictures of a distillation for notebook 07: loss curves, teacher | student | difference side by side, PSNR / SSIM
per held-out frame, the comparison as a short video, and the frame graph's box (notebooks/07_pocket_renderer.ipynb)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import layout
from . import metrics

DIFF_GAIN = 4.0      # differences are shown amplified this much


def plot_history(result, ax=None):
    """Training loss (L1, per step, smoothed) and held-out PSNR against the two baselines."""
    import matplotlib.pyplot as plt

    h, e = result.history, result.evaluation
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(11, 3.2))
    loss = np.asarray(h["loss"])
    k = max(1, len(loss) // 50)
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
    ax[0].semilogy(h["step"], loss, alpha=0.3, label="L1 per step")
    ax[0].semilogy(h["step"][k - 1:], smooth, label=f"mean of {k}")
    ax[0].set(xlabel="step", ylabel="training loss", title="training")
    ax[0].legend()
    ax[1].plot(h["held_step"], h["held_psnr"], "o-", label="student")
    ax[1].axhline(e["psnr_static"], color="grey", ls="--", label="static reference")
    ax[1].axhline(e["psnr_nearest"], color="tab:red", ls=":", label="nearest training frame")
    ax[1].set(xlabel="step", ylabel=f"held-out PSNR (dB, {e['size']} px)", title="held-out lines")
    ax[1].legend()
    return ax


def student_faces(result, index) -> np.ndarray:
    """Student faces at 512 for held-out frames `index` -> uint8 (K, 3, 512, 512)."""
    import torch

    n = len(result.data.train)
    m = result.data.motions.motion[n:][np.asarray(index)]
    with torch.no_grad():
        out = torch.cat([result.student(torch.from_numpy(m[i:i + 8])) for i in range(0, len(m), 8)])
    return (out.clamp(0, 1) * 255).round().byte().numpy()


def side_by_side(teacher: np.ndarray, student: np.ndarray, size: int = 256) -> np.ndarray:
    """uint8 (3, H, W) pair -> one RGB image (size, 3 * size, 3): teacher | student | |difference| x DIFF_GAIN."""
    import cv2

    t = teacher.transpose(1, 2, 0).astype(np.float32)
    s = student.transpose(1, 2, 0).astype(np.float32)
    d = np.clip(DIFF_GAIN * np.abs(t - s), 0, 255)
    tiles = [cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA) for x in (t, s, d)]
    return np.concatenate(tiles, 1).round().astype(np.uint8)


def show_side_by_side(result, frames=None, size: int = 256):
    """A figure of held-out frames: teacher | student | difference (x4), one row each."""
    import matplotlib.pyplot as plt

    held = result.data.held
    frames = np.linspace(0, len(held) - 1, 3).round().astype(int) if frames is None else np.asarray(frames)
    stu = student_faces(result, frames)
    fig, axes = plt.subplots(len(frames), 1, figsize=(9, 3.1 * len(frames)), squeeze=False)
    for ax, i, s in zip(axes[:, 0], frames, stu):
        ax.imshow(side_by_side(held[i], s, size))
        p = metrics.psnr(s, held[i])[0]
        ax.set_title(f"held-out frame {i}: teacher | student | difference x{DIFF_GAIN:g}   (PSNR {p:.1f} dB)")
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_quality(result, ax=None):
    """PSNR (student, static, nearest at the training size; student at 512) and SSIM per held-out frame."""
    import matplotlib.pyplot as plt

    pf = result.evaluation["per_frame"]
    t = np.arange(len(pf["psnr_512"])) / layout.FPS
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(11, 3.2))
    ax[0].plot(t, pf["psnr_student"], label="student")
    ax[0].plot(t, pf["psnr_static"], "--", color="grey", label="static reference")
    ax[0].plot(t, pf["psnr_nearest"], ":", color="tab:red", label="nearest training frame")
    ax[0].plot(t, pf["psnr_512"], alpha=0.6, label="student at 512 (pocket.onnx)")
    ax[0].set(xlabel="held-out motions, in order (s at 25 fps)", ylabel="PSNR vs teacher (dB)")
    ax[0].legend(fontsize=8)
    ax[1].plot(t, pf["ssim_512"])
    ax[1].set(xlabel="held-out motions, in order (s at 25 fps)", ylabel="SSIM vs teacher (512)")
    return ax


def comparison_video(result, path, seconds: float = 4.0, size: int = 256) -> Path:
    """The first `seconds` of the held-out motions as an mp4 (no sound): teacher | student | difference."""
    from .. import video

    n = min(len(result.data.held), int(seconds * layout.FPS))
    stu = student_faces(result, np.arange(n))
    frames = [side_by_side(result.data.held[i], stu[i], size) for i in range(n)]
    return Path(video.write_video(path, frames, fps=layout.FPS, progress=False))


__all__ = ["plot_history", "show_side_by_side", "plot_quality", "comparison_video", "side_by_side", "student_faces"]


def show_frame_box(bundle_dir, entry: dict, ax=None):
    """The frame at rest (`pocket_background.png`) with the frame graph's box drawn on it: only those pixels are
    computed per frame (`pocket.frame`). `entry`: the manifest's `models.renderer.variants.pocket.frame`."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from ..bundle import read_png

    rest = read_png(Path(bundle_dir) / entry["background"])
    y0, x0, h, w = entry["box"]
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5 * rest.shape[0] / rest.shape[1]))
    ax.imshow(rest)
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), w, h, fill=False, color="yellow", lw=2))
    share = h * w / (rest.shape[0] * rest.shape[1])
    ax.set_title(f"frame graph: {w}x{h} of {rest.shape[1]}x{rest.shape[0]} pixels ({100 * share:.0f}%)")
    ax.axis("off")
    return ax
