"""Frames as pixels: the one float -> uint8 conversion of the renderer's output (numpy; notebooks 02, 05, 06).

`talkinghead.render.to_uint8` (PyTorch tensors) and the live runtime (onnxruntime arrays) both end here, so the
PyTorch and the ONNX paths round every pixel the same way.
"""
from __future__ import annotations

import numpy as np


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """(B, 3, H, W) floats in [0, 1] -> (B, H, W, 3) uint8 RGB, clipped and rounded half to even."""
    x = np.rint(np.clip(np.asarray(frames, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
