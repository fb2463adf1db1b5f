"""Long stages say how long they will take, measured on their first steps (talkinghead.progress), before going on
with their progress bar (issue 13: every long stage has a bar and, over ~30 s, an estimate first)."""
from __future__ import annotations

import re
import time

import numpy as np
import pytest

from talkinghead import progress
from talkinghead.progress import Estimate, duration_text


def test_estimate_is_said_once_with_the_measured_pace():
    lines = []
    est = Estimate("render", 1000, "frame", log=lines.append, min_s=1.0)
    time.sleep(0.05)
    said = est.update(4)
    assert said == lines[0] and len(lines) == 1
    m = re.match(r"render: 1000 frames, (\d+) ms each here \(measured on the first 4\): about (\d+) s", said)
    assert m and 10 <= int(m.group(1)) <= 200 and abs(int(m.group(2)) - int(m.group(1))) <= 1   # 1000 x ms = s
    assert est.update(4) is None and len(lines) == 1


def test_no_estimate_for_a_short_stage_or_when_disabled():
    lines = []
    assert Estimate("tts", 10, "line", log=lines.append).update(1) is None           # ~0 s << ESTIMATE_S
    assert Estimate("tts", 10, "line", log=lines.append, min_s=0, enabled=False).update(1) is None
    assert lines == []


def test_restart_drops_the_first_steps_cost():
    lines = []
    est = Estimate("tracking", 100, "frame", log=lines.append, min_s=1.0, note="a note")
    time.sleep(0.3)                      # the detector loading on the first frame
    est.restart()
    time.sleep(0.02)
    est.update(2)
    m = re.search(r"(\d+) ms each", lines[0])
    assert m and int(m.group(1)) < 100 and lines[0].endswith("(a note)")             # not 150 ms: loading excluded


def test_durations_read_well():
    assert [duration_text(s) for s in (0.4, 12.3, 89, 200, 7200)] == \
        ["under a second", "12 s", "89 s", "3.3 min", "2.0 h"]


def test_render_and_training_say_their_estimate(monkeypatch, capsys, tmp_path):
    """The real stages: PyTorch rendering of a few frames and two epochs of training, with the threshold at 0 s."""
    pytest.importorskip("torch")
    import stage_fixtures as sf
    from talkinghead import a2m, bake, layout, render
    from talkinghead.dataset import default_feature_params, write_synthetic

    monkeypatch.setattr(progress, "ESTIMATE_S", 0.0)
    with sf.one_thread():
        bundle = bake.load_bundle(bake.bake(bake.sample_portrait(), tmp_path / "avatar", lp=sf.liveportrait()))
        frames = list(render.iter_frames(bundle, np.zeros((12, layout.MOTION_DIM), np.float32), lp=sf.liveportrait(),
                                         batch_size=4, progress=True))
    assert len(frames) == 12
    err_out = "".join(capsys.readouterr())
    assert re.search(r"render: 12 frames, [\d.]+ m?s each here \(measured on the first 4\): about", err_out), err_out
    cfg = a2m.A2MConfig.for_features(default_feature_params(), hidden=16, emotion_dim=4)
    a2m.run_training(write_synthetic(tmp_path / "d.npz", n_lines=4), tmp_path / "avatar", cfg, epochs=2,
                     progress=True, verbose=False)
    err_out = "".join(capsys.readouterr())
    assert "Audio2Motion training: 2 epochs" in err_out and "early stopping usually ends it sooner" in err_out


def test_export_latency_measurement_says_its_estimate(monkeypatch, capsys, tmp_path):
    """Export's round-robin latency measurement (seconds per frame per variant on a CPU at full size): a bar and,
    when long, the estimate first."""
    pytest.importorskip("onnx")
    from talkinghead.export.measure import latencies
    from test_variant_choice import stand_in_renderer

    monkeypatch.setattr(progress, "ESTIMATE_S", 0.0)
    paths = {"fp32": stand_in_renderer(tmp_path / "a.onnx"), "int8": stand_in_renderer(tmp_path / "b.onnx", 20)}
    lat = latencies(paths, {"motion": np.zeros((1, 69), np.float32)}, frames=3, warmup=2, progress=True)
    assert set(lat) == {"fp32", "int8"} and lat["int8"] > lat["fp32"]
    out = "".join(capsys.readouterr())
    assert re.search(r"latency of fp32, int8: 5 rounds, [\d.]+ m?s each here \(measured on the first 1\)", out), out
