"""talkinghead: one portrait + one recording -> an offline talking avatar driven by new speech in real time.

The package is shaped like the pipeline, one room per stage (notebook numbers in parentheses); `docs/architecture.md`
in the repository describes the rooms, what may import what, the avatar bundle format and the profiles:

    contract          layout (the motion vector, SAMPLE_RATE, FPS, CROP_SIZE), errors, profiles, paths, fileio,
                      progress (estimates before long stages)
    networks          liveportrait/ (F, M, W, G, S and keypoint arithmetic), hub, device
    media             video (reading/writing media, sound included), audio (streaming log-mel features)
    text              corpus/ (the recording script), tts (its per-line speech) (01)
    faces             face, crop, landmarks, mtcnn (detection, the released crop, paste-back)
    stages            bake (02), motion, dataset, sample (03), render, torch_renderer, a2m/ (04), export/,
                      features_onnx (05), pocket/
    bundle + runtime  bundle, idle, onnxrt, pixels, live/ (the torch-free engine) (06)
    glue              pipeline, cli, clicheck, notebook, show/ (what each notebook displays), inputs and recorder
                      (your own portrait and recording), machine, serve

Submodules load on first use, so `import talkinghead` is cheap.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {  # every module and subpackage of the folder (tests/test_core.py checks it against the files)
    "a2m", "audio", "bake", "bundle", "cli", "clicheck", "corpus", "crop", "dataset", "device", "errors", "export",
    "face", "features_onnx", "fileio", "hub", "idle", "inputs", "landmarks", "layout", "live", "liveportrait",
    "machine", "motion", "mtcnn", "notebook", "onnxrt", "paths", "pipeline", "pixels", "pocket", "profiles", "progress",
    "recorder", "render", "sample", "serve", "show", "torch_renderer", "tts", "video",
}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'talkinghead' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
