"""LivePortrait's 203-point face landmarks (the hub's `liveportrait/landmark.onnx`), its crop, and close ratios.

Full profile only (notebook 02): the landmarks give the released pipeline's landmark-based crop (the 512 crop framed by
the whole face outline, not by 5 points) and real eye/lip close ratios for retargeting.

The model (as LivePortrait runs it): input `input` (1, 3, 224, 224) float32 RGB in [0, 1], a crop made by the released
crop arithmetic from earlier landmarks at scale 1.5, vy_ratio -0.1; three outputs, the third (1, 406) holding the 203
points (x, y) as fractions of the 224 crop. The first pass starts from the detector's 5 points plus the estimated
outline (`face.outline_points`, standing in for the 106 points LivePortrait starts from); a second pass starts from the
first pass's 203 points, as LivePortrait's video tracking does.

203-point layout (the indices the reference uses): left eye (image left) 0-23 with corners 0, 12 and lids 6, 18; right
eye 24-47 with corners 24, 36 and lids 30, 42; lip corners 48, 66; inner lips 90, 102; pupils 197, 198; nose tip 201.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from . import crop as cropping
from . import onnxrt
from .errors import WeightsError

INPUT_SIZE = 224
INPUT_SCALE = 1.5
INPUT_VY_RATIO = -0.1
N_POINTS = 203
FIVE_FROM_203 = (197, 198, 201, 48, 66)   # pupils, nose tip, lip corners -> [l eye, r eye, nose, l mouth, r mouth]


@functools.lru_cache(maxsize=4)
def _session_cached(path: str, mtime: float):
    def error(e: Exception) -> WeightsError:
        return WeightsError(f"{path}: the landmark model could not be loaded ({type(e).__name__}); the file is corrupt "
                            "or partial: delete it and download it again.")
    return onnxrt.session(path, "cpu", error=error)


def landmark_session(weights_dir: str | os.PathLike | None = None):
    """The onnxruntime session of `liveportrait/landmark.onnx` (from the weights folder or the hub), cached per file."""
    from .hub import LANDMARK_FILE, hub_file
    path = str(hub_file(LANDMARK_FILE, weights_dir))
    return _session_cached(path, Path(path).stat().st_mtime)


def _points_output(outputs: list[np.ndarray]) -> np.ndarray:
    """The (406,) output among the model's outputs (the third in the released file)."""
    sized = [np.asarray(o) for o in outputs if np.asarray(o).size == 2 * N_POINTS]
    if not sized:
        raise WeightsError(f"the landmark model has no output of {2 * N_POINTS} values (203 points); use "
                           "liveportrait/landmark.onnx from the hub repo.")
    third = np.asarray(outputs[2]) if len(outputs) > 2 else None
    return (third if third is not None and third.size == 2 * N_POINTS else sized[-1]).reshape(N_POINTS, 2)


def run_landmarks(session, image_rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    """One pass: (203, 2) float32 landmarks in image pixels, from a crop framed by `points` ((N, 2), N >= 5).

    The crop is `crop_image(image, points, 224, scale=1.5, vy_ratio=-0.1)`; the model's fractions are scaled to 224
    and mapped back with the crop's M_c2o.
    """
    c = cropping.crop_image(image_rgb, points, dsize=INPUT_SIZE, scale=INPUT_SCALE, vy_ratio=INPUT_VY_RATIO)
    x = (c.img_crop.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    name = session.get_inputs()[0].name
    pts = _points_output(session.run(None, {name: np.ascontiguousarray(x)})) * INPUT_SIZE
    return cropping.transform_points(pts, c.M_c2o).astype(np.float32)


def landmarks203(session, image_rgb: np.ndarray, points: np.ndarray, passes: int = 2) -> np.ndarray:
    """(203, 2) float32 landmarks of the face framed by `points` (the detector's 5 plus outline, or earlier landmarks).

    Each pass after the first re-crops from the previous pass's 203 points (tighter, roll-corrected framing).
    """
    lmk = np.asarray(points, np.float32)
    for _ in range(max(1, passes)):
        lmk = run_landmarks(session, image_rgb, lmk)
    return lmk


def points5(lmk203: np.ndarray) -> np.ndarray:
    """The 5 detector-style points (5, 2) [l eye, r eye, nose, l mouth, r mouth] of 203 landmarks."""
    return np.asarray(lmk203, np.float32)[list(FIVE_FROM_203)]


def close_ratios(lmk203: np.ndarray) -> dict[str, np.ndarray]:
    """{"eye": (2,) [left, right] lid gap / eye width, "lip": (1,) lip gap / mouth width} for one (203, 2) face.

    The arithmetic is `crop.eye_close_ratio` / `crop.lip_close_ratio` (the conformance `landmark_ratios` case); the
    stitching module's eye and lip retargeting take these ratios.
    """
    lmk = np.asarray(lmk203, np.float32)[None]
    return {"eye": cropping.eye_close_ratio(lmk)[0].astype(np.float32),
            "lip": cropping.lip_close_ratio(lmk)[0].astype(np.float32)}


def landmark_crop(image_rgb: np.ndarray, lmk203: np.ndarray, dsize: int = cropping.CROP_SIZE,
                  scale: float = cropping.CROP_SCALE, vx_ratio: float = cropping.CROP_VX_RATIO,
                  vy_ratio: float = cropping.CROP_VY_RATIO) -> cropping.CropResult:
    """The released crop framed by the 203 landmarks (their eye and lip centres set the roll, their extent the size).

    pt_crop holds the 203 points in crop pixels.
    """
    return cropping.crop_image(image_rgb, np.asarray(lmk203, np.float32), dsize, scale, vx_ratio, vy_ratio)
