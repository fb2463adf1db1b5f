"""Implicit-keypoint arithmetic of LivePortrait (paper Eq. 2): head pose bins -> degrees -> rotation -> keypoints.

    x = s * (x_c @ R + exp) + [tx, ty, 0]

x_c are the canonical keypoints (21 x 3) from the motion extractor M, R the head rotation built from pitch, yaw, roll
(degrees), exp the expression offsets (21 x 3, canonical space), s the scale and t the translation (tz is unused).

Everything here is plain torch on whole batches (no Python loop over a batch, no in-place writes to inputs), so it
traces into ONNX unchanged. Leading dimensions `...` broadcast. Conformance: `shared/conformance/keypoint_math`.
"""
from __future__ import annotations

import math

import torch

NUM_BINS = 66          # pose bins of M's pitch/yaw/roll heads
BIN_DEGREES = 3.0      # width of one bin (degrees)
BIN_OFFSET = 97.5      # degrees subtracted from the expected bin position (the reference's "modified average")


def headpose_pred_to_degree(logits: torch.Tensor) -> torch.Tensor:
    """Pose bin logits (..., 66) -> angle in degrees (...): the softmax-expected bin index * 3 - 97.5."""
    prob = torch.softmax(logits, dim=-1)
    idx = torch.arange(logits.shape[-1], dtype=logits.dtype, device=logits.device)
    return (prob * idx).sum(dim=-1) * BIN_DEGREES - BIN_OFFSET


def rotation_matrix(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Head rotation from Euler angles in degrees, each of shape (...) (broadcast), -> (..., 3, 3).

    Returns (Rz(roll) @ Ry(yaw) @ Rx(pitch))^T, the matrix that multiplies row-vector keypoints from the right
    (x @ R), as in the reference implementation.
    """
    pitch, yaw, roll = torch.broadcast_tensors(*(_tensor(a) for a in (pitch, yaw, roll)))
    x, y, z = (a * (math.pi / 180.0) for a in (pitch, yaw, roll))
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rot_x = _matrix(one, zero, zero,
                    zero, torch.cos(x), -torch.sin(x),
                    zero, torch.sin(x), torch.cos(x))
    rot_y = _matrix(torch.cos(y), zero, torch.sin(y),
                    zero, one, zero,
                    -torch.sin(y), zero, torch.cos(y))
    rot_z = _matrix(torch.cos(z), -torch.sin(z), zero,
                    torch.sin(z), torch.cos(z), zero,
                    zero, zero, one)
    return (rot_z @ rot_y @ rot_x).transpose(-1, -2)


def _matrix(*entries: torch.Tensor) -> torch.Tensor:
    """Nine tensors of shape (...) in row-major order -> (..., 3, 3)."""
    return torch.stack(entries, dim=-1).reshape(*entries[0].shape, 3, 3)


def transform_keypoints_degrees(kp: torch.Tensor, pose: torch.Tensor, exp: torch.Tensor, scale: torch.Tensor,
                                t: torch.Tensor) -> torch.Tensor:
    """Posed keypoints s * (x_c @ R + exp) + [tx, ty, 0], with the pose already in degrees.

    kp: canonical keypoints (..., 21, 3) or (..., 63); pose: (pitch, yaw, roll) degrees (..., 3); exp: (..., 21, 3)
    or (..., 63); scale: (..., 1); t: (..., 2) or (..., 3) (tz ignored). Returns (..., 21, 3). Takes exactly what
    `talkinghead.layout.apply_to_source` gives (exp, pose, t, scale) plus the source's canonical keypoints.
    """
    kp = _as_points(kp)
    exp = _as_points(exp)
    rot = rotation_matrix(pose[..., 0], pose[..., 1], pose[..., 2])
    posed = scale.unsqueeze(-1) * (kp @ rot + exp)
    shift = torch.cat([t[..., :2], torch.zeros_like(t[..., :1])], dim=-1)
    return posed + shift.unsqueeze(-2)


def transform_keypoints(kp: torch.Tensor, pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor,
                        exp: torch.Tensor, scale: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Posed keypoints from M's raw head output (the reference `transform_keypoint`).

    kp, exp: (B, 63) or (B, 21, 3); pitch, yaw, roll: 66-bin logits (B, 66); scale: (B, 1); t: (B, 3).
    Returns (B, 21, 3).
    """
    pose = torch.stack([headpose_pred_to_degree(a) for a in (pitch, yaw, roll)], dim=-1)
    return transform_keypoints_degrees(kp, pose, exp, scale, t)


def pose_degrees(kp_info: dict) -> torch.Tensor:
    """M's output dict -> (pitch, yaw, roll) in degrees, (B, 3)."""
    return torch.stack([headpose_pred_to_degree(kp_info[k]) for k in ("pitch", "yaw", "roll")], dim=-1)


def _tensor(x) -> torch.Tensor:
    """Tensors pass through (so tracing sees no constants); Python numbers become tensors."""
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=torch.get_default_dtype())


def _as_points(x: torch.Tensor) -> torch.Tensor:
    """(..., 3K) or (..., K, 3) -> (..., K, 3)."""
    return x if x.shape[-1] == 3 else x.reshape(*x.shape[:-1], -1, 3)
