"""Motion extraction: a recording of the speaker -> `dataset.npz` for Audio2Motion (notebook 03_motion_extraction).

    video --decode at 25 fps (by timestamps)--> frames --track the face (detect, smooth over time)--> 5 points/frame
          --the released crop--> M in batches --> pose (degrees), exp, t, scale, canonical kp per frame
          --neutral reference frame (rule below)--> relative motion (N, 69), talkinghead.layout
    audio --16 kHz mono--> log-mel, 4 mel frames per video frame (talkinghead.audio): the same clock

Two passes over the file keep memory at one frame: pass 1 finds the face on a reduced copy of each frame, pass 2 crops
the full-resolution frame with the smoothed points and runs M. Frames without a face are flagged in `valid`, never
dropped; segments (corpus lines) come from a sidecar JSON next to the video (the sample recording writes one), else
from pauses in the audio, so training can split by line.

Neutral reference rule (`reference_frame`): among valid frames, rank every frame by (a) mouth opening
(`layout.mouth_open` of its absolute exp), (b) head angle |pitch| + |yaw| + |roll|, (c) eye closure (blink direction
of keypoints 11, 13, 15, 16); the frame with the smallest sum of the three ranks wins (the earliest on ties): closed
mouth, frontal, eyes open.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import layout, paths
from .audio import FeatureParams, features_for_frames, frame_rms_db
from .bake import network_input_size
from .crop import resize_for_network, to_network_tensor
from .dataset import amount_warning, save_dataset
from .errors import MediaError
from .face import Face, crop_face, detect_faces
from .fileio import load_json, load_npz, sha256_file
from .layout import FPS, SAMPLE_RATE
from .profiles import get_profile
from .progress import Estimate
from .video import iter_video_frames, probe, read_audio

DETECT_MAX_SIDE = 640   # frames are shrunk to this for detection (points scaled back)
SMOOTH_FRAMES = 5       # centred moving average of the 5 points over runs of detected frames
PAUSE_S = 0.35          # a quieter stretch at least this long splits segments (when no sidecar gives them)
SILENCE_DBFS = -70.0    # audio frames quieter than this (absolute, RMS re full scale) are silence
FORMAT_VERSION = 1


@dataclass
class Extraction:
    dataset: Path           # dataset.npz (+ dataset.json sidecar)
    raw: Path               # dataset.raw.npz: M's outputs per frame, pose degrees, points
    n_frames: int
    n_valid: int
    reference_frame: int
    seconds: float
    warning: str | None = None   # too little recording to learn from (`dataset.amount_warning`)

    @property
    def fps(self) -> float:
        return self.n_frames / self.seconds if self.seconds else 0.0


# ------------------------------------------------------------------------------------------------ face tracking
def track_face(video_path, fps: float = FPS, detector: str = "auto", weights_dir=None, fallback_points=None,
               progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pass 1: 5 face points per frame, (N, 5, 2) float32 in full-resolution pixels, plus `detected` (N,) bool and
    `valid` (N,) bool.

    Of several faces in a frame, the one that continues the track is taken (`pick_track`: a detector's occasional
    false positive, even a larger one, does not pull the crop away); points are smoothed over time within runs of
    detected frames. Frames with no face are invalid, unless `fallback_points` (5, 2) is given (the sample recording
    knows where its face is).
    """
    info = probe(video_path)
    scale = min(1.0, DETECT_MAX_SIDE / max(info.width, info.height))
    candidates = []
    est = Estimate("face tracking", max(1, int(round(info.duration_s * fps))), "frame", enabled=progress)
    for _, frame in iter_video_frames(video_path, fps=fps, max_side=DETECT_MAX_SIDE, progress=progress):
        faces = detect_faces(frame, detector=detector, weights_dir=weights_dir)
        candidates.append([(f.points5 / scale, f.score) for f in faces])
        if len(candidates) == 1:           # the first frame pays for loading the detector: timed from the second
            est.restart()
        elif len(candidates) == 4:
            est.update(3)
    points, detected = pick_track(candidates)
    points = smooth_points(points, detected)
    valid = detected.copy()
    if fallback_points is not None:
        points[~detected] = np.asarray(fallback_points, np.float32)
        valid[:] = True
    return points, detected, valid


def _frame_count(video_path, fps: float) -> int:
    """Frames the video gives at `fps` (decoded at a tiny size: the count, not the pictures)."""
    return sum(1 for _ in iter_video_frames(video_path, fps=fps, max_side=32))


def pick_track(candidates: list[list[tuple[np.ndarray, float]]]) -> tuple[np.ndarray, np.ndarray]:
    """One face per frame from every frame's detections [(points5 (5, 2), score), ...] -> points (N, 5, 2) float32
    (NaN where none) and detected (N,) bool.

    The track starts at the median position of each frame's most confident face (the speaker, who is there all the
    time) and then, frame by frame, takes the face nearest to the one taken before.
    """
    n = len(candidates)
    points, detected = np.full((n, 5, 2), np.nan, np.float32), np.zeros(n, bool)
    best = [max(c, key=lambda f: f[1])[0].mean(axis=0) for c in candidates if c]
    if not best:
        return points, detected
    prev = np.median(np.asarray(best), axis=0)
    for k, faces in enumerate(candidates):
        if faces:
            p = min(faces, key=lambda f: float(np.sum((f[0].mean(axis=0) - prev) ** 2)))[0]
            points[k], detected[k], prev = p, True, p.mean(axis=0)
    return points, detected


def smooth_points(points: np.ndarray, detected: np.ndarray, width: int = SMOOTH_FRAMES) -> np.ndarray:
    """Centred moving average of (N, 5, 2) points over each run of detected frames (runs never blend across a gap)."""
    out = points.copy()
    n, r = len(points), width // 2
    starts = np.flatnonzero(detected & ~np.r_[False, detected[:-1]])
    for s in starts:
        e = s
        while e < n and detected[e]:
            e += 1
        run = points[s:e]
        csum = np.concatenate([np.zeros((1, 5, 2), np.float64), np.cumsum(run, axis=0, dtype=np.float64)])
        idx = np.arange(len(run))
        lo, hi = np.maximum(idx - r, 0), np.minimum(idx + r + 1, len(run))
        out[s:e] = ((csum[hi] - csum[lo]) / (hi - lo)[:, None, None]).astype(np.float32)
    return out


# ------------------------------------------------------------------------------------------------ M per frame
def run_motion_extractor(video_path, points: np.ndarray, valid: np.ndarray, lp, fps: float = FPS,
                         batch_size: int = 16, progress: bool = True) -> dict[str, np.ndarray]:
    """Pass 2: crop every valid frame as the source is cropped and run M in batches.

    Returns per-frame arrays (N = len(points)): pose (N,3) degrees, exp (N,63), t (N,3), scale (N,1), kp (N,63), and
    the raw 66-bin logits pitch/yaw/roll (N,66). Invalid frames hold zeros.
    """
    import torch

    from .liveportrait.keypoints import pose_degrees  # imports torch: only when M runs

    n, size = len(points), network_input_size(lp)
    out = {k: np.zeros((n, d), np.float32) for k, d in
           (("pose", 3), ("exp", 63), ("t", 3), ("scale", 1), ("kp", 63), ("pitch", 66), ("yaw", 66), ("roll", 66))}
    batch, idx = [], []
    est = Estimate("motion extraction (M)", int(valid[:n].sum()), "frame", enabled=progress)

    def flush():
        x = torch.from_numpy(np.concatenate(batch)).to(lp.device, lp.dtype)
        with torch.inference_mode():
            info = lp.motion_extractor(x)
            info["pose"] = pose_degrees(info)
        for k in out:
            out[k][idx] = info[k].float().cpu().numpy().reshape(len(idx), -1)
        est.update(len(idx))
        batch.clear()
        idx.clear()

    for k, (_, frame) in enumerate(iter_video_frames(video_path, fps=fps, progress=progress)):
        if k >= n:
            break
        if not valid[k]:
            continue
        face = Face(box=np.zeros(4, np.float32), points5=points[k], score=1.0)
        batch.append(to_network_tensor(resize_for_network(crop_face(frame, face).img_crop, size), size))
        idx.append(k)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return out


# ------------------------------------------------------------------------------------------------ reference frame
def eye_closure(exp: np.ndarray) -> np.ndarray:
    """Eye-closure proxy (N,) from absolute exp (N, 63): grows as the eyes close.

    The blink slider e of docs/facts.md moves kp11.y and kp15.y by -0.001 e and kp13.y, kp16.y by +0.0003 e, and its
    negative values close the eyes (the editor's range is -20..5; `talkinghead.sample` blinks with -20), so closing
    is the direction (+0.001, -0.0003) on (11.y and 15.y, 13.y and 16.y).
    """
    e = exp.reshape(-1, 21, 3)
    return (e[:, 11, 1] + e[:, 15, 1]) - 0.3 * (e[:, 13, 1] + e[:, 16, 1])


def reference_frame(exp: np.ndarray, pose: np.ndarray, valid: np.ndarray) -> int:
    """The neutral reference frame: smallest sum of ranks of mouth opening, head angle and eye closure (module doc)."""
    cand = np.flatnonzero(valid)
    if cand.size == 0:
        return 0
    e = exp[cand]
    mouth = layout.mouth_open(np.concatenate([e, np.zeros((len(e), 6), np.float32)], axis=1))
    angle = np.abs(pose[cand]).sum(axis=1)
    eyes = eye_closure(e)
    ranks = sum(np.argsort(np.argsort(v, kind="stable"), kind="stable") for v in (mouth, angle, eyes))
    return int(cand[np.argmin(ranks)])


# ------------------------------------------------------------------------------------------------ segments
def read_sidecar(video_path) -> dict | None:
    """`<video stem>.json` beside the video (the sample recording writes one): segments, face points, provenance."""
    p = Path(video_path).with_suffix(".json")
    return load_json(p, "recording sidecar") if p.is_file() else None


def segments_from_pauses(audio: np.ndarray, sr: int, n_frames: int, fps: float, pause_s: float = PAUSE_S,
                         threshold_db: float = -40.0) -> list[dict]:
    """Split speech at pauses: runs of 20 ms audio frames quieter than `threshold_db` (relative to the loudest) lasting
    at least `pause_s` end a segment; frames below SILENCE_DBFS are quiet whatever the loudest is (digital silence is
    no segment). Returns [{id, start_frame, end_frame, text, emotion, language}]."""
    if len(audio) < int(sr * 0.02):
        return []
    dbfs = frame_rms_db(audio, sr, 0.02)
    speech = (dbfs - dbfs.max() > threshold_db) & (dbfs > SILENCE_DBFS)  # digital silence is never speech
    segs, start, quiet = [], None, 0
    min_quiet = int(round(pause_s / 0.02))
    for i, s in enumerate(np.r_[speech, np.zeros(min_quiet, bool)]):
        if s:
            start = i if start is None else start
            quiet = 0
        elif start is not None:
            quiet += 1
            if quiet >= min_quiet:
                segs.append((start, i - quiet + 1))
                start, quiet = None, 0
    to_frame = lambda j: min(n_frames, int(round(j * 0.02 * fps)))  # noqa: E731
    return [{"id": f"seg-{k:03d}", "start_frame": to_frame(a), "end_frame": max(to_frame(b), to_frame(a) + 1),
             "text": "", "emotion": "neutral", "language": ""} for k, (a, b) in enumerate(segs)]


def per_frame_labels(segments: list[dict], n: int) -> tuple[np.ndarray, np.ndarray]:
    """segment (N,) int32 index into `segments` (-1 outside every line) and emotion (N,) int16 (layout.EMOTIONS)."""
    seg = np.full(n, -1, np.int32)
    emo = np.zeros(n, np.int16)
    for k, s in enumerate(segments):
        a, b = max(0, int(s["start_frame"])), min(n, int(s["end_frame"]))
        seg[a:b] = k
        e = s.get("emotion") or "neutral"
        emo[a:b] = layout.EMOTIONS.index(e) if e in layout.EMOTIONS else 0
    return seg, emo


# ------------------------------------------------------------------------------------------------ the whole stage
def extract(video_path, out_path=None, fps: float = FPS, lp=None, profile=None, weights_dir=None,
            detector: str = "auto", segments: list[dict] | None = None, batch_size: int = 16,
            progress: bool = True, device="auto") -> Extraction:
    """Recording -> `dataset.npz` (+ `dataset.json`, + `dataset.raw.npz`). Default output: the workspace's `data/`.

    M runs in batches of `batch_size` crops on `device` ("auto": `talkinghead.device`), or where `lp` already is.

    Refuses, with one sentence naming the file, a video without an audio track or without any face.
    """
    from .liveportrait import load_liveportrait  # imports torch: only when extracting

    t0 = time.perf_counter()
    video_path = Path(video_path)
    info = probe(video_path)
    if not info.has_audio:
        raise MediaError(f"{video_path}: has no audio track; Audio2Motion learns from your voice, so record the video "
                         "with sound (or mux the speech in with ffmpeg) and extract again.")
    audio, sr = read_audio(video_path, SAMPLE_RATE)
    lp = lp or load_liveportrait(weights_dir, profile=get_profile(profile).name, device=device)
    sidecar = read_sidecar(video_path) or {}
    fallback = np.asarray(sidecar["face_points5"], np.float32) if "face_points5" in sidecar else None
    if fallback is not None and lp.profile == "sample":
        # The sample recording on the sample profile: its face is noise, which no detector finds, and the sidecar
        # already says where it is; skip the search (it would cost ~0.2 s per frame on two cores for nothing).
        n = _frame_count(video_path, fps)
        points = np.repeat(fallback[None], n, axis=0)
        detected, valid = np.zeros(n, bool), np.ones(n, bool)
    else:
        points, detected, valid = track_face(video_path, fps, detector, weights_dir, fallback, progress)
    n = len(points)
    if not valid.any():
        raise MediaError(f"{video_path}: no face found in any frame; film the speaker facing the camera, "
                         "well lit, with the whole face in the picture.")
    raw = run_motion_extractor(video_path, points, valid, lp, fps, batch_size, progress)
    ref = reference_frame(raw["exp"], raw["pose"], valid)
    scale = np.where(valid[:, None], raw["scale"], raw["scale"][ref])  # invalid frames hold 0: no log(0) warnings
    motion = layout.relative(raw["exp"], raw["pose"], raw["t"], scale, ref)
    motion[~valid] = 0.0
    params = FeatureParams(fps=int(round(fps)))
    features = features_for_frames(audio, params, n)
    if segments is None:
        segments = sidecar.get("segments") or segments_from_pauses(audio, sr, n, fps)
    seg, emo = per_frame_labels(segments, n)
    out_path = Path(out_path) if out_path else paths.data_dir() / "dataset.npz"
    meta = {"fps": fps, "feature_params": params.to_dict(), "segments": segments, "reference_frame": ref,
            "source": {"video": video_path.name, "sha256": sha256_file(video_path), "width": info.width,
                       "height": info.height, "fps": info.fps, "rotation_deg": info.rotation_deg},
            "profile": lp.profile,
            "tracking": {"detected": int(detected.sum()), "fallback": int((valid & ~detected).sum()),
                         "missing": int((~valid).sum()), "detector": detector},
            "reference_rule": "min rank-sum of mouth opening, head angle, eye closure (talkinghead.motion)",
            "reference_keypoints": {"x_c": raw["kp"][ref].reshape(21, 3), "exp": raw["exp"][ref].reshape(21, 3),
                                    "pose": raw["pose"][ref], "t": raw["t"][ref], "scale": raw["scale"][ref]}}
    raw_path = out_path.with_suffix(".raw.npz")
    save_dataset(out_path, motion, features, valid, seg, emo, np.arange(n) / fps, meta,  # the three: one unit
                 extra_npz={raw_path.name: {**raw, "points5": points, "detected": detected, "valid": valid,
                                            "time_s": np.arange(n) / fps}})
    warning = amount_warning(valid, seg, fps)
    if warning and progress:
        print(warning, flush=True)
    return Extraction(out_path, raw_path, n, int(valid.sum()), ref, time.perf_counter() - t0, warning)


# ------------------------------------------------------------------------------------------------ plots
def plot_mouth_vs_audio(dataset, ax=None):
    """Mouth-opening proxy over time against the audio envelope (mean log-mel energy), both z-scored."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(11, 3))[1]
    t = dataset.time_s
    mouth = layout.mouth_open(dataset.motion)
    env = dataset.features.mean(axis=(1, 2))
    z = lambda x: (x - x.mean()) / (x.std() + 1e-9)  # noqa: E731
    ax.plot(t, z(env), lw=0.8, color="0.6", label="audio envelope (log-mel mean)")
    ax.plot(t, z(mouth), lw=1.2, label="mouth opening (kp19.y - kp17.y)")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("z-score")
    ax.legend(loc="upper right", fontsize=8)
    return ax


def plot_pose(dataset, ax=None):
    """Head pitch/yaw/roll relative to the reference frame, degrees over time."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(11, 2.5))[1]
    for i, name in enumerate(("pitch", "yaw", "roll")):
        ax.plot(dataset.time_s, dataset.motion[:, 63 + i], lw=1, label=name)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("degrees")
    ax.legend(loc="upper right", fontsize=8)
    return ax


def frame_strip(video_path, raw_path, frames=(0, 25, 50, 75), fps: float = FPS, size: int = 192):
    """Crops of a few frames with their tracked 5 points drawn: (size, size*len(frames), 3) uint8."""
    import cv2

    raw = load_npz(raw_path, "raw motion")
    want, tiles = set(frames), {}
    for k, (_, frame) in enumerate(iter_video_frames(video_path, fps=fps)):
        if k in want and raw["valid"][k]:
            crop = crop_face(frame, Face(np.zeros(4, np.float32), raw["points5"][k], 1.0))
            img = crop.img_crop.copy()
            for x, y in crop.pt_crop[:5]:
                cv2.circle(img, (int(x), int(y)), 6, (0, 255, 0), -1)
            tiles[k] = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        if k >= max(want):
            break
    blank = np.zeros((size, size, 3), np.uint8)
    return np.hstack([tiles.get(k, blank) for k in frames])
