"""Image quality of the student against the teacher: PSNR and SSIM per frame, on faces in [0, 1]
(notebooks/07_pocket_renderer.ipynb).

SSIM is the usual one (Wang et al. 2004): an 11x11 Gaussian window (sigma 1.5), C1 = (0.01)^2, C2 = (0.03)^2, on each
colour channel, averaged over the image and the channels.
"""
from __future__ import annotations

import numpy as np


def _t(x, dtype="float64"):
    import torch

    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x
    x = x.to(getattr(torch, dtype))
    return x[None] if x.dim() == 3 else x


def psnr(a, b) -> np.ndarray:
    """PSNR (dB) per frame of (N, 3, H, W) (or one (3, H, W)) images, float in [0, 1] or uint8; inf when equal."""
    x, y = _t(a), _t(b)
    mse = ((x - y) ** 2).flatten(1).mean(1).numpy()
    with np.errstate(divide="ignore"):
        return 10 * np.log10(1.0 / mse)


def ssim(a, b, window: int = 11, sigma: float = 1.5) -> np.ndarray:
    """SSIM per frame of (N, 3, H, W) images (float in [0, 1] or uint8): float32, OpenCV's Gaussian blur, the
    window's valid region only (as a convolution without padding)."""
    import cv2

    x, y = _t(a, "float32").numpy(), _t(b, "float32").numpy()
    r = window // 2
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    out = np.empty(len(x))

    def blur(z):
        return cv2.GaussianBlur(z, (window, window), sigma, borderType=cv2.BORDER_REFLECT)[r:-r, r:-r]

    for i in range(len(x)):
        vals = []
        for ch in range(x.shape[1]):
            p, q = np.ascontiguousarray(x[i, ch]), np.ascontiguousarray(y[i, ch])
            mx, my = blur(p), blur(q)
            vx, vy, cxy = blur(p * p) - mx ** 2, blur(q * q) - my ** 2, blur(p * q) - mx * my
            s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
            vals.append(float(s.mean(dtype=np.float64)))
        out[i] = np.mean(vals)
    return out


def finite_mean(x) -> float:
    """Mean of the finite values (identical frames give PSNR inf), NaN when none."""
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else float("nan")


__all__ = ["psnr", "ssim", "finite_mean"]
