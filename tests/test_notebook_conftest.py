"""`pytest --nbval notebooks/` alone (tests/conftest.py never loaded) runs on the sample profile with no network."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_notebooks_alone_run_on_the_sample_profile(tmp_path):
    pytest.importorskip("nbval")
    env = {k: v for k, v in os.environ.items()
           if k not in ("TALKINGHEAD_PROFILE", "HF_HUB_OFFLINE", "TALKINGHEAD_WORKSPACE", "TALKINGHEAD_WEIGHTS_DIR",
                        "MPLBACKEND", "PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST")}
    env["HF_HOME"] = str(tmp_path / "hf")   # an empty hub cache: the full profile would have to download (and fail)
    # From another folder, rooted at notebooks/: only notebooks/conftest.py can set the environment. 00_setup fetches
    # the released weights on the full profile, which fails without network; on the sample profile it passes.
    cmd = [sys.executable, "-m", "pytest", "-q", str(REPO / "notebooks" / "00_setup.ipynb"),
           "--rootdir", str(REPO / "notebooks"), "-p", "no:cacheprovider"]
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    tail = run.stdout[-3000:] + run.stderr[-2000:]
    assert run.returncode == 0, tail
    assert " passed" in run.stdout and "failed" not in run.stdout, tail
    assert not (tmp_path / "hf" / "hub").exists()       # nothing was fetched
