"""talkinghead: one portrait + one recording -> an offline talking avatar driven by new speech in real time.

The package is shaped like the pipeline, one module per stage (see README and DESIGN.md):

    liveportrait  the five LivePortrait networks (F, M, W, G, S) and keypoint arithmetic
    face          face detection, the released crop, paste-back
    corpus, tts   the recording script and its per-line speech (notebook 01)
    bake          the avatar bundle (notebook 02)
    render        bundle + motion -> frames; sample: the offline sample recording
    video, audio  decoding/encoding media; streaming log-mel features
    motion        motion extraction from a recording (notebook 03)
    layout        the motion vector layout shared by every stage
    a2m           Audio2Motion (notebook 04)
    export        ONNX export and variants (notebook 05)
    live          the real-time engine (notebook 06)

Submodules load on first use, so `import talkinghead` is cheap.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "a2m", "audio", "bake", "cli", "corpus", "errors", "export", "face", "fileio", "hub", "layout", "live",
    "liveportrait", "machine", "motion", "notebook", "paths", "pipeline", "profiles", "render", "sample", "tts",
    "video", "dataset", "crop", "clicheck",
    "device", "torch_renderer",
}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'talkinghead' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
