"""Fetching files of the hub repo `KwaiVGI/LivePortrait`, or finding them in a local folder laid out like it.

Order: the `weights_dir` argument, else `$TALKINGHEAD_WEIGHTS_DIR`, else the Hugging Face cache (download once with
`huggingface_hub.hf_hub_download`, only the files asked for). Every failure is one sentence naming the file and the remedy.
Taught in `notebooks/00_setup.ipynb`.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .errors import WeightsError

HUB_REPO = "KwaiVGI/LivePortrait"
WEIGHTS_ENV = "TALKINGHEAD_WEIGHTS_DIR"

# Paths inside the hub repo (see docs/facts.md).
LIVEPORTRAIT_FILES = {
    "appearance_feature_extractor": "liveportrait/base_models/appearance_feature_extractor.pth",
    "motion_extractor": "liveportrait/base_models/motion_extractor.pth",
    "warping_module": "liveportrait/base_models/warping_module.pth",
    "spade_generator": "liveportrait/base_models/spade_generator.pth",
    "stitching_retargeting_module": "liveportrait/retargeting_models/stitching_retargeting_module.pth",
}
FACE_DETECTOR_FILE = "insightface/models/buffalo_l/det_10g.onnx"  # non-commercial licence (insightface)
LANDMARK_FILE = "liveportrait/landmark.onnx"      # 203 points (talkinghead.landmarks)

LICENCE_NOTE = ("LivePortrait's weights are released by Kuaishou (KwaiVGI) under their licence; the insightface face "
                "models (buffalo_l) are for non-commercial research use only.")


def weights_dir_from_env(weights_dir: str | os.PathLike | None = None) -> Path | None:
    """The local weights folder in force: the argument, else `$TALKINGHEAD_WEIGHTS_DIR`, else None (use the hub)."""
    d = weights_dir or os.environ.get(WEIGHTS_ENV)
    return Path(d).expanduser() if d else None


def hub_file(relpath: str, weights_dir: str | os.PathLike | None = None) -> Path:
    """Local path of one hub file: from the local folder if one is in force, else downloaded into the HF cache."""
    local = weights_dir_from_env(weights_dir)
    if local is not None:
        path = local / relpath
        if not path.is_file():
            raise WeightsError(f"{path}: not found; lay the folder out like the hub repo {HUB_REPO} "
                               f"(this file at {relpath}) or unset {WEIGHTS_ENV} to download it.")
        return path
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        raise WeightsError("huggingface_hub is not installed; `pip install huggingface_hub` or pass weights_dir.") from None
    with contextlib.suppress(Exception):  # already downloaded once: no network needed
        return Path(hf_hub_download(HUB_REPO, relpath, local_files_only=True))
    offline = offline_reason()
    if offline:  # fail at once, not after the client's retries
        raise WeightsError(f"{relpath}: not downloaded yet and {offline}; connect to the network, or download the "
                           f"repo {HUB_REPO} elsewhere and set {WEIGHTS_ENV} to its folder (or use profile='sample' "
                           "to run offline with seeded weights).")
    try:
        with _quiet_hub_logs():
            return Path(hf_hub_download(HUB_REPO, relpath))
    except Exception as e:  # network, auth, missing file: all end the same way for the user
        raise WeightsError(f"{relpath}: could not be downloaded from the hub repo {HUB_REPO} ({type(e).__name__}); "
                           f"check the network, or download the repo elsewhere and set {WEIGHTS_ENV} to its folder "
                           "(or use profile='sample' to run offline with seeded weights).") from None


_PROBE: dict[str, tuple[float, str]] = {}
PROBE_TTL_S = 60.0  # a probe's answer is reused this long (one per stage, not one per file; a network back is seen)


def offline_reason(timeout_s: float = 3.0) -> str:
    """'' when the hub looks reachable, else why not: HF_HUB_OFFLINE set, or no TCP connection to the hub (or to
    the https proxy in force) within `timeout_s`. The answer is reused for PROBE_TTL_S seconds."""
    import time

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    at, answer = _PROBE.get("last", (-PROBE_TTL_S, ""))
    if time.monotonic() - at >= PROBE_TTL_S:
        answer = _probe(timeout_s)
        _PROBE["last"] = (time.monotonic(), answer)
    return answer


def _probe(timeout_s: float) -> str:
    import socket
    import urllib.parse
    import urllib.request

    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    target = urllib.request.getproxies().get("https") or endpoint
    url = urllib.parse.urlsplit(target if "://" in target else f"http://{target}")
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
        return ""
    except OSError:
        return f"the hub ({host}) cannot be reached from this machine"


@contextlib.contextmanager
def _quiet_hub_logs():
    """huggingface_hub's retry warnings off while downloading (the one sentence above says what went wrong)."""
    import logging

    log = logging.getLogger("huggingface_hub")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def fetch_all(weights_dir: str | os.PathLike | None = None, face_detector: bool = True,
              landmarks: bool = True) -> dict[str, Path]:
    """Make sure every file the full profile needs is local (download once); returns {name: path}.

    Shown in `notebooks/00_setup.ipynb`. The face detector is insightface's (non-commercial licence); the 203-point
    landmark model (`talkinghead.landmarks`) frames the crop and measures the eye/lip close ratios.
    """
    files = dict(LIVEPORTRAIT_FILES)
    if landmarks:
        files["landmarks"] = LANDMARK_FILE
    if face_detector:
        files["face_detector"] = FACE_DETECTOR_FILE
    return {name: hub_file(rel, weights_dir) for name, rel in files.items()}
