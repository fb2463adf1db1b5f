"""The live engine: new audio in, talking frames out, on the exported bundle alone (notebooks/06_live_preview.ipynb).

    audio chunks --resample--> 16 kHz --StreamingFeatures--> (k, 4, 80) per completed video frame
                 --audio2motion.onnx (streaming state)--> motion (69) of the frame L frames back [+ idle motion]
                 --renderer.onnx--> 512 face --paste.onnx--> portrait frame --> sinks (notebook, mp4, iterator)

The package, one module per job:

    runtime   BundleRuntime: the bundle's ONNX sessions, the streaming Audio2Motion step, idle motion, rendering
    sources   AudioSource, ArraySource, FileSource, MicSource, as_source, StreamResampler
    sinks     Sink, NotebookSink, VideoSink, ProgressSink (a tqdm bar over frames), as_sink
    choice    which renderer variant runs here (variant="auto": the fastest whose quality passes, measured here)
    report    Frame, StreamInfo, TimingReport, STAGES
    engine    LiveEngine (the clock: see its module docstring), FrameIterator, MODES
    speech    speak, synthesize, prepare_bundle, files_written, SpeakResult (notebook-facing, above the pipeline),
              language_of, script_runs (from `talkinghead.corpus.phonetics`)

The first five need only numpy, onnxruntime, OpenCV and the bundle folder (no torch, no training code): this is what
a phone or browser app would run. `speech` (text to speech, making missing sample assets) loads on first use; it is
not named `speak` so that `live.speak` stays the function.
"""
from __future__ import annotations

import importlib

from ..pixels import to_uint8
from .engine import MODES, FrameIterator, LiveEngine
from .report import STAGES, Frame, StreamInfo, TimingReport
from .runtime import BundleRuntime, load_idle, needs_export
from .sinks import NotebookSink, ProgressSink, Sink, VideoSink, as_sink
from .sources import ArraySource, AudioSource, FileSource, MicSource, StreamResampler, as_source

_SPEAK = ("speak", "synthesize", "prepare_bundle", "files_written", "SpeakResult", "language_of", "script_runs",
          "open_runtime")

__all__ = ["BundleRuntime", "LiveEngine", "FrameIterator", "AudioSource", "ArraySource", "FileSource", "MicSource",
           "StreamResampler", "Sink", "NotebookSink", "VideoSink", "ProgressSink", "Frame", "StreamInfo", "TimingReport", "STAGES",
           "MODES", "as_source", "as_sink", "load_idle", "needs_export", "to_uint8", *_SPEAK]


def __getattr__(name: str):
    """`speak` and friends load on first use, so importing the runtime never imports the pipeline or TTS."""
    if name in _SPEAK:
        return getattr(importlib.import_module(f"{__name__}.speech"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
