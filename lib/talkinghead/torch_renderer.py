"""The live engine's `torch` renderer backend: the avatar bundle rendered by PyTorch on the GPU (notebook 06).

    motion (B, 69) --BakedRenderer (keypoints, stitching: float32; W, G under autocast float16; paste)-->
        uint8 frames (B, H, W, 3) on the host

`TorchBackend.render(motion, times)` has the interface of the ONNX runtime's `render`, so the live engine can run
either. It computes what renderer.onnx + paste.onnx compute (the same networks of the bundle's profile, G's spectral
norm folded as the export folds it), up to float16 rounding on CUDA, and compiles with `torch.compile` there
(`render.FrameRenderer`: ~30 s warm-up, announced; a failure falls back to eager and says why).

`choose_backend("auto")` takes `torch` where the device rule (`talkinghead.device`) picks a CUDA GPU (measured on an
H200: ~7 ms a frame at batch 1, compiled under autocast, against ~15 ms for LivePortrait's own autocast code), else
`onnx` (onnxruntime, providers in `onnxrt.ordered_providers` order: TensorRT, CUDA, CoreML, DirectML, CPU).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import layout
from .device import resolve_device
from .errors import DeviceError, TalkingHeadError

BACKENDS = ("auto", "onnx", "torch")


def choose_backend(backend: str = "auto") -> tuple[str, str]:
    """'auto' | 'onnx' | 'torch' -> (the backend to run, one sentence saying why)."""
    name = (backend or "auto").lower()
    if name not in BACKENDS:
        raise TalkingHeadError(f"renderer backend {backend!r} is not one talkinghead has; use one of "
                               f"{', '.join(BACKENDS)}.")
    if name != "auto":
        return name, "asked for explicitly"
    try:
        dev, why = resolve_device("auto")
    except ImportError:
        return "onnx", "PyTorch is not installed"
    except DeviceError as e:
        return "onnx", str(e)
    if dev.type == "cuda":
        return "torch", f"PyTorch renders on {dev}: {why}; autocast + torch.compile is the fastest renderer there"
    return "onnx", f"PyTorch would render on {dev} ({why}): onnxruntime with the best provider it has is faster"


class TorchBackend:
    """The bundle's renderer in PyTorch on `device` ("auto": see `talkinghead.device`), for the live engine.

    `lp`: already-loaded networks of the bundle's profile (default: loaded on `device`). `compile`: "auto" (CUDA
    only), True or False. `log`: where the compile warm-up and any fall-back are said (default print).
    `batch_size`: the largest batch rendered at once, 4 = the live engine's preview batch (realtime renders 1), so
    two shapes compile: 1 and 4.
    """

    name = "torch"

    def __init__(self, bundle_dir=None, device="auto", lp=None, compile="auto", verify: bool = True, log=print,
                 batch_size: int = 4):
        from .bundle import load_bundle
        from .liveportrait import load_liveportrait
        from .paths import avatar_dir
        from .render import BakedRenderer, FrameRenderer

        self.path = Path(bundle_dir) if bundle_dir else avatar_dir()
        bundle = load_bundle(self.path, verify=verify)
        lp = lp or load_liveportrait(profile=bundle.profile, device=device)
        self.frames = FrameRenderer(BakedRenderer(lp, bundle, paste=True).eval(), compile=compile, log=log,
                                    batch_size=batch_size)
        self.device = self.frames.device
        self.height, self.width = bundle.portrait.shape[:2]

    def render(self, motion: np.ndarray, times: dict | None = None) -> np.ndarray:
        """Motion (B, 69) -> frames uint8 (B, H, W, 3) RGB; `times["renderer"]` gains the seconds spent (paste
        included: it runs on the device in the same step)."""
        t0 = time.perf_counter()
        out = self.frames.frames(np.asarray(motion, np.float32).reshape(-1, layout.MOTION_DIM))
        if times is not None:
            times["renderer"] = times.get("renderer", 0.0) + time.perf_counter() - t0
        return out

    def warmup(self) -> None:
        """Render once at batch 1 (on CUDA this is the compile: ~30 s, announced)."""
        self.render(np.zeros((1, layout.MOTION_DIM), np.float32))

    def describe(self) -> str:
        from .device import precision_name

        return (f"PyTorch on {self.device} ({precision_name(self.device, self.frames.dtype)}, "
                f"{self.frames.status})")
