"""Rendering from motion: avatar bundle + motion (N, 69) -> frames (notebooks 02-06; export traces the same module).

    motion --layout.apply_to_source--> exp_d, pose_d, t_d, scale_d --keypoint transform--> x_d
           --stitching S(x_s, x_d)--> x_d' --W(f_s; x_s -> x_d')--> warped features --G--> face crop
           --resize to the 512 crop--> paste back into the portrait with the baked soft mask --> frame

`BakedRenderer` holds the bundle's tensors (f_s, x_c, source exp/pose/t/scale, x_s, the paste grid, mask and portrait)
as buffers, so `forward(motion)` is a pure function of the motion vector: this is exactly what `talkinghead.export`
writes to `renderer.onnx`, and what the live engine runs.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import layout
from .crop import CROP_SIZE, paste_grid

# Closing the source's lips: LivePortrait's "aaa" direction (FACTS.md) moves kp19.y by +0.001 and kp17.y by -0.0001
# per slider unit, i.e. the mouth-open proxy (layout.mouth_open) by 0.0011 per unit.
MOUTH_OPEN_PER_UNIT = 0.0011


def _aaa_direction() -> np.ndarray:
    """The "aaa" (open mouth) direction in exp (63,), per slider unit (FACTS.md)."""
    d = np.zeros((21, 3), np.float32)
    d[19, 1], d[19, 2], d[17, 1] = 0.001, 0.0001, -0.0001
    return d.reshape(63)


class BakedRenderer(nn.Module):
    """forward(motion (B, 69)) -> face crops (B, 3, 512, 512) in [0, 1], or full frames (B, 3, H, W) with `paste`.

    `close_lips` (float, default 0): subtract this fraction of the source's own mouth opening along the "aaa"
    direction, so a portrait photographed mid-word starts from closed lips (the bundle stores `lip_open`).
    """

    def __init__(self, lp, bundle, paste: bool = True, stitching: bool = True, close_lips: float = 0.0):
        super().__init__()
        self.warping_module, self.spade_generator = lp.warping_module, lp.spade_generator
        self.stitching = lp.stitching_retargeting_module if stitching else None
        self.paste = paste
        src, dtype = bundle.source, lp.dtype
        exp = src["exp"].reshape(63) - close_lips * float(np.ravel(src["lip_open"])[0]) / MOUTH_OPEN_PER_UNIT * _aaa_direction()
        for name, value in {"feature_3d": src["feature_3d"], "kp": src["kp"].reshape(21, 3), "exp": exp.reshape(21, 3),
                            "pose": src["pose"], "t": src["t"], "scale": src["scale"],
                            "x_s": src["x_s"].reshape(1, 21, 3)}.items():
            self.register_buffer(name, torch.as_tensor(np.asarray(value, np.float32)).to(dtype), persistent=False)
        if paste:
            h, w = bundle.portrait.shape[:2]
            grid = paste_grid(src["M_c2o"], (h, w), CROP_SIZE)
            img = bundle.portrait.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
            for name, value in {"grid": grid, "mask": bundle.mask[None, None], "portrait": img}.items():
                self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(value)).to(dtype), persistent=False)

    def keypoints(self, motion: torch.Tensor) -> torch.Tensor:
        """Driving keypoints (B, 21, 3) for motion (B, 69), stitched to the source when stitching is on."""
        from .liveportrait.keypoints import transform_keypoints_degrees

        d = layout.apply_to_source(motion, {"exp": self.exp, "pose": self.pose, "t": self.t, "scale": self.scale})
        x_d = transform_keypoints_degrees(self.kp, d["pose"], d["exp"], d["scale"], d["t"])
        if self.stitching is not None:
            x_d = self.stitching.stitch(self.x_s.expand(x_d.shape[0], -1, -1), x_d)
        return x_d

    def face(self, motion: torch.Tensor) -> torch.Tensor:
        """Face crops (B, 3, 512, 512) in [0, 1]."""
        x_d = self.keypoints(motion)
        b = x_d.shape[0]
        warped = self.warping_module(self.feature_3d.expand(b, -1, -1, -1, -1), kp_driving=x_d,
                                     kp_source=self.x_s.expand(b, -1, -1))["out"]
        img = self.spade_generator(warped)
        if img.shape[-1] != CROP_SIZE:  # the sample profile paints 128x128
            img = F.interpolate(img, size=(CROP_SIZE, CROP_SIZE), mode="bilinear", align_corners=False)
        return img

    def forward(self, motion: torch.Tensor) -> torch.Tensor:
        img = self.face(motion)
        if not self.paste:
            return img
        grid = self.grid.expand(img.shape[0], -1, -1, -1)
        warped = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return torch.clamp(self.mask * warped + (1 - self.mask) * self.portrait, 0.0, 1.0)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8 RGB (rounded)."""
    return (frames.float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def iter_frames(bundle, motion: np.ndarray, lp=None, paste: bool = True, batch_size: int = 8, progress: bool = True,
                close_lips: float = 0.0, renderer: BakedRenderer | None = None):
    """Render motion (N, 69) through the bundle, yielding RGB uint8 frames (H, W, 3) (or 512 crops without `paste`).

    Batched for speed; a progress bar counts frames. `lp` defaults to the networks of the bundle's profile.
    """
    from tqdm.auto import tqdm

    if renderer is None:
        if lp is None:
            from .liveportrait import load_liveportrait
            lp = load_liveportrait(profile=bundle.profile)
        renderer = BakedRenderer(lp, bundle, paste=paste, close_lips=close_lips).eval()
    p = next(renderer.parameters())
    motion = np.asarray(motion, np.float32).reshape(-1, layout.MOTION_DIM)
    with torch.inference_mode(), tqdm(total=len(motion), desc="render", unit="frame", disable=not progress) as bar:
        for i in range(0, len(motion), batch_size):
            out = to_uint8(renderer(torch.from_numpy(motion[i:i + batch_size]).to(p.device, p.dtype)))
            bar.update(len(out))
            yield from out


def render(bundle, motion: np.ndarray, **kw) -> np.ndarray:
    """All frames at once: (N, H, W, 3) uint8. Prefer `iter_frames` for long motion (memory)."""
    frames = list(iter_frames(bundle, motion, **kw))
    shape = bundle.portrait.shape if kw.get("paste", True) else (CROP_SIZE, CROP_SIZE, 3)
    return np.stack(frames) if frames else np.zeros((0, *shape), np.uint8)
