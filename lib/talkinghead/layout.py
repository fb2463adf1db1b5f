"""The motion layout: one float32 vector per video frame, used by every stage (dataset, Audio2Motion, renderer, ONNX).

Motion is *relative* (LivePortrait's relative mode): the change of the speaker's face from a neutral reference frame
of the recording, so it can be applied to any source portrait.

    index    name        unit                          applied to the source as
    0:63     exp         canonical keypoint offsets    exp_d   = exp_s + exp            (21 keypoints x (x, y, z))
    63:66    pose        degrees (pitch, yaw, roll)    angle_d = angle_s + pose
    66:68    t           normalised image units        t_d     = t_s[:2] + t           (tz is unused by LivePortrait)
    68       log_scale   natural log of a ratio        scale_d = scale_s * exp(log_scale)

Then LivePortrait's keypoint transform gives the driving keypoints: x_d = scale_d * (x_c @ R(angle_d) + exp_d) + [t_d, 0].
A zero vector means "the source as it is". Taught in `notebooks/03_motion_extraction.ipynb` and `04_training.ipynb`.
"""
from __future__ import annotations

import numpy as np

# The clock and the crop every stage shares (one place; other modules import these, never repeat the numbers).
SAMPLE_RATE = 16000   # audio samples per second everywhere in the package (features, TTS, live engine)
FPS = 25              # video frames per second: the motion clock (one motion vector per frame)
CROP_SIZE = 512       # the face crop (pixels) that the generator paints and paste-back reads, on every profile

NUM_KP = 21
EXP = slice(0, 63)
POSE = slice(63, 66)
T = slice(66, 68)
LOG_SCALE = slice(68, 69)
MOTION_DIM = 69

NAMES = [f"exp{k}.{a}" for k in range(NUM_KP) for a in "xyz"] + ["pitch", "yaw", "roll", "tx", "ty", "log_scale"]

# Keypoints the reference pipeline treats as lips and eyes (docs/facts.md).
LIP_KP = (6, 12, 14, 17, 19, 20)
EYE_KP = (11, 13, 15, 16, 18)
MOUTH_INDICES = np.array([3 * k + a for k in LIP_KP for a in range(3)])  # positions of lip keypoints inside `exp`


def empty(n: int) -> np.ndarray:
    """`n` frames of "no change": zeros of shape (n, MOTION_DIM), float32."""
    return np.zeros((n, MOTION_DIM), np.float32)


def pack(exp, pose, t, log_scale) -> np.ndarray:
    """Build motion (N, 69) from exp (N, 63 or N, 21, 3), pose degrees (N, 3), t (N, 2 or 3; tz dropped), log_scale (N,) or (N, 1)."""
    exp = np.asarray(exp, np.float32)
    n = exp.shape[0]
    out = np.empty((n, MOTION_DIM), np.float32)
    out[:, EXP] = exp.reshape(n, 63)
    out[:, POSE] = np.asarray(pose, np.float32).reshape(n, 3)
    out[:, T] = np.asarray(t, np.float32).reshape(n, -1)[:, :2]
    out[:, LOG_SCALE] = np.asarray(log_scale, np.float32).reshape(n, 1)
    return out


def unpack(motion) -> dict:
    """Split motion (..., 69) into views: exp (..., 21, 3), pose (..., 3), t (..., 2), log_scale (..., 1). Works on numpy and torch."""
    return {"exp": motion[..., EXP].reshape(*motion.shape[:-1], NUM_KP, 3), "pose": motion[..., POSE],
            "t": motion[..., T], "log_scale": motion[..., LOG_SCALE]}


def relative(exp, pose, t, scale, ref: int | np.ndarray) -> np.ndarray:
    """Absolute per-frame motion -> relative motion (N, 69) against frame `ref` (an index) or a reference dict-like tuple.

    exp (N, 63), pose degrees (N, 3), t (N, 3 or 2), scale (N, 1) as the motion extractor gives them.
    """
    exp = np.asarray(exp, np.float32).reshape(len(exp), 63)
    pose = np.asarray(pose, np.float32)
    t = np.asarray(t, np.float32)[:, :2]
    scale = np.asarray(scale, np.float32).reshape(-1)
    i = int(ref)
    return pack(exp - exp[i], pose - pose[i], t - t[i], np.log(scale / scale[i]))


def apply_to_source(motion, source: dict) -> dict:
    """Relative motion (..., 69) + source keypoint info -> driving parameters (numpy or torch, broadcasting).

    `source`: exp (21, 3), pose degrees (3,), t (3,) or (2,), scale (1,). Returns exp (..., 21, 3), pose (..., 3),
    t (..., 2), scale (..., 1) for `talkinghead.liveportrait.keypoints.transform_keypoints`.
    """
    m = unpack(motion)
    lib = _lib(motion)
    return {"exp": source["exp"] + m["exp"], "pose": source["pose"] + m["pose"],
            "t": source["t"][..., :2] + m["t"], "scale": source["scale"] * lib.exp(m["log_scale"])}


def mouth_open(motion) -> np.ndarray:
    """Mouth-opening proxy (...,): keypoint 19's y minus keypoint 17's y in `exp` (grows as the jaw opens, docs/facts.md)."""
    e = unpack(motion)["exp"]
    return e[..., 19, 1] - e[..., 17, 1]


def _lib(x):
    if type(x).__module__.startswith("torch"):
        import torch
        return torch
    return np


# Emotion labels (the corpus's emotion lines; an optional conditioning input of Audio2Motion). Index = label id.
EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised", "puzzled")
