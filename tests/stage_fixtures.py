"""Shared, expensive inputs of the stage tests (bake, render, sample recording, motion extraction).

Each is made once per test process and cached here (test modules import this module by name, so a corpus, a sample
recording or an extraction built for one test file is reused by the next). Everything runs on the sample profile
(tests/conftest.py sets it), with torch on one thread while building (the test machine is small and shared).

Also: the synthetic "talking astronaut" videos for motion extraction: scikit-image's astronaut photo (a real face
OpenCV's cascade finds), slightly zoomed and shifted per frame, with a tone track that has one pause in it.
"""
from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import cv2
import numpy as np

from talkinghead import video as V

_CACHE: dict[str, object] = {}

CORPUS_LINES = 12        # lines synthesised for the test corpus (espeak, offline)
RECORDING_LINES = 2      # lines in the test sample recording (4.6 s, 115 frames: extraction costs 0.2 s a frame)


def moving_a2m():
    """A small Audio2Motion with seeded random weights whose output visibly moves the face (pose in degrees, the rest
    in small offsets): the live, pocket and browser tests drive a bundle with it."""
    import torch

    from talkinghead import a2m, layout

    torch.manual_seed(0)
    m = a2m.Audio2Motion(a2m.A2MConfig(hidden=32))
    with torch.no_grad():
        m.head.weight.normal_(0, 0.3)
        m.feat_mean.fill_(-6.0)
        m.feat_std.fill_(3.0)
        std = torch.full((layout.MOTION_DIM,), 0.01)
        std[layout.POSE] = 2.0
        m.motion_std.copy_(std)
    return m.eval()


def moving_student(roi=(160, 128, 256, 224), warp_size: int = 128, seed: int = 0):
    """A sample-size pocket student whose head, blend basis and coefficients have seeded random weights (its fields
    move the face) on a random reference face; `roi` (y0, x0, h, w) in the 512 crop. The pocket frame graph and
    browser tests render through it."""
    import dataclasses

    import torch

    from talkinghead import export, pocket

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cfg = dataclasses.replace(pocket.CONFIGS["sample"], roi=roi, warp_size=warp_size)
    mean, std = pocket.motion_stats(export.random_motions(64, seed))
    student = pocket.PocketStudent(rng.uniform(0, 1, (3, 512, 512)), mean, std, cfg)
    with torch.no_grad():
        for p in student.head.parameters():
            p.normal_(0, 0.3)
        student.basis.normal_(0, 0.02)
        student.coef.weight.normal_(0, 0.3)
    return student.eval()


def exported_bundle(folder: Path, lp, idle_frames: int = 120, **export_kw):
    """A sample portrait baked into `folder`, driven by `moving_a2m` with a seeded idle track, exported (fp32 renderer,
    paste, audio2motion, features) by `talkinghead.export.export_bundle`: the contract end to end. -> (folder, the
    Audio2Motion, the IdleMotion). The live, pocket and browser tests start from it."""
    from talkinghead import a2m, bake
    from talkinghead.audio import FeatureParams
    from talkinghead.export import export_bundle

    path = bake.bake(bake.sample_portrait(), folder, lp=lp)
    model = moving_a2m()
    rng = np.random.default_rng(1)
    idle = a2m.IdleMotion(np.cumsum(rng.normal(0, 0.05, (idle_frames, len(a2m.IDLE_DIMS))), 0).astype(np.float32),
                          a2m.IDLE_DIMS.copy(), 25.0, 12)
    a2m.save_checkpoint(path / a2m.CHECKPOINT_NAME, model, model.config, FeatureParams(), {},
                        mode="idle_from_recording", idle=idle)
    bake.add_files(path, [a2m.CHECKPOINT_NAME])
    with one_thread():                                     # steadier on a shared 2-core machine
        export_bundle(path, None, variants=("fp32",), progress=False, lp=lp, **export_kw)
    return path, model, idle


@contextlib.contextmanager
def one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def cached(key: str, make):
    if key not in _CACHE:
        with one_thread():
            _CACHE[key] = make()
    return _CACHE[key]


# --------------------------------------------------------------------------------------------------- stage outputs
def liveportrait():
    from talkinghead.liveportrait import load_liveportrait

    return cached("lp", lambda: load_liveportrait(profile="sample"))


def corpus_dir(tmp_path_factory) -> Path:
    from talkinghead.pipeline import build_corpus

    def make():
        d = tmp_path_factory.mktemp("corpus")
        build_corpus(d, limit=CORPUS_LINES, progress=False)
        return d

    return cached("corpus", make)


def sample_recording(tmp_path_factory):
    """(SampleRecording, corpus_dir) for a RECORDING_LINES-line sample recording."""
    from talkinghead import sample

    corpus = corpus_dir(tmp_path_factory)
    lp = liveportrait()
    rec = cached("recording", lambda: sample.make_sample_recording(
        corpus, tmp_path_factory.mktemp("sample_data"), max_lines=RECORDING_LINES, lp=lp, progress=False))
    return rec, corpus


def sample_extraction(tmp_path_factory):
    """(Extraction, SampleRecording, corpus_dir): the sample recording's motion extracted back."""
    from talkinghead import motion

    rec, corpus = sample_recording(tmp_path_factory)
    lp = liveportrait()
    ex = cached("extraction", lambda: motion.extract(rec.video, rec.video.parent / "dataset.npz", lp=lp,
                                                     progress=False))
    return ex, rec, corpus


# --------------------------------------------------------------------------------------------------- media helpers
def ffmpeg(*args) -> None:
    r = subprocess.run([V.ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def stream_codecs(path) -> tuple[list[str], list[str]]:
    """(video codecs, audio codecs) of a file, as ffmpeg reports its streams."""
    import re

    r = subprocess.run([V.ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    video = re.findall(r"Stream #\d+:\d+.*?: Video: (\w+)", r.stderr)
    audio = re.findall(r"Stream #\d+:\d+.*?: Audio: (\w+)", r.stderr)
    return video, audio


def astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def talking_frame(k: int, n: int, size=(256, 192)) -> np.ndarray:
    """Frame k of n: a window around the astronaut's face, zooming (+-5%) and sliding (+-6 px) over time."""
    w, h = size
    s = 1.0 + 0.05 * np.sin(2 * np.pi * k / n)
    cx, cy = 240 + 6 * np.sin(4 * np.pi * k / n), 190
    hw = 200 / s
    hh = hw * h / w
    src = np.float32([[cx - hw, cy - hh], [cx + hw, cy - hh], [cx - hw, cy + hh]])
    m = cv2.getAffineTransform(src, np.float32([[0, 0], [w, 0], [0, h]]))
    return cv2.warpAffine(astronaut(), m, (w, h), flags=cv2.INTER_AREA)


def tone_with_pause(duration_s: float, sr: int = 16000, pause=(0.8, 1.2)) -> np.ndarray:
    """A 220 Hz tone (amplitude 0.4) over `duration_s` seconds, silent during `pause` (seconds) and the first 0.2 s."""
    t = np.arange(int(round(duration_s * sr))) / sr
    x = 0.4 * np.sin(2 * np.pi * 220 * t)
    x[(t < 0.2) | ((t >= pause[0]) & (t < pause[1]))] = 0.0
    return x.astype(np.float32)


def talking_video(path: Path, n: int = 60, fps: float = 30, size=(256, 192), audio: bool = True,
                  blank=(), frame_fn=None) -> Path:
    """n frames at `fps` of the talking astronaut (frames in `blank` painted flat grey), with the tone track."""
    frames = []
    for k in range(n):
        f = frame_fn(k, n) if frame_fn else talking_frame(k, n, size)
        frames.append(np.full_like(f, 128) if k in blank else f)
    snd = (tone_with_pause(n / fps), 16000) if audio else None
    return V.write_video(path, frames, fps=fps, audio=snd, progress=False, crf=12)
