"""The exported avatar bundle, ready to run: three onnxruntime sessions, the idle loop, the portrait (notebook 06).

    motion (B, 69) --renderer.onnx--> face (B, 3, 512, 512) --paste.onnx--> frame (B, 3, H, W) --> uint8 (B, H, W, 3)
    motion (B, 69) --pocket_frame.onnx--> the box that moves, RGBA uint8, over pocket_background.png  (pocket variant)
    features (C, 4, 80) + state --audio2motion.onnx--> motion (C, 69) of the frames L back + new state

Only numpy, onnxruntime and the bundle folder (no torch, no training code): what a phone or browser app runs.
Every model is opened through `Bundle.file`, so only files the manifest lists with their sha256 are ever loaded.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np

from .. import features_onnx, layout, onnxrt, paths, pixels
from ..audio import FeatureParams, StreamingFeatures, features_for_frames
from ..bundle import MANIFEST_FILE, Bundle, load_bundle, read_png
from ..errors import BundleError
from ..fileio import load_npz
from ..idle import CROSSFADE, IdleLoop
from . import choice

MODELS = ("renderer", "paste", "audio2motion")


def needs_export(path: Path, what: str) -> BundleError:
    """The error for a bundle without (some of) its exported models."""
    return BundleError(f"{path}: {what}; export the avatar first (notebooks/05_export.ipynb or "
                       "`python -m talkinghead export`).")


def renderer_variants(renderer: dict) -> dict:
    """The manifest's renderer variants {name: entry}; a bundle exported before variants existed has one, "fp32"."""
    return renderer.get("variants") or {"fp32": {"file": renderer.get("file", "renderer.onnx")}}


def model_files(bundle: Bundle, variant: str = "default") -> tuple[str, dict]:
    """(renderer variant name, {"renderer"|"paste"|"audio2motion": file name}) from the manifest's `models`."""
    mf = bundle.path / MANIFEST_FILE
    models = bundle.models
    if not models:
        raise needs_export(mf, "the avatar bundle has no exported models yet")
    for key in MODELS:
        if not isinstance(models.get(key), dict):
            raise needs_export(mf, f"the bundle's manifest lists no '{key}' model")
    rmod = models["renderer"]
    variants = renderer_variants(rmod)
    name = rmod.get("default", "fp32") if variant in (None, "default") else variant
    if name not in variants or not isinstance(variants[name], dict):
        raise BundleError(f"{mf}: the bundle has no renderer variant {name!r} (it has {', '.join(map(str, variants))}); "
                          "pick one of those or export it (notebooks/05_export.ipynb).")
    return name, {"renderer": variants[name]["file"], "paste": models["paste"]["file"],
                  "audio2motion": models["audio2motion"]["file"]}


def auto_variant(bundle: Bundle, providers: list, threads: int | None = None,
                 opened: dict | None = None) -> choice.Choice:
    """The renderer variant `variant="auto"` runs: `live.choice.choose` over the manifest's variants, measured here
    with these providers and threads (once per process for the same files). `opened`: a dict that receives the
    sessions opened for measuring, {file name: session}, so the runtime does not open the chosen one again."""
    mf = bundle.path / MANIFEST_FILE
    with _typed(mf):
        model_files(bundle, "default")                  # no models, wrong types: the usual one sentence
        variants = renderer_variants(bundle.models["renderer"])
        files = {n: str(e["file"]) for n, e in variants.items()}
    hashes = tuple(sorted((n, str((bundle.manifest.get("files") or {}).get(f, {}).get("sha256"))) for n, f in
                          files.items()))
    gpu = any((p if isinstance(p, str) else p[0]) != "CPUExecutionProvider" for p in providers)
    key = (str(bundle.path.resolve()), hashes, onnxrt.provider_names(providers), threads)

    def open_session(name: str):
        f = bundle.file(files[name])
        sess = onnxrt.session(f, providers, threads, error=_load_error(f))
        if opened is not None:
            opened[f.name] = sess
        return sess

    try:
        return choice.choose(variants, open_session, gpu, key=key)
    except ValueError:
        raise BundleError(f"{mf}: no renderer variant passes the quality rule (it has {', '.join(variants)}); pick "
                          "one with variant=... or export again (notebooks/05_export.ipynb).") from None


def load_idle(bundle: Bundle, spec) -> IdleLoop | None:
    """The idle loop from the manifest's `idle` entry (None when there is none).

    Accepted: {"file": "idle.npy", "dims": [...]} (the loop itself, as `talkinghead.export` writes it),
    {"file": "idle.npz"} with arrays `loop` (or `track` [+ `crossfade`]) and `dims`, or the same keys inline as
    lists. A track without a loop is looped with `idle.make_loop`, as training does."""
    if not spec:
        return None
    arrays = dict({"file": spec} if isinstance(spec, str) else spec)
    if "file" in arrays:
        f = bundle.file(arrays["file"])
        if f.suffix == ".npy":
            try:
                arrays["loop"] = np.load(f, allow_pickle=False)
            except (OSError, ValueError):
                raise BundleError(f"{f}: the idle motion cannot be read; export the bundle again.") from None
        else:
            arrays.update(load_npz(f, "idle motion"))
    mf = bundle.path / MANIFEST_FILE
    try:
        dims = np.asarray(arrays.get("dims"), np.int64).reshape(-1)
        if "loop" in arrays:
            return IdleLoop(np.asarray(arrays["loop"], np.float32), dims)
        if "track" in arrays:
            fade = int(np.ravel(arrays.get("crossfade", CROSSFADE))[0])
            return IdleLoop.from_track(np.asarray(arrays["track"], np.float32), dims, fade)
    except (TypeError, ValueError, IndexError):
        raise BundleError(f"{mf}: the idle motion's loop (or track) and dims have the wrong type or shape (a loop "
                          "needs one column per dim); export the bundle again.") from None
    raise BundleError(f"{mf}: the idle motion entry has neither 'loop' nor 'track'; export the bundle again.")


class FramePatch:
    """The pocket variant's frame graph (`pocket.frame`): motion (B, 69) -> frames uint8 (B, H, W, 3), the background
    with the graph's box (y0, x0, h, w) replaced: the same frames as renderer + paste within a grey level, without
    painting the whole crop or warping the whole portrait."""

    def __init__(self, bundle: Bundle, entry: dict, providers, threads: int | None, size: tuple):
        mf = bundle.path / MANIFEST_FILE
        f = bundle.file(entry["file"])
        self.session = onnxrt.session(f, providers, threads, error=_load_error(f))
        self.background = read_png(bundle.file(entry["background"]))
        self.box = y0, x0, h, w = tuple(int(v) for v in entry["box"])
        if self.background.shape[:2] != tuple(size) or min(y0, x0) < 0 or h < 1 or w < 1 or y0 + h > size[0] \
                or x0 + w > size[1]:
            raise BundleError(f"{mf}: the pocket frame graph's box {entry['box']} or background "
                              f"{self.background.shape[1]}x{self.background.shape[0]} does not fit the "
                              f"{size[1]}x{size[0]} frame; distil the pocket renderer again (notebook 07).")

    def render(self, motion: np.ndarray) -> np.ndarray:
        rgba = self.session.run(None, {"motion": np.asarray(motion, np.float32)})[0]
        return pixels.over_background(self.background, self.box, rgba)


class BundleRuntime:
    """The exported avatar bundle, ready to run: the three ONNX sessions, the portrait and the manifest.

    `variant`: the renderer variant ("fp32", "fp16", "int8", "pocket", "default": the manifest's choice, or "auto":
    the fastest whose quality passes, measured on this machine, see `live.choice`; `choice` says why). `providers`:
    None (CPU), "cuda"/"auto", or an onnxruntime provider list. `verify`: check every file's sha256 first (a changed
    or corrupt .onnx file is one BundleError sentence naming it). `threads`: onnxruntime intra-op threads.
    `renderer`: None (the renderer variant and paste.onnx in onnxruntime), or an object whose `render(motion, times)`
    renders instead, with `name` and `describe()`: the `torch` backend (`talkinghead.torch_renderer.TorchBackend`,
    see `live.speech.open_runtime`), made by the caller so that this runtime stays torch-free; then neither the
    renderer nor paste session is loaded, nor is a variant measured. `frame_graph`: when the chosen variant has one
    (the pocket renderer's `frame`, see `FramePatch`), render through it instead of renderer + paste.
    """

    def __init__(self, bundle_dir=None, variant: str = "auto", providers=None, verify: bool = True,
                 threads: int | None = None, renderer=None, frame_graph: bool = True):
        self.path = Path(bundle_dir) if bundle_dir else paths.avatar_dir()
        bundle = load_bundle(self.path, verify=verify)
        self.manifest = bundle.manifest
        self.portrait = bundle.portrait
        self.providers = onnxrt.resolve_providers(providers)
        self.frame_renderer = renderer
        opened: dict = {}                                        # sessions "auto" opened to measure them
        self.choice = auto_variant(bundle, self.providers, threads, opened) if variant == "auto" and renderer is None \
            else None
        if renderer is not None and variant == "auto":
            variant = "default"                                  # (unused: the renderer backend renders)
        with _typed(self.path / MANIFEST_FILE):
            self.variant, self.files = model_files(bundle, self.choice.variant if self.choice else variant)
        with _typed(self.path / MANIFEST_FILE):
            paste = bundle.models["paste"]
            self.height = int(paste.get("height", self.portrait.shape[0]))
            self.width = int(paste.get("width", self.portrait.shape[1]))
            entry = renderer_variants(bundle.models["renderer"])[self.variant].get("frame")
            self.patch = FramePatch(bundle, entry, self.providers, threads, (self.height, self.width)) \
                if renderer is None and frame_graph and isinstance(entry, dict) else None
        checked = {k: bundle.file(f) for k, f in self.files.items()}
        self.sessions = {k: opened.get(f.name) or onnxrt.session(f, self.providers, threads, error=_load_error(f))
                         for k, f in checked.items() if (renderer is None and self.patch is None) or k == "audio2motion"}
        self._in_dtype = {k: onnxrt.input_dtype(s) for k, s in self.sessions.items()}
        with _typed(self.path / MANIFEST_FILE):
            self._read_a2m(bundle.models["audio2motion"])
            self.idle_loop = load_idle(bundle, self.a2m_info.get("idle")) if self.mode == "idle_from_recording" \
                else None
            feat = bundle.models.get("features")
            self.features_session = onnxrt.session(bundle.file(feat["file"]), threads=1, error=_load_error(
                self.path / feat["file"])) if isinstance(feat, dict) and feat.get("file") else None

    def feature_stream(self):
        """A fresh streaming log-mel front end (`push`/`flush`): features.onnx when the bundle has it (the graph the
        browser page runs too; numbers equal to `talkinghead.audio`), else `audio.StreamingFeatures`."""
        if self.features_session is None:
            return StreamingFeatures(self.feature_params)
        return features_onnx.OnnxFeatures(params=self.feature_params, session=self.features_session)

    def _read_a2m(self, a: dict) -> None:
        """The Audio2Motion entry: feature params, lookahead, emotions, silence, idle mode, state shapes."""
        self.a2m_info = a
        self.feature_params = FeatureParams.from_dict(a.get("feature_params") or self.manifest["audio_features"])
        self.fps = int(self.feature_params.fps)
        self.lookahead = int(a.get("lookahead_frames", 0))
        self.n_emotions = int(a.get("n_emotions", len(layout.EMOTIONS)))
        self.no_emotion_id = int(a.get("no_emotion_id", self.n_emotions))
        sil = np.asarray(a.get("silence", np.log(self.feature_params.log_floor)), np.float32)
        shape = (self.feature_params.frames_per_video_frame, self.feature_params.n_mels)
        self.silence = np.broadcast_to(sil, shape).astype(np.float32)
        self.mode = str(a.get("mode", "audio_only"))
        ins = {i.name: i for i in self.sessions["audio2motion"].get_inputs()}
        self._conv_shape = tuple(int(d) for d in (a.get("conv_state_shape") or ins["conv_state"].shape))
        self._gru_shape = tuple(int(d) for d in (a.get("gru_state_shape") or ins["gru_state"].shape))

    @property
    def idle_dims(self) -> np.ndarray | None:
        return None if self.idle_loop is None else self.idle_loop.dims

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

        `idle.IdleLoop.frames`: the same loop position as `talkinghead.a2m.IdleMotion.sample(n, seed)`."""
        return None if self.idle_loop is None else self.idle_loop.frames(start, n, seed)

    def motion_offline(self, samples, emotion=None, seed: int = 0) -> np.ndarray:
        """Motion (N, 69) for a whole utterance (float mono at 16 kHz) in one Audio2Motion call, idle added."""
        feats = features_for_frames(samples, self.feature_params) if self.features_session is None else \
            self.feature_stream().features_for_frames(samples)
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
        """Motion (B, 69) -> frames uint8 (B, H, W, 3) RGB: renderer.onnx, then paste.onnx (or the frame graph).

        `times`: a dict to which the seconds spent in "renderer" and "paste" are added. With a `renderer` backend
        (see the class), that backend renders."""
        if self.frame_renderer is not None:
            return self.frame_renderer.render(motion, times)
        m = np.asarray(motion, np.float32).reshape(-1, layout.MOTION_DIM)
        t0 = time.perf_counter()
        if self.patch is not None:
            out = self.patch.render(m)
            if times is not None:
                times["renderer"] = times.get("renderer", 0.0) + time.perf_counter() - t0
            return out
        face = self.sessions["renderer"].run(None, {"motion": m.astype(self._in_dtype["renderer"])})[0]
        t1 = time.perf_counter()
        frame = self.sessions["paste"].run(None, {"face": face.astype(self._in_dtype["paste"], copy=False)})[0]
        out = pixels.to_uint8(frame)
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
            self.feature_stream().push(np.zeros(self.feature_params.samples_per_video_frame))
            self._warm = True

    def idle_frame(self) -> np.ndarray:
        """The avatar at rest: the frame for zero motion (plus the first idle offset), uint8 (H, W, 3)."""
        m = np.zeros((1, layout.MOTION_DIM), np.float32)
        idle = self.idle(0, 1)
        return self.render(m if idle is None else m + idle)[0]

    @property
    def renderer_name(self) -> str:
        """The renderer backend in words: "onnx (CPUExecutionProvider)", or the torch backend's description."""
        if self.frame_renderer is None:
            graph = ", frame graph" if self.patch is not None else ""
            return f"onnx ({onnxrt.provider_names(self.providers)}{graph})"
        r = self.frame_renderer
        return f"{getattr(r, 'name', type(r).__name__)} ({r.describe() if hasattr(r, 'describe') else ''})"

    def describe(self) -> str:
        sizes = {k: (self.path / f).stat().st_size / 1e6 for k, f in self.files.items()}
        return (f"avatar bundle {self.path} ({self.manifest.get('profile')} profile): renderer {self.variant} "
                f"({sizes['renderer']:.1f} MB), paste ({sizes['paste']:.1f} MB), audio2motion "
                f"({sizes['audio2motion']:.2f} MB); {self.width}x{self.height} at {self.fps} fps, lookahead "
                f"{self.lookahead} frames ({1000 * self.lookahead / self.fps:.0f} ms), idle mode {self.mode}; "
                f"renderer backend {self.renderer_name}" + (f"; {self.choice.summary()}" if self.choice else ""))


@contextlib.contextmanager
def _typed(mf: Path):
    """Turn a wrong type or shape met while reading the manifest's models section into one BundleError sentence."""
    try:
        yield
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
        raise BundleError(f"{mf}: an entry of the models section has the wrong type or shape ({type(e).__name__}); "
                          "export the bundle again.") from None


def _load_error(path: Path):
    def error(e: Exception) -> BundleError:
        return BundleError(f"{path}: onnxruntime cannot load this model ({type(e).__name__}); export the bundle "
                           "again (notebooks/05_export.ipynb or `python -m talkinghead export`).")
    return error
