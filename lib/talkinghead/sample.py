"""The offline sample recording: a talking video that nobody has to film (notebook 03_motion_extraction).

The sample portrait (scikit-image's public-domain astronaut) is animated by LivePortrait itself, driven by a
procedural motion track built from the corpus audio's phoneme timings (notebook 01):

    phoneme timings --VISEMES--> mouth sliders per frame --coarticulation smoothing--> + emotion per line
      + blinks + head sway --EXPRESSIONS (slider -> keypoint offsets)--> motion (N, 69) --render--> mp4 with sound

The slider directions are LivePortrait expression-space facts (docs/facts.md: the directions a popular expression editor
uses); the viseme and emotion tables below are this project's choice, kept here in one documented place. Outputs in
`data/`: `sample_recording.mp4` (25 fps, audio muxed), `sample_recording.motion.npz` (the exact motion the frames were
rendered from, and the sliders), `sample_recording.json` (segments = corpus lines with start/end frames, provenance),
and `sample_truth.npz` (+ `.json`): that true motion as a training dataset (`truth_dataset`).
On the sample profile the frames are noise, but the file, its clock and the motion track are real and exact.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import layout, paths
from .audio import FeatureParams, features_for_frames
from .bake import bake, sample_portrait
from .bundle import load_bundle
from .dataset import save_dataset
from .errors import TalkingHeadError
from .fileio import load_json, save_json, save_npz
from .layout import FPS, SAMPLE_RATE
from .motion import per_frame_labels
from .profiles import get_profile
from .tts import load_phonemes, read_wav
from .video import write_video

LEAD_IN_S = 0.6     # silence before the first line (the neutral reference frame lives here)
GAP_S = 0.5         # silence between lines
FORMAT_VERSION = 1

# ----------------------------------------------------------------------------------------------- expression sliders
# Slider -> exp offsets per unit, as (keypoint, axis, amount); axis 0 = x, 1 = y, 2 = z (docs/facts.md).
# Brows are not among the checked facts: "brow" is this project's approximation (keypoints 1 and 2, y).
EXPRESSIONS: dict[str, list[tuple[int, int, float]]] = {
    "aaa": [(19, 1, 0.001), (19, 2, 0.0001), (17, 1, -0.0001)],
    "eee": [(20, 2, -0.001), (20, 1, -0.001), (14, 1, -0.001)],
    "woo": [(14, 1, 0.001), (3, 1, -0.0005), (7, 1, -0.0005), (17, 2, -0.0005)],
    "smile": [(20, 1, -0.01), (14, 1, -0.02), (17, 1, 0.0065), (17, 2, 0.003), (13, 1, -0.00275),
              (16, 1, -0.00275), (3, 1, -0.0035), (7, 1, -0.0035)],
    "blink": [(11, 1, -0.001), (13, 1, 0.0003), (15, 1, -0.001), (16, 1, 0.0003)],
    "brow": [(1, 1, -0.001), (2, 1, -0.001)],
}
SLIDERS = tuple(EXPRESSIONS)
PITCH_PER_AAA = -0.05  # degrees of head pitch per "aaa" unit (docs/facts.md: the jaw opening tilts the head)

# ----------------------------------------------------------------------------------------------- visemes
# Mouth shapes as slider values (units of EXPRESSIONS). IPA phonemes from espeak-ng are classified by their letters.
VISEMES: dict[str, dict[str, float]] = {
    "closed": {"aaa": -8.0},                      # b p m: lips pressed
    "lip_teeth": {"aaa": 4.0, "woo": -6.0},       # f v: lower lip under the upper teeth
    "round": {"aaa": 14.0, "woo": 14.0},          # u o ü w
    "wide": {"aaa": 8.0, "eee": 12.0},            # i e (spread lips)
    "open": {"aaa": 45.0},                        # a
    "mid": {"aaa": 24.0, "eee": 3.0},             # ə ɛ ʌ and other vowels
    "consonant": {"aaa": 10.0},                   # t d n l k g h s z ...: teeth nearly together
    "rest": {},                                   # silence
}
_VISEME_RULES = (  # first match wins; checked against the phoneme with stress marks and length marks removed
    ("closed", ("p", "b", "m")),
    ("lip_teeth", ("f", "v")),
    ("round", ("u", "o", "y", "w", "ʊ", "ɔ", "ɒ", "ø", "ɵ")),
    ("open", ("a", "ɑ", "æ", "ɐ", "aɪ", "aʊ")),
    ("wide", ("i", "ɪ", "e", "j")),
    ("mid", ("ə", "ɛ", "ʌ", "ɚ", "ɜ", "ɤ", "ɯ")),
)

# Emotions: slider values held over a line (eased in and out), head pose offsets in degrees.
EMOTION_SLIDERS: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"smile": 0.9, "brow": 4.0},
    "sad": {"smile": -0.3, "brow": -3.0},
    "angry": {"smile": -0.2, "brow": -8.0, "eee": 3.0},
    "surprised": {"brow": 10.0, "aaa": 10.0},
    "puzzled": {"brow": 5.0, "smile": 0.2},
}
EMOTION_POSE = {"sad": (4.0, 0.0, 0.0), "puzzled": (0.0, 0.0, 6.0), "surprised": (-3.0, 0.0, 0.0), "angry": (2.0, 0.0, 0.0)}


def viseme_of(phoneme: str) -> str:
    """The viseme class of an espeak-ng IPA phoneme ('p' -> 'closed', 'ˈuo' -> 'round', 'ts.h' -> 'consonant')."""
    p = phoneme.strip().lstrip("ˈˌ").replace("ː", "").replace("-", "")
    for viseme, starts in _VISEME_RULES:
        if p.startswith(starts):
            return viseme
    return "consonant" if p else "rest"


def sliders_to_exp(sliders: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Slider tracks {name: (N,)} -> exp offsets (N, 63) in LivePortrait's canonical keypoint space."""
    exp = np.zeros((n, 21, 3), np.float32)
    for name, track in sliders.items():
        for kp, axis, amount in EXPRESSIONS[name]:
            exp[:, kp, axis] += amount * np.asarray(track, np.float32)
    return exp.reshape(n, 63)


# ----------------------------------------------------------------------------------------------- the timeline
@dataclass
class Timeline:
    """The sample recording's sound and its lines: audio (S,) float32 at 16 kHz, segments with start/end seconds."""

    audio: np.ndarray
    segments: list[dict]
    phonemes: list[dict]  # {"phoneme", "start_s", "end_s"} on the recording's clock

    @property
    def n_frames(self) -> int:
        return int(np.ceil(len(self.audio) / SAMPLE_RATE * FPS))


def build_timeline(corpus_dir: str | os.PathLike, max_lines: int | None = None, languages=("zh", "en")) -> Timeline:
    """Concatenate the corpus's rate-1.0 lines (notebook 01's `index.json`) with pauses, keeping phoneme timings."""
    corpus_dir = Path(corpus_dir)
    index = load_json(corpus_dir / "index.json", "corpus index (notebook 01)")
    rows = [r for r in index["lines"] if r.get("file") and r.get("checks", {}).get("ok", True)
            and float(r.get("rate", 1.0)) == 1.0 and r.get("language") in languages]
    if max_lines:
        rows = _spread(rows, max_lines)
    if not rows:
        raise TalkingHeadError(f"{corpus_dir / 'index.json'}: no synthesised lines to build the sample recording "
                               "from; run notebook 01 (or `python -m talkinghead corpus`) first.")
    pieces, segments, phonemes = [np.zeros(int(LEAD_IN_S * SAMPLE_RATE), np.float32)], [], []
    t = LEAD_IN_S
    for r in rows:
        wav, sr = read_wav(corpus_dir / r["file"])
        dur = len(wav) / sr
        for p in load_phonemes(corpus_dir / r["phonemes_file"])["phonemes"]:
            phonemes.append({"phoneme": p["phoneme"], "start_s": t + p["start_s"], "end_s": t + p["end_s"]})
        segments.append({"id": r["id"], "text": r["text"], "emotion": r.get("emotion") or "neutral",
                         "language": r["language"], "start_s": round(t, 4), "end_s": round(t + dur, 4)})
        pieces += [wav.astype(np.float32), np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)]
        t += dur + GAP_S
    return Timeline(np.concatenate(pieces), segments, phonemes)


def _spread(rows: list[dict], k: int) -> list[dict]:
    """k rows spread over the list, always keeping every emotion that appears (so the sample shows all of them)."""
    by_emotion: dict[str, dict] = {}
    for r in rows:
        by_emotion.setdefault(r.get("emotion") or "neutral", r)
    keep = {id(r) for r in by_emotion.values()}
    step = max(1, len(rows) // max(1, k))
    for r in rows[::step]:
        if len(keep) >= k:
            break
        keep.add(id(r))
    return [r for r in rows if id(r) in keep]


# ----------------------------------------------------------------------------------------------- the motion track
def motion_track(timeline: Timeline, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Procedural motion (N, 69) and its slider tracks for the timeline (25 fps). Deterministic for a seed.

    Visemes are sampled at frame centres and smoothed (coarticulation: a 60 ms Gaussian, except that bilabial
    closures keep their frame); emotions ease in and out over their line; blinks every 2-5 s (150 ms); the head sways
    slowly (sines of a few degrees) and nods with the jaw (PITCH_PER_AAA).
    """
    n = timeline.n_frames
    rng = np.random.default_rng(seed)
    t = (np.arange(n) + 0.5) / FPS
    sliders = {name: np.zeros(n, np.float32) for name in SLIDERS}
    _add_visemes(sliders, timeline.phonemes, t)
    pose = np.zeros((n, 3), np.float32)
    for seg in timeline.segments:
        w = _ease(t, seg["start_s"], seg["end_s"], ramp=0.3)
        for name, value in EMOTION_SLIDERS.get(seg["emotion"], {}).items():
            sliders[name] += value * w
        pose += np.outer(w, EMOTION_POSE.get(seg["emotion"], (0.0, 0.0, 0.0))).astype(np.float32)
    sliders["blink"] += _blinks(t, rng)
    pose += _sway(t, rng)
    pose[:, 0] += PITCH_PER_AAA * np.clip(sliders["aaa"], 0, None)
    exp = sliders_to_exp(sliders, n)
    motion = layout.pack(exp, pose, np.zeros((n, 2)), np.zeros(n))
    return motion, sliders


def _add_visemes(sliders: dict, phonemes: list[dict], t: np.ndarray) -> None:
    n = len(t)
    target = {name: np.zeros(n, np.float32) for name in SLIDERS}
    closed = np.zeros(n, bool)
    for p in phonemes:
        on = (t >= p["start_s"]) & (t < p["end_s"])
        if not on.any():  # shorter than a frame: give it the nearest frame
            k = min(n - 1, int(round((p["start_s"] + p["end_s"]) / 2 * FPS - 0.5)))
            on = np.zeros(n, bool)
            on[max(k, 0)] = True
        v = viseme_of(p["phoneme"])
        closed |= on & (v == "closed")
        for name, value in VISEMES[v].items():
            target[name][on] = value
    for name in ("aaa", "eee", "woo"):
        smooth = _gaussian_smooth(target[name], sigma_frames=0.06 * FPS)
        smooth[closed] = target[name][closed]  # lips must really meet on b/p/m
        sliders[name] += smooth


def _gaussian_smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    r = int(np.ceil(3 * sigma_frames))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma_frames) ** 2)
    return np.convolve(np.pad(x, r, mode="edge"), k / k.sum(), mode="valid").astype(np.float32)


def _ease(t: np.ndarray, start: float, end: float, ramp: float) -> np.ndarray:
    """1 inside [start, end], raised-cosine ramps of `ramp` seconds outside, 0 elsewhere."""
    up = np.clip((t - (start - ramp)) / ramp, 0, 1)
    down = np.clip(((end + ramp) - t) / ramp, 0, 1)
    return (0.5 - 0.5 * np.cos(np.pi * np.minimum(up, down))).astype(np.float32)


def _blinks(t: np.ndarray, rng: np.random.Generator, closed_units: float = -20.0) -> np.ndarray:
    """Blink slider track: a 150 ms raised-cosine closure every 2-5 s (negative units close the eyes)."""
    out = np.zeros(len(t), np.float32)
    at = rng.uniform(1.0, 3.0)
    while at < t[-1] + 1:
        out += closed_units * _ease(t, at, at, ramp=0.075)
        at += rng.uniform(2.0, 5.0)
    return out


def _sway(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Slow head sway (N, 3) degrees: two sines per axis with random phases; amplitudes 2-3 degrees."""
    out = np.zeros((len(t), 3), np.float32)
    for axis, amp in enumerate((2.0, 3.0, 1.5)):
        for freq in (0.13, 0.31):
            out[:, axis] += amp / 2 * np.sin(2 * np.pi * (freq * t + rng.uniform()))
    return out


# ----------------------------------------------------------------------------------------------- the true motion
TRUTH_NAME = "sample_truth.npz"


def training_file(dataset: Path, profile=None, verbose: bool = True) -> Path:
    """The motion file a model learns from (Audio2Motion in notebook 04, the pocket renderer in 07): `dataset`
    itself; on the sample profile, when it was extracted from the sample recording, that recording's true motion
    (`sample_truth.npz` beside it) instead, because motion extracted by random weights from noise frames carries
    nothing to learn (see `truth_dataset`)."""
    dataset = Path(dataset)
    truth = dataset.parent / TRUTH_NAME
    meta = dataset.with_suffix(".json")
    from_sample = meta.is_file() and \
        (load_json(meta, "dataset sidecar").get("source") or {}).get("video") == "sample_recording.mp4"
    if get_profile(profile).is_sample and truth.is_file() and from_sample:
        if verbose:
            print(f"sample profile: using the sample recording's true motion ({truth.name}); the motion extracted "
                  "from its noise frames has nothing to learn")
        return truth
    return dataset


def truth_dataset(timeline: Timeline, motion: np.ndarray, path, profile: str = "sample") -> Path:
    """A training dataset (the layout of `talkinghead.dataset`) of the motion the recording is rendered from, paired
    with log-mel features of its uncompressed audio on the same 25 fps clock; every frame valid.

    On the sample profile the motion *extracted* from the rendered frames is what random weights make of noise, so
    nothing in it follows the voice; this dataset is what Audio2Motion learns from there (notebook 04): the procedural
    visemes, emotions, blinks and sway, exactly.
    """
    n = len(motion)
    params = FeatureParams(fps=FPS)
    segments = [dict(s, start_frame=int(round(s["start_s"] * FPS)), end_frame=int(round(s["end_s"] * FPS)))
                for s in timeline.segments]
    seg, emo = per_frame_labels(segments, n)
    meta = {"fps": FPS, "feature_params": params.to_dict(), "segments": segments, "reference_frame": 0,
            "source": {"video": "sample_recording.mp4", "motion": "sample.motion_track (the rendered-from truth)"},
            "profile": profile}
    return save_dataset(path, motion, features_for_frames(timeline.audio, params, n), np.ones(n, bool), seg, emo,
                        np.arange(n) / FPS, meta)


# ----------------------------------------------------------------------------------------------- the video
@dataclass
class SampleRecording:
    video: Path
    motion_file: Path
    meta_file: Path
    n_frames: int
    segments: list[dict]
    truth_dataset: Path | None = None


def make_sample_recording(corpus_dir=None, out_dir=None, profile=None, max_lines: int | None = None, seed: int = 0,
                          lp=None, bundle_dir=None, progress: bool = True) -> SampleRecording:
    """Render the sample recording from the corpus (notebook 01's output) into `data/` (default: the workspace).

    The sample portrait is baked into `bundle_dir` (default: a `sample_avatar/` folder beside the video) and driven
    by `motion_track`. `max_lines` limits the lines used (the sample profile's notebook uses a dozen).
    """
    from .liveportrait import load_liveportrait  # these two import torch: loaded only when rendering
    from .render import iter_frames

    out_dir = Path(out_dir) if out_dir else paths.data_dir()
    timeline = build_timeline(corpus_dir or paths.corpus_dir(), max_lines)
    motion, sliders = motion_track(timeline, seed)
    lp = lp or load_liveportrait(profile=get_profile(profile).name)
    bundle = load_bundle(bake(sample_portrait(), bundle_dir or out_dir / "sample_avatar", lp=lp, name="astronaut.png"))
    video = out_dir / "sample_recording.mp4"
    segments = [dict(s, start_frame=int(round(s["start_s"] * FPS)), end_frame=int(round(s["end_s"] * FPS)))
                for s in timeline.segments]
    motion_file = save_npz(out_dir / "sample_recording.motion.npz",
                           {"motion": motion, "time_s": np.arange(len(motion)) / FPS,
                            **{f"slider.{k}": v for k, v in sliders.items()}})
    meta_file = save_json(out_dir / "sample_recording.json", {
        "format_version": FORMAT_VERSION, "fps": FPS, "sample_rate": SAMPLE_RATE, "n_frames": len(motion),
        "profile": lp.profile, "seed": seed, "portrait": "skimage.data.astronaut (public domain)",
        "segments": segments, "reference_frame": 0, "face_points5": bundle.manifest["source"]["points5"],
        "note": "motion is relative to the neutral portrait: frame 0 (silence, lead-in) is neutral up to sway/blink"})
    truth = truth_dataset(timeline, motion, out_dir / TRUTH_NAME, lp.profile)
    # the video last: it is what `pipeline.ensure_sample_recording` looks for, so a run killed before it ends is redone
    frames = iter_frames(bundle, motion, lp=lp, progress=progress)
    write_video(video, frames, fps=FPS, audio=(timeline.audio, SAMPLE_RATE), progress=False)
    return SampleRecording(video, motion_file, meta_file, len(motion), segments, truth)
