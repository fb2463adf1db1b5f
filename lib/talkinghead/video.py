"""Reading and writing media with the static ffmpeg bundled in the `imageio-ffmpeg` wheel (no system ffmpeg needed).

Taught in `notebooks/03_motion_extraction.ipynb` (reading the recording) and `06_live_preview.ipynb` (writing an
mp4 with sound).

- `probe(path)`: size, nominal frame rate, duration, rotation, audio or not.
- `read_video` / `iter_video_frames`: RGB frames on a uniform clock at `fps`. Resampling is by presentation time,
  not by frame index (ffmpeg's `fps` filter): output frame k, at time `k / fps`, shows the source frame on screen at
  time `(k + 1/2) / fps` (the latest one whose timestamp is before the middle of the output frame), so a variable
  frame rate phone recording comes out on an even clock that stays in sync with its sound. Rotation metadata is
  honoured (a portrait phone video comes out portrait).
- `read_audio`: float32 mono at any sample rate from any file with sound, on the same time line as the video (a
  late-starting audio track is padded with silence at the front). `load_audio` takes a file or a PCM array (any
  dtype, channel layout and rate) to float32 mono at a given rate: the package's one place that reads sound
  (`talkinghead.audio` re-exports it next to the features).
- `write_video`: H.264 yuv420p mp4 with optional AAC sound whose length is made exactly `n_frames / fps` first, so
  video and audio durations agree (within an AAC frame, well under one video frame). Written to a temporary name and
  renamed, so an interrupted run never leaves a half-written file.

Every failure is a `MediaError` whose message is one sentence naming the file and what to do.
"""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .errors import MediaError
from .fileio import atomic_path
from .layout import FPS, SAMPLE_RATE

_PLAIN_AUDIO = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif"}  # read with soundfile (fast), else ffmpeg
_MUX_SR = 48000  # AAC is written at 48 kHz: one AAC frame (1024 samples) = 21 ms, under one video frame


# ------------------------------------------------------------------------------------------------------------ ffmpeg
def ffmpeg_exe() -> str:
    """Path of the bundled static ffmpeg binary."""
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


def _run(args: list[str], input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", *args], input=input,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _ff(path) -> str:
    """A path as ffmpeg must get it: absolute, so a name with a colon (`take:2.mp4`) is not read as a protocol."""
    return str(Path(path).absolute())


def _last_error(stderr: bytes | str) -> str:
    """The most telling line of ffmpeg's stderr, for a message."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:  # the first complaint is the cause; later ones repeat "Error opening input files"
        if "rror" in ln or "nvalid" in ln or "not found" in ln or "No such" in ln:
            ln = re.sub(r"^\[[^\]]*\]\s*", "", ln)
            return re.sub(r"^Error opening input( files?)?:\s*", "", ln).rstrip(".")
    return lines[-1].rstrip(".") if lines else "no output"


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise MediaError(f"{path}: the file does not exist; check the path (and upload it first when on Colab).")
    if not path.is_file():
        raise MediaError(f"{path}: is not a file; pass the path of a video or audio file.")
    if not os.access(path, os.R_OK):
        raise MediaError(f"{path}: cannot be read (permission denied); fix its permissions or copy it elsewhere.")


def _unreadable(path: Path, detail: str) -> MediaError:
    return MediaError(f"{path}: ffmpeg cannot read it ({detail}); the file is corrupt, truncated or not a media "
                      "file, so export or copy it again.")


# ------------------------------------------------------------------------------------------------------------- probe
@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What `probe` finds. width/height are the *displayed* size (rotation applied, as `read_video` returns frames);
    fps is the nominal rate (frames/s; a variable rate recording's average); duration_s in seconds; rotation_deg the
    clockwise rotation a player applies (0, 90, 180, 270; the old `rotate` tag's convention)."""
    width: int
    height: int
    fps: float
    duration_s: float
    rotation_deg: int
    has_audio: bool
    n_frames_estimate: int


_RE_DURATION = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_RE_SIZE = re.compile(r",\s*(\d{1,5})x(\d{1,5})[\s,\[]")
_RE_SAR = re.compile(r"\[SAR (\d+):(\d+)")
_RE_RATE = re.compile(r"(\d+(?:\.\d+)?)(k?)\s+(fps|tbr)\b")
_RE_ROT = re.compile(r"rotation of\s*(-?\d+(?:\.\d+)?)\s*degrees")


def _stream_blocks(text: str) -> list[str]:
    """ffmpeg's `-i` report split into one text block per input stream (its line plus metadata/side data)."""
    blocks, cur = [], None
    for ln in text.splitlines():
        if re.match(r"\s*Stream #0:\d+", ln):
            cur = [ln]
            blocks.append(cur)
        elif cur is not None and re.match(r"\s{4,}", ln):
            cur.append(ln)
        else:
            cur = None
    return ["\n".join(b) for b in blocks]


def _inspect(path: Path) -> str:
    """ffmpeg's stderr report about the input; raises MediaError when it cannot open it."""
    _check_exists(path)
    r = _run(["-i", _ff(path)])
    text = r.stderr.decode("utf-8", "replace")
    if "Error opening input" in text or not _stream_blocks(text):
        raise _unreadable(path, _last_error(text))
    return text


def probe(path: str | os.PathLike) -> VideoInfo:
    """Size, frame rate, duration, rotation and sound of a video file. Raises MediaError for a missing, unreadable
    or corrupt file, or one with no video stream."""
    path = Path(path)
    text = _inspect(path)
    blocks = _stream_blocks(text)
    video = [b for b in blocks if ": Video:" in b and "attached pic" not in b]
    if not video:
        raise MediaError(f"{path}: has no video stream; pass a video file (mp4, mov, webm, ...) of the speaker.")
    vb = video[0]
    first = vb.splitlines()[0]
    m = _RE_SIZE.search(first)
    if not m:
        raise _unreadable(path, "no frame size in its video stream")
    w, h = int(m.group(1)), int(m.group(2))
    m = _RE_SAR.search(first)
    if m and int(m.group(1)) and int(m.group(2)) and m.group(1) != m.group(2):  # non-square pixels: display width
        w = int(round(w * int(m.group(1)) / int(m.group(2)) / 2)) * 2
    rates = {kind: float(v) * (1000 if k else 1) for v, k, kind in _RE_RATE.findall(first)}
    fps = rates.get("fps") or rates.get("tbr") or 0.0
    m = _RE_ROT.search(vb)
    rotation = int(round(-float(m.group(1)))) % 360 if m else 0  # display matrix angle is counter-clockwise
    if rotation in (90, 270):
        w, h = h, w
    m = _RE_DURATION.search(text)
    duration = (int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))) if m else _packet_duration(path)
    return VideoInfo(width=w, height=h, fps=fps, duration_s=duration, rotation_deg=rotation,
                     has_audio=any(": Audio:" in b for b in blocks),
                     n_frames_estimate=int(round(duration * fps)))


def _packet_duration(path: Path) -> float:
    """Duration from the video packets' timestamps (files whose header has none, e.g. browser-recorded webm)."""
    start, end = _extent(path, "v", decode=False)
    return max(end - start, 0.0)


def _extent(path: Path, kind: str, decode: bool = True) -> tuple[float, float]:
    """(first timestamp, last timestamp + its duration) in seconds of the first stream of `kind` ('v' or 'a')."""
    args = ["-i", _ff(path), "-map", f"0:{kind}:0"] + ([] if decode else ["-c", "copy"]) + ["-f", "framecrc", "-"]
    r = _run(args)
    out = r.stdout.decode("utf-8", "replace")
    m = re.search(r"#tb 0:\s*(\d+)/(\d+)", out)
    rows = [ln.split(",") for ln in out.splitlines() if ln and not ln.startswith("#")]
    if r.returncode or not m or not rows:
        return 0.0, 0.0
    tb = int(m.group(1)) / int(m.group(2))
    start = min(int(row[2]) for row in rows) * tb  # packets come in decode order
    end = max(int(row[2]) + int(row[3]) for row in rows) * tb
    return start, end


# ------------------------------------------------------------------------------------------------------------- video
@dataclasses.dataclass
class Video:
    """Decoded frames on a uniform clock: frames uint8 (N, H, W, 3) RGB, times_s (N,) float64 = k / fps, fps."""
    frames: np.ndarray
    times_s: np.ndarray
    fps: float

    def __len__(self) -> int:
        return len(self.times_s)


def _frame_size(info: VideoInfo, max_side: int | None) -> tuple[int, int]:
    w, h = info.width, info.height
    if max_side and max(w, h) > max_side:
        s = max_side / max(w, h)
        w, h = max(2, int(round(w * s))), max(2, int(round(h * s)))
    return w, h


def iter_video_frames(path: str | os.PathLike, fps: float = FPS, max_side: int | None = None,
                      progress: bool = False) -> Iterator[tuple[float, np.ndarray]]:
    """Stream (t seconds, frame uint8 (H, W, 3) RGB) at a uniform `fps`, resampled by timestamps (see module doc).

    Memory stays at one frame, for long recordings. `max_side` shrinks frames (keeping the aspect) so their longer
    side is at most that many pixels. Frame k has t = k / fps on the file's time line (0 = its start).
    """
    path = Path(path)
    info = probe(path)  # raises here, at the call, for a missing or unreadable file
    return _frames(path, info, Fraction(fps).limit_denominator(1001), max_side, progress)


def _frames(path: Path, info: VideoInfo, rate: Fraction, max_side: int | None,
            progress: bool) -> Iterator[tuple[float, np.ndarray]]:
    w, h = _frame_size(info, max_side)
    vf = f"fps={rate}:start_time=0,scale={w}:{h}:flags=area,setsar=1"
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", _ff(path), "-map", "0:v:0",
           "-vf", vf, "-fps_mode", "passthrough", "-an", "-sn", "-dn", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    nbytes = w * h * 3
    total = int(round(info.duration_s * float(rate))) or None
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, bufsize=nbytes, start_new_session=True)
        bar = _bar(total, f"decoding {path.name}", progress)
        k = 0
        try:
            while True:
                buf = _read_exact(proc.stdout, nbytes)
                if buf is None:
                    break
                yield k / float(rate), np.frombuffer(buf, np.uint8).reshape(h, w, 3)
                k += 1
                bar.update(1)
            proc.wait()
        finally:
            _end(proc, bar)
            proc.stdout.close()
        if proc.returncode:
            err.seek(0)
            raise _unreadable(path, _last_error(err.read())) from None
        if k == 0:
            raise MediaError(f"{path}: no video frames could be decoded; the file is empty or truncated, "
                             "so export or copy it again.")


def _end(proc: subprocess.Popen, bar) -> None:
    """Close the progress bar; kill ffmpeg if it is still running (the caller stopped early or failed)."""
    bar.close()
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _read_exact(stream, n: int) -> bytes | None:
    """n bytes from a pipe, or None at the end (a partial last frame is dropped)."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        r = stream.readinto(view[got:])
        if not r:
            return None
        got += r
    return bytes(buf)


def read_video(path: str | os.PathLike, fps: float = FPS, max_side: int | None = None, progress: bool = True) -> Video:
    """Decode a whole video -> Video(frames (N, H, W, 3) uint8 RGB, times_s (N,) = k / fps, fps) on a uniform clock.

    For long recordings prefer `iter_video_frames` (N frames of H x W x 3 bytes must fit in memory here).
    """
    path = Path(path)
    info = probe(path)
    rate = Fraction(fps).limit_denominator(1001)
    frames, n = None, 0
    for _, f in _frames(path, info, rate, max_side, progress):
        if frames is None:  # one allocation for the expected count (not a list, then a copy: half the memory)
            frames = np.empty((int(info.duration_s * float(rate)) + 2, *f.shape), np.uint8)
        elif n == len(frames):
            frames = np.concatenate([frames, np.empty((len(frames) // 4 + 1, *f.shape), np.uint8)])
        frames[n] = f
        n += 1
    return Video(frames=frames[:n], times_s=np.arange(n) / float(rate), fps=float(fps))


def _bar(total, desc: str, enabled: bool):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="frame", disable=not enabled, leave=False)


# ------------------------------------------------------------------------------------------------------------- audio
def load_audio(path_or_array, sr: int = SAMPLE_RATE, orig_sr: int | None = None) -> np.ndarray:
    """Any audio -> float32 mono samples (n,) in [-1, 1] at `sr` Hz.

    `path_or_array`: a file (wav, mp3, flac, mp4, mov, webm, ... read through `read_audio`) or an array: int16/int32/
    uint8 PCM or float, mono (n,), or multi-channel as (n, channels) or (channels, n), recorded at `orig_sr` Hz
    (default: already `sr`). Empty input gives a zero-length array.
    """
    if isinstance(path_or_array, (str, os.PathLike)):
        return read_audio(Path(path_or_array), sr=sr)[0]
    x = _to_float_mono(np.asarray(path_or_array))
    return resample(x, orig_sr or sr, sr)


def resample(x: np.ndarray, orig_sr: int, sr: int) -> np.ndarray:
    """float mono (n,) from `orig_sr` to `sr` Hz with soxr (high quality); output length round(n * sr / orig_sr)."""
    x = np.asarray(x, np.float32).reshape(-1)
    if int(orig_sr) != int(sr) and x.size:
        import soxr
        x = soxr.resample(x, int(orig_sr), int(sr), quality="HQ").astype(np.float32, copy=False)
    return np.clip(x, -1.0, 1.0)


def _to_float_mono(x: np.ndarray) -> np.ndarray:
    """PCM of any dtype and channel layout -> float32 (n,)."""
    if x.dtype.kind == "i":
        x = x.astype(np.float32) / float(-np.iinfo(x.dtype).min)
    elif x.dtype.kind == "u":
        half = (np.iinfo(x.dtype).max + 1) / 2
        x = (x.astype(np.float32) - half) / half
    else:
        x = x.astype(np.float32, copy=False)
    if x.size == 0:
        return np.zeros(0, np.float32)
    if x.ndim == 2:
        # (channels, n) when the first axis is the short one, else (n, channels)
        x = x.mean(axis=0 if x.shape[0] < x.shape[1] and x.shape[0] <= 8 else 1)
    elif x.ndim > 2:
        raise ValueError(f"audio array must be (n,), (n, channels) or (channels, n), got shape {x.shape}")
    return np.ascontiguousarray(x.reshape(-1), dtype=np.float32)


def read_audio(path: str | os.PathLike, sr: int = SAMPLE_RATE) -> tuple[np.ndarray, int]:
    """Sound of any audio or video file -> (samples float32 mono (n,) in [-1, 1], sr).

    Any sample rate and channel count (channels are averaged). Plain audio files go through soundfile + soxr;
    everything else (mp3, m4a, mp4, mov, webm, ...) through ffmpeg. A video without sound raises MediaError.
    """
    path = Path(path)
    _check_exists(path)
    if path.suffix.lower() in _PLAIN_AUDIO:
        import soundfile as sf
        try:
            data, orig = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception:
            pass  # not really that format: let ffmpeg try
        else:
            return load_audio(_finite(path, data.mean(axis=1)), sr=sr, orig_sr=orig), sr
    r = _run(["-i", _ff(path), "-map", "0:a:0", "-vn", "-sn", "-dn",
              "-af", f"aresample={sr}:resampler=soxr:async=1:first_pts=0:rematrix_maxval=1",
              "-ac", "1", "-f", "f32le", "-c:a", "pcm_f32le", "pipe:1"])
    err = r.stderr.decode("utf-8", "replace")
    if r.returncode:
        if "matches no streams" in err:
            raise MediaError(f"{path}: has no audio track; record with sound or pass the speech separately with "
                             "--audio (a wav/mp3 of the same take).") from None
        raise _unreadable(path, _last_error(err)) from None
    return _finite(path, np.frombuffer(r.stdout, np.float32)), sr


def _finite(path: Path, x: np.ndarray) -> np.ndarray:
    """Clip to [-1, 1]; NaN or infinite samples (a broken float WAV) are one MediaError naming the file."""
    if not np.isfinite(x).all():
        raise MediaError(f"{path}: the audio holds NaN or infinite samples (a broken floating-point file); export "
                         "it again as 16-bit PCM WAV.")
    return np.clip(x, -1.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------------------------------------------------- write
def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = FPS, audio=None,
                progress: bool = True, crf: int = 18) -> Path:
    """Encode frames (each uint8 (H, W, 3) RGB, all one size) as an H.264 yuv420p mp4 at `fps`, with optional sound.

    `audio`: None, (samples, sample_rate) (any dtype/channels, see `load_audio`) or the path of an audio/video
    file. The sound is padded with silence or trimmed to exactly n_frames / fps before it is muxed as AAC, so both
    streams end together. Odd frame sizes are padded by one edge pixel (yuv420p needs even sizes). The file appears
    only when complete (temporary name, then rename). Returns `path`.
    """
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with tempfile.TemporaryDirectory(prefix="talkinghead-") as td, atomic_path(path, suffix=".mp4") as tmp:
        silent = tmp if audio is None else Path(td) / "video.mp4"
        n = _encode_frames(path, silent, frames, rate, progress, crf)
        if audio is not None:
            wav = Path(td) / "audio.wav"
            _write_wav(wav, _fit_audio(audio, n, rate))
            r = _run(["-y", "-i", str(silent), "-i", str(wav), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
                      "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", _ff(tmp)])
            if r.returncode:
                raise MediaError(f"{path}: ffmpeg could not add the sound ({_last_error(r.stderr)}); check the folder "
                                 "is writable and has free space.") from None
    return path


def _encode_frames(path: Path, out: Path, frames: Iterable[np.ndarray], rate: Fraction, progress: bool,
                   crf: int) -> int:
    """Pipe frames into libx264; returns how many were written."""
    it = iter(frames)
    try:
        first = _prepare_frame(next(it))
    except StopIteration:
        raise ValueError(f"{path}: no frames to write") from None
    h, w = first.shape[:2]
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-framerate", str(rate), "-i", "pipe:0", "-an", "-c:v", "libx264", "-preset", "veryfast",
           "-crf", str(crf), "-pix_fmt", "yuv420p", "-movflags", "+faststart", _ff(out)]
    bar = _bar(None, f"encoding {path.name}", progress)
    n = 0
    with tempfile.TemporaryFile() as err:
        # its own session: a Ctrl-C reaches only us, and we decide (the live engine keeps the frames so far)
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=err, start_new_session=True)
        try:
            frame = first
            while frame is not None:
                if frame.shape != first.shape:
                    raise ValueError(f"{path}: frame {n} is {frame.shape[1]}x{frame.shape[0]}, the first was {w}x{h}; "
                                     "all frames must be one size")
                proc.stdin.write(frame.tobytes())
                n += 1
                bar.update(1)
                frame = next(it, None)
                frame = None if frame is None else _prepare_frame(frame)
            proc.stdin.close()
            proc.wait()
        except BrokenPipeError:
            proc.wait()
        finally:
            _end(proc, bar)
        if proc.returncode:
            err.seek(0)
            raise MediaError(f"{path}: ffmpeg could not encode the video ({_last_error(err.read())}); check the "
                             "folder is writable and has free space.") from None
    return n


def _prepare_frame(frame) -> np.ndarray:
    """uint8 (H, W, 3) with even H and W (edge-padded by one pixel when odd); floats are taken as 0..1."""
    f = np.asarray(frame)
    if f.ndim != 3 or f.shape[2] != 3:
        raise ValueError(f"frames must be (H, W, 3) RGB, got shape {f.shape}")
    if f.dtype != np.uint8:
        f = np.clip(np.rint(f * 255.0) if f.dtype.kind == "f" else f, 0, 255).astype(np.uint8)
    ph, pw = f.shape[0] % 2, f.shape[1] % 2
    if ph or pw:
        f = np.pad(f, ((0, ph), (0, pw), (0, 0)), mode="edge")
    return np.ascontiguousarray(f)


def _fit_audio(audio, n_frames: int, rate: Fraction) -> np.ndarray:
    """Sound at _MUX_SR, padded with zeros or trimmed to exactly n_frames / fps seconds."""
    if isinstance(audio, (str, os.PathLike)):
        x, _ = read_audio(audio, sr=_MUX_SR)
    else:
        samples, sr = audio
        x = load_audio(samples, sr=_MUX_SR, orig_sr=int(sr))
    n = int(round(n_frames * _MUX_SR / rate))
    return x[:n] if len(x) >= n else np.concatenate([x, np.zeros(n - len(x), np.float32)])


def _write_wav(path: Path, x: np.ndarray) -> None:
    import soundfile as sf
    sf.write(str(path), x, _MUX_SR, subtype="FLOAT")


def durations(path: str | os.PathLike) -> tuple[float, float]:
    """(video seconds, audio seconds) as a player sees them: decoded video frame timestamps (last + its duration,
    minus first) and decoded audio samples / rate (0.0 when there is no audio). For tests and checks."""
    path = Path(path)
    text = _inspect(path)
    v0, v1 = _extent(path, "v")
    audio_s = 0.0
    if any(": Audio:" in b for b in _stream_blocks(text)):
        r = _run(["-i", _ff(path), "-map", "0:a:0", "-ac", "1", "-f", "s16le", "-c:a", "pcm_s16le", "pipe:1"])
        m = re.search(r"Audio:.*?(\d+) Hz", text)
        if r.returncode == 0 and m:
            audio_s = len(r.stdout) / 2 / int(m.group(1))
    return v1 - v0, audio_s
