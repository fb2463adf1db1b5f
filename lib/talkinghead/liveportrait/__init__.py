"""LivePortrait's networks and keypoint arithmetic (implicit-keypoint warping, KwaiVGI/LivePortrait).

    F appearance.AppearanceFeatureExtractor   image -> feature volume f_s
    M motion_extractor.MotionExtractor       image -> canonical keypoints, pose, expression, scale, translation
    W warping.WarpingNetwork                 f_s, x_s, x_d -> warped features
    G generator.SPADEDecoder                 warped features -> 512 x 512 face
    S stitching.StitchingRetargetingModule   stitching and lip/eye retargeting MLPs
    keypoints                                pose bins -> degrees -> rotation -> posed keypoints
    loader.load_liveportrait                 all five, at the 'full' (released) or 'sample' (seeded) profile

Names below load on first use, so `import talkinghead.liveportrait` does not import torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "load_liveportrait": "loader",
    "LivePortrait": "loader",
    "headpose_pred_to_degree": "keypoints",
    "rotation_matrix": "keypoints",
    "transform_keypoints": "keypoints",
    "transform_keypoints_degrees": "keypoints",
    "pose_degrees": "keypoints",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
