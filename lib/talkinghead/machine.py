"""A report of the machine: what the notebooks and benchmarks need to know before running (notebook 00)."""
from __future__ import annotations

import os
import platform
import shutil


def machine_report() -> dict:
    """Python, OS, CPU cores, memory, torch and its accelerator, onnxruntime providers, ffmpeg, profile, workspace."""
    from .paths import workspace
    from .profiles import get_profile

    r = {"python": platform.python_version(), "platform": platform.platform(), "cpu_cores": os.cpu_count()}
    r["memory_gb"] = _memory_gb()
    try:
        import torch
        r["torch"] = torch.__version__
        r["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        r["torch_threads"] = torch.get_num_threads()
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
    import sys
    return "google.colab" in sys.modules
