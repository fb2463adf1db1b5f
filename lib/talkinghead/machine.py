"""A report of the machine: what the notebooks and benchmarks need to know before running (notebook 00)."""
from __future__ import annotations

import os
import platform
import shutil
import sys
import time

from .device import describe as describe_device
from .errors import DeviceError
from .liveportrait.config import image_sizes
from .paths import workspace
from .profiles import get_profile


def machine_report() -> dict:
    """Python, OS, CPU cores, memory, torch, its accelerator and the device the package will use (and why: see
    `talkinghead.device`), onnxruntime providers, ffmpeg, profile, workspace."""
    r = {"python": platform.python_version(), "platform": platform.platform(), "cpu_cores": os.cpu_count()}
    r["memory_gb"] = _memory_gb()
    try:
        import torch
        r["torch"] = torch.__version__
        r["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        r["torch_threads"] = torch.get_num_threads()
        r.update(_device_entries())
    except ImportError:
        r["torch"] = None
    try:
        import onnxruntime as ort
        r["onnxruntime"] = ort.__version__
        r["ort_providers"] = ort.get_available_providers()
    except ImportError:
        r["onnxruntime"] = None
    try:
        import imageio_ffmpeg
        r["ffmpeg"] = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # noqa: BLE001 - report, never fail
        r["ffmpeg"] = shutil.which("ffmpeg")
    r["colab"] = _in_colab()
    r["profile"] = get_profile().name
    r["workspace"] = str(workspace(create=False))
    return r


def _device_entries() -> dict:
    """device, why it was chosen, its precision and render batch (`talkinghead.device.describe`); never raises."""
    try:
        return describe_device()
    except DeviceError as e:
        return {"device": f"none usable: {e}"}


def format_report(report: dict) -> str:
    """The report as aligned `key: value` lines."""
    w = max(map(len, report))
    return "\n".join(f"{k.ljust(w)} : {v}" for k, v in report.items())


def _memory_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _in_colab() -> bool:
    return "google.colab" in sys.modules


def parameter_counts(lp) -> dict[str, int]:
    """Parameters per LivePortrait network (a `load_liveportrait` result), in pipeline order."""
    return {name: sum(p.numel() for p in net.parameters()) for name, net in lp.networks().items()}


def time_liveportrait(lp, repeats: int = 2) -> list[dict]:
    """One forward pass of each network at the profile's sizes on random input; the best of `repeats`, in ms.

    Rows: network, input shape, output shape, ms. Shown in notebook 00; `benchmarks/` has the careful version.
    """
    import torch

    size, _ = image_sizes(lp.profile)
    dev, dt = lp.device, lp.dtype
    img = torch.rand(1, 3, size, size, device=dev, dtype=dt)
    with torch.inference_mode():
        f_s = lp.appearance_feature_extractor(img)
        kp = torch.randn(1, 21, 3, device=dev, dtype=dt) * 0.3
        warped = lp.warping_module(f_s, kp_driving=kp, kp_source=kp)["out"]
        calls = {
            "appearance_feature_extractor": (lambda: lp.appearance_feature_extractor(img), img),
            "motion_extractor": (lambda: lp.motion_extractor(img), img),
            "warping_module": (lambda: lp.warping_module(f_s, kp_driving=kp, kp_source=kp)["out"], f_s),
            "spade_generator": (lambda: lp.spade_generator(warped), warped),
            "stitching_retargeting_module": (lambda: lp.stitching_retargeting_module.stitch(kp, kp), kp),
        }
        rows = []
        for name, (fn, x) in calls.items():
            best, out = float("inf"), None
            for _ in range(repeats):
                t0 = time.perf_counter()
                out = fn()
                best = min(best, time.perf_counter() - t0)
            out = out["exp"] if isinstance(out, dict) else out
            rows.append({"network": name, "input": tuple(x.shape), "output": tuple(out.shape), "ms": round(best * 1e3, 1)})
    return rows
