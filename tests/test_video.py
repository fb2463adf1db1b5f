"""Media I/O with the bundled ffmpeg: probing, resampling by timestamps, rotation, sound, writing mp4 with sound.

The test videos are tiny and made on the fly with ffmpeg's lavfi sources. "Clock" videos paint each frame with its
own presentation time (grey level 20 + 100 * t), so a decoded frame tells which source frame it is.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from talkinghead import video as V
from talkinghead.errors import MediaError


def ffmpeg(*args):
    r = subprocess.run([V.ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def clock_video(path: Path, setpts: str, n: int) -> Path:
    """n frames (lossless H.264) with timestamps from `setpts` (seconds, as a function of N), each painted with
    its own time as luma 20 + 100 t, so every source frame has a distinct grey."""
    src = (f"color=c=black:size=64x48:rate=30,format=yuv420p,settb=1/1000,setpts='({setpts})/TB',"
           "geq=lum='20+100*T':cb=128:cr=128")
    ffmpeg("-f", "lavfi", "-i", src, "-frames:v", str(n), "-fps_mode", "vfr", "-enc_time_base:v", "1/1000",
           "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv420p", str(path))
    return path


def grey(frames: np.ndarray) -> np.ndarray:
    return frames[:, 16:32, 16:48].astype(np.float64).mean(axis=(1, 2, 3))


def source_frames(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(presentation times s, grey level as RGB) of every frame of the file, decoded without resampling."""
    r = subprocess.run([V.ffmpeg_exe(), "-v", "error", "-i", str(path), "-c", "copy", "-f", "framecrc", "-"],
                       capture_output=True, text=True)
    tb = [ln for ln in r.stdout.splitlines() if ln.startswith("#tb")][0].split(":")[1].strip().split("/")
    pts = sorted(int(ln.split(",")[2]) for ln in r.stdout.splitlines() if not ln.startswith("#"))
    r = subprocess.run([V.ffmpeg_exe(), "-v", "error", "-i", str(path), "-fps_mode", "passthrough", "-f", "rawvideo",
                        "-pix_fmt", "rgb24", "-"], capture_output=True)
    frames = np.frombuffer(r.stdout, np.uint8).reshape(-1, 48, 64, 3)
    assert len(frames) == len(pts)
    return np.array(pts) * int(tb[0]) / int(tb[1]), grey(frames)


def check_resampled(path: Path, frames: np.ndarray, fps: float = 25) -> None:
    """Each output frame k is the source frame on screen just before (k + 1/2) / fps (the documented rule)."""
    times, levels = source_frames(path)
    assert len(np.unique(levels)) == len(levels)
    shown = np.array([np.flatnonzero(levels == g)[0] for g in grey(frames)])  # which source frame each one is
    expected = np.clip(np.searchsorted(times, (np.arange(len(frames)) + 0.5) / fps, side="left") - 1, 0, None)
    np.testing.assert_array_equal(shown, expected)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("media")
    # 1.2 s, 30 fps, with a 440 Hz tone at 44.1 kHz
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
           "-t", "1.2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(d / "tone.mp4"))
    return d


def test_probe(media):
    info = V.probe(media / "tone.mp4")
    assert (info.width, info.height, info.fps, info.rotation_deg) == (160, 120, 30.0, 0)
    assert info.has_audio and abs(info.duration_s - 1.2) < 0.05 and info.n_frames_estimate == 36


def test_30fps_to_25fps_by_timestamps(tmp_path):
    path = clock_video(tmp_path / "c30.mp4", "N/30", 36)  # 1.2 s
    v = V.read_video(path, fps=25, progress=False)
    assert v.frames.shape == (30, 48, 64, 3) and v.frames.dtype == np.uint8 and v.fps == 25
    np.testing.assert_allclose(v.times_s, np.arange(30) / 25)
    check_resampled(path, v.frames)


def test_variable_frame_rate_comes_out_uniform(tmp_path):
    # 20 frames at 30 fps, then 10 fps, then a burst at 60 fps: 1.6 s with irregular gaps
    setpts = "if(lt(N,20), N/30, if(lt(N,30), 20/30+(N-20)/10, 20/30+1+(N-30)/60))"
    path = clock_video(tmp_path / "vfr.mp4", setpts, 42)
    n = np.arange(42)
    src = np.where(n < 20, n / 30, np.where(n < 30, 20 / 30 + (n - 20) / 10, 20 / 30 + 1 + (n - 30) / 60))
    duration = src[-1] + 1 / 60
    frames = list(V.iter_video_frames(path, fps=25))
    t = np.array([f[0] for f in frames])
    assert abs(len(t) - duration * 25) <= 1
    np.testing.assert_allclose(np.diff(t), 1 / 25)
    check_resampled(path, np.stack([f[1] for f in frames]))  # which also means it never steps back in time


def test_portrait_rotation_metadata(tmp_path):
    # landscape 64x48 with a white top half, tagged "rotate 90 degrees clockwise" as phones do
    ffmpeg("-f", "lavfi", "-i", "color=c=black:size=64x48:rate=25,drawbox=x=0:y=0:w=64:h=24:color=white:t=fill",
           "-frames:v", "5", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(tmp_path / "land.mp4"))
    ffmpeg("-display_rotation", "-90", "-i", str(tmp_path / "land.mp4"), "-c", "copy", str(tmp_path / "portrait.mp4"))
    info = V.probe(tmp_path / "portrait.mp4")
    assert (info.width, info.height, info.rotation_deg) == (48, 64, 90)
    v = V.read_video(tmp_path / "portrait.mp4", progress=False)
    assert v.frames.shape[1:] == (64, 48, 3)
    f = v.frames[0].mean(axis=2)
    assert f[:, 28:].mean() > 200 and f[:, :20].mean() < 50  # clockwise: the top went to the right
    small = V.read_video(tmp_path / "portrait.mp4", max_side=32, progress=False)
    assert small.frames.shape[1:] == (32, 24, 3)


def test_non_square_pixels_come_out_square(tmp_path):
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:size=64x48:rate=25,setsar=2", "-frames:v", "3", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(tmp_path / "anamorphic.mp4"))
    assert (V.probe(tmp_path / "anamorphic.mp4").width, V.probe(tmp_path / "anamorphic.mp4").height) == (128, 48)
    assert V.read_video(tmp_path / "anamorphic.mp4", progress=False).frames.shape == (3, 48, 128, 3)


def test_read_audio_from_video(media):
    x, sr = V.read_audio(media / "tone.mp4", sr=16000)
    assert sr == 16000 and x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) / sr - 1.2) < 0.03
    spec = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spec) * sr / len(x) - 440) < 3


def test_late_audio_is_padded_to_the_video_time_line(tmp_path):
    ffmpeg("-f", "lavfi", "-i", "color=c=black:size=64x48:rate=25", "-itsoffset", "0.5", "-f", "lavfi",
           "-i", "sine=frequency=440:sample_rate=16000", "-t", "1.2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-c:a", "aac", str(tmp_path / "late.mp4"))
    x, sr = V.read_audio(tmp_path / "late.mp4")
    onset = np.argmax(np.abs(x) > 0.02) / sr
    assert abs(onset - 0.5) < 0.03


def test_no_audio_track(tmp_path):
    path = clock_video(tmp_path / "silent.mp4", "N/30", 10)
    assert not V.probe(path).has_audio
    with pytest.raises(MediaError, match="silent.mp4: has no audio track") as e:
        V.read_audio(path)
    assert e.value.__cause__ is None and str(e.value).count(". ") == 0  # one sentence


@pytest.mark.parametrize("content", [b"", b"\x00" * 10, None], ids=["empty", "zeros", "random"])
def test_corrupt_file(tmp_path, content):
    path = tmp_path / "broken.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, np.uint8).tobytes() if content is None else content)
    for fn in (V.probe, V.read_audio, V.read_video, V.iter_video_frames):
        with pytest.raises(MediaError, match="broken.mp4"):
            fn(path)


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="nope.mov: the file does not exist"):
        V.read_video(tmp_path / "nope.mov")


@pytest.mark.parametrize("audio_s", [1.7, 0.9], ids=["longer", "shorter"])
def test_write_video_round_trip(tmp_path, audio_s):
    yy, xx = np.mgrid[0:61, 0:81]  # odd sizes get padded to even
    frames = np.stack([np.stack([(xx * 3 + 2 * k) % 256, yy * 4, np.full_like(xx, 7 * k)], -1) for k in range(37)])
    frames = frames.astype(np.uint8)
    t = np.arange(int(44100 * audio_s)) / 44100
    tone = 0.4 * np.sin(2 * np.pi * 440 * t)
    pcm = (np.stack([tone, tone], 1) * 32767).astype(np.int16)  # stereo int16 at 44.1 kHz
    out = V.write_video(tmp_path / "out" / "o.mp4", iter(frames), fps=25, audio=(pcm, 44100), progress=False)
    assert out == tmp_path / "out" / "o.mp4" and list(out.parent.iterdir()) == [out]  # no temporary left
    info = V.probe(out)
    assert (info.width, info.height, info.fps, info.has_audio) == (82, 62, 25.0, True)
    video_s, audio_out_s = V.durations(out)
    assert abs(video_s - 37 / 25) < 1e-6 and abs(audio_out_s - video_s) < 1 / 25
    back = V.read_video(out, progress=False)
    assert len(back) == 37
    assert np.abs(back.frames[:, :61, :81].astype(int) - frames).mean() < 3  # same pictures, same order
    x, sr = V.read_audio(out, sr=16000)
    n = min(len(x), int(audio_s * 16000)) - 800
    ref = 0.4 * np.sin(2 * np.pi * 440 * np.arange(len(x)) / sr)
    assert np.corrcoef(x[800:n], ref[800:n])[0, 1] > 0.95
    if audio_s < 37 / 25:  # padded with silence after the sound ends
        assert np.abs(x[int(audio_s * sr) + 800:]).max() < 0.01


def test_write_video_audio_from_file_and_silent(tmp_path, media):
    frames = np.zeros((20, 32, 32, 3), np.uint8)
    out = V.write_video(tmp_path / "a.mp4", frames, fps=25, audio=media / "tone.mp4", progress=False)
    v, a = V.durations(out)
    assert abs(v - 0.8) < 1e-6 and abs(a - v) < 1 / 25
    out = V.write_video(tmp_path / "b.mp4", list(frames.astype(np.float32) / 255), fps=25, progress=False)
    assert V.durations(out) == (pytest.approx(0.8), 0.0)


def test_write_video_is_atomic(tmp_path):
    out = tmp_path / "keep.mp4"
    V.write_video(out, np.zeros((5, 16, 16, 3), np.uint8), progress=False)
    before = out.read_bytes()

    def frames():
        yield np.zeros((16, 16, 3), np.uint8)
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError):
        V.write_video(out, frames(), progress=False)
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["keep.mp4"]
