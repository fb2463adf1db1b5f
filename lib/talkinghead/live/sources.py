"""Where the live engine's audio comes from: arrays, files, the microphone (notebook 06).

Every source yields float32 mono chunks at its `sample_rate`; the engine resamples a source at another rate to
`layout.SAMPLE_RATE` chunk by chunk (`StreamResampler`). A source with `realtime` delivers its chunks at wall-clock
pace, as a microphone does.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from .. import video
from ..errors import MediaError
from ..layout import SAMPLE_RATE


class AudioSource:
    """Where audio comes from: `chunks()` yields float32 mono arrays at `sample_rate`; `realtime` says whether they
    arrive at wall-clock pace (a microphone, or a file played live)."""
    sample_rate: int = SAMPLE_RATE
    realtime: bool = False
    duration_s: float | None = None

    def chunks(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class ArraySource(AudioSource):
    """Samples in memory, any dtype/rate/channel layout (resampled once to 16 kHz mono), cut into `chunk` samples
    (default `chunk_ms`); with `realtime=True` each chunk is delivered when it would have been recorded."""

    def __init__(self, samples, sr: int = SAMPLE_RATE, chunk: int | None = None, chunk_ms: float = 20.0,
                 realtime: bool = False, target_sr: int = SAMPLE_RATE):
        self.samples = video.load_audio(np.asarray(samples), sr=target_sr, orig_sr=int(sr))
        self.sample_rate = int(target_sr)
        self.chunk = int(chunk or max(1, round(chunk_ms * target_sr / 1000)))
        self.realtime = bool(realtime)
        self.duration_s = len(self.samples) / self.sample_rate
        self._stop = threading.Event()

    def chunks(self) -> Iterator[np.ndarray]:
        t0 = time.perf_counter()
        n = len(self.samples)
        for i in range(0, n, self.chunk):
            if self._stop.is_set():
                return
            j = min(n, i + self.chunk)
            if self.realtime:
                wait = t0 + j / self.sample_rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            yield self.samples[i:j]

    def close(self) -> None:
        self._stop.set()


class FileSource(ArraySource):
    """The sound of any audio or video file (`talkinghead.video.read_audio`: any rate, channels, container), played
    in 20 ms chunks at wall-clock pace when `realtime` (as a microphone would deliver it)."""

    def __init__(self, path, realtime: bool = True, chunk_ms: float = 20.0, chunk: int | None = None):
        self.path = Path(path)
        samples, sr = video.read_audio(self.path, sr=SAMPLE_RATE)
        super().__init__(samples, sr, chunk=chunk, chunk_ms=chunk_ms, realtime=realtime)


class MicSource(AudioSource):
    """The default microphone through `sounddevice` (PortAudio), at the device's rate (the engine resamples), until
    the engine stops or `duration_s` has passed. Not available in Colab (the browser owns the microphone there)."""
    realtime = True

    def __init__(self, duration_s: float | None = None, device=None, chunk_ms: float = 20.0):
        try:
            import sounddevice as sd
            info = sd.query_devices(device, "input")
        except ImportError:
            raise MediaError("microphone input needs the sounddevice package (pip install sounddevice); without it "
                             "record a file and play it with FileSource(path).") from None
        except Exception as e:
            raise MediaError(f"no usable microphone ({type(e).__name__}: {e}); check the input device (in Colab the "
                             "browser owns the microphone: record a file and use FileSource(path)).") from None
        self._sd = sd
        self.device = device
        self.sample_rate = int(info["default_samplerate"])
        self.blocksize = max(1, int(round(chunk_ms * self.sample_rate / 1000)))
        self.duration_s = duration_s
        self._stop = threading.Event()

    def chunks(self) -> Iterator[np.ndarray]:
        q: queue.Queue = queue.Queue()

        def callback(indata, frames, t, status):
            q.put(np.asarray(indata[:, 0], np.float32).copy())

        limit = None if self.duration_s is None else int(self.duration_s * self.sample_rate)
        got = 0
        with self._sd.InputStream(samplerate=self.sample_rate, channels=1, dtype="float32", device=self.device,
                                  blocksize=self.blocksize, callback=callback):
            while not self._stop.is_set() and (limit is None or got < limit):
                try:
                    x = q.get(timeout=0.2)
                except queue.Empty:
                    continue
                if limit is not None:
                    x = x[:limit - got]
                got += len(x)
                yield x

    def close(self) -> None:
        self._stop.set()


def as_source(audio, realtime: bool = False) -> AudioSource:
    """An AudioSource from a source, a file path, (samples, sr), or samples at 16 kHz."""
    if isinstance(audio, AudioSource):
        return audio
    if isinstance(audio, (str, os.PathLike)):
        return FileSource(audio, realtime=realtime)
    if isinstance(audio, tuple) and len(audio) == 2 and np.isscalar(audio[1]):
        return ArraySource(audio[0], int(audio[1]), realtime=realtime)
    return ArraySource(audio, SAMPLE_RATE, realtime=realtime)


class StreamResampler:
    """Chunk-wise resampling to 16 kHz for sources at another rate (a microphone): `rs(x)`, then `rs(empty, last=True)`
    for the tail."""

    def __init__(self, orig_sr: int, sr: int = SAMPLE_RATE):
        import soxr
        self.rs = soxr.ResampleStream(int(orig_sr), int(sr), 1, dtype="float32", quality="HQ")

    def __call__(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        return np.clip(self.rs.resample_chunk(np.asarray(x, np.float32).reshape(-1), last=last), -1.0, 1.0)
