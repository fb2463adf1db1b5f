"""Shared test harness, also used by the notebooks under `pytest --nbval`.

- Every test and every notebook runs on the `sample` profile with no network.
- Notebooks write into one session workspace (`$TALKINGHEAD_WORKSPACE`), so 00 -> 06 run in order, each reading what
  the one before wrote, exactly as a user steps through them.
- The conformance fixtures are found at `$TALKINGHEAD_CONFORMANCE`, else `../shared/conformance` beside the repo;
  tests that need them skip with a message when they are absent.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

# Set before any kernel starts: nbval's kernels inherit this environment.
os.environ["TALKINGHEAD_PROFILE"] = "sample"
# CPU stays the rule in tests (device="auto" would take a GPU): the expected numbers are the CPU's; CUDA tests ask
# for device="cuda" explicitly (talkinghead.device).
os.environ["TALKINGHEAD_DEVICE"] = "cpu"
os.environ.setdefault("TALKINGHEAD_WORKSPACE", tempfile.mkdtemp(prefix="talkinghead-nbval-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_MININTERVAL", "5")


def conformance_dir() -> Path | None:
    env = os.environ.get("TALKINGHEAD_CONFORMANCE")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "conformance", REPO / "shared" / "conformance"]:
        if (cand / "manifest.json").is_file():
            return cand
    return None


@pytest.fixture(scope="session")
def conformance() -> Path:
    """The conformance fixtures folder; skips the test when it is absent (a clone without shared/)."""
    d = conformance_dir()
    if d is None:
        pytest.skip("conformance fixtures not found: put shared/conformance beside the repo or set TALKINGHEAD_CONFORMANCE")
    return d


@pytest.fixture(scope="session")
def load_case(conformance):
    """load_case(name) -> (io dict, weights dict or None, case config dict) for one conformance case."""
    import json

    cases = json.loads((conformance / "cases.json").read_text())

    def _load(name: str):
        with np.load(conformance / f"{name}.io.npz") as z:
            io = {k: z[k] for k in z.files}
        w = None
        if (conformance / f"{name}.weights.npz").exists():
            with np.load(conformance / f"{name}.weights.npz") as z:
                w = {k: z[k] for k in z.files}
        return io, w, cases.get(name, {})

    return _load


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """A fresh, empty workspace for one test."""
    monkeypatch.setenv("TALKINGHEAD_WORKSPACE", str(tmp_path / "ws"))
    return tmp_path / "ws"
