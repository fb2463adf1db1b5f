"""One device rule for the whole package: where PyTorch runs, in what precision, how many frames at once (notebook 00).

    device="auto" (the default everywhere): $TALKINGHEAD_DEVICE when set (the command line's `--device`), else the
    first of CUDA, Apple MPS (with torch >= 2.9: the warping's 3-D grid sampling) and CPU that this PyTorch can use.
    "cpu", "cuda", "cuda:1" and "mps" are honoured, or refused in one sentence (`errors.DeviceError`) when this
    machine lacks them.

Precision is LivePortrait's own: the weights stay float32 and rendering on CUDA runs under
`torch.autocast("cuda", float16)` (convolutions and matmuls in half, norms, softmax and exp in float32). Measured on an
H200 against float32 (docs/facts.md): 29.2 dB PSNR (32.4 dB compiled), where casting the networks with `.half()` gives
21.6 dB and `.bfloat16()` 12.2 dB. On the CPU and MPS nothing changes: float32, and no bfloat16 CPU autocast is ever
switched on behind the user's back.

onnxruntime has its own order of preference, `onnxrt.ordered_providers` (TensorRT, CUDA, CoreML, DirectML, CPU).
"""
from __future__ import annotations

import contextlib
import os

from .errors import DeviceError

DEVICE_ENV = "TALKINGHEAD_DEVICE"
CHOICES = ("auto", "cpu", "cuda", "mps")
RENDER_BATCH = {"cuda": 16, "mps": 4, "cpu": 8}    # offline rendering: frames per forward pass, by device type
MPS_MIN_TORCH = (2, 9)                             # the first with grid_sampler_3d on MPS (pytorch PR 160541)
COMPILE_WARMUP_S = 30                              # torch.compile of the renderer on an H200 (docs/facts.md): 25-30 s


def resolve_device(device="auto"):
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'mps' | torch.device -> (torch.device, one sentence saying why).

    'auto' (or None) follows $TALKINGHEAD_DEVICE when it is set to something else than 'auto', else picks CUDA,
    then Apple MPS, then the CPU. An explicit device this machine lacks raises `DeviceError`.
    """
    import torch

    name = str(device).strip().lower() if device is not None else "auto"
    if name == "auto":
        env = os.environ.get(DEVICE_ENV, "").strip().lower()
        if env and env != "auto":
            return _explicit(env, f" (from ${DEVICE_ENV})"), f"${DEVICE_ENV}={env} asks for it"
        return _auto(torch)
    return _explicit(name, ""), "asked for explicitly"


def get_device(device="auto"):
    """`resolve_device(device)` without the reason: a torch.device."""
    return resolve_device(device)[0]


def _auto(torch):
    if torch.cuda.is_available():
        i = torch.cuda.current_device()
        return torch.device("cuda", i), f"a CUDA GPU is present ({torch.cuda.get_device_name(i)})"
    if _mps_available(torch):
        if _torch_version(torch) >= MPS_MIN_TORCH:
            return torch.device("mps"), "an Apple GPU (MPS) is present and no CUDA GPU"
        return torch.device("cpu"), (f"an Apple GPU (MPS) is present, but torch {torch.__version__} lacks MPS's 3-D "
                                     f"grid sampling (the warping needs torch >= {MPS_MIN_TORCH[0]}.{MPS_MIN_TORCH[1]})")
    why = ("this PyTorch is a CPU-only build" if torch.version.cuda is None and not _mps_built(torch)
           else "PyTorch sees no CUDA or Apple MPS GPU")
    return torch.device("cpu"), f"{why} (torch {torch.__version__})"


def _explicit(name: str, origin: str):
    """A named device, checked: one DeviceError sentence when it is unknown or absent."""
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"device={name!r}{origin} is not a device talkinghead knows; use one of auto, cpu, cuda, "
                          "cuda:N or mps.")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device={name!r}{origin} was asked for but PyTorch sees no CUDA GPU here; use "
                              "device='cpu' (or 'auto'), or install a CUDA build of PyTorch on a GPU machine.")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise DeviceError(f"device={name!r}{origin} was asked for but this machine has {n} CUDA GPU(s) "
                              f"(cuda:0..cuda:{n - 1}); use device='cuda' or 'auto'.")
        return torch.device("cuda", torch.cuda.current_device() if dev.index is None else dev.index)
    if dev.type == "mps" and not _mps_available(torch):
        raise DeviceError(f"device={name!r}{origin} was asked for but Apple MPS is not available here (it needs an "
                          "Apple-silicon Mac and a PyTorch built with MPS); use device='cpu' or 'auto'.")
    return dev


def _torch_version(torch) -> tuple[int, int]:
    try:
        major, minor = torch.__version__.split("+")[0].split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return (0, 0)


def _mps_available(torch) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def _mps_built(torch) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_built())


# ---------------------------------------------------------------------------------------------------- precision
def uses_autocast(device, dtype=None) -> bool:
    """True where rendering runs under autocast float16: float32 networks on CUDA (LivePortrait's way)."""
    import torch

    dev = device if hasattr(device, "type") else torch.device(device)
    return dev.type == "cuda" and (dtype is None or dtype == torch.float32)


def autocast(device, dtype=None):
    """The precision context for rendering on `device`: autocast float16 on CUDA, nothing (float32) elsewhere."""
    import torch

    if uses_autocast(device, dtype):
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def precision_name(device, dtype=None) -> str:
    """How the networks compute on `device`, in words (machine report, timing reports)."""
    import torch

    if uses_autocast(device, dtype):
        return "float32 weights under autocast float16"
    return str(dtype or torch.float32).replace("torch.", "")


def render_batch_size(device) -> int:
    """Frames per forward pass for offline rendering on `device`: on CUDA 16 with >= 40 GiB of GPU memory, 8 with
    >= 12 GiB, else 4 (the released renderer holds ~0.4 GiB of activations per frame); 4 on MPS, 8 on the CPU."""
    kind = getattr(device, "type", str(device).split(":")[0])
    if kind == "cuda":
        try:
            import torch

            gib = torch.cuda.get_device_properties(device).total_memory / 2**30
        except (RuntimeError, AssertionError, ValueError, AttributeError):
            return RENDER_BATCH["cuda"]
        return RENDER_BATCH["cuda"] if gib >= 40 else 8 if gib >= 12 else 4
    return RENDER_BATCH.get(kind, 8)


def describe(device="auto") -> dict:
    """Machine-report entries: the device chosen, why, its precision and offline batch size."""
    dev, why = resolve_device(device)
    return {"device": str(dev), "device_reason": why, "precision": precision_name(dev),
            "render_batch": render_batch_size(dev)}

