"""Face detection, the released LivePortrait crop, and paste-back (notebook 02).

Two detectors give a box and 5 points [left eye, right eye, nose, left mouth corner, right mouth corner] ("left" is the
image's left), in image pixels:

- `scrfd`: insightface's SCRFD (`insightface/models/buffalo_l/det_10g.onnx` from the hub repo, non-commercial licence),
  run with onnxruntime; the pre- and post-processing (letterbox, anchor decoding, NMS) are this module's own.
- `opencv`: OpenCV's bundled Haar cascades (frontal face, then eyes inside the upper half of the face). Only the box and,
  when found, the eyes are measured; the nose and mouth corners (and eyes that were not found) are FIXED PROPORTIONS of
  the box, so the points are approximate: good enough for the crop, not for measuring expressions. The sample profile
  always uses it, so tests and CI never touch the network.

The crop, mask and paste-back arithmetic live in `talkinghead.crop` and are re-exported here.
"""
from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .crop import (CROP_SCALE, CROP_SIZE, CROP_VX_RATIO, CROP_VY_RATIO, NET_SIZE, CropResult,  # noqa: F401 (re-exports)
                   crop_image, crop_matrices, crop_rect, eye_close_ratio, lip_close_ratio, make_paste_mask,
                   mask_to_original, paste_back, paste_back_module, paste_back_torch, paste_grid, resize_for_network,
                   to_network_tensor, transform_points, warp)
from .errors import FaceError, MediaError, WeightsError

DETECTORS = ("auto", "scrfd", "opencv")

# SCRFD (det_10g) settings, as insightface runs it.
SCRFD_SIZE = 640
SCRFD_STRIDES = (8, 16, 32)
SCRFD_ANCHORS = 2
SCRFD_SCORE = 0.5
SCRFD_NMS = 0.4

# OpenCV fallback: detection runs on a copy whose longer side is this many pixels, so results do not depend on size.
OPENCV_WORK_SIZE = 640
# The 5 points as fractions (x, y) of a Haar frontal-face box (measured on typical frontal portraits).
OPENCV_POINT_FRACTIONS = np.array([[0.30, 0.37], [0.70, 0.37], [0.50, 0.60], [0.34, 0.79], [0.66, 0.79]], np.float32)


@dataclass
class Face:
    """box (4,) float32 x1, y1, x2, y2; points5 (5, 2) float32 in image pixels; score (detector confidence)."""
    box: np.ndarray
    points5: np.ndarray
    score: float

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise MediaError(f"expected an RGB uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}; "
                         "load it with talkinghead's image reader or convert it first.")
    return image


# --------------------------------------------------------------------------------------------------------- choosing

def detect_faces(image_rgb: np.ndarray, detector: str = "auto", weights_dir: str | os.PathLike | None = None) -> list[Face]:
    """All faces in an RGB uint8 image, largest box first.

    detector: "scrfd" (the hub's det_10g; raises WeightsError when it cannot be had), "opencv" (bundled cascades,
    approximate points), or "auto": OpenCV on the sample profile (never the network), else SCRFD when its file is
    local or downloadable, else OpenCV with a warning (that choice is made once per weights folder per process).
    """
    image_rgb = _check_image(image_rgb)
    kind = resolve_detector(detector, weights_dir)
    if kind == "scrfd":
        faces = scrfd_detect(_scrfd_session(_scrfd_path(weights_dir)), image_rgb)
    else:
        faces = opencv_detect(image_rgb)
    return sorted(faces, key=lambda f: -f.area)


def resolve_detector(detector: str = "auto", weights_dir: str | os.PathLike | None = None) -> str:
    """"scrfd" or "opencv": the detector `detect_faces` will use for these arguments and the profile in force."""
    if detector not in DETECTORS:
        raise ValueError(f"unknown face detector {detector!r}: use one of {', '.join(DETECTORS)}")
    if detector != "auto":
        return detector
    from .hub import weights_dir_from_env
    from .profiles import get_profile
    if get_profile().is_sample:
        return "opencv"
    key = str(weights_dir_from_env(weights_dir))
    if key not in _AUTO_CHOICE:  # decided once per weights folder: video frames must not retry the hub each time
        try:
            _scrfd_path(weights_dir)
            _AUTO_CHOICE[key] = "scrfd"
        except WeightsError as e:
            warnings.warn(f"using OpenCV's approximate face detector instead of SCRFD: {e}", stacklevel=3)
            _AUTO_CHOICE[key] = "opencv"
    return _AUTO_CHOICE[key]


_AUTO_CHOICE: dict[str, str] = {}
_SCRFD_PATHS: dict[str, str] = {}


def _scrfd_path(weights_dir: str | os.PathLike | None) -> str:
    """Local path of det_10g.onnx (from the weights folder or the hub), resolved once per folder while it exists."""
    from .hub import FACE_DETECTOR_FILE, hub_file, weights_dir_from_env
    key = str(weights_dir_from_env(weights_dir))
    path = _SCRFD_PATHS.get(key)
    if path is None or not os.path.isfile(path):
        path = _SCRFD_PATHS[key] = str(hub_file(FACE_DETECTOR_FILE, weights_dir))
    return path


def detect_face(image: np.ndarray, pick: str = "single", name: str = "the image", **kw) -> Face:
    """The one face of a portrait. pick="single": exactly one face or FaceError; pick="largest": the largest of any.

    `name` (the file path or a label) starts every error message; `kw` go to `detect_faces`.
    """
    if pick not in ("single", "largest"):
        raise ValueError(f"pick must be 'single' or 'largest', not {pick!r}")
    faces = detect_faces(image, **kw)
    if not faces:
        raise FaceError(f"{name}: no face found; use a photo where one face is clearly visible, frontal and well lit.")
    if len(faces) > 1 and pick == "single":
        raise FaceError(f"{name}: {len(faces)} faces found where one was expected; crop the photo to one face "
                        "or pass pick='largest' to use the largest.")
    return faces[0]


# ------------------------------------------------------------------------------------------------------------ SCRFD

@functools.lru_cache(maxsize=4)
def _scrfd_session_cached(path: str, mtime: float):
    import onnxruntime as ort
    try:
        return ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise WeightsError(f"{path}: the face detector could not be loaded ({type(e).__name__}); the file is corrupt "
                           "or partial: delete it and download it again.") from None


def _scrfd_session(path: str):
    """One cached onnxruntime session per file (a rewritten file gets a new session)."""
    return _scrfd_session_cached(path, Path(path).stat().st_mtime)


def letterbox(image_rgb: np.ndarray, size: int = SCRFD_SIZE) -> tuple[np.ndarray, float]:
    """Resize keeping the aspect ratio so the image fits size x size, pad right/bottom with 0: (image, scale)."""
    h, w = image_rgb.shape[:2]
    if h / w > 1.0:
        nh, nw = size, int(size / (h / w))
    else:
        nw, nh = size, int(size * (h / w))
    scale = nh / h
    out = np.zeros((size, size, 3), np.uint8)
    out[:nh, :nw] = cv2.resize(image_rgb, (nw, nh))
    return out, scale


def _anchor_centres(size: int, stride: int, n_anchors: int = SCRFD_ANCHORS) -> np.ndarray:
    """(n, 2) float32 (x, y) anchor centres of one stride, row-major, each repeated n_anchors times."""
    n = size // stride
    ys, xs = np.mgrid[:n, :n]
    centres = (np.stack([xs, ys], axis=-1).reshape(-1, 2) * stride).astype(np.float32)
    return np.repeat(centres, n_anchors, axis=0)


def scrfd_decode(outputs: list[np.ndarray], size: int = SCRFD_SIZE, threshold: float = SCRFD_SCORE
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """det_10g's 9 outputs (scores x3, boxes x3, points x3; strides 8/16/32) -> (scores (n,), boxes (n,4), kps (n,5,2)).

    Boxes are distances (left, top, right, bottom) and points offsets from the anchor centre, in stride units; the
    result is in letterboxed-input pixels, above threshold, before NMS.
    """
    k = len(SCRFD_STRIDES)
    scores, boxes, kps = [], [], []
    for i, stride in enumerate(SCRFD_STRIDES):
        sc = np.asarray(outputs[i]).reshape(-1)
        bb = np.asarray(outputs[i + k]).reshape(-1, 4) * stride
        kp = np.asarray(outputs[i + 2 * k]).reshape(-1, 10) * stride
        c = _anchor_centres(size, stride)
        keep = sc >= threshold
        c = c[keep]
        scores.append(sc[keep])
        boxes.append(np.concatenate([c - bb[keep, :2], c + bb[keep, 2:]], axis=1))
        kps.append(kp[keep].reshape(-1, 5, 2) + c[:, None, :])
    return np.concatenate(scores), np.concatenate(boxes), np.concatenate(kps)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = SCRFD_NMS) -> list[int]:
    """Greedy non-maximum suppression (insightface's +1 pixel area convention): indices kept, best score first."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        order = rest[inter / (areas[i] + areas[rest] - inter) <= iou]
    return keep


def scrfd_detect(session, image_rgb: np.ndarray, size: int = SCRFD_SIZE, threshold: float = SCRFD_SCORE,
                 nms_iou: float = SCRFD_NMS) -> list[Face]:
    """Run a det_10g onnxruntime session on an RGB uint8 image: faces in image pixels (unsorted).

    Input: the letterboxed image, RGB, (x - 127.5) / 128, NCHW float32 (insightface feeds BGR files with swapRB).
    """
    det_img, scale = letterbox(image_rgb, size)
    blob = ((det_img.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None]
    outputs = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(blob)})
    if len(outputs) != 3 * len(SCRFD_STRIDES):
        raise WeightsError(f"the face detector has {len(outputs)} outputs, not the 9 of det_10g; use "
                           "insightface/models/buffalo_l/det_10g.onnx from the hub repo.")
    scores, boxes, kps = scrfd_decode(outputs, size, threshold)
    keep = nms(boxes, scores, nms_iou)
    return [Face(box=(boxes[i] / scale).astype(np.float32), points5=(kps[i] / scale).astype(np.float32),
                 score=float(scores[i])) for i in keep]


# ----------------------------------------------------------------------------------------------------------- OpenCV

@functools.lru_cache(maxsize=None)
def _cascade(name: str) -> cv2.CascadeClassifier:
    """One loaded cascade per bundled file name."""
    clf = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, name))
    if clf.empty():
        raise FaceError(f"OpenCV's bundled {name} could not be loaded; reinstall opencv-python-headless (<5).")
    return clf


def opencv_detect(image_rgb: np.ndarray, min_neighbors: int = 5, min_weight: float = 2.0) -> list[Face]:
    """Haar-cascade faces with approximate 5 points (see the module docstring); unsorted, in image pixels.

    The image is resized so its longer side is `OPENCV_WORK_SIZE`; detections whose cascade confidence (the last
    stage's weight) is below `min_weight` are dropped, which removes most false positives on textures.
    """
    h, w = image_rgb.shape[:2]
    f = min(1.0, OPENCV_WORK_SIZE / max(h, w))
    small = cv2.resize(image_rgb, (max(1, round(w * f)), max(1, round(h * f))),
                       interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
    gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
    min_side = max(20, int(0.06 * min(gray.shape)))
    rects, _, weights = _cascade("haarcascade_frontalface_default.xml").detectMultiScale3(
        gray, scaleFactor=1.1, minNeighbors=min_neighbors, minSize=(min_side, min_side), outputRejectLevels=True)
    faces = []
    for (x, y, bw, bh), wt in zip(np.asarray(rects).reshape(-1, 4), np.asarray(weights).reshape(-1)):
        if wt < min_weight:
            continue
        pts = _opencv_points(gray, x, y, bw, bh)
        box = np.array([x, y, x + bw, y + bh], np.float32) / f
        faces.append(Face(box=box, points5=(pts / f).astype(np.float32), score=float(wt)))
    return faces


def _opencv_points(gray: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
    """5 points (5, 2) float32 for a face box: eyes from the eye cascade when it finds one per side, else proportions."""
    pts = OPENCV_POINT_FRACTIONS * np.array([w, h], np.float32) + np.array([x, y], np.float32)
    roi = gray[y:y + h // 2, x:x + w]
    eyes = _cascade("haarcascade_eye.xml").detectMultiScale(roi, scaleFactor=1.1, minNeighbors=3,
                                                           minSize=(max(5, w // 10),) * 2, maxSize=(w // 2,) * 2)
    centres = [(ex + ew / 2, ey + eh / 2, ew) for ex, ey, ew, eh in np.asarray(eyes).reshape(-1, 4)]
    left = [c for c in centres if c[0] < w / 2 and c[1] > 0.2 * h]
    right = [c for c in centres if c[0] >= w / 2 and c[1] > 0.2 * h]
    if left and right:  # the largest candidate per side (brows and nostrils give smaller hits)
        for i, side in enumerate((left, right)):
            cx, cy, _ = max(side, key=lambda c: c[2])
            pts[i] = (x + cx, y + cy)
    return pts


# ------------------------------------------------------------------------------------------------------------ crop

# Face outline from the 5 points, in units of (eye distance along the eye line, eye-to-mouth distance down the face),
# from the eye centre: temples at eye height, brows, chin. Typical adult frontal proportions.
_OUTLINE_UNITS = np.array([[-1.05, 0.0], [1.05, 0.0], [-0.6, -0.35], [0.6, -0.35], [0.0, 1.75],
                           [-0.8, 1.1], [0.8, 1.1]], np.float32)


def outline_points(points5: np.ndarray) -> np.ndarray:
    """(12, 2) float32: the 5 points followed by 7 estimated face-outline points (temples, brows, chin, jaw).

    The released pipeline crops from the 106-point landmarks, whose extent is the whole face (brows to chin, jaw to
    jaw); 5 points span only eyes to mouth, half that. These outline points give the 5-point crop the released framing
    (the face about half the crop's width at scale 2.3). Proportions, not measurements.
    """
    p = np.asarray(points5, np.float32)[:5]
    eye, mouth = _eye_centre(p), (p[3] + p[4]) / 2
    ax = p[1] - p[0]                      # along the eyes (left to right in the image)
    ay = mouth - eye                      # down the face
    extra = eye + _OUTLINE_UNITS[:, :1] * ax + _OUTLINE_UNITS[:, 1:] * ay
    return np.concatenate([p, extra]).astype(np.float32)


def _eye_centre(p: np.ndarray) -> np.ndarray:
    return (p[0] + p[1]) / 2


def crop_face(image_rgb: np.ndarray, face: Face, dsize: int = CROP_SIZE, scale: float = CROP_SCALE,
              vx_ratio: float = CROP_VX_RATIO, vy_ratio: float = CROP_VY_RATIO) -> CropResult:
    """The released crop of a detected face: `crop_image` on `outline_points(face.points5)`.

    pt_crop holds all 12 points in crop pixels; the first 5 are the face's 5 points.
    """
    return crop_image(image_rgb, outline_points(face.points5), dsize, scale, vx_ratio, vy_ratio)


# ------------------------------------------------------------------------------------------------------- notebooks

def draw_face(image_rgb: np.ndarray, face: Face, color: tuple[int, int, int] = (0, 255, 0)) -> np.ndarray:
    """A copy of the image with the face box and its 5 points drawn (eyes, nose, mouth corners in distinct colours)."""
    out = np.ascontiguousarray(image_rgb).copy()
    t = max(1, round(max(out.shape[:2]) / 400))
    x1, y1, x2, y2 = (int(round(v)) for v in face.box)
    cv2.rectangle(out, (x1, y1), (x2, y2), color, t)
    colours = [(255, 0, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255)]
    for (px, py), c in zip(face.points5, colours):
        cv2.circle(out, (int(round(px)), int(round(py))), 2 * t, c, -1)
    return out
