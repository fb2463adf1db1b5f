"""A student's path through notebook 02 in a fresh runtime (issue 13.2), as far as a machine without Colab goes: the
workspace (a Drive folder in Colab) holds the portrait uploaded earlier in `inputs/`; notebook 02 run with its default
parameters bakes *that* photo, not the sample astronaut, and a second run in another runtime keeps the bundle."""
from __future__ import annotations

from pathlib import Path

import hashlib
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]   # not `from conftest import`: notebooks/ has a conftest too
from talkinghead import bake


def _run_notebook(name: str, workspace, tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, TALKINGHEAD_WORKSPACE=str(workspace), TALKINGHEAD_PROFILE="sample")
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_CURRENT_TEST", None)
    cmd = [sys.executable, "-m", "pytest", "-q", str(REPO / "notebooks" / f"{name}.ipynb"), "-p", "no:cacheprovider"]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def test_notebook_02_in_a_new_runtime_bakes_the_uploaded_portrait_and_keeps_it(tmp_path):
    pytest.importorskip("nbval")
    ws = tmp_path / "drive" / "talkinghead"
    mine = np.ascontiguousarray(bake.sample_portrait()[:, ::-1])          # "your" photo: the astronaut mirrored
    (ws / "inputs").mkdir(parents=True)
    cv2.imwrite(str(ws / "inputs" / "portrait.png"), mine[..., ::-1])
    run = _run_notebook("02_baking", ws, tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    manifest = json.loads((ws / "avatar" / "manifest.json").read_text())
    assert manifest["source"]["name"] == "portrait.png"
    assert manifest["source"]["sha256"] == hashlib.sha256(mine.tobytes()).hexdigest()
    first = (ws / "avatar" / "source.npz").read_bytes()
    (ws / "inputs" / "portrait.png").unlink()                              # the next runtime has only the bundle
    run = _run_notebook("02_baking", ws, tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    again = json.loads((ws / "avatar" / "manifest.json").read_text())
    assert again["source"]["sha256"] == manifest["source"]["sha256"]        # yours again, not the astronaut
    assert (ws / "avatar" / "source.npz").read_bytes() == first
