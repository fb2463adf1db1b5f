"""The live engine: new audio in, talking frames out, on the exported bundle alone (notebooks/06_live_preview.ipynb).

    audio chunks --resample--> 16 kHz --StreamingFeatures--> (k, 4, 80) per completed video frame
                 --audio2motion.onnx (streaming state)--> motion (69) of the frame L frames back [+ idle motion]
                 --renderer.onnx--> 512 face --paste.onnx--> portrait frame --> sinks (notebook, mp4, iterator)

Only numpy, onnxruntime and the bundle folder are needed (no torch, no training code): this is what a phone or
browser app would run.

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

`TimingReport` gives the achieved frame rate, frames rendered and dropped, the latency from an audio sample
entering to its frame leaving (the sample that completes the frame; mean and p95, ms), and the share of busy time
in each stage (features, a2m, renderer, paste, sink).

Streaming equals offline: features are the offline ones (`audio.StreamingFeatures`), Audio2Motion is stepped one
frame at a time (the same numbers whatever the audio chunks; a longer step differs by ~1e-7, enough to flip a rounded
pixel), and frames are rendered in batches fixed by frame index, so any chunk size gives identical frames, equal to
the offline render of the same audio up to the ONNX-vs-PyTorch float difference (at most a grey level or two).
"""
from __future__ import annotations

import dataclasses
import os
import queue
import re
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from . import layout
from .audio import FeatureParams, StreamingFeatures, load_audio
from .errors import BundleError, MediaError, TalkingHeadError

STAGES = ("features", "a2m", "renderer", "paste", "sink")
MODES = ("realtime", "preview")


# ======================================================================================================================
# the bundle's models

def _ort():
    try:
        import onnxruntime as ort
    except ImportError:
        raise TalkingHeadError("the live engine needs onnxruntime: pip install onnxruntime (or onnxruntime-gpu).") \
            from None
    return ort


def _providers(providers) -> list:
    """None/'cpu' -> CPU; 'cuda'/'gpu'/'auto' -> CUDA when onnxruntime has it (else CPU, said once); a list as given."""
    ort = _ort()
    have = ort.get_available_providers()
    if providers is None or providers == "cpu":
        return ["CPUExecutionProvider"]
    if isinstance(providers, str):
        if providers.lower() in ("cuda", "gpu", "auto"):
            if "CUDAExecutionProvider" in have:
                return ["CUDAExecutionProvider", "CPUExecutionProvider"]
            if providers.lower() != "auto":
                print("CUDA was asked for, but this onnxruntime has no CUDAExecutionProvider (install "
                      "onnxruntime-gpu); running on the CPU.")
            return ["CPUExecutionProvider"]
        providers = [providers]
    ok = [p for p in providers if (p[0] if isinstance(p, tuple) else p) in have]
    return ok or ["CPUExecutionProvider"]


def _session(path: Path, providers: list, threads: int | None):
    ort = _ort()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = int(threads)
    try:
        return ort.InferenceSession(str(path), sess_options=so, providers=providers)
    except Exception as e:
        raise BundleError(f"{path}: onnxruntime cannot load this model ({type(e).__name__}); export the bundle again "
                          "(notebooks/05_export.ipynb or `python -m talkinghead export`).") from None


def _needs_export(path: Path, what: str) -> BundleError:
    return BundleError(f"{path}: {what}; export the avatar first (notebooks/05_export.ipynb or "
                       "`python -m talkinghead export`).")


class BundleRuntime:
    """The exported avatar bundle, ready to run: the three ONNX sessions, the portrait and the manifest.

    `variant`: the renderer variant ("fp32", "fp16", "int8", or "default": the manifest's choice). `providers`:
    None (CPU), "cuda"/"auto", or an onnxruntime provider list. `verify`: check every file's sha256 first (a changed
    or corrupt .onnx file is one BundleError sentence naming it). `threads`: onnxruntime intra-op threads.
    """

    def __init__(self, bundle_dir=None, variant: str = "default", providers=None, verify: bool = True,
                 threads: int | None = None):
        from .bake import load_bundle
        from .paths import avatar_dir

        self.path = Path(bundle_dir) if bundle_dir else avatar_dir()
        bundle = load_bundle(self.path, verify=verify)
        self.manifest = manifest = bundle.manifest
        self.portrait = bundle.portrait
        models = manifest.get("models")
        if not models:
            raise _needs_export(self.path / "manifest.json", "the avatar bundle has no exported models yet")
        for key in ("renderer", "paste", "audio2motion"):
            if key not in models:
                raise _needs_export(self.path / "manifest.json", f"the bundle's manifest lists no '{key}' model")
        rmod = models["renderer"]
        variants = rmod.get("variants") or {"fp32": {"file": rmod.get("file", "renderer.onnx")}}
        name = rmod.get("default", "fp32") if variant in (None, "default") else variant
        if name not in variants:
            raise BundleError(f"{self.path / 'manifest.json'}: the bundle has no renderer variant {name!r} (it has "
                              f"{', '.join(variants)}); pick one of those or export it (notebooks/05_export.ipynb).")
        self.variant = name
        self.providers = _providers(providers)
        files = {"renderer": variants[name]["file"], "paste": models["paste"]["file"],
                 "audio2motion": models["audio2motion"]["file"]}
        for key, f in files.items():
            if not (self.path / f).is_file():
                raise _needs_export(self.path / f, f"the {key} model is missing")
        self.sessions = {k: _session(self.path / f, self.providers, threads) for k, f in files.items()}
        self.files = files

        a = models["audio2motion"]
        self.a2m_info = a
        self.feature_params = FeatureParams.from_dict(a.get("feature_params") or manifest["audio_features"])
        self.fps = int(self.feature_params.fps)
        self.lookahead = int(a.get("lookahead_frames", 0))
        self.no_emotion_id = int(a.get("no_emotion_id", a.get("n_emotions", len(layout.EMOTIONS))))
        self.n_emotions = int(a.get("n_emotions", len(layout.EMOTIONS)))
        sil = np.asarray(a.get("silence", np.log(self.feature_params.log_floor)), np.float32)
        shape = (self.feature_params.frames_per_video_frame, self.feature_params.n_mels)
        self.silence = np.broadcast_to(sil, shape).astype(np.float32)
        self.mode = a.get("mode", "audio_only")
        self.idle_loop, self.idle_dims = _load_idle(self.path, a.get("idle")) if self.mode == "idle_from_recording" \
            else (None, None)
        s = self.sessions["audio2motion"]
        ins = {i.name: i for i in s.get_inputs()}
        self._conv_shape = tuple(a.get("conv_state_shape") or ins["conv_state"].shape)
        self._gru_shape = tuple(a.get("gru_state_shape") or ins["gru_state"].shape)
        self._in_dtype = {k: (np.float16 if "float16" in sess.get_inputs()[0].type else np.float32)
                          for k, sess in self.sessions.items()}
        paste = models["paste"]
        self.height = int(paste.get("height", self.portrait.shape[0]))
        self.width = int(paste.get("width", self.portrait.shape[1]))

    # ---------------------------------------------------------------------------------------------- audio2motion
    def emotion_id(self, emotion=None) -> int:
        """None -> "no label"; a name from `layout.EMOTIONS` or an id -> the id."""
        if emotion is None:
            return self.no_emotion_id
        if isinstance(emotion, str):
            if emotion not in layout.EMOTIONS:
                raise ValueError(f"unknown emotion {emotion!r}: use one of {', '.join(layout.EMOTIONS)} or None")
            return layout.EMOTIONS.index(emotion)
        e = int(emotion)
        if not 0 <= e <= self.no_emotion_id:
            raise ValueError(f"emotion id {e} is out of range 0..{self.no_emotion_id}")
        return e

    def a2m_init_state(self) -> tuple[np.ndarray, np.ndarray]:
        """The streaming state before the first frame: (conv_state, gru_state), zeros."""
        return np.zeros(self._conv_shape, np.float32), np.zeros(self._gru_shape, np.float32)

    def a2m_step(self, features: np.ndarray, state, emotion: int | None = None):
        """C new feature frames (C, 4, 80) or (1, C, 4, 80) -> (motion (C, 69) of the frames L back, new state).

        The first L outputs of a stream are warm-up; after the last frame feed `silence_features(L)` (see the
        module docstring of `talkinghead.a2m`)."""
        f = np.asarray(features, np.float32)
        if f.ndim == 3:
            f = f[None]
        conv, gru = state
        eid = self.no_emotion_id if emotion is None else int(emotion)
        y, conv, gru = self.sessions["audio2motion"].run(None, {
            "features": f, "conv_state": conv, "gru_state": gru, "emotion": np.array([eid], np.int64)})
        return y[0], (conv, gru)

    def silence_features(self, n: int) -> np.ndarray:
        """n frames of the features of silence (n, 4, 80), to flush the lookahead."""
        return np.repeat(self.silence[None], n, axis=0)

    def idle(self, start: int, n: int, seed: int = 0) -> np.ndarray | None:
        """Idle motion offsets (n, 69) for frames start..start+n-1 (None in "audio_only" mode).

        The same loop position as `talkinghead.a2m.IdleMotion.sample(n, seed)` for a stream starting at frame 0."""
        if self.idle_loop is None:
            return None
        m = len(self.idle_loop)
        first = int(np.random.default_rng(seed).integers(m))
        out = np.zeros((n, layout.MOTION_DIM), np.float32)
        out[:, self.idle_dims] = self.idle_loop[(first + start + np.arange(n)) % m]
        return out

    def motion_offline(self, samples, emotion=None, seed: int = 0) -> np.ndarray:
        """Motion (N, 69) for a whole utterance (float mono at 16 kHz) in one Audio2Motion call, idle added."""
        from .audio import features_for_frames

        feats = features_for_frames(samples, self.feature_params)
        if len(feats) == 0:
            return np.zeros((0, layout.MOTION_DIM), np.float32)
        L = self.lookahead
        y, _ = self.a2m_step(np.concatenate([feats, self.silence_features(L)]), self.a2m_init_state(),
                             self.emotion_id(emotion))
        y = y[L:]
        idle = self.idle(0, len(y), seed)
        return y if idle is None else y + idle

    # ---------------------------------------------------------------------------------------------- rendering
    def render(self, motion: np.ndarray, times: dict | None = None) -> np.ndarray:
        """Motion (B, 69) -> frames uint8 (B, H, W, 3) RGB: renderer.onnx, then paste.onnx.

        `times`: a dict to which the seconds spent in "renderer" and "paste" are added."""
        m = np.asarray(motion, np.float32).reshape(-1, layout.MOTION_DIM)
        t0 = time.perf_counter()
        face = self.sessions["renderer"].run(None, {"motion": m.astype(self._in_dtype["renderer"])})[0]
        t1 = time.perf_counter()
        frame = self.sessions["paste"].run(None, {"face": face.astype(self._in_dtype["paste"], copy=False)})[0]
        out = to_uint8(frame)
        t2 = time.perf_counter()
        if times is not None:
            times["renderer"] = times.get("renderer", 0.0) + t1 - t0
            times["paste"] = times.get("paste", 0.0) + t2 - t1
        return out

    def warmup(self) -> None:
        """Run every stage once (onnxruntime's first run is several times slower; the mel filterbank loads librosa)."""
        if not getattr(self, "_warm", False):
            self.render(np.zeros((1, layout.MOTION_DIM), np.float32))
            self.a2m_step(self.silence_features(1), self.a2m_init_state())
            StreamingFeatures(self.feature_params).push(np.zeros(self.feature_params.samples_per_video_frame))
            self._warm = True

    def idle_frame(self) -> np.ndarray:
        """The avatar at rest: the frame for zero motion (plus the first idle offset), uint8 (H, W, 3)."""
        m = np.zeros((1, layout.MOTION_DIM), np.float32)
        idle = self.idle(0, 1)
        return self.render(m if idle is None else m + idle)[0]

    def describe(self) -> str:
        sizes = {k: (self.path / f).stat().st_size / 1e6 for k, f in self.files.items()}
        return (f"avatar bundle {self.path} ({self.manifest.get('profile')} profile): renderer {self.variant} "
                f"({sizes['renderer']:.1f} MB), paste ({sizes['paste']:.1f} MB), audio2motion "
                f"({sizes['audio2motion']:.2f} MB); {self.width}x{self.height} at {self.fps} fps, lookahead "
                f"{self.lookahead} frames ({1000 * self.lookahead / self.fps:.0f} ms), idle mode {self.mode}; "
                f"onnxruntime on {', '.join(p if isinstance(p, str) else p[0] for p in self.providers)}")


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """(B, 3, H, W) floats in [0, 1] -> (B, H, W, 3) uint8 (rounded half to even, as `render.to_uint8`)."""
    x = np.rint(np.clip(np.asarray(frames, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def _load_idle(path: Path, spec) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The idle loop (M, D) and its motion dims (D,) from the manifest's `idle` entry.

    Accepted: {"file": "idle.npy", "dims": [...]} (the loop itself, as `talkinghead.export` writes it),
    {"file": "idle.npz"} with arrays `loop` (or `track` [+ `crossfade`]) and `dims`, or the same keys inline as
    lists. A track without a loop is looped as `talkinghead.a2m.IdleMotion` does."""
    if not spec:
        return None, None
    if isinstance(spec, str):
        spec = {"file": spec}
    arrays = dict(spec)
    if "file" in spec:
        f = path / spec["file"]
        if f.suffix == ".npy":
            try:
                arrays["loop"] = np.load(f, allow_pickle=False)
            except (OSError, ValueError):
                raise BundleError(f"{f}: the idle motion cannot be read; export the bundle again.") from None
        else:
            from .fileio import load_npz
            arrays.update(load_npz(f, "idle motion"))
    dims = np.asarray(arrays.get("dims"), np.int64)
    if "loop" in arrays:
        loop = np.asarray(arrays["loop"], np.float32)
    elif "track" in arrays:
        from .a2m import IdleMotion
        im = IdleMotion(np.asarray(arrays["track"], np.float32), dims, float(np.ravel(arrays.get("fps", 25))[0]),
                        int(np.ravel(arrays.get("crossfade", 12))[0]))
        loop = im.loop
    else:
        raise BundleError(f"{path / 'manifest.json'}: the idle motion entry has neither 'loop' nor 'track'; export "
                          "the bundle again.")
    if loop.ndim != 2 or len(loop) == 0 or loop.shape[1] != len(dims):
        raise BundleError(f"{path / 'manifest.json'}: the idle motion has shape {loop.shape} for {len(dims)} dims; "
                          "export the bundle again.")
    return loop, dims


# ======================================================================================================================
# audio sources

class AudioSource:
    """Where audio comes from: `chunks()` yields float32 mono arrays at `sample_rate`; `realtime` says whether they
    arrive at wall-clock pace (a microphone, or a file played live)."""
    sample_rate: int = 16000
    realtime: bool = False
    duration_s: float | None = None

    def chunks(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class ArraySource(AudioSource):
    """Samples in memory, any dtype/rate/channel layout (resampled once to 16 kHz mono), cut into `chunk` samples
    (default `chunk_ms`); with `realtime=True` each chunk is delivered when it would have been recorded."""

    def __init__(self, samples, sr: int = 16000, chunk: int | None = None, chunk_ms: float = 20.0,
                 realtime: bool = False, target_sr: int = 16000):
        self.samples = load_audio(np.asarray(samples), sr=target_sr, orig_sr=int(sr))
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
        from .video import read_audio

        self.path = Path(path)
        samples, sr = read_audio(self.path, sr=16000)
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
    return ArraySource(audio, 16000, realtime=realtime)


class _StreamResampler:
    """Chunk-wise resampling to 16 kHz for sources at another rate (a microphone)."""

    def __init__(self, orig_sr: int, sr: int):
        import soxr
        self.rs = soxr.ResampleStream(int(orig_sr), int(sr), 1, dtype="float32", quality="HQ")

    def __call__(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        return np.clip(self.rs.resample_chunk(np.asarray(x, np.float32).reshape(-1), last=last), -1.0, 1.0)


# ======================================================================================================================
# frames, timing

@dataclasses.dataclass
class Frame:
    """One output frame: `index` k (time k/fps), `image` uint8 (H, W, 3) RGB, `repeated` (True: a dropped frame,
    the last rendered image shown again), `latency_s` (audio sample in -> frame out; None for repeats)."""
    index: int
    image: np.ndarray
    time_s: float
    repeated: bool = False
    latency_s: float | None = None


@dataclasses.dataclass
class StreamInfo:
    """What sinks learn at the start of a stream."""
    fps: int
    width: int
    height: int
    sample_rate: int
    mode: str
    lookahead_frames: int
    delay_s: float


@dataclasses.dataclass
class TimingReport:
    """How a stream went. Times in seconds unless named _ms.

    achieved_fps: new (rendered) frames per second of wall-clock time (realtime: as displayed; preview: the
    rendering throughput); render_fps: the rate renderer + paste alone could sustain; realtime_factor: the whole
    pipeline's busy-time throughput over the target fps (>= 1: keeps up). latency: from the audio sample that
    completes a frame entering the engine (at the earliest, its real-time instant) to the frame leaving it."""
    mode: str
    fps: float
    frames: int = 0
    rendered: int = 0
    dropped: int = 0
    late: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0
    achieved_fps: float = 0.0
    render_fps: float = 0.0
    realtime_factor: float = 0.0
    latency_mean_ms: float = 0.0
    latency_p95_ms: float = 0.0
    delay_ms: float = 0.0
    stage_s: dict = dataclasses.field(default_factory=lambda: {s: 0.0 for s in STAGES})
    waited_s: float = 0.0
    stopped: bool = False
    variant: str = ""
    providers: str = ""

    @property
    def shares(self) -> dict:
        total = sum(self.stage_s.values())
        return {s: (self.stage_s[s] / total if total > 0 else 0.0) for s in STAGES}

    @property
    def per_frame_ms(self) -> dict:
        """Milliseconds per frame of each stage: features, a2m and sink per frame, renderer and paste per rendered one."""
        return {s: 1000 * self.stage_s[s] / max(1, self.rendered if s in ("renderer", "paste") else self.frames)
                for s in STAGES}

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["shares"] = self.shares
        d["per_frame_ms"] = self.per_frame_ms
        return d

    def summary(self) -> str:
        behind = "" if self.realtime_factor >= 1 or not self.rendered else \
            f"; rendering runs at {self.realtime_factor:.2f}x real time"
        return (f"{self.mode}: {self.frames} frames ({self.audio_s:.2f} s of audio) in {self.wall_s:.2f} s; rendered "
                f"{self.rendered}, dropped {self.dropped}; {self.achieved_fps:.1f} fps achieved (target {self.fps:g}), "
                f"renderer+paste alone {self.render_fps:.1f} fps; latency mean {self.latency_mean_ms:.0f} ms, p95 "
                f"{self.latency_p95_ms:.0f} ms{behind}{' (stopped early)' if self.stopped else ''}")

    def table(self) -> str:
        """A markdown table of the numbers and the per-stage times."""
        rows = ["| measure | value |", "| --- | ---: |"]
        for k, v in (("mode", self.mode), ("renderer variant", self.variant), ("providers", self.providers),
                     ("frames (rendered / dropped)", f"{self.frames} ({self.rendered} / {self.dropped})"),
                     ("audio", f"{self.audio_s:.2f} s"), ("wall clock", f"{self.wall_s:.2f} s"),
                     ("achieved fps", f"{self.achieved_fps:.1f} (target {self.fps:g})"),
                     ("renderer + paste alone", f"{self.render_fps:.1f} fps"),
                     ("real-time factor", f"{self.realtime_factor:.2f}"),
                     ("latency mean / p95", f"{self.latency_mean_ms:.0f} / {self.latency_p95_ms:.0f} ms"),
                     ("scheduled delay (realtime)", f"{self.delay_ms:.0f} ms")):
            rows.append(f"| {k} | {v} |")
        per = self.per_frame_ms
        for s in STAGES:
            rows.append(f"| {s} | {per[s]:.1f} ms/frame ({100 * self.shares[s]:.0f} % of busy time) |")
        return "\n".join(rows)

    def _repr_markdown_(self) -> str:
        return self.table()

    def plot(self, ax=None):
        """A horizontal bar chart of each stage's share of the busy time. Returns the matplotlib Figure."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 2.6))
        else:
            fig = ax.figure
        sh = self.shares
        ax.barh(list(STAGES)[::-1], [100 * sh[s] for s in STAGES][::-1], color="#4c72b0")
        per = self.per_frame_ms
        for i, s in enumerate(list(STAGES)[::-1]):
            ax.text(100 * sh[s] + 1, i, f"{per[s]:.1f} ms/frame", va="center", fontsize=8)
        ax.set_xlim(0, 115)
        ax.set_xlabel("share of busy time (%)")
        ax.set_title(f"{self.mode}: {self.achieved_fps:.1f} fps achieved, target {self.fps:g}")
        fig.tight_layout()
        return fig


# ======================================================================================================================
# sinks

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


class _Sinks(Sink):
    def __init__(self, sinks: Sequence[Sink]):
        self.sinks = list(sinks)

    def start(self, info):
        for s in self.sinks:
            s.start(info)

    def audio(self, samples):
        for s in self.sinks:
            s.audio(samples)

    def frame(self, frame):
        for s in self.sinks:
            s.frame(frame)

    def finish(self, report):
        for s in self.sinks:
            s.finish(report)

    def abort(self):
        for s in self.sinks:
            try:
                s.abort()
            except Exception:
                pass


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


class NotebookSink(Sink):
    """Frames shown live in a notebook (Colab and Jupyter).

    `backend`: "handle" (an IPython display handle updated with each JPEG, FACTS.md's most reliable route), "widget"
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

        from .notebook import jpeg_bytes
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
        from .video import write_video
        try:
            write_video(self.target, self._frames(), fps=self.info.fps, audio=self._wav, progress=False, crf=self.crf)
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


# ======================================================================================================================
# the engine

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
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the running stream to end (thread-safe); sinks are finished normally (the mp4 is playable)."""
        self._stop.set()

    def _say(self, msg: str) -> None:
        if self.verbose:
            print(msg)

    # ------------------------------------------------------------------------------------------------------ run
    def run(self, source, sink=None) -> TimingReport:
        """Stream `source` (an AudioSource, a file path, (samples, sr) or 16 kHz samples) into the sink(s).

        A KeyboardInterrupt (the notebook's stop button) counts as a stop request: the stream ends cleanly and the
        report comes back."""
        sink = sink if sink is not None else self.sink
        if sink is None:
            sink = NotebookSink()
        sink = _Sinks(sink) if isinstance(sink, (list, tuple)) else sink
        gen = self._stream(as_source(source, realtime=self.mode == "realtime"), sink)
        ok = False
        try:
            try:
                for frame in gen:
                    t = time.perf_counter()
                    sink.frame(frame)
                    self._times["sink"] += time.perf_counter() - t
            except KeyboardInterrupt:
                self._stop.set()
                gen.close()
                self._say("stopped (interrupted); finishing the outputs with the frames so far")
            report = self.report
            if report is None:  # interrupted before the stream finished its report
                report = self._make_report(stopped=True)
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
                self._times["sink"] += time.perf_counter() - t
        finally:
            gen.close()

    # ------------------------------------------------------------------------------------------------ the loop
    def _stream(self, source: AudioSource, sink: Sink | None) -> Iterator[Frame]:
        rt = self.runtime
        p = rt.feature_params
        fps, spf, L, sr = rt.fps, p.samples_per_video_frame, rt.lookahead, p.sample_rate
        realtime = self.mode == "realtime"
        self._stop.clear()
        self.report = None
        self._times = times = {s: 0.0 for s in STAGES}
        self._latencies: list[float] = []
        self._counts = {"frames": 0, "rendered": 0, "dropped": 0, "late": 0, "samples": 0, "waited": 0.0}
        feats = StreamingFeatures(p)
        state = rt.a2m_init_state()
        resample = _StreamResampler(source.sample_rate, sr) if int(source.sample_rate) != sr else None
        arrivals: deque = deque()        # (sample count after the chunk, wall time it entered)
        pending: list = []               # (k, motion) waiting for their batch
        a2m_out = 0                      # Audio2Motion outputs so far (the first L are warm-up)
        self._last_image = None
        self._est_render = 0.0
        self._skipped = 0
        rt.warmup()
        self._warned = False
        if sink is not None:
            sink.start(StreamInfo(fps, rt.width, rt.height, sr, self.mode, L, self.delay_s))
        self._t0 = t0 = time.perf_counter()

        def entered(k: int) -> float:
            """Wall time the audio sample completing frame k entered (no earlier than its real-time instant)."""
            end = min((k + 1) * spf, self._counts["samples"])
            while len(arrivals) > 1 and arrivals[0][0] < end:
                arrivals.popleft()
            wall = arrivals[0][1] if arrivals else t0
            return max(wall, t0 + end / sr) if realtime else wall

        def motion_frames(f: np.ndarray) -> None:
            nonlocal state, a2m_out
            if len(f) == 0:
                return
            t = time.perf_counter()
            ys = []
            for i in range(len(f)):      # one frame per step: the same numbers for any audio chunking
                y1, state = rt.a2m_step(f[i:i + 1], state, self.emotion)
                ys.append(y1)
            y = np.concatenate(ys)
            first = max(0, L - a2m_out)
            a2m_out += len(y)
            y = y[first:]
            if len(y):
                k0 = a2m_out - L - len(y)
                idle = rt.idle(k0, len(y), self.idle_seed)
                if idle is not None:
                    y = y + idle
                pending.extend((k0 + i, y[i]) for i in range(len(y)))
            times["a2m"] += time.perf_counter() - t

        def ready(final: bool) -> Iterator[Frame]:
            # batches are fixed by frame index (k // batch_size), never by how the audio was chunked
            while pending and (final or len(pending) >= self.batch_size):
                n = min(len(pending), self.batch_size)
                batch = pending[:n]
                del pending[:n]
                yield from self._emit(batch, entered, realtime)

        try:
            stopped = False
            for chunk in source.chunks():
                now = time.perf_counter()
                x = np.asarray(chunk, np.float32).reshape(-1)
                if resample is not None:
                    x = resample(x)
                self._counts["samples"] += len(x)
                arrivals.append((self._counts["samples"], now))
                if sink is not None:
                    sink.audio(x)
                t = time.perf_counter()
                f = feats.push(x)
                times["features"] += time.perf_counter() - t
                motion_frames(f)
                yield from ready(False)
                if self._stop.is_set():
                    stopped = True
                    break
            if not stopped:
                if resample is not None:
                    tail = resample(np.zeros(0, np.float32), last=True)
                    if len(tail):
                        self._counts["samples"] += len(tail)
                        arrivals.append((self._counts["samples"], time.perf_counter()))
                        if sink is not None:
                            sink.audio(tail)
                        t = time.perf_counter()
                        f = feats.push(tail)
                        times["features"] += time.perf_counter() - t
                        motion_frames(f)
                t = time.perf_counter()
                f = feats.flush()
                times["features"] += time.perf_counter() - t
                motion_frames(f)
                if a2m_out and L:                  # flush the lookahead with silence
                    motion_frames(rt.silence_features(L))
                yield from ready(True)
            self.report = self._make_report(stopped=stopped or self._stop.is_set())
        finally:
            source.close()

    def _emit(self, batch: list, entered, realtime: bool) -> Iterator[Frame]:
        rt, fps, c = self.runtime, self.runtime.fps, self._counts
        if self._stop.is_set():
            return
        if not realtime:
            t = time.perf_counter()
            images = rt.render(np.stack([m for _, m in batch]), self._times)
            self._est_render = (time.perf_counter() - t) / len(batch)
            out = time.perf_counter()
            for (k, _), img in zip(batch, images):
                c["frames"] += 1
                c["rendered"] += 1
                lat = out - entered(k)
                self._latencies.append(lat)
                self._last_image = img
                yield Frame(k, img, k / fps, False, lat)
            return
        for k, m in batch:                                          # realtime: batch_size 1
            if self._stop.is_set():
                return
            due = self._t0 + self.delay_s + k / fps
            now = time.perf_counter()
            # drop a frame that would come out late; when none can be on time, still render as often as we can
            if (self.drop_frames and self._last_image is not None and now + self._est_render > due + 0.5 / fps
                    and self._skipped < max(1, int(np.ceil(self._est_render * fps)) - 1)):
                self._skipped += 1
                c["frames"] += 1
                c["dropped"] += 1
                if not self._warned:
                    self._warned = True
                    self._say(f"rendering is slower than real time ({1000 * self._est_render:.0f} ms per frame, a frame "
                              f"lasts {1000 / fps:.0f} ms): dropping frames to stay in sync with the sound (use "
                              "mode='preview' to render every frame)")
                yield Frame(k, self._last_image, k / fps, True, None)
                continue
            t = time.perf_counter()
            img = rt.render(m[None], self._times)[0]
            self._skipped = 0
            took = time.perf_counter() - t
            self._est_render = took if c["rendered"] == 0 else 0.7 * self._est_render + 0.3 * took
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
                c["waited"] += due - now
            elif now > due + 0.5 / fps:
                c["late"] += 1
                if not self._warned and not self.drop_frames:
                    self._warned = True
                    self._say(f"rendering is slower than real time ({1000 * took:.0f} ms per frame, a frame lasts "
                              f"{1000 / fps:.0f} ms): frames come out late (drop_frames=True keeps them in sync)")
            out = time.perf_counter()
            lat = out - entered(k)
            self._latencies.append(lat)
            c["frames"] += 1
            c["rendered"] += 1
            self._last_image = img
            yield Frame(k, img, k / fps, False, lat)

    def _make_report(self, stopped: bool) -> TimingReport:
        rt, c, times = self.runtime, self._counts, self._times
        wall = time.perf_counter() - self._t0
        lat = np.asarray(self._latencies, np.float64) * 1000
        busy = sum(times.values())
        render = times["renderer"] + times["paste"]
        r = TimingReport(
            mode=self.mode, fps=float(rt.fps), frames=c["frames"], rendered=c["rendered"], dropped=c["dropped"],
            late=c["late"], audio_s=c["samples"] / rt.feature_params.sample_rate, wall_s=wall,
            achieved_fps=c["rendered"] / wall if wall > 0 else 0.0,
            render_fps=c["rendered"] / render if render > 0 else 0.0,
            realtime_factor=(c["rendered"] / busy / rt.fps) if busy > 0 and c["rendered"] else 0.0,
            latency_mean_ms=float(lat.mean()) if len(lat) else 0.0,
            latency_p95_ms=float(np.percentile(lat, 95)) if len(lat) else 0.0,
            delay_ms=1000 * self.delay_s if self.mode == "realtime" else 0.0,
            stage_s=times, waited_s=c["waited"], stopped=stopped, variant=rt.variant,
            providers=", ".join(p if isinstance(p, str) else p[0] for p in rt.providers))
        if self.mode == "preview" and r.rendered and r.achieved_fps < rt.fps:
            self._say(f"rendering ran at {r.achieved_fps:.1f} fps, slower than real time ({rt.fps} fps): rendered all "
                      f"{r.rendered} frames first ({wall:.1f} s), then they play in sync")
        return r


# ======================================================================================================================
# text -> speech -> video

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff\u3000-\u303f\uff00-\uffef]+")


def language_of(text: str) -> str:
    """"zh" when the text has Han characters, else "en"."""
    return "zh" if _HAN.search(text) else "en"


def _script_runs(text: str) -> list[tuple[str, str]]:
    """Split mixed text into (language, run) pieces: Han runs (with CJK punctuation) are zh, the rest en."""
    runs, pos = [], 0
    for m in _HAN_RUN.finditer(text):
        if m.start() > pos:
            runs.append(("en", text[pos:m.start()]))
        runs.append(("zh", m.group()))
        pos = m.end()
    if pos < len(text):
        runs.append(("en", text[pos:]))
    return [(lang, r.strip()) for lang, r in runs if re.search(r"\w", r)]


def synthesize(text: str, language: str | None = None, backend: str = "espeak", rate: float = 1.0,
               gap_s: float = 0.12) -> tuple[np.ndarray, int]:
    """Speech for `text` -> (float32 mono samples at 16 kHz, 16000) with `talkinghead.tts` (espeak-ng offline).

    `language` None: by script, run by run, so "你好。Hello." speaks Mandarin, then English (`gap_s` apart)."""
    from . import tts

    be = tts.get_backend(backend)
    runs = [(language, text)] if language else _script_runs(text)
    parts = []
    for lang, run in runs:
        s = be.synthesize(run, lang, rate=rate)
        x = load_audio(np.asarray(s.samples), sr=16000, orig_sr=int(s.sample_rate))
        if parts:
            parts.append(np.zeros(int(gap_s * 16000), np.float32))
        parts.append(x)
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), 16000


@dataclasses.dataclass
class SpeakResult:
    """What `speak` made: the mp4 `path` (None when there was nothing to say), the timing `report`, the spoken
    `text` and `language` (for text input) and the audio length. Usable as a path (`os.fspath`)."""
    path: Path | None
    report: TimingReport
    audio_s: float
    text: str | None = None
    language: str | None = None

    def __fspath__(self) -> str:
        return str(self.path)

    def summary(self) -> str:
        what = f"{self.text!r} ({self.language}, {self.audio_s:.2f} s)" if self.text is not None else \
            f"{self.audio_s:.2f} s of audio"
        return f"{what} -> {self.path}\n{self.report.summary()}"


def speak(bundle_dir, audio_or_text, out_path=None, language: str | None = None, emotion=None,
          variant: str = "default", providers=None, backend: str = "espeak", show: bool = False,
          verbose: bool = False, runtime: BundleRuntime | None = None) -> SpeakResult:
    """Text or audio -> an mp4 with sound through the exported bundle (preview mode: every frame rendered).

    `audio_or_text`: an audio/video file path, (samples, sr), a float array at 16 kHz, or text (synthesised with
    `synthesize`: Mandarin for Han characters, else English). `out_path` defaults to `out/speak.mp4` in the
    workspace. `show=True` also plays it in the notebook."""
    from .paths import out_dir

    text = lang = None
    if isinstance(audio_or_text, str) and not _is_file(audio_or_text) and _MEDIA_NAME.match(audio_or_text.strip()):
        raise MediaError(f"{audio_or_text}: the file does not exist; check the path (or pass text to speak).")
    if isinstance(audio_or_text, str) and not _is_file(audio_or_text):
        text = audio_or_text
        lang = language or language_of(text)
        source = ArraySource(*synthesize(text, language, backend=backend))
    else:
        source = as_source(audio_or_text, realtime=False)
    out = Path(out_path) if out_path else out_dir() / "speak.mp4"
    rt = runtime or BundleRuntime(bundle_dir, variant=variant, providers=providers)
    sinks = [VideoSink(out, verbose=verbose)] + ([NotebookSink()] if show else [])
    engine = LiveEngine(rt, emotion=emotion, mode="preview", verbose=verbose)
    report = engine.run(source, sinks)
    return SpeakResult(sinks[0].path, report, report.audio_s, text, lang)


_MEDIA_NAME = re.compile(r"^\S+\.(wav|mp3|flac|ogg|oga|m4a|aac|opus|aiff?|mp4|mov|mkv|webm|avi)$", re.IGNORECASE)


def _is_file(s: str) -> bool:
    try:
        return len(s) < 4096 and "\n" not in s and Path(s).is_file()
    except (OSError, ValueError):
        return False


def prepare_bundle(bundle_dir=None, profile=None, verbose: bool = True) -> Path:
    """The exported bundle, made on the sample assets first when it is missing (stages 01-05, nothing asked).

    With `bundle_dir` given, the folder must already hold an exported bundle."""
    from .paths import avatar_dir

    path = Path(bundle_dir) if bundle_dir else avatar_dir()
    mf = path / "manifest.json"
    if mf.is_file():
        from .fileio import load_json
        if load_json(mf, "avatar manifest").get("models"):
            return path
    if bundle_dir and path.resolve() != avatar_dir().resolve():
        raise _needs_export(path, "no exported avatar bundle here")
    from .pipeline import ensure_exported
    return ensure_exported(profile, verbose=verbose)


def files_written(*paths_) -> str:
    """A markdown list of files with their sizes (for a notebook's closing summary)."""
    rows = []
    for p in paths_:
        if p is None:
            continue
        p = Path(p)
        if p.is_file():
            rows.append(f"- `{p}` ({p.stat().st_size / 1e6:.2f} MB)")
    return "\n".join(rows) or "(no files)"
