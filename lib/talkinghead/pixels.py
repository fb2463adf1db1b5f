"""Frames as pixels: the one float -> uint8 conversion of the renderer's output, and the pocket frame graph's box put
over its background (numpy; notebooks 02, 05, 06, 07).

`talkinghead.render.to_uint8` (PyTorch tensors) and the live runtime (onnxruntime arrays) both end here, so the
PyTorch and the ONNX paths round every pixel the same way.
"""
from __future__ import annotations

import numpy as np


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """(B, 3, H, W) floats in [0, 1] -> (B, H, W, 3) uint8 RGB, clipped and rounded half to even."""
    x = np.rint(np.clip(np.asarray(frames, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def over_background(background: np.ndarray, box, rgba: np.ndarray) -> np.ndarray:
    """Whole frames from the pocket frame graph's output: `background` uint8 (H, W, 3) with the box (y0, x0, h, w)
    replaced by `rgba` uint8 (B, h, w, 4)'s colour -> uint8 (B, H, W, 3)."""
    y0, x0, h, w = (int(v) for v in box)
    out = np.repeat(np.asarray(background)[None], len(rgba), 0)
    out[:, y0:y0 + h, x0:x0 + w] = rgba[..., :3]
    return out
