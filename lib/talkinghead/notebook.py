"""Small helpers the notebooks share: the sample-profile banner and inline display of frames.

Everything here degrades to plain text outside Jupyter, so the same calls work in scripts and tests.
"""
from __future__ import annotations

import io

import numpy as np

from .profiles import get_profile

_BANNER_HTML = (
    '<div style="padding:10px 14px;margin:6px 0;border-radius:6px;background:#fff3cd;border:2px solid #e0a800;'
    'color:#5c4400;font-family:sans-serif"><b>SAMPLE PROFILE</b>: the networks carry seeded random weights, so every '
    'image below is <b>noise</b>. Shapes, files, exports and timings are real. Set <code>PROFILE = "full"</code> '
    '(or <code>TALKINGHEAD_PROFILE=full</code>) to use the released LivePortrait weights.</div>')


def banner(profile=None) -> str:
    """Show (in Jupyter) or print which profile is active; loud when it is `sample`. Returns the plain text."""
    p = get_profile(profile)
    text = (f"SAMPLE PROFILE: seeded random weights, images are NOISE ({p.description})." if p.is_sample
            else f"Profile '{p.name}': {p.description}.")
    html = _BANNER_HTML if p.is_sample else f'<div style="font-family:sans-serif">Profile <b>{p.name}</b>: {p.description}.</div>'
    if not _display_html(html):
        print(text)
    return text


def _display_html(html: str) -> bool:
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        return False
    if get_ipython() is None:
        return False
    display(HTML(html))
    return True


def jpeg_bytes(frame: np.ndarray, quality: int = 85) -> bytes:
    """Encode an RGB uint8 frame (H, W, 3) as JPEG bytes (for live display)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode frame as JPEG")
    return buf.tobytes()


def show_images(images, titles=None, cols: int | None = None, size: float = 3.0):
    """Plot RGB uint8 (or [0,1] float) images side by side; returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    images = list(images)
    cols = cols or len(images)
    rows = (len(images) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, img in enumerate(images):
        ax = axes.flat[i]
        ax.imshow(np.clip(img, 0, 255 if np.asarray(img).dtype == np.uint8 else 1))
        if titles:
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig


def figure_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


def plot_feature_volume(feature_3d, channels: int = 4, depths: int = 4, size: float = 1.6):
    """A grid of slices of the appearance feature volume f_s (1, C, D, H, W): rows = channels, columns = depth slices.

    Taught in notebooks/02_baking.ipynb. Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    v = np.asarray(feature_3d)[0]
    c_idx = np.linspace(0, v.shape[0] - 1, min(channels, v.shape[0])).astype(int)
    d_idx = np.linspace(0, v.shape[1] - 1, min(depths, v.shape[1])).astype(int)
    fig, axes = plt.subplots(len(c_idx), len(d_idx), figsize=(size * len(d_idx), size * len(c_idx)), squeeze=False)
    for i, c in enumerate(c_idx):
        for j, d in enumerate(d_idx):
            ax = axes[i, j]
            ax.imshow(v[c, d], cmap="magma")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"depth {d}", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"ch {c}", fontsize=8)
    fig.suptitle(f"appearance features f_s {tuple(np.asarray(feature_3d).shape)}", fontsize=9)
    fig.tight_layout()
    return fig


def draw_keypoints(crop: np.ndarray, kp, radius: int = 5) -> np.ndarray:
    """Draw implicit keypoints (21, 3) on a square RGB crop: x, y in [-1, 1] (the warping grid's coordinates) map to
    the crop's pixels; colour encodes depth z (blue far, red near). Returns a copy. Taught in notebook 02."""
    import cv2

    img = np.ascontiguousarray(crop).copy()
    n = img.shape[0]
    kp = np.asarray(kp, np.float32).reshape(-1, 3)
    z = (kp[:, 2] - kp[:, 2].min()) / (np.ptp(kp[:, 2]) + 1e-9)
    for k, (x, y, _) in enumerate(kp):
        px, py = int(round((x + 1) / 2 * (n - 1))), int(round((y + 1) / 2 * (n - 1)))
        colour = (int(255 * z[k]), 64, int(255 * (1 - z[k])))
        cv2.circle(img, (px, py), radius, colour, -1, lineType=cv2.LINE_AA)
        cv2.putText(img, str(k), (px + radius, py - radius), cv2.FONT_HERSHEY_SIMPLEX, 0.35 * n / 256, (255, 255, 255),
                    1, cv2.LINE_AA)
    return img
