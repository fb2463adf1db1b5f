"""Audio in, log-mel features out: the same numbers offline (training) and streaming (the live engine).

Taught in `notebooks/03_motion_extraction.ipynb` (features aligned to the video frames) and used again by
`notebooks/04_training.ipynb` and `06_live_preview.ipynb`.

Alignment (the one rule every stage relies on)
----------------------------------------------
Samples are mono float32 at `sample_rate` (16 kHz). Mel frame `j` is the Hann-windowed `win_length` (400 samples,
25 ms) stretch of audio that *ends* at sample `(j + 1) * hop_length`, i.e. it covers samples
`[(j + 1) * hop - win, (j + 1) * hop)`; samples before 0 are zeros. Equivalently: left-pad the signal with
`win_length - hop_length` (240) zeros and frame it with `center=False`. A signal of `n` samples therefore has
`n // hop` complete mel frames, and every frame depends only on the past (causal), so a stream can compute it the
moment its last sample arrives.

With 16 kHz, 25 fps and a 10 ms hop there are exactly 4 mel frames per video frame: video frame `k` (time
`k/fps .. (k+1)/fps`) owns mel frames `4k .. 4k+3`, the last of which ends exactly at the end of the video frame.
Features per video frame are `(4, n_mels)`; `features_for_frames` gives `(n_frames, 4, n_mels)`.

Reading sound from files or PCM arrays lives with the rest of media reading in `talkinghead.video`; `load_audio` and
`resample` are re-exported here for the callers that only need audio.

Values are natural-log mel magnitudes: `log(max(mel_fb @ |rfft(frame * hann, n_fft)|, log_floor))`, so digital
silence is exactly `log(1e-5) = -11.51`.
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Any, Iterable

import numpy as np

from .layout import FPS, SAMPLE_RATE
from .video import load_audio, resample  # noqa: F401  (re-exported: media reading lives in video)

_BLOCK = 4096  # mel frames computed per block (bounds memory for long recordings)


def frame_rms_db(samples: np.ndarray, sample_rate: int, frame_s: float = 0.02) -> np.ndarray:
    """RMS level of consecutive frames in dBFS (full scale = 1.0); silence is about -120."""
    x = np.asarray(samples, np.float64).reshape(-1)
    n = max(1, int(round(frame_s * sample_rate)))
    m = len(x) // n
    if m == 0:
        return np.full(1, -120.0) if len(x) == 0 else np.array([20 * np.log10(np.sqrt(np.mean(x ** 2)) + 1e-6)])
    rms = np.sqrt(np.mean(x[:m * n].reshape(m, n) ** 2, axis=1))
    return 20 * np.log10(rms + 1e-6)


# ------------------------------------------------------------------------------------------------------------ params
@dataclasses.dataclass(frozen=True)
class FeatureParams:
    """Log-mel parameters, stored in datasets, checkpoints and the avatar bundle's manifest.

    sample_rate Hz; fps video frames/s; n_fft, win_length, hop_length in samples (512, 400 = 25 ms, 160 = 10 ms);
    n_mels bands between fmin and fmax Hz; log_floor: the smallest mel magnitude before the log.
    """
    sample_rate: int = SAMPLE_RATE
    fps: int = FPS
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 80
    fmin: float = 55.0
    fmax: float = 7600.0
    log_floor: float = 1e-5

    def __post_init__(self):
        if self.sample_rate % self.fps or (self.sample_rate // self.fps) % self.hop_length:
            raise ValueError(f"sample_rate/fps ({self.sample_rate}/{self.fps}) must be a whole number of hops "
                             f"({self.hop_length} samples)")
        if not (0 < self.hop_length <= self.win_length <= self.n_fft):
            raise ValueError("need 0 < hop_length <= win_length <= n_fft")
        if not (0 <= self.fmin < self.fmax <= self.sample_rate / 2):
            raise ValueError("need 0 <= fmin < fmax <= sample_rate / 2")

    @property
    def samples_per_video_frame(self) -> int:
        """Audio samples per video frame (640 at 16 kHz, 25 fps)."""
        return self.sample_rate // self.fps

    @property
    def frames_per_video_frame(self) -> int:
        """Mel frames per video frame (4 at 16 kHz, 25 fps, 10 ms hop)."""
        return self.samples_per_video_frame // self.hop_length

    @property
    def left_pad(self) -> int:
        """Zeros before sample 0 so mel frame j ends at sample (j + 1) * hop (240)."""
        return self.win_length - self.hop_length

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeatureParams":
        """Inverse of `to_dict`; keys it does not know (derived values) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in dict(d).items() if k in names})


@lru_cache(maxsize=8)
def _filterbank(p: FeatureParams) -> tuple[np.ndarray, np.ndarray]:
    """(window (win,), mel filterbank transposed (n_fft//2+1, n_mels)), float64."""
    import librosa
    window = np.hanning(p.win_length + 1)[:-1]  # periodic Hann, as librosa/scipy 'hann' for spectra
    fb = librosa.filters.mel(sr=p.sample_rate, n_fft=p.n_fft, n_mels=p.n_mels, fmin=p.fmin, fmax=p.fmax)
    return window, np.ascontiguousarray(fb.T.astype(np.float64))


def silence_value(params: FeatureParams = FeatureParams()) -> float:
    """The feature value of digital silence: log(log_floor)."""
    return float(np.log(params.log_floor))


# ---------------------------------------------------------------------------------------------------------- features
def _logmel_padded(xp: np.ndarray, n_frames: int, p: FeatureParams) -> np.ndarray:
    """Mel frames 0..n_frames-1 of an already left-padded signal `xp` (frame j = xp[j*hop : j*hop + win]) -> (n_frames, n_mels) float32."""
    window, fbt = _filterbank(p)
    out = np.empty((n_frames, p.n_mels), np.float32)
    if n_frames == 0:
        return out
    frames = np.lib.stride_tricks.sliding_window_view(xp, p.win_length)[::p.hop_length]
    for s in range(0, n_frames, _BLOCK):
        blk = frames[s:s + _BLOCK][: n_frames - s] * window
        mag = np.abs(np.fft.rfft(blk, n=p.n_fft, axis=-1))
        out[s:s + len(blk)] = np.log(np.maximum(mag @ fbt, p.log_floor))
    return out


def logmel(samples, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """Offline log-mel of float mono samples (n,) at params.sample_rate -> (n // hop, n_mels) float32.

    Frame j ends at sample (j + 1) * hop (see the module docstring); a trailing partial hop is not a frame.
    """
    x = np.asarray(samples, np.float64).reshape(-1)
    xp = np.concatenate([np.zeros(params.left_pad), x])
    return _logmel_padded(xp, len(x) // params.hop_length, params)


def features_for_frames(samples, params: FeatureParams = FeatureParams(), n_frames: int | None = None) -> np.ndarray:
    """Features aligned to video frames: samples (n,) -> (n_frames, 4, n_mels) float32.

    Video frame k owns mel frames 4k..4k+3. `n_frames` defaults to ceil(n / samples_per_video_frame). Audio shorter
    than `n_frames` video frames is padded with zeros (silence features at the end); longer audio is trimmed. Equal to
    `StreamingFeatures.push` of the same samples in any chunks, then `flush()`.
    """
    x = np.asarray(samples, np.float64).reshape(-1)
    spf = params.samples_per_video_frame
    if n_frames is None:
        n_frames = -(-len(x) // spf)
    need = n_frames * spf
    x = x[:need] if len(x) >= need else np.concatenate([x, np.zeros(need - len(x))])
    mel = logmel(x, params)
    return mel.reshape(n_frames, params.frames_per_video_frame, params.n_mels)


class StreamingFeatures:
    """Chunk-by-chunk features, identical to the offline `features_for_frames` (to float rounding, < 1e-5).

    `push(chunk)` accepts any number of samples (float mono at params.sample_rate) and returns the features
    (k, 4, n_mels) of the video frames it completed; leftover samples wait in the state. `flush()` zero-pads and
    returns the last partial video frame (0 or 1 frames) and resets. Latency: frame k is ready once sample
    (k + 1) * 640 has arrived, i.e. at the end of that video frame (no look-ahead).
    """

    def __init__(self, params: FeatureParams = FeatureParams()):
        self.params = params
        self.reset()

    def reset(self) -> None:
        """Forget all audio: the next push starts at time 0 again."""
        self._buf = np.zeros(self.params.left_pad, np.float64)  # padded signal from the next mel frame's start
        self._pending = 0  # samples in _buf that are real audio not yet in a returned video frame
        self.frames_out = 0

    def push(self, samples) -> np.ndarray:
        """Append samples (n,) -> features (k, 4, n_mels) float32 of the k video frames completed so far."""
        x = np.asarray(samples, np.float64).reshape(-1)
        self._buf = np.concatenate([self._buf, x])
        self._pending += len(x)
        return self._take(self._pending // self.params.samples_per_video_frame)

    def flush(self) -> np.ndarray:
        """Complete the last partial video frame with silence -> (0 or 1, 4, n_mels); then `reset()`."""
        p = self.params
        out = np.zeros((0, p.frames_per_video_frame, p.n_mels), np.float32)
        if self._pending:
            self._buf = np.concatenate([self._buf, np.zeros(p.samples_per_video_frame - self._pending)])
            self._pending = p.samples_per_video_frame
            out = self._take(1)
        self.reset()
        return out

    def _take(self, k: int) -> np.ndarray:
        p = self.params
        fpv = p.frames_per_video_frame
        mel = _logmel_padded(self._buf, k * fpv, p).reshape(k, fpv, p.n_mels)
        step = k * p.samples_per_video_frame
        self._buf = self._buf[step:]
        self._pending -= step
        self.frames_out += k
        return mel


# ----------------------------------------------------------------------------------------------------- normalisation
def feature_stats(features: np.ndarray | Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-mel-bin mean and std (n_mels,) float32 over every frame of `features` (..., n_mels) or a list of such arrays.

    Stored with the dataset and the model so training and the live engine normalise alike. std is at least 1e-3.
    """
    if isinstance(features, np.ndarray):
        arrs = [features]
    else:
        arrs = [np.asarray(f) for f in features]
    n_mels = arrs[0].shape[-1]
    flat = np.concatenate([a.reshape(-1, n_mels).astype(np.float64) for a in arrs])
    if len(flat) == 0:
        raise ValueError("feature_stats needs at least one frame")
    return flat.mean(0).astype(np.float32), np.maximum(flat.std(0), 1e-3).astype(np.float32)


def normalise(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(features - mean) / std per mel bin; any leading shape, float32."""
    return ((np.asarray(features, np.float32) - mean) / std).astype(np.float32)
