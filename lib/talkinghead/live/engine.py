"""The live engine: audio chunks in, talking frames out through a `BundleRuntime`, against a clock (notebook 06).

The clock
---------
Video frame k covers audio time `k/fps .. (k+1)/fps`. Its features are complete when sample `(k+1) * 640` has
arrived, and Audio2Motion emits its motion L frames later (the lookahead, `lookahead_frames` in the manifest), so
the earliest it can be shown is audio time `(k + 1 + L)/fps`. In `mode="realtime"` frame k is *due* at wall time
`t0 + k/fps + delay`, with `delay = (L + 1)/fps + margin_s` (the sound, played `delay` late, stays in sync with the
face). A frame that would be finished after its due time (the renderer is slower than real time) is not rendered
when `drop_frames=True`: the last frame is shown again and counted as dropped, and the engine says so once. In
`mode="preview"` every frame is rendered as fast as possible (in batches), then the notebook sink plays the whole
clip in sync with its sound.

Streaming equals offline: features are the offline ones (`runtime.feature_stream()`: the bundle's features.onnx, else
`audio.StreamingFeatures`, the same numbers), Audio2Motion is stepped one
frame at a time (the same numbers whatever the audio chunks; a longer step differs by ~1e-7, enough to flip a rounded
pixel), and frames are rendered in batches fixed by frame index, so any chunk size gives identical frames, equal to
the offline render of the same audio up to the ONNX-vs-PyTorch float difference (at most a grey level or two).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Iterator

import numpy as np

from .report import STAGES, Frame, StreamInfo, TimingReport
from .runtime import BundleRuntime
from .sinks import Sink, as_sink
from .sources import AudioSource, StreamResampler, as_source

MODES = ("realtime", "preview")


class _Run:
    """One stream's state: streaming features, Audio2Motion state, motion waiting for its batch, clocks, counters."""

    def __init__(self, engine: "LiveEngine", source: AudioSource, sink: Sink | None):
        rt = self.rt = engine.runtime
        p = rt.feature_params
        self.engine, self.sink = engine, sink
        self.fps, self.spf, self.L, self.sr = rt.fps, p.samples_per_video_frame, rt.lookahead, p.sample_rate
        self.realtime = engine.mode == "realtime"
        self.times = {s: 0.0 for s in STAGES}
        self.latencies: list[float] = []
        self.counts = {"frames": 0, "rendered": 0, "dropped": 0, "late": 0, "samples": 0, "waited": 0.0}
        self.feats = rt.feature_stream()
        self.state = rt.a2m_init_state()
        self.resample = StreamResampler(source.sample_rate, self.sr) if int(source.sample_rate) != self.sr else None
        self.arrivals: deque = deque()   # (sample count after the chunk, wall time it entered)
        self.pending: list = []          # (k, motion) waiting for their batch
        self.a2m_out = 0                 # Audio2Motion outputs so far (the first L are warm-up)
        self.last_image = None
        self.est_render = 0.0
        self.skipped = 0
        self.warned = False
        self.t0 = time.perf_counter()

    # ------------------------------------------------------------------------------------------------ audio in
    def push(self, chunk) -> Iterator[Frame]:
        """One chunk of the source: resample, features, Audio2Motion, then every batch that is complete."""
        now = time.perf_counter()
        x = np.asarray(chunk, np.float32).reshape(-1)
        if self.resample is not None:
            x = self.resample(x)
        self._take(x, now)
        yield from self.ready(final=False)

    def end(self) -> Iterator[Frame]:
        """The source is exhausted: the resampler's tail, the last features, the lookahead flushed with silence."""
        if self.resample is not None:
            tail = self.resample(np.zeros(0, np.float32), last=True)
            if len(tail):
                self._take(tail, time.perf_counter())
        self.motion_frames(self._timed_features(self.feats.flush))
        if self.a2m_out and self.L:
            self.motion_frames(self.rt.silence_features(self.L))
        yield from self.ready(final=True)

    def _take(self, x: np.ndarray, now: float) -> None:
        self.counts["samples"] += len(x)
        self.arrivals.append((self.counts["samples"], now))
        if self.sink is not None:
            self.sink.audio(x)
        self.motion_frames(self._timed_features(self.feats.push, x))

    def _timed_features(self, fn, *args) -> np.ndarray:
        t = time.perf_counter()
        f = fn(*args)
        self.times["features"] += time.perf_counter() - t
        return f

    def motion_frames(self, f: np.ndarray) -> None:
        """Feature frames (n, 4, 80) -> Audio2Motion one frame per step (the same numbers for any chunking) -> motion
        of frames L back, plus idle motion, queued as (k, motion)."""
        if len(f) == 0:
            return
        t = time.perf_counter()
        ys = []
        for i in range(len(f)):
            y1, self.state = self.rt.a2m_step(f[i:i + 1], self.state, self.engine.emotion)
            ys.append(y1)
        y = np.concatenate(ys)
        first = max(0, self.L - self.a2m_out)
        self.a2m_out += len(y)
        y = y[first:]
        if len(y):
            k0 = self.a2m_out - self.L - len(y)
            idle = self.rt.idle(k0, len(y), self.engine.idle_seed)
            if idle is not None:
                y = y + idle
            self.pending.extend((k0 + i, y[i]) for i in range(len(y)))
        self.times["a2m"] += time.perf_counter() - t

    def entered(self, k: int) -> float:
        """Wall time the audio sample completing frame k entered (no earlier than its real-time instant)."""
        end = min((k + 1) * self.spf, self.counts["samples"])
        while len(self.arrivals) > 1 and self.arrivals[0][0] < end:
            self.arrivals.popleft()
        wall = self.arrivals[0][1] if self.arrivals else self.t0
        return max(wall, self.t0 + end / self.sr) if self.realtime else wall

    # ------------------------------------------------------------------------------------------------ frames out
    def ready(self, final: bool) -> Iterator[Frame]:
        """Render the waiting motion in batches fixed by frame index (never by how the audio was chunked)."""
        size = self.engine.batch_size
        while self.pending and (final or len(self.pending) >= size):
            batch = self.pending[:size]
            del self.pending[:size]
            if self.engine._stop.is_set():
                return
            if self.realtime:
                yield from self._realtime(batch)
            else:
                yield from self._preview(batch)

    def _frame_out(self, k: int, img: np.ndarray) -> Frame:
        lat = time.perf_counter() - self.entered(k)
        self.latencies.append(lat)
        self.counts["frames"] += 1
        self.counts["rendered"] += 1
        self.last_image = img
        return Frame(k, img, k / self.fps, False, lat)

    def _preview(self, batch: list) -> Iterator[Frame]:
        t = time.perf_counter()
        images = self.rt.render(np.stack([m for _, m in batch]), self.times)
        self.est_render = (time.perf_counter() - t) / len(batch)
        frames = [self._frame_out(k, img) for (k, _), img in zip(batch, images)]
        yield from frames

    def _realtime(self, batch: list) -> Iterator[Frame]:
        for k, m in batch:                                          # realtime: batch_size 1
            if self.engine._stop.is_set():
                return
            due = self.t0 + self.engine.delay_s + k / self.fps
            yield self._dropped(k) if self._should_drop(due) else self._on_time(k, m, due)

    def _should_drop(self, due: float) -> bool:
        """Drop a frame that would come out late; when none can be on time, still render as often as we can."""
        return (self.engine.drop_frames and self.last_image is not None
                and time.perf_counter() + self.est_render > due + 0.5 / self.fps
                and self.skipped < max(1, int(np.ceil(self.est_render * self.fps)) - 1))

    def _dropped(self, k: int) -> Frame:
        self.skipped += 1
        self.counts["frames"] += 1
        self.counts["dropped"] += 1
        self._warn_once(f"rendering is slower than real time ({1000 * self.est_render:.0f} ms per frame, a frame "
                        f"lasts {1000 / self.fps:.0f} ms): dropping frames to stay in sync with the sound (use "
                        "mode='preview' to render every frame)")
        return Frame(k, self.last_image, k / self.fps, True, None)

    def _on_time(self, k: int, m: np.ndarray, due: float) -> Frame:
        t = time.perf_counter()
        img = self.rt.render(m[None], self.times)[0]
        self.skipped = 0
        took = time.perf_counter() - t
        self.est_render = took if self.counts["rendered"] == 0 else 0.7 * self.est_render + 0.3 * took
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
            self.counts["waited"] += due - now
        elif now > due + 0.5 / self.fps:
            self.counts["late"] += 1
            if not self.engine.drop_frames:
                self._warn_once(f"rendering is slower than real time ({1000 * took:.0f} ms per frame, a frame lasts "
                                f"{1000 / self.fps:.0f} ms): frames come out late (drop_frames=True keeps them in sync)")
        return self._frame_out(k, img)

    def _warn_once(self, msg: str) -> None:
        if not self.warned:
            self.warned = True
            self.engine._say(msg)

    # ------------------------------------------------------------------------------------------------ report
    def report(self, stopped: bool) -> TimingReport:
        """The TimingReport of the stream so far (see `report.TimingReport` for what each number means)."""
        rt, c, times, mode = self.rt, self.counts, self.times, self.engine.mode
        wall = time.perf_counter() - self.t0
        lat = np.asarray(self.latencies, np.float64) * 1000
        busy = sum(times.values())
        render = times["renderer"] + times["paste"]
        r = TimingReport(
            mode=mode, fps=float(rt.fps), frames=c["frames"], rendered=c["rendered"], dropped=c["dropped"],
            late=c["late"], audio_s=c["samples"] / self.sr, wall_s=wall,
            achieved_fps=c["rendered"] / wall if wall > 0 else 0.0,
            render_fps=c["rendered"] / render if render > 0 else 0.0,
            realtime_factor=(c["rendered"] / busy / rt.fps) if busy > 0 and c["rendered"] else 0.0,
            latency_mean_ms=float(lat.mean()) if len(lat) else 0.0,
            latency_p95_ms=float(np.percentile(lat, 95)) if len(lat) else 0.0,
            delay_ms=1000 * self.engine.delay_s if mode == "realtime" else 0.0,
            stage_s=times, waited_s=c["waited"], stopped=stopped,
            variant=rt.variant + (f" ({rt.choice.why})" if getattr(rt, "choice", None) else ""),
            providers=", ".join(p if isinstance(p, str) else p[0] for p in rt.providers),
            renderer=getattr(rt, "renderer_name", ""))
        if mode == "preview" and r.rendered and r.achieved_fps < rt.fps:
            self.engine._say(f"rendering ran at {r.achieved_fps:.1f} fps, slower than real time ({rt.fps} fps): "
                             f"rendered all {r.rendered} frames first ({wall:.1f} s), then they play in sync")
        return r


class LiveEngine:
    """Audio -> frames through a BundleRuntime, against a clock (see the module docstring).

    `runtime`: a BundleRuntime or a bundle folder. `emotion`: None, a name from `layout.EMOTIONS` or an id.
    `mode`: "realtime" (frames on time, late ones dropped when `drop_frames`) or "preview" (render all, in batches
    of `batch_size`, then play). `sink`: a Sink or a list of them (default: a NotebookSink). `margin_s`: extra
    scheduled delay in realtime mode for chunk arrival and rendering (default 2 frames). `idle_seed`: where in the
    idle loop the stream starts.
    """

    def __init__(self, runtime, emotion=None, mode: str = "realtime", sink=None, drop_frames: bool = True,
                 batch_size: int = 4, margin_s: float | None = None, idle_seed: int = 0, verbose: bool = True):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: use 'realtime' or 'preview'")
        self.runtime = runtime if isinstance(runtime, BundleRuntime) else BundleRuntime(runtime)
        self.emotion = self.runtime.emotion_id(emotion)
        self.mode = mode
        self.sink = sink
        self.drop_frames = drop_frames
        self.batch_size = max(1, int(batch_size)) if mode == "preview" else 1
        fps = self.runtime.fps
        self.margin_s = 2.0 / fps if margin_s is None else float(margin_s)
        self.delay_s = (self.runtime.lookahead + 1) / fps + self.margin_s
        self.idle_seed = idle_seed
        self.verbose = verbose
        self.report: TimingReport | None = None
        self._run: _Run | None = None
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the running stream to end (thread-safe); sinks are finished normally (the mp4 is playable)."""
        self._stop.set()

    def _say(self, msg: str) -> None:
        if self.verbose:
            print(msg)

    def run(self, source, sink=None) -> TimingReport:
        """Stream `source` (an AudioSource, a file path, (samples, sr) or 16 kHz samples) into the sink(s).

        A KeyboardInterrupt (the notebook's stop button) counts as a stop request: the stream ends cleanly and the
        report comes back."""
        sink = as_sink(sink if sink is not None else self.sink)
        gen = self._stream(as_source(source, realtime=self.mode == "realtime"), sink)
        ok = False
        try:
            try:
                for frame in gen:
                    t = time.perf_counter()
                    sink.frame(frame)
                    self._run.times["sink"] += time.perf_counter() - t
            except KeyboardInterrupt:
                self._stop.set()
                gen.close()
                self._say("stopped (interrupted); finishing the outputs with the frames so far")
            report = self.report or self._stopped_report()
            sink.finish(report)            # not timed: muxing or playback after the stream
            ok = True
            return report
        finally:
            gen.close()
            if not ok:
                sink.abort()

    def frames(self, source) -> Iterator[Frame]:
        """The stream as a generator of `Frame`s (no sinks); `self.report` is set when it ends."""
        gen = self._stream(as_source(source, realtime=self.mode == "realtime"), None)
        try:
            for frame in gen:
                t = time.perf_counter()
                yield frame
                self._run.times["sink"] += time.perf_counter() - t
        finally:
            gen.close()

    def _stopped_report(self) -> TimingReport:
        """The report of a stream interrupted before it finished its own."""
        if self._run is None:
            return TimingReport(self.mode, float(self.runtime.fps), stopped=True)
        return self._run.report(stopped=True)

    def _start(self, source: AudioSource, sink: Sink | None) -> _Run:
        self._stop.clear()
        self.report = None
        run = self._run = _Run(self, source, sink)
        self.runtime.warmup()
        if sink is not None:
            rt = self.runtime
            sink.start(StreamInfo(rt.fps, rt.width, rt.height, run.sr, self.mode, rt.lookahead, self.delay_s))
        run.t0 = time.perf_counter()
        return run

    def _stream(self, source: AudioSource, sink: Sink | None) -> Iterator[Frame]:
        """The loop: chunks in until the source ends or a stop is asked, then the flush; sets `self.report`."""
        run = self._start(source, sink)
        try:
            stopped = False
            for chunk in source.chunks():
                yield from run.push(chunk)
                if self._stop.is_set():
                    stopped = True
                    break
            if not stopped:
                yield from run.end()
            self.report = run.report(stopped=stopped or self._stop.is_set())
        finally:
            source.close()


class FrameIterator:
    """`for frame in FrameIterator(runtime_or_engine, source): ...`: the stream as `Frame`s, for other programs; the
    `report` attribute is set when the iteration ends."""

    def __init__(self, engine, source, **kw):
        self.engine = engine if isinstance(engine, LiveEngine) else LiveEngine(engine, **kw)
        self.source = source
        self.report: TimingReport | None = None

    def __iter__(self) -> Iterator[Frame]:
        yield from self.engine.frames(self.source)
        self.report = self.engine.report
