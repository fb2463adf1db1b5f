"""Text or audio -> a talking mp4, for notebooks and the command line (notebook 06, `python -m talkinghead speak`).

This is the one live module above the training side: `prepare_bundle` makes the sample assets through
`talkinghead.pipeline` when the bundle is missing, and `synthesize` speaks text with `talkinghead.tts`. The runtime
modules (`runtime`, `sources`, `sinks`, `report`, `engine`) never import it.
"""
from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import numpy as np

from .. import paths, pipeline, torch_renderer, tts, video
from ..progress import duration_text
from ..errors import MediaError, TalkingHeadError
from ..fileio import load_json
from ..layout import MOTION_DIM, SAMPLE_RATE
from ..corpus.phonetics import language_of, script_runs  # noqa: F401 (re-exported by talkinghead.live)
from .engine import LiveEngine
from .report import TimingReport
from .runtime import BundleRuntime, needs_export
from .sinks import NotebookSink, ProgressSink, VideoSink, frames_for_seconds
from .sources import ArraySource, as_source

_MEDIA_NAME = re.compile(r"^\S+\.(wav|mp3|flac|ogg|oga|m4a|aac|opus|aiff?|mp4|mov|mkv|webm|avi)$", re.IGNORECASE)


def synthesize(text: str, language: str | None = None, backend: str = "espeak", rate: float = 1.0,
               gap_s: float = 0.12) -> tuple[np.ndarray, int]:
    """Speech for `text` -> (float32 mono samples at 16 kHz, 16000) with `talkinghead.tts` (espeak-ng offline).

    `language` None: by script, run by run (`corpus.phonetics.script_runs`), so "你好。Hello." speaks Mandarin, then
    English (`gap_s` apart)."""
    be = tts.get_backend(backend)
    runs = [(language, text)] if language else script_runs(text)
    parts = []
    for lang, run in runs:
        s = be.synthesize(run, lang, rate=rate)
        x = video.load_audio(np.asarray(s.samples), sr=SAMPLE_RATE, orig_sr=int(s.sample_rate))
        if parts:
            parts.append(np.zeros(int(gap_s * SAMPLE_RATE), np.float32))
        parts.append(x)
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), SAMPLE_RATE


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
          variant: str = "auto", providers="auto", backend: str = "espeak", show: bool = False,
          verbose: bool = False, runtime: BundleRuntime | None = None, progress: bool = True,
          renderer: str = "auto") -> SpeakResult:
    """Text or audio -> an mp4 with sound through the exported bundle (preview mode: every frame rendered).

    `audio_or_text`: an audio/video file path, (samples, sr), a float array at 16 kHz, or text (synthesised with
    `synthesize`: Mandarin for Han characters, else English). `out_path` defaults to `out/speak.mp4` in the
    workspace. `show=True` also plays it in the notebook. `variant`: the renderer variant ("auto": the fastest whose
    quality passes, measured on this machine, see `live.choice`). `progress`: before rendering, say how long the
    audio is and how long rendering will take (from a frame measured just now), then a progress bar over frames.
    `renderer`: the renderer backend, "auto" (torch on a CUDA GPU, else onnx), "onnx" or "torch" (`open_runtime`);
    `providers`: onnxruntime's, "auto" = the fastest it has."""
    text = lang = None
    out = Path(out_path) if out_path else paths.out_dir() / "speak.mp4"
    if out.is_dir():  # checked before any work, not after the whole render
        raise MediaError(f"{out}: is a folder; name the video file, such as {out / 'speak.mp4'}.")
    if isinstance(audio_or_text, str) and not _is_file(audio_or_text) and _MEDIA_NAME.match(audio_or_text.strip()):
        raise MediaError(f"{audio_or_text}: the file does not exist; check the path (or pass text to speak).")
    if isinstance(audio_or_text, str) and not _is_file(audio_or_text):
        text = audio_or_text
        lang = language or language_of(text)
        if progress and len(text) > 200:
            print(f"synthesising {len(text)} characters of speech ...", flush=True)
        source = ArraySource(*synthesize(text, language, backend=backend))
    else:
        source = as_source(audio_or_text, realtime=False)
    rt = runtime or open_runtime(bundle_dir, variant=variant, providers=providers, renderer=renderer,
                                 verbose=progress)
    engine = LiveEngine(rt, emotion=emotion, mode="preview", verbose=verbose)
    n = frames_for_seconds(source.duration_s or 0.0, rt.fps)
    if progress and getattr(rt, "choice", None) is not None and len(rt.choice.quality) > 1:
        print(rt.choice.summary(), flush=True)          # which variant runs here, and why
    if progress:
        print(estimate(source.duration_s or 0.0, n, rt.fps, frame_ms(rt, engine.batch_size), rt.variant), flush=True)
    sinks = [VideoSink(out, verbose=verbose)] + ([ProgressSink(n, "speak")] if progress and n else []) + \
        ([NotebookSink()] if show else [])
    report = engine.run(source, sinks)
    return SpeakResult(sinks[0].path, report, report.audio_s, text, lang)


def open_runtime(bundle_dir=None, variant: str = "auto", providers="auto", renderer: str = "auto",
                 verbose: bool = True, **kw) -> BundleRuntime:
    """A BundleRuntime with the renderer backend `renderer`: "onnx" (onnxruntime with `providers`), "torch" (the
    bundle's networks in PyTorch: `torch_renderer.TorchBackend`, autocast + torch.compile on CUDA) or "auto"
    (`torch_renderer.choose_backend`: torch where PyTorch sees a CUDA GPU, else onnx; onnx too when the torch
    backend cannot start, e.g. without the LivePortrait weights). `renderer_name` and every timing report name it."""
    name, why = torch_renderer.choose_backend(renderer)
    tb = None
    if name == "torch":
        try:
            tb = torch_renderer.TorchBackend(bundle_dir)     # its compile warm-up is always said
        except TalkingHeadError as e:
            if renderer != "auto":
                raise
            name, why = "onnx", f"the torch backend cannot start here: {e}"
    if verbose:
        print(f"renderer backend: {name} ({why})", flush=True)
    return BundleRuntime(bundle_dir, variant=variant, providers=providers, renderer=tb, **kw)


def frame_ms(rt: BundleRuntime, batch: int = 1) -> float:
    """Milliseconds one frame takes on this machine (renderer + paste), measured now: one batch of `batch` frames
    after the runtime's warm-up (the first run of a session is several times slower)."""
    rt.warmup()
    m = np.zeros((max(1, batch), MOTION_DIM), np.float32)
    t0 = time.perf_counter()
    rt.render(m)
    return 1000 * (time.perf_counter() - t0) / len(m)


def estimate(audio_s: float, frames: int, fps: float, ms: float, variant: str = "") -> str:
    """The line `speak` prints before rendering: the audio's length, its frames and how long they take at `ms`."""
    took = frames * ms / 1000
    pace = "faster than" if took < audio_s else "slower than"
    return (f"speaking {audio_s:.1f} s of audio: {frames} frames at {fps:g} fps; one frame takes {ms:.0f} ms here "
            f"(renderer {variant}, measured just now), so rendering takes about {duration_text(took)} "
            f"({pace} real time; every frame is rendered, then the video is written)")


def _is_file(s: str) -> bool:
    try:
        return len(s) < 4096 and "\n" not in s and Path(s).is_file()
    except (OSError, ValueError):
        return False


def prepare_bundle(bundle_dir=None, profile=None, verbose: bool = True) -> Path:
    """The exported bundle, made on the sample assets first when it is missing (stages 01-05, nothing asked).

    With `bundle_dir` given, the folder must already hold an exported bundle."""
    path = Path(bundle_dir) if bundle_dir else paths.avatar_dir()
    mf = path / "manifest.json"
    if mf.is_file() and load_json(mf, "avatar manifest").get("models"):
        return path
    if bundle_dir and path.resolve() != paths.avatar_dir().resolve():
        raise needs_export(path, "no exported avatar bundle here")
    return pipeline.ensure_exported(profile, verbose=verbose)


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
