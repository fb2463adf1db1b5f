"""Where the live engine's frames go: the notebook, an mp4, or several at once (notebook 06).

A `Sink` receives `start(info)`, then `audio(samples)` and `frame(Frame)` interleaved, then `finish(report)`
(or `abort()` after an error). `NotebookSink` shows frames in Jupyter or Colab; `VideoSink` streams them with
their sound into an mp4 that appears only when complete.
"""
from __future__ import annotations

import queue
import tempfile
import threading
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import video
from ..errors import MediaError
from ..layout import SAMPLE_RATE
from ..notebook import jpeg_bytes
from .report import Frame, StreamInfo, TimingReport


class Sink:
    """Receives a stream: `start(info)`, then `audio(samples)` (16 kHz mono, as it enters) and `frame(Frame)`
    interleaved, then `finish(report)` (also after a stop). `abort()` instead of `finish` after an error."""

    def start(self, info: StreamInfo) -> None:
        pass

    def audio(self, samples: np.ndarray) -> None:
        pass

    def frame(self, frame: Frame) -> None:
        pass

    def finish(self, report: TimingReport) -> None:
        pass

    def abort(self) -> None:
        pass


def _fan_out(name: str):
    """A Sink method that calls the same method of every sink in turn."""
    def method(self, *args):
        for s in self.sinks:
            getattr(s, name)(*args)
    method.__name__ = name
    method.__doc__ = f"`{name}` on every sink, in order."
    return method


class _Sinks(Sink):
    """Several sinks as one: each call goes to every sink; `abort` reaches all of them even if one fails."""

    def __init__(self, sinks: Sequence[Sink]):
        self.sinks = list(sinks)

    start, audio, frame, finish = (_fan_out(n) for n in ("start", "audio", "frame", "finish"))

    def abort(self):
        for s in self.sinks:
            try:
                s.abort()
            except Exception:
                pass


def as_sink(sink) -> Sink:
    """A Sink from a sink, a list or tuple of sinks, or None (a NotebookSink)."""
    if sink is None:
        return NotebookSink()
    return _Sinks(sink) if isinstance(sink, (list, tuple)) else sink


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


class NotebookSink(Sink):
    """Frames shown live in a notebook (Colab and Jupyter).

    `backend`: "handle" (an IPython display handle updated with each JPEG, docs/facts.md's most reliable route), "widget"
    (an ipywidgets Image; 7.7.1 and 8 alike; falls back to "handle" when ipywidgets is missing) or "auto" (handle).
    Updates are throttled to what the front end can take: an update is skipped when the previous one was less than
    1.5x its own cost ago (and never faster than `max_fps`). In preview mode the frames are kept as small JPEGs
    while rendering (a progress line shows), then played in sync with the sound (`audio=True`: an autoplaying
    audio player). Outside IPython it does nothing.
    """

    def __init__(self, width: int | None = 384, quality: int = 80, backend: str = "auto", max_fps: float | None = None,
                 audio: bool = True):
        self.width, self.quality, self.max_fps, self.play_audio = width, int(quality), max_fps, audio
        self.backend = "handle" if backend == "auto" else backend
        self.shown = self.skipped = 0
        self.active = _in_notebook()

    # display plumbing -----------------------------------------------------------------------------------------
    def _jpeg(self, image: np.ndarray) -> bytes:
        import cv2

        if self.width and image.shape[1] > self.width:
            h = int(round(image.shape[0] * self.width / image.shape[1]))
            image = cv2.resize(image, (self.width, h), interpolation=cv2.INTER_AREA)
        return jpeg_bytes(image, self.quality)

    def _open(self, jpeg: bytes) -> None:
        from IPython.display import Image, display

        if self.backend == "widget":
            try:
                import ipywidgets as widgets
                self._widget = widgets.Image(value=jpeg, format="jpeg")
                display(self._widget)
                return
            except ImportError:
                self.backend = "handle"
        self._handle = display(Image(data=jpeg, format="jpeg"), display_id=True)

    def _show(self, jpeg: bytes) -> None:
        if self.backend == "widget":
            self._widget.value = jpeg
        else:
            from IPython.display import Image
            self._handle.update(Image(data=jpeg, format="jpeg"))

    def _text(self, msg: str) -> None:
        from IPython.display import display
        if self._status is None:
            self._status = display({"text/plain": msg}, raw=True, display_id=True)
        else:
            self._status.update({"text/plain": msg}, raw=True)

    # the sink ---------------------------------------------------------------------------------------------------
    def start(self, info: StreamInfo) -> None:
        self.info = info
        self._opened = False
        self._status = None
        self._cost = 0.0
        self._last = -1e9
        self._jpegs: list[bytes] = []
        self._audio: list[np.ndarray] = []
        self._last_text = 0.0
        self.shown = self.skipped = 0

    def audio(self, samples: np.ndarray) -> None:
        if self.active and self.info.mode == "preview" and self.play_audio:
            self._audio.append(np.asarray(samples, np.float32))

    def frame(self, frame: Frame) -> None:
        if not self.active:
            return
        if self.info.mode == "preview":
            self._jpegs.append(self._jpeg(frame.image))
            now = time.perf_counter()
            if now - self._last_text > 0.5:
                self._last_text = now
                self._text(f"rendering frame {frame.index + 1} ...")
            return
        if frame.repeated and self._opened:
            return
        now = time.perf_counter()
        gap = max(1.5 * self._cost, 1.0 / self.max_fps if self.max_fps else 0.0)
        if self._opened and now - self._last < gap:
            self.skipped += 1
            return
        jpeg = self._jpeg(frame.image)
        if not self._opened:
            self._open(jpeg)
            self._opened = True
        else:
            self._show(jpeg)
        t = time.perf_counter()
        self._cost = 0.8 * self._cost + 0.2 * (t - now) if self.shown else t - now
        self._last = t
        self.shown += 1

    def finish(self, report: TimingReport) -> None:
        if not self.active or self.info.mode != "preview":
            return
        self.play()

    def play(self) -> None:
        """Play the rendered preview in sync with its sound (again, if called again)."""
        if not self._jpegs:
            return
        from IPython.display import Audio, display

        fps = self.info.fps
        self._text(f"playing {len(self._jpegs)} frames at {fps} fps")
        if not self._opened:
            self._open(self._jpegs[0])
            self._opened = True
        if self.play_audio and self._audio:
            display(Audio(np.concatenate(self._audio), rate=self.info.sample_rate, autoplay=True))
        t0 = time.perf_counter()
        for k, jpeg in enumerate(self._jpegs):
            wait = t0 + k / fps - time.perf_counter()
            if wait < -1.0 / fps and k + 1 < len(self._jpegs):
                self.skipped += 1            # the front end is slower than the frame rate: keep the sound's pace
                continue
            if wait > 0:
                time.sleep(wait)
            self._show(jpeg)
            self.shown += 1


class VideoSink(Sink):
    """An mp4 (H.264 + AAC of the stream's sound) via `talkinghead.video.write_video`, streamed while the engine runs
    (frames go to ffmpeg from a background thread, the sound to a temporary wav), so memory does not grow with the
    length. The file appears only when complete (temporary name, then rename): after a stop it holds every frame
    emitted so far with the matching sound; after an error nothing is written. No frames: no file (`path` None)."""

    def __init__(self, path, crf: int = 18, verbose: bool = True):
        self.target = Path(path)
        self.crf, self.verbose = crf, verbose
        self.path: Path | None = None
        self.frames = 0

    def start(self, info: StreamInfo) -> None:
        import soundfile as sf

        self.info = info
        self.frames = 0
        self.path = None
        self._tmp = tempfile.TemporaryDirectory(prefix="talkinghead-live-")
        self._wav = Path(self._tmp.name) / "audio.wav"
        self._sf = sf.SoundFile(str(self._wav), "w", samplerate=info.sample_rate, channels=1, subtype="FLOAT")
        self._q: queue.Queue = queue.Queue(maxsize=32)
        self._thread = None
        self._error: BaseException | None = None

    def audio(self, samples: np.ndarray) -> None:
        if len(samples):
            self._sf.write(np.asarray(samples, np.float32))

    def _frames(self):
        while True:
            item = self._q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _write(self) -> None:
        try:
            video.write_video(self.target, self._frames(), fps=self.info.fps, audio=self._wav, progress=False, crf=self.crf)
        except BaseException as e:  # handed to the engine's thread
            self._error = e
            while True:  # unblock a producer waiting on a full queue
                try:
                    self._q.get_nowait()
                except queue.Empty:
                    break

    def _put(self, item) -> None:
        while self._thread.is_alive():
            try:
                self._q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        if self._error is not None:
            raise self._error

    def frame(self, frame: Frame) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._write, name="talkinghead-mp4", daemon=True)
            self._thread.start()
        if self._error is not None:
            raise self._error
        self._put(frame.image)
        self.frames += 1

    def finish(self, report: TimingReport) -> None:
        self._sf.close()
        try:
            if self._thread is None:
                if self.verbose:
                    print(f"{self.target}: no frames (no audio), so no video was written.")
                return
            self._put(None)
            self._thread.join()
            if self._error is not None:
                raise self._error
            self.path = self.target
        finally:
            self._tmp.cleanup()

    def abort(self) -> None:
        if not hasattr(self, "_tmp"):        # never started
            return
        try:
            self._sf.close()
        except Exception:
            pass
        if self._thread is not None and self._thread.is_alive():
            try:
                self._q.put(MediaError(f"{self.target}: the stream failed; nothing was written."), timeout=1.0)
            except queue.Full:
                pass
            self._thread.join(timeout=10)
        self._tmp.cleanup()


class ProgressSink(Sink):
    """A progress bar over frames (tqdm, with its ETA) for preview mode: `total` frames expected (from the audio's
    length, `frames_for_seconds`), `desc` its label. Written to stderr, so the figures on stdout stay clean."""

    def __init__(self, total: int | None, desc: str = "render", unit: str = "frame"):
        self.total, self.desc, self.unit = total, desc, unit
        self.bar = None

    def start(self, info: StreamInfo) -> None:
        from tqdm.auto import tqdm   # light, but only a progress bar needs it

        self.bar = tqdm(total=self.total, desc=self.desc, unit=self.unit, dynamic_ncols=True)

    def frame(self, frame: Frame) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def finish(self, report: TimingReport) -> None:
        self.abort()

    def abort(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def frames_for_seconds(seconds: float, fps: float) -> int:
    """How many video frames the engine makes from `seconds` of audio: ceil(samples / samples per frame)."""
    spf = SAMPLE_RATE / float(fps)
    return int(np.ceil(round(seconds * SAMPLE_RATE) / spf - 1e-9))
