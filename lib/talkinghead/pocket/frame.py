"""The pocket renderer as a frame patch: motion -> the pasted frame's pixels that can move, as RGBA bytes
(notebooks/07_pocket_renderer.ipynb; the browser page and the live runtime run it).

pocket.onnx paints the whole 512 crop and paste.onnx warps it into the whole portrait: most of that work repaints
pixels that never change. The student only changes its region (`PocketConfig.roi`), so everything outside the part
of the portrait that region reaches is the same in every frame (`pocket_background.png`). The frame graph computes
only that box, and returns bytes, ready for a canvas:

    motion (B, 69) --student.region--> the region's colour at the warp resolution W (B, 3, h, w)
        delta = region - reference                                  zero outside the region
        --bilinear x(512/W), only over the region and a pixel around it (`student.upsampled_region`)--> delta at
          512 on that block P of the crop (zero outside it)
        face_P = clamp(reference_P + delta_P)                       exactly pocket.onnx's face on P
        frame_box = clamp(rest_box + mask * grid_sample(face_P - reference_P))     paste.onnx is linear in the face
        --round(255 x), cast, alpha 255--> rgba uint8 (B, h_box, w_box, 4)

    pocket_frame.onnx   motion float32 (B, 69) -> rgba uint8 (B, h, w, 4): rows y0..y0+h, cols x0..x0+w of the frame
    pocket_background.png   the whole frame at rest (uint8 RGB); outside the box every frame equals it

The result equals `to_uint8(paste(pocket(motion)))` within one grey level (float rounding of the same sums; checked
at export and in tests/test_pocket_frame.py). The manifest's `models.renderer.variants.pocket.frame` holds the file
names and the box.
"""
from __future__ import annotations

import numpy as np

from .. import layout
from ..crop import paste_grid
from .student import PocketStudent, scaled_roi, upsampled_region

FRAME_FILE = "pocket_frame.onnx"
BACKGROUND_FILE = "pocket_background.png"
CROP = layout.CROP_SIZE
MAX_GREY_DIFF = 1                 # frame graph vs pocket.onnx + paste.onnx, in grey levels


def frame_box(grid: np.ndarray, mask: np.ndarray, block: tuple) -> tuple[int, int, int, int]:
    """(y0, x0, h, w) of the frame pixels that can change: the mask is > 0 and the paste grid (1, H, W, 2) reads a
    crop pixel of `block` = (py0, px0, py1, px1) (either bilinear neighbour)."""
    px = ((grid[0, ..., 0].astype(np.float64) + 1) * CROP - 1) / 2
    py = ((grid[0, ..., 1].astype(np.float64) + 1) * CROP - 1) / 2
    py0, px0, py1, px1 = block
    fx, fy = np.floor(px), np.floor(py)
    hit = (mask > 0) & (fx + 1 >= px0) & (fx < px1) & (fy + 1 >= py0) & (fy < py1)
    ys, xs = np.nonzero(hit)
    if not len(ys):
        return 0, 0, 1, 1
    return int(ys.min()), int(xs.min()), int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)


def frame_module(student: PocketStudent, bundle):
    """The torch module of pocket_frame.onnx for this student and the baked bundle's paste (its portrait uint8
    (H, W, 3), mask (H, W) in [0, 1] and M_c2o); its `box` = (y0, x0, h, w) in the frame."""
    import torch
    import torch.nn.functional as F

    class PocketFrame(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.student = student.eval()
            c = student.config
            self.w = w = min(CROP, c.warp_size)
            self.roi = scaled_roi(c.roi, w)
            zero, (py0, px0) = upsampled_region(torch.zeros(1, 3, *self.roi[2:]), self.roi, w, CROP)
            py1, px1 = py0 + zero.shape[-2], px0 + zero.shape[-1]
            self.block = (py0, px0, py1, px1)
            portrait, mask = bundle.portrait, np.asarray(bundle.mask, np.float32)
            grid = paste_grid(bundle.source["M_c2o"], mask.shape, CROP)
            self.box = y0, x0, h, wd = frame_box(grid, mask, self.block)
            g = grid[:, y0:y0 + h, x0:x0 + wd]
            ref = student.reference
            m = torch.from_numpy(np.ascontiguousarray(mask[None, None, y0:y0 + h, x0:x0 + wd], np.float32))
            img = torch.from_numpy(np.ascontiguousarray(
                portrait[y0:y0 + h, x0:x0 + wd].astype(np.float32).transpose(2, 0, 1)[None] / 255.0))
            with torch.no_grad():
                rest = m * F.grid_sample(ref, torch.from_numpy(g), mode="bilinear", padding_mode="zeros",
                                         align_corners=False) + (1 - m) * img
            local = g.astype(np.float64).copy()                         # the same positions, in the block's frame
            for axis, lo, n in ((0, px0, px1 - px0), (1, py0, py1 - py0)):
                pix = ((local[..., axis] + 1) * CROP - 1) / 2 - lo
                local[..., axis] = (2 * pix + 1) / n - 1
            for name, value in {"mask": m, "rest": rest, "grid": torch.from_numpy(local.astype(np.float32)),
                                "ref_block": ref[:, :, py0:py1, px0:px1].clone()}.items():
                self.register_buffer(name, value, persistent=False)

        def delta_block(self, motion):
            """The face's change from the reference on the block P of the 512 crop: (B, 3, P_h, P_w)."""
            s, (ry, rx, rh, rw) = self.student, self.roi
            region = s.region(motion, s.reference_w, self.roi, s.grid_w)
            d, _ = upsampled_region(region - s.reference_w[:, :, ry:ry + rh, rx:rx + rw], self.roi, self.w, CROP)
            return torch.clamp(self.ref_block + d, 0.0, 1.0) - self.ref_block

        def forward(self, motion):
            d = self.delta_block(motion)
            warped = F.grid_sample(d, self.grid.expand(d.shape[0], -1, -1, -1), mode="bilinear",
                                   padding_mode="zeros", align_corners=False)
            frame = torch.clamp(self.rest + self.mask * warped, 0.0, 1.0)
            q = torch.round(frame * 255.0)
            rgba = torch.cat([q, torch.full_like(q[:, :1], 255.0)], 1).permute(0, 2, 3, 1)
            return rgba.to(torch.uint8)

    if CROP % min(CROP, student.config.warp_size):
        raise ValueError(f"the frame graph needs a warp size that divides {CROP}, not {student.config.warp_size}")
    return PocketFrame().eval()


def background(student: PocketStudent, bundle) -> np.ndarray:
    """The frame at rest, uint8 (H, W, 3): the student's reference face pasted into the baked bundle's portrait by
    paste.onnx's module; outside the frame graph's box every frame equals it."""
    import torch

    from ..export import paste_module
    from ..pixels import to_uint8

    with torch.no_grad():
        return to_uint8(paste_module(bundle)(student.reference).numpy())[0]


__all__ = ["FRAME_FILE", "BACKGROUND_FILE", "MAX_GREY_DIFF", "frame_module", "background", "frame_box"]
