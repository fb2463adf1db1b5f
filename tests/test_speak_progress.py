"""`speak` says how long the audio is and how long rendering will take before it starts (from a frame measured just
now), then shows a progress bar over frames (issue 13: 2,000 characters printed one line and nothing else for 11
minutes)."""
from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from talkinghead import live  # noqa: E402
from talkinghead.live.sinks import frames_for_seconds  # noqa: E402
from talkinghead.live.speech import duration_text, estimate  # noqa: E402
from test_variant_choice import exported  # noqa: E402,F401  (the module fixture: a sample bundle, fp32)

SR = 16000


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(round(seconds * SR))) / SR
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_speak_estimates_then_shows_progress(exported, tmp_path, capsys):
    res = live.speak(exported, (_tone(2.0), SR), tmp_path / "s.mp4", variant="fp32")
    out, err = capsys.readouterr()
    line = next((l for l in out.splitlines() if l.startswith("speaking ")), out)   # after the backend's line
    m = re.match(r"speaking 2\.0 s of audio: (\d+) frames at 25 fps; one frame takes (\d+) ms here \(renderer fp32, "
                 r"measured just now\), so rendering takes about (.+?) \((faster|slower) than real time", line)
    assert m, line
    frames, ms = int(m.group(1)), int(m.group(2))
    assert frames == res.report.frames == 50 and ms > 0
    assert m.group(3) == duration_text(frames * ms / 1000) or abs(frames * ms / 1000 - 1) < 0.6   # rounding of ms
    assert "speak" in err and f"{frames}/{frames}" in err                                      # the tqdm bar, finished


def test_frame_count_matches_the_engine(exported, tmp_path, capsys):
    rt = live.BundleRuntime(exported, variant="fp32", threads=1)
    for seconds in (0.03, 1.013, 1.04):
        report = live.LiveEngine(rt, mode="preview", verbose=False).run(_tone(seconds), [])
        assert report.frames == frames_for_seconds(seconds, 25), seconds


def test_no_progress_prints_nothing(exported, tmp_path, capsys):
    live.speak(exported, (_tone(0.5), SR), tmp_path / "q.mp4", variant="fp32", progress=False)
    out, err = capsys.readouterr()
    assert out == "" and "frame" not in err


def test_estimate_and_durations():
    line = estimate(80.4, 2010, 25, 420.0, "int8")
    assert "2010 frames" in line and "420 ms" in line and "about 14.1 min" in line and "slower than real time" in line
    assert "faster than real time" in estimate(4.0, 100, 25, 10.0)
    assert [duration_text(s) for s in (0.4, 12.3, 200, 7200)] == ["under a second", "12 s", "3.3 min", "2.0 h"]
