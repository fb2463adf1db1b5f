"""The training dataset: motion and audio features per video frame, written by notebook 03, read by notebook 04.

Two files side by side (the sidecar is the npz's name with `.json`):

`dataset.npz` (arrays, N = number of video frames of the recording, no pickles)

    motion    (N, 69)     float32  relative motion per frame, the layout of `talkinghead.layout`
    features  (N, 4, 80)  float32  log-mel frames belonging to each video frame (`talkinghead.audio`)
    valid     (N,)        bool     a face was found in the frame (motion of invalid frames is zero, never used)
    segment   (N,)        int32    index into the sidecar's `segments` (-1 = outside any corpus line)
    emotion   (N,)        int16    index into `layout.EMOTIONS`
    time_s    (N,)        float64  time of the frame in the recording, seconds

`dataset.json` (sidecar): format_version, fps, feature_params (`FeatureParams.to_dict()`), motion_dim, n_frames,
segments [{id, text, emotion, language, start_frame, end_frame}] (end exclusive), reference_frame,
source {video, sha256}, profile, and free-form provenance (optional `reference_keypoints` {x_c, exp, pose, t, scale}
of the recording's neutral frame, used to measure keypoint distances in notebook 04).

`save_dataset` writes both as one unit (`fileio.file_set`: a run killed at any point leaves the old pair or the new);
`load_dataset` refuses anything it cannot train on with one sentence naming the file and what to do.
`synthetic_dataset` makes a procedural one, for tests: see its docstring. Taught in `notebooks/04_training.ipynb`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import layout
from .audio import FeatureParams
from .errors import DatasetError, TalkingHeadError
from .fileio import file_set, load_json, load_npz, recover, save_json, save_npz

FORMAT_VERSION = 1
MIN_VALID_SECONDS = 2.0          # fewer valid (face) frames than this is not worth training on
# How much recording Audio2Motion needs, measured on the sample profile (`pipeline.SAMPLE_RECORDING_LINES`): from 16
# corpus lines (40 s) it learns the visemes (held-out mouth-open r ~0.76); from 10 lines r is ~0.4 and the model does
# little better than the mean-motion baseline. Less than either is trained, with a warning (`amount_warning`).
ENOUGH_LINES = 16
ENOUGH_SECONDS = 40.0
MEASURED_R = {10: 0.4, 16: 0.76}  # held-out mouth-open r by corpus lines recorded (sample profile)
ARRAYS = ("motion", "features", "valid", "segment", "emotion", "time_s")
DTYPES = {"motion": np.float32, "features": np.float32, "valid": np.bool_, "segment": np.int32,
          "emotion": np.int16, "time_s": np.float64}

# ----------------------------------------------------------------------------------------------------------------------
# feature parameters

def default_feature_params() -> dict:
    """`talkinghead.audio.FeatureParams().to_dict()` (16 kHz, 25 fps, 80 mels, 4 mel frames per video frame)."""
    return FeatureParams().to_dict()


def params_dict(params: Any) -> dict:
    """A FeatureParams, a dict, or None (the default) -> a plain dict for comparing and storing."""
    if params is None:
        return default_feature_params()
    if hasattr(params, "to_dict"):
        return dict(params.to_dict())
    return dict(params)


def _get(d: dict, *names, default=None):
    for n in names:
        if n in d:
            return d[n]
    return default


def mel_shape(params: Any) -> tuple[int, int]:
    """(mel frames per video frame, mel bins) of feature parameters: (4, 80) by default."""
    d = params_dict(params)
    per = _get(d, "mel_per_frame", "mels_per_frame", "frames_per_video_frame")
    if per is None:
        sr, hop, fps = _get(d, "sample_rate", "sr"), _get(d, "hop_length", "hop"), _get(d, "fps")
        per = round(sr / hop / fps) if sr and hop and fps else 4
    return int(per), int(_get(d, "n_mels", default=80))


def params_mismatch(have: Any, want: Any) -> str:
    """'' when two feature parameter sets agree, else a short 'key a vs b' list of the differences."""
    a, b = params_dict(have), params_dict(want)
    diffs = [f"{k} {a.get(k)!r} vs {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return ", ".join(diffs)


# ----------------------------------------------------------------------------------------------------------------------
# the dataset object

@dataclass
class Dataset:
    """Arrays of one recording (see the module docstring for shapes) and its sidecar `meta`."""
    motion: np.ndarray
    features: np.ndarray
    valid: np.ndarray
    segment: np.ndarray
    emotion: np.ndarray
    time_s: np.ndarray
    meta: dict = field(default_factory=dict)
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.motion)

    @property
    def fps(self) -> float:
        return float(self.meta["fps"])

    @property
    def feature_params(self) -> dict:
        return dict(self.meta["feature_params"])

    @property
    def segments(self) -> list[dict]:
        return list(self.meta.get("segments", []))

    def _seg_id(self, i: int) -> str:
        return str(self.segments[i].get("id", f"segment-{i}"))

    @property
    def line_ids(self) -> list[str]:
        """Ids of the corpus lines that own at least one valid frame, in recording order (a line recorded twice,
        i.e. two segments with one id, is one line: both takes go to the same side of a train/held-out split)."""
        used = set(np.unique(self.segment[self.valid & (self.segment >= 0)]).tolist())
        ids = [self._seg_id(i) for i in range(len(self.segments)) if i in used]
        return list(dict.fromkeys(ids))

    def line_spans(self, line_id: str) -> list[tuple[int, int]]:
        """(start, end) frame ranges (end exclusive) of every segment (take) of one corpus line."""
        idx = [i for i in range(len(self.segments)) if self._seg_id(i) == line_id]
        spans = []
        for i in idx:
            f = np.flatnonzero(self.segment == i)
            if len(f):
                spans.append((int(f.min()), int(f.max()) + 1))
        if not spans:
            raise KeyError(f"no frames of corpus line {line_id!r} in {self.name()}")
        return spans

    def line_frames(self, line_id: str) -> np.ndarray:
        """Frame indices (sorted) of one corpus line, valid or not."""
        return np.concatenate([np.arange(s, e) for s, e in self.line_spans(line_id)])

    def name(self) -> str:
        return str(self.path) if self.path is not None else "the dataset"


def save_dataset(path, motion, features, valid, segment, emotion, time_s, meta: dict,
                 extra_npz: dict | None = None) -> Path:
    """Write `dataset.npz` + `dataset.json` (+ `extra_npz` {file name: arrays} beside them) as one unit; returns
    the npz path.

    Checks the structure first (shapes, lengths, NaN, labels: DatasetError); a recording with too few valid frames is
    still written (so it can be inspected), and refused later by `load_dataset`.

    `meta` must hold fps, feature_params (a FeatureParams or its dict), segments, reference_frame, source, profile;
    anything else is kept as provenance. format_version, motion_dim and n_frames are filled in here.
    """
    path = Path(path)
    arrays = {k: np.asarray(v, DTYPES[k]) for k, v in zip(ARRAYS, (motion, features, valid, segment, emotion, time_s))}
    meta = dict(meta)
    meta["feature_params"] = params_dict(meta.get("feature_params"))
    meta.update(format_version=FORMAT_VERSION, motion_dim=layout.MOTION_DIM, n_frames=int(len(arrays["motion"])))
    meta.setdefault("fps", _get(meta["feature_params"], "fps"))
    for k in ("segments", "reference_frame", "source", "profile"):
        meta.setdefault(k, [] if k == "segments" else None)
    arrays["motion"] = np.where(arrays["valid"][:, None], arrays["motion"], 0).astype(np.float32)
    _validate(Dataset(**arrays, meta=meta, path=path), expect_params=None, min_valid_s=None)
    with file_set(path.parent) as fs:  # both files or neither (a kill between them keeps the old pair whole)
        save_npz(fs.path(path.name), arrays)
        for name, more in (extra_npz or {}).items():
            save_npz(fs.path(name), more)
        save_json(fs.path(sidecar_path(path).name), meta)
    return path


def amount_warning(valid, segment, fps: float) -> str | None:
    """The warning for a recording too short to learn from (fewer than ENOUGH_SECONDS of face frames or fewer than
    ENOUGH_LINES lines), with its numbers and the measured consequence; None when it is long enough.

    `valid` (N,) bool and `segment` (N,) int (-1 outside lines), as in dataset.npz."""
    valid = np.asarray(valid, bool)
    segment = np.asarray(segment)
    seconds = float(valid.sum()) / float(fps)
    lines = len(np.unique(segment[valid & (segment >= 0)]))
    if seconds >= ENOUGH_SECONDS and lines >= ENOUGH_LINES:
        return None
    lo, hi = sorted(MEASURED_R)
    return (f"warning: {seconds:.1f} s of speech in {lines} line{'s' if lines != 1 else ''}: with under "
            f"~{ENOUGH_SECONDS:.0f} s ({ENOUGH_LINES} lines) the model usually does no better than the mean baseline "
            f"(held-out mouth r ~{MEASURED_R[lo]:g} at {lo} lines vs {MEASURED_R[hi]:g} at {hi}); record the whole "
            "script (data/corpus/script.md, about 3 minutes) and extract again.")


def dataset_warning(ds: "Dataset") -> str | None:
    """`amount_warning` of a loaded dataset."""
    return amount_warning(ds.valid, ds.segment, ds.fps)


def sidecar_path(path) -> Path:
    """`dataset.npz` -> `dataset.json`."""
    return Path(path).with_suffix(".json")


def load_dataset(path, expect_params: Any = None, min_valid_s: float = MIN_VALID_SECONDS) -> Dataset:
    """Read and check a dataset; refuses (DatasetError, one sentence naming the file) what it cannot train on.

    `expect_params`: the feature parameters the model uses (a FeatureParams, dict, or a checkpoint's); None skips the check.
    Refused: a missing, truncated or corrupt npz; a missing sidecar; another format version; feature parameters that
    differ from `expect_params`; arrays of different lengths or wrong shapes; NaN/inf; no valid frames; fewer than
    `min_valid_s` seconds of valid frames.
    """
    path = Path(path)
    side = sidecar_path(path)
    recover(path.parent)  # a save killed half-way is finished first
    if not path.exists():
        raise DatasetError(f"{path}: the dataset does not exist; run notebooks/03_motion_extraction.ipynb "
                           "(or `python -m talkinghead extract`) to write it.")
    if not side.exists():
        raise DatasetError(f"{path}: its sidecar {side.name} is missing; run the motion extraction "
                           "(notebooks/03_motion_extraction.ipynb) again to write both files.")
    try:
        raw = load_npz(path, what="dataset")
        meta = load_json(side, what="dataset sidecar")
    except TalkingHeadError as e:
        raise DatasetError(str(e)) from None
    missing = [k for k in ARRAYS if k not in raw]
    if missing:
        raise DatasetError(f"{path}: the dataset lacks the arrays {', '.join(missing)}; it was not written by "
                           "talkinghead.dataset.save_dataset — run the motion extraction again.")
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        got = meta.get("format_version") if isinstance(meta, dict) else None
        raise DatasetError(f"{path}: the dataset has format version {got!r} but this talkinghead reads version "
                           f"{FORMAT_VERSION}; run the motion extraction (notebook 03) again with this version.")
    ds = Dataset(**{k: raw[k] for k in ARRAYS}, meta=meta, path=path)
    _validate(ds, expect_params, min_valid_s)
    ds.motion = ds.motion.astype(np.float32, copy=False)
    ds.features = ds.features.astype(np.float32, copy=False)
    ds.valid = ds.valid.astype(bool, copy=False)
    ds.segment = ds.segment.astype(np.int32, copy=False)
    ds.emotion = ds.emotion.astype(np.int16, copy=False)
    ds.time_s = ds.time_s.astype(np.float64, copy=False)
    return ds


def _validate(ds: Dataset, expect_params, min_valid_s: float | None) -> None:
    """Raise DatasetError (one sentence naming the file) for the first problem found.

    `min_valid_s=None` checks only the structure (what the writer checks): the valid-frame counts are training's rules.
    """
    name, redo = ds.name(), "run the motion extraction (notebooks/03_motion_extraction.ipynb) again"
    for k in ("fps", "feature_params", "segments"):
        if k not in ds.meta:
            raise DatasetError(f"{name}: the dataset sidecar has no '{k}'; {redo}.")
    if expect_params is not None:
        diff = params_mismatch(ds.feature_params, expect_params)
        if diff:
            raise DatasetError(f"{name}: the dataset's audio features were made with other parameters than the "
                               f"model expects ({diff}); extract the dataset again with the model's FeatureParams "
                               "or train a new model on this dataset.")
    n = len(ds.motion)
    lengths = {k: len(getattr(ds, k)) for k in ARRAYS}
    if len(set(lengths.values())) != 1 or ds.meta.get("n_frames", n) != n:
        raise DatasetError(f"{name}: the dataset's arrays have different lengths "
                           f"({', '.join(f'{k} {v}' for k, v in lengths.items())}, sidecar n_frames "
                           f"{ds.meta.get('n_frames')}); {redo}.")
    per, n_mels = mel_shape(ds.feature_params)
    shapes_ok = (ds.motion.shape == (n, layout.MOTION_DIM) and ds.features.shape == (n, per, n_mels)
                 and all(getattr(ds, k).ndim == 1 for k in ("valid", "segment", "emotion", "time_s")))
    if not shapes_ok:
        raise DatasetError(f"{name}: the dataset's arrays have the wrong shapes (motion {ds.motion.shape}, expected "
                           f"({n}, {layout.MOTION_DIM}); features {ds.features.shape}, expected ({n}, {per}, {n_mels}) "
                           f"from its feature parameters); {redo}.")
    valid = ds.valid.astype(bool)
    if not np.isfinite(ds.features).all() or not np.isfinite(ds.motion[valid]).all() or not np.isfinite(ds.time_s).all():
        raise DatasetError(f"{name}: the dataset contains NaN or infinite values (motion, features or time_s); {redo}.")
    n_seg = len(ds.segments)
    if ds.segment.size and (ds.segment.min() < -1 or ds.segment.max() >= n_seg):
        raise DatasetError(f"{name}: the dataset's segment indices point outside its {n_seg} segments; {redo}.")
    if ds.emotion.size and (ds.emotion.min() < 0 or ds.emotion.max() >= len(layout.EMOTIONS)):
        raise DatasetError(f"{name}: the dataset's emotion labels are outside 0..{len(layout.EMOTIONS) - 1} "
                           f"({', '.join(layout.EMOTIONS)}); {redo}.")
    if min_valid_s is None:
        return
    n_valid = int(valid.sum())
    if n_valid == 0:
        raise DatasetError(f"{name}: the dataset has no valid frames (no face was found in any frame of the "
                           "recording); record a video with the face visible and run the motion extraction again.")
    need = int(math.ceil(min_valid_s * float(ds.meta["fps"])))
    if n_valid < need:
        raise DatasetError(f"{name}: the dataset has only {n_valid} valid frames ({n_valid / float(ds.meta['fps']):.1f} s)"
                           f" but training needs at least {need} ({min_valid_s:g} s); record more lines and run the "
                           "motion extraction again.")


# ----------------------------------------------------------------------------------------------------------------------
# a procedural dataset, for tests

def _smooth(x: np.ndarray, width: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 with std `width` frames (edges reflected)."""
    r = max(1, int(3 * width))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / width) ** 2)
    k /= k.sum()
    pad = np.pad(x, [(r, r)] + [(0, 0)] * (x.ndim - 1), mode="reflect")
    return np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), 0, pad)


def _viseme_track(rng: np.random.Generator, n: int, fps: float) -> np.ndarray:
    """A smooth 0..1 mouth-opening track of `n` frames: syllables at 3-5 Hz, closed at both ends."""
    a = np.zeros(n)
    t = rng.uniform(0.15, 0.3) * fps
    while t < n - 0.15 * fps:
        width = rng.uniform(0.06, 0.1) * fps                 # half-width of one syllable, frames
        i = np.arange(n)
        a = np.maximum(a, rng.uniform(0.35, 1.0) * np.clip(np.cos(np.pi / 2 * (i - t) / width), 0, None)
                       * (np.abs(i - t) < width))
        t += fps / rng.uniform(3.0, 5.0)
    ends = np.clip(np.minimum(np.arange(n), n - 1 - np.arange(n)) / (0.1 * fps), 0, 1)
    return np.clip(_smooth(a, 0.8) * ends, 0, 1)


_SYN_K = 30.0          # docs/facts.md's editor directions are scaled by this so offsets look like real LivePortrait exp
_SYN_MELS = (4, 80)    # (mel frames per video frame, mel bins) of the synthetic features


def synthetic_dataset(n_lines: int = 24, seed: int = 0, fps: float = float(layout.FPS), line_s: tuple = (2.5, 4.5),
                      gap_s: float = 0.4) -> Dataset:
    """A procedural dataset in which mouth motion is a learnable function of the audio features (tests, notebook 04).

    Per corpus line: a viseme-like mouth-opening track `a` (0..1, syllables at 3-5 Hz, closed at the line's ends) and
    a rounding track `w`. Motion follows docs/facts.md's editor directions scaled by K=30 so offsets look like real
    LivePortrait exp (~0.01-0.05): "aaa" (kp19.y += 0.001 K a, kp19.z += 0.0001 K a, kp17.y -= 0.0001 K a, pitch
    -= 0.05 K a / 10), "woo" on kp14/kp3/kp7/kp17, a smile offset per emotion label; plus idle motion that the audio
    does NOT explain: slow head sway (pose, t), blinks (eye keypoints), measurement noise.
    Features mimic log-mel (4 mel frames per video frame, 80 bins): low bins rise with `a`, middle bins with `w`,
    plus noise; they lead the motion by one video frame (speech is heard slightly before the jaw is seen to move).
    Lines are separated by `gap_s` of silence (segment -1); a few frames in one line have no face (valid False).
    The steps (one random generator, drawn in this order): `_synthetic_lines`, `_synthetic_motion`,
    `_synthetic_features`.
    """
    rng = np.random.default_rng(seed)
    a, w, seg, emo, segments = _synthetic_lines(rng, n_lines, fps, line_s, gap_s)
    motion = _synthetic_motion(rng, a, w, emo, fps)
    feats = _synthetic_features(rng, a, w)
    N = len(a)
    valid = np.ones(N, bool)
    if n_lines > 3:                                        # a short face dropout inside line 2
        s = segments[2]["start_frame"] + 10
        valid[s:s + 6] = False
    motion[~valid] = 0
    meta = dict(fps=fps, feature_params=default_feature_params(), segments=segments, reference_frame=0,
                source=dict(video="synthetic", sha256=None), profile="synthetic",
                provenance=dict(maker="talkinghead.dataset.synthetic_dataset", seed=seed, n_lines=n_lines))
    meta.update(format_version=FORMAT_VERSION, motion_dim=layout.MOTION_DIM, n_frames=N)
    ds = Dataset(motion.astype(np.float32), feats.astype(np.float32), valid, seg, emo,
                 np.arange(N) / fps, meta=meta, path=None)
    _validate(ds, None, 0.0)
    return ds


def _synthetic_lines(rng: np.random.Generator, n_lines: int, fps: float, line_s: tuple, gap_s: float) -> tuple:
    """Per-frame tracks of `n_lines` lines between gaps of silence: mouth opening a (N,), rounding w (N,), segment
    (N,) int32 (-1 in gaps), emotion (N,) int16 (neutral, happy, sad), and the segments list."""
    chunks = {k: [] for k in ("a", "w", "seg", "emo")}
    segments = []

    def add_gap(n):
        for k, v in (("a", 0.0), ("w", 0.0), ("seg", -1), ("emo", 0)):
            chunks[k].append(np.full(n, v))

    g = int(gap_s * fps)
    add_gap(g)
    start = g
    for i in range(n_lines):
        n = int(rng.uniform(*line_s) * fps)
        emo = int(rng.integers(0, 3)) if i % 3 else 0        # neutral, happy, sad
        chunks["a"].append(_viseme_track(rng, n, fps))
        chunks["w"].append(_viseme_track(rng, n, fps) * rng.uniform(0, 0.8))
        chunks["seg"].append(np.full(n, i))
        chunks["emo"].append(np.full(n, emo))
        segments.append(dict(id=f"L{i:03d}", text=f"synthetic line {i}", emotion=layout.EMOTIONS[emo],
                             language="zh" if i % 2 else "en", start_frame=start, end_frame=start + n))
        add_gap(g)
        start += n + g
    a, w = np.concatenate(chunks["a"]), np.concatenate(chunks["w"])
    seg, emo = np.concatenate(chunks["seg"]).astype(np.int32), np.concatenate(chunks["emo"]).astype(np.int16)
    return a, w, seg, emo, segments


def _synthetic_motion(rng: np.random.Generator, a: np.ndarray, w: np.ndarray, emo: np.ndarray, fps: float) -> np.ndarray:
    """Motion (N, 69): mouth from a and w, a smile per emotion, then idle motion the audio does not explain (blinks
    every 2-5 s, measurement noise, head sway in pose and t, scale drift)."""
    N, k = len(a), _SYN_K
    exp = np.zeros((N, 21, 3))
    exp[:, 19, 1] += 0.001 * k * a
    exp[:, 19, 2] += 0.0001 * k * a
    exp[:, 17, 1] -= 0.0001 * k * a * 3
    exp[:, 14, 1] += 0.001 * k * w
    exp[:, 3, 1] -= 0.0005 * k * w
    exp[:, 7, 1] -= 0.0005 * k * w
    exp[:, 17, 2] -= 0.0005 * k * w
    smile = _smooth((emo == 1).astype(float) - 0.5 * (emo == 2), 3.0)
    exp[:, 20, 1] -= 0.01 * smile
    exp[:, 14, 1] -= 0.02 * smile
    exp[:, 17, 1] += 0.0065 * smile
    blink = np.zeros(N)
    t = rng.uniform(0, 3 * fps)
    while t < N:
        i0 = int(t)
        blink[i0:i0 + 5] = np.array([0.4, 1.0, 1.0, 0.6, 0.2])[: len(blink[i0:i0 + 5])]
        t += rng.uniform(2, 5) * fps
    exp[:, 11, 1] -= 0.001 * k * blink
    exp[:, 15, 1] -= 0.001 * k * blink
    exp[:, 13, 1] += 0.0003 * k * blink
    exp[:, 16, 1] += 0.0003 * k * blink
    exp += rng.normal(0, 0.0008, exp.shape)
    pose = _smooth(rng.normal(0, 1, (N, 3)), 0.8 * fps) * np.array([15.0, 20.0, 10.0])
    pose[:, 0] -= 0.05 * k * a / 10
    tr = _smooth(rng.normal(0, 1, (N, 2)), 1.0 * fps) * 0.03
    log_scale = _smooth(rng.normal(0, 1, (N, 1)), 1.5 * fps) * 0.02
    return layout.pack(exp, pose, tr, log_scale)


def _synthetic_features(rng: np.random.Generator, a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Log-mel-like features (N, 4, 80) leading the motion by one frame: low bins rise with a, middle bins with w,
    a voicing tilt while either is open, and noise."""
    per, n_mels = _SYN_MELS
    a_lead, w_lead = np.append(a[1:], 0.0), np.append(w[1:], 0.0)
    bins = np.arange(n_mels)
    low = np.exp(-0.5 * ((bins - 12) / 10) ** 2)
    mid = np.exp(-0.5 * ((bins - 40) / 8) ** 2)
    sub = np.linspace(-0.5, 0.5, per)                      # interpolate between frames within the 4 mel frames
    a_sub = np.clip(a_lead[:, None] + np.diff(np.append(a_lead, 0.0))[:, None] * (sub + 0.5), 0, 1)
    w_sub = np.clip(w_lead[:, None] + np.diff(np.append(w_lead, 0.0))[:, None] * (sub + 0.5), 0, 1)
    return (-11.0 + 1.5 * (1 - bins / n_mels)[None, None, :]
            + 7.0 * a_sub[..., None] * low + 5.0 * w_sub[..., None] * mid
            + 2.0 * ((a_sub + w_sub) > 0.05)[..., None] * (1 - bins / n_mels)      # voicing
            + rng.normal(0, 0.6, (len(a), per, n_mels)))


def write_synthetic(path, **kw) -> Path:
    """`synthetic_dataset(**kw)` written to `path` with `save_dataset` (a stand-in for notebook 03's output)."""
    ds = synthetic_dataset(**kw)
    return save_dataset(path, ds.motion, ds.features, ds.valid, ds.segment, ds.emotion, ds.time_s, ds.meta)
