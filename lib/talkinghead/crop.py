"""The released LivePortrait crop, the paste-back mask and paste-back, and the landmark close ratios.

Everything here is plain arithmetic on points and matrices and reproduces the reference implementation's numbers (the
`crop_paste` and `landmark_ratios` conformance cases). `talkinghead.face` re-exports these names; call them from there.

Conventions: images are RGB uint8 HxWx3; points are (N, 2) float32 (x, y) in pixels, pixel centres at integers (OpenCV's
convention); matrices are 3x3 float32 homogeneous, `M_o2c` maps original-image pixels to crop pixels, `M_c2o` the inverse.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .layout import CROP_SIZE  # the crop the generator's output lives in (face, bake and render read it here)

DTYPE = np.float32
NET_SIZE = 256    # the networks' (F, M) input size

# Released crop settings (LivePortrait's inference config for the source image).
CROP_SCALE = 2.3
CROP_VX_RATIO = 0.0
CROP_VY_RATIO = -0.125


@dataclass
class CropResult:
    """img_crop (dsize, dsize, 3) uint8; M_o2c, M_c2o (3, 3) float32; pt_crop (N, 2) float32 in crop pixels."""
    img_crop: np.ndarray
    M_o2c: np.ndarray
    M_c2o: np.ndarray
    pt_crop: np.ndarray


# ----------------------------------------------------------------------------------------------------------- the crop

# Eye corners/lids and lip points of the dense layouts the reference also crops from: (left eye, right eye, lips).
_DENSE_LAYOUTS = {106: ([33, 35, 40, 39], [87, 89, 94, 93], [52, 61]),
                  203: ([0, 6, 12, 18], [24, 30, 36, 42], [48, 66])}


def _eye_mouth_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(eye centre, mouth centre), each (2,) float32.

    From the first 5 points [l eye, r eye, nose, l mouth, r mouth] of any (N >= 5, 2) array, except the 106- and
    203-point landmark layouts, which use their own eye and lip points as the reference does.
    """
    p = np.asarray(points, dtype=DTYPE)
    if len(p) in _DENSE_LAYOUTS:
        le, re_, lips = _DENSE_LAYOUTS[len(p)]
        return (p[le].mean(axis=0) + p[re_].mean(axis=0)) / 2, p[lips].mean(axis=0)
    return (p[0] + p[1]) / 2, (p[3] + p[4]) / 2


def crop_rect(points5: np.ndarray, scale: float = CROP_SCALE, vx_ratio: float = CROP_VX_RATIO,
              vy_ratio: float = CROP_VY_RATIO) -> tuple[np.ndarray, float, float]:
    """The rotated square around the face: (centre (2,) float32 px, side length px, angle rad).

    `points5` is (5, 2), or any (N, 2) landmarks whose first 5 are those (the 106/203 layouts are recognised).
    The crop's y axis runs from the eye centre to the mouth centre (this cancels the roll); the side is the larger extent
    of all the points in that rotated frame times `scale`; the centre is the centre of that extent, shifted by
    `vx_ratio`/`vy_ratio` times the side along the crop's x/y axes (negative vy moves the crop up, taking in forehead).
    """
    pts = np.asarray(points5, dtype=DTYPE)
    eye, mouth = _eye_mouth_centres(pts)
    uy = mouth - eye
    length = np.linalg.norm(uy)
    uy = np.array([0, 1], dtype=DTYPE) if length <= 1e-3 else uy / length
    ux = np.array((uy[1], -uy[0]), dtype=DTYPE)
    angle = math.acos(float(ux[0]))
    if ux[1] < 0:
        angle = -angle
    rot = np.stack([ux, uy])                      # rows: the crop's axes in image coordinates
    centre0 = pts.mean(axis=0)
    rpts = (pts - centre0) @ rot.T
    lo, hi = rpts.min(axis=0), rpts.max(axis=0)
    mid = (lo + hi) / 2
    side = max(hi - lo) * DTYPE(scale)
    centre = centre0 + ux * mid[0] + uy * mid[1]
    centre = centre + ux * (DTYPE(vx_ratio) * side) + uy * (DTYPE(vy_ratio) * side)
    return centre.astype(DTYPE), side, angle


def crop_matrices(points5: np.ndarray, dsize: int = CROP_SIZE, scale: float = CROP_SCALE,
                  vx_ratio: float = CROP_VX_RATIO, vy_ratio: float = CROP_VY_RATIO,
                  rotate: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(M_o2c, M_c2o), each (3, 3) float32: the similarity taking the face square of `crop_rect` to a dsize x dsize crop."""
    centre, side, angle = crop_rect(points5, scale, vx_ratio, vy_ratio)
    s = dsize / side
    t = dsize / 2
    cx, cy = centre
    if rotate:
        c, sn = math.cos(angle), math.sin(angle)
        rows = [[s * c, s * sn, t - s * (c * cx + sn * cy)],
                [-s * sn, s * c, t - s * (-sn * cx + c * cy)]]
    else:
        rows = [[s, 0, t - s * cx], [0, s, t - s * cy]]
    m_o2c = np.array(rows + [[0, 0, 1]], dtype=DTYPE)
    return m_o2c, np.linalg.inv(m_o2c).astype(DTYPE)


def transform_points(points: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Apply the affine part of a 2x3 or 3x3 matrix to (N, 2) points."""
    M = np.asarray(M)
    return np.asarray(points) @ M[:2, :2].T + M[:2, 2]


def warp(image: np.ndarray, M: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """cv2.warpAffine with M's top 2 rows, bilinear, constant-0 border; size_wh = (width, height) of the output."""
    return cv2.warpAffine(image, np.asarray(M)[:2, :], dsize=tuple(int(v) for v in size_wh), flags=cv2.INTER_LINEAR)


def crop_image(image: np.ndarray, points5: np.ndarray, dsize: int = CROP_SIZE, scale: float = CROP_SCALE,
               vx_ratio: float = CROP_VX_RATIO, vy_ratio: float = CROP_VY_RATIO, rotate: bool = True) -> CropResult:
    """The released crop of an RGB uint8 image: a dsize x dsize face crop, its matrices and the points in crop pixels."""
    m_o2c, m_c2o = crop_matrices(points5, dsize, scale, vx_ratio, vy_ratio, rotate)
    img_crop = warp(image, m_o2c, (dsize, dsize))
    pt_crop = transform_points(np.asarray(points5, dtype=DTYPE), m_o2c).astype(DTYPE)
    return CropResult(img_crop, m_o2c, m_c2o, pt_crop)


def resize_for_network(img_crop: np.ndarray, size: int = NET_SIZE) -> np.ndarray:
    """The 512 crop resized to the networks' input (256x256 uint8 RGB), with area averaging when shrinking."""
    if img_crop.shape[0] == size and img_crop.shape[1] == size:
        return img_crop
    interp = cv2.INTER_AREA if img_crop.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(img_crop, (size, size), interpolation=interp)


def to_network_tensor(img_crop: np.ndarray, size: int = NET_SIZE) -> np.ndarray:
    """RGB uint8 crop -> (1, 3, size, size) float32 in [0, 1], the layout F and M take."""
    x = resize_for_network(img_crop, size).astype(np.float32) / 255.0
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


# ------------------------------------------------------------------------------------------------------ paste-back

def make_paste_mask(dsize: int = CROP_SIZE, core: tuple[float, float, float, float] = (0.22, 0.2, 0.78, 0.86),
                    radius: float = 0.16, feather: float = 0.08) -> np.ndarray:
    """The project's soft paste-back mask in crop space: (dsize, dsize, 3) float32 in [0, 1].

    A rounded rectangle `core` = (x1, y1, x2, y2) in fractions of the crop (the face: brows to chin at the released
    crop settings), corner radius `radius`, is 1 inside and fades to 0 over `feather` (fractions of dsize) outside with a
    smoothstep of the signed distance; with the defaults it is 0 beyond 6% of the crop from every border, so the
    generator's border artefacts never reach the frame.
    """
    c = (np.arange(dsize, dtype=np.float32) + 0.5) / dsize
    x, y = np.meshgrid(c, c)
    x1, y1, x2, y2 = core
    # signed distance to the rounded rectangle (negative inside)
    hx, hy = (x2 - x1) / 2 - radius, (y2 - y1) / 2 - radius
    qx = np.abs(x - (x1 + x2) / 2) - hx
    qy = np.abs(y - (y1 + y2) / 2) - hy
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    inside = np.minimum(np.maximum(qx, qy), 0)
    dist = outside + inside - radius
    t = np.clip(1 - dist / feather, 0, 1)
    m = t * t * (3 - 2 * t)
    return np.repeat(m[..., None], 3, axis=2).astype(np.float32)


def mask_to_original(mask_crop: np.ndarray, M_c2o: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Warp a crop-space mask into the original image: (H, W, 3) float32 in [0, 1].

    `mask_crop` is either float in [0, 1] (from `make_paste_mask`) or uint8 0..255 (the reference's template); a uint8
    mask is warped as uint8 and then divided by 255, exactly as the reference does.
    """
    h, w = hw
    mask_crop = np.asarray(mask_crop)
    if mask_crop.ndim == 2:
        mask_crop = np.repeat(mask_crop[..., None], 3, axis=2)
    out = warp(mask_crop, M_c2o, (w, h)).astype(np.float32)
    if mask_crop.dtype == np.uint8:
        out /= 255.0
    return np.clip(out, 0.0, 1.0)


def paste_back(crop_rgb: np.ndarray, M_c2o: np.ndarray, image_rgb: np.ndarray, mask_ori: np.ndarray) -> np.ndarray:
    """Blend a (dsize, dsize, 3) uint8 crop into the (H, W, 3) uint8 image: clip(mask*warp(crop) + (1-mask)*image).

    The float result is truncated to uint8 (as the reference's `astype(np.uint8)` does), not rounded.
    """
    h, w = image_rgb.shape[:2]
    warped = warp(crop_rgb, M_c2o, (w, h))
    out = mask_ori * warped + (1 - mask_ori) * image_rgb
    return np.clip(out, 0, 255).astype(np.uint8)


def paste_grid(M_c2o: np.ndarray, hw: tuple[int, int], dsize: int = CROP_SIZE) -> np.ndarray:
    """The sampling grid of paste-back for `torch.nn.functional.grid_sample` (align_corners=False): (1, H, W, 2) float32.

    For each original pixel (x, y) it holds where M_o2c sends it in the crop, normalised to [-1, 1] over the crop
    (the same sample positions as cv2.warpAffine with M_c2o).
    """
    h, w = hw
    m_o2c = np.linalg.inv(np.asarray(M_c2o, dtype=np.float64))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    src = np.stack([xs, ys], axis=-1) @ m_o2c[:2, :2].T + m_o2c[:2, 2]
    grid = (2 * src + 1) / dsize - 1
    return grid[None].astype(np.float32)


def paste_back_torch(crop, grid, mask, image):
    """Paste-back in torch, exportable to ONNX (GridSample, opset >= 16; the project exports at 20).

    crop (B, 3, dsize, dsize) in [0, 1]; grid (1 or B, H, W, 2) from `paste_grid`; mask (1 or B, 1 or 3, H, W) in
    [0, 1] (`mask_to_original(...)` transposed to channels-first); image (1 or B, 3, H, W) in [0, 1].
    Returns (B, 3, H, W) in [0, 1]. Bilinear, zeros outside the crop, like the OpenCV version.
    """
    import torch
    import torch.nn.functional as F

    grid = grid.expand(crop.shape[0], -1, -1, -1)   # a no-op when grid already has the batch
    warped = F.grid_sample(crop, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return torch.clamp(mask * warped + (1 - mask) * image, 0.0, 1.0)


def paste_back_module(M_c2o: np.ndarray, image_rgb: np.ndarray, mask_ori: np.ndarray, dsize: int = CROP_SIZE):
    """A `torch.nn.Module` with the grid, mask and background frame baked in as buffers: forward(crop (B,3,d,d)) -> frames."""
    import torch

    class PasteBack(torch.nn.Module):
        def __init__(self):
            super().__init__()
            h, w = image_rgb.shape[:2]
            self.register_buffer("grid", torch.from_numpy(paste_grid(M_c2o, (h, w), dsize)))
            self.register_buffer("mask", torch.from_numpy(np.ascontiguousarray(mask_ori.transpose(2, 0, 1)[None])))
            img = image_rgb.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
            self.register_buffer("image", torch.from_numpy(np.ascontiguousarray(img)))

        def forward(self, crop):
            return paste_back_torch(crop, self.grid, self.mask, self.image)

    return PasteBack()


# -------------------------------------------------------------------------------------------- landmark close ratios

def _distance_ratio(lmk: np.ndarray, i1: int, i2: int, i3: int, i4: int, eps: float = 1e-6) -> np.ndarray:
    """|lmk[:, i1] - lmk[:, i2]| / (|lmk[:, i3] - lmk[:, i4]| + eps) for (B, N, 2) landmarks -> (B, 1)."""
    lmk = np.asarray(lmk)
    num = np.linalg.norm(lmk[:, i1] - lmk[:, i2], axis=1, keepdims=True)
    den = np.linalg.norm(lmk[:, i3] - lmk[:, i4], axis=1, keepdims=True)
    return num / (den + eps)


def eye_close_ratio(lmk203: np.ndarray) -> np.ndarray:
    """Eye openness on the 203-point layout, (B, 203, 2) -> (B, 2) [left, right]: lid gap over eye width."""
    return np.concatenate([_distance_ratio(lmk203, 6, 18, 0, 12), _distance_ratio(lmk203, 30, 42, 24, 36)], axis=1)


def lip_close_ratio(lmk203: np.ndarray) -> np.ndarray:
    """Mouth openness on the 203-point layout, (B, 203, 2) -> (B, 1): lip gap over mouth width."""
    return _distance_ratio(lmk203, 90, 102, 48, 66)
