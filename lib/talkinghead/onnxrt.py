"""onnxruntime sessions, built one way for the whole package (live engine, face detector, export checks).

`session(model, providers, threads)` resolves the providers (`resolve_providers`), quietens onnxruntime's log, sets the
intra-op threads, lets idle threads sleep, and turns a load failure into the caller's one-sentence error. Notebook 05 shows what an app does
with the sessions; notebook 06 runs them live.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import TalkingHeadError

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# Accelerated providers, fastest first (issue 11); `resolve_providers("auto")` takes those onnxruntime has, CPU last.
PROVIDER_ORDER = ("TensorrtExecutionProvider", CUDA, "CoreMLExecutionProvider", "DmlExecutionProvider", CPU)


def ort():
    """The onnxruntime module, or one sentence saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise TalkingHeadError("this needs onnxruntime: pip install onnxruntime (or onnxruntime-gpu).") from None
    return onnxruntime


def resolve_providers(spec=None) -> list:
    """None/"cpu" -> CPU; "auto"/"gpu" -> every accelerator this onnxruntime has, fastest first
    (`ordered_providers`: TensorRT, CUDA, CoreML, DirectML, then CPU); "cuda" -> CUDA when onnxruntime has it,
    else CPU (said once); a provider name or a list (names or (name, options) tuples) -> the available ones, else CPU."""
    have = ort().get_available_providers()
    if spec is None or spec == "cpu":
        return [CPU]
    if isinstance(spec, str):
        if spec.lower() in ("auto", "gpu"):
            return ordered_providers(have)
        if spec.lower() == "cuda":
            if CUDA in have:
                return [CUDA, CPU]
            if spec.lower() != "auto":
                print("CUDA was asked for, but this onnxruntime has no CUDAExecutionProvider (install "
                      "onnxruntime-gpu); running on the CPU.")
            return [CPU]
        spec = [spec]
    ok = [p for p in spec if (p[0] if isinstance(p, tuple) else p) in have]
    return ok or [CPU]


def ordered_providers(available) -> list[str]:
    """The providers of PROVIDER_ORDER found in `available` (onnxruntime's get_available_providers()), CPU always
    last: what "auto" runs on."""
    have = set(available)
    return [p for p in PROVIDER_ORDER if p in have and p != CPU] + [CPU]


def provider_names(resolved: list) -> str:
    """A resolved provider list as text: "CUDAExecutionProvider, CPUExecutionProvider"."""
    return ", ".join(p if isinstance(p, str) else p[0] for p in resolved)


def session(model: str | os.PathLike | bytes, providers=None, threads: int | None = None,
            error: Callable[[Exception], Exception] | None = None, options=None, spin: bool = False):
    """An onnxruntime InferenceSession for a model file (or serialized bytes), quiet (log level: errors only).

    `providers`: as `resolve_providers` accepts (default CPU). `threads`: intra-op threads (default onnxruntime's).
    `error`: maps a load failure to the exception to raise (one sentence, no traceback); None re-raises it.
    `options`: a prepared `SessionOptions` (its log level, threads and spinning are set here too).
    `spin`: let idle intra-op threads busy-wait for the next run (onnxruntime's default). Off by default: the live
    runtime runs several sessions one after another, and threads spinning between runs take the cores the next
    session needs (benchmarks/bench_pocket.py, 2 cores: end to end 83 -> 118 fps for the pocket frame graph,
    45-50 -> 64-67 fps for pocket.onnx + paste.onnx, faster than one thread per session).
    """
    rt = ort()
    so = options or rt.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = int(threads)
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    resolved = resolve_providers(providers)
    src = model if isinstance(model, bytes) else str(Path(model))
    try:
        return rt.InferenceSession(src, sess_options=so, providers=resolved)
    except Exception as e:
        if error is None:
            raise
        raise error(e) from None


def input_dtype(sess):
    """numpy's float16 or float32: what the session's first input takes."""
    return np.float16 if "float16" in sess.get_inputs()[0].type else np.float32
