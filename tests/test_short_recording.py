"""A recording too short to learn from is said, with its numbers and the measured consequence, at extraction and at
training; and after training a model that does not beat the mean baseline on held-out lines is said plainly (issue 13:
a 6.8 s recording trained without a word, and the model then equalled the baseline)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from talkinghead import dataset as D
from talkinghead.layout import FPS


def _lines(n_lines: int, frames_per_line: int, gap: int = 10):
    seg = np.concatenate([np.r_[np.full(frames_per_line, i), np.full(gap, -1)] for i in range(n_lines)])
    return np.ones(len(seg), bool), seg


def test_amount_warning_names_the_numbers_and_the_consequence():
    valid, seg = _lines(2, 80)
    valid[-10:] = False                                  # 180 frames, 170 with a face: 6.8 s at 25 fps
    w = D.amount_warning(valid, seg, FPS)
    assert w.startswith("warning: 6.8 s of speech in 2 lines")
    assert "~40 s (16 lines)" in w and "r ~0.4 at 10 lines vs 0.76 at 16" in w and "record the whole script" in w
    assert D.amount_warning(*_lines(16, 53), FPS) is None               # 16 lines, 1008 frames (40.3 s)
    assert "in 10 lines" in D.amount_warning(*_lines(10, 100), FPS)     # long enough, too few lines
    assert "in 16 lines" in D.amount_warning(*_lines(16, 30), FPS)      # enough lines, 25.6 s
    assert D.ENOUGH_LINES == 16 and D.MEASURED_R[16] == 0.76


def test_the_sample_profile_recording_is_long_enough():
    """The sample recording (pipeline.SAMPLE_RECORDING_LINES lines) is the measurement the threshold comes from."""
    from talkinghead.pipeline import SAMPLE_RECORDING_LINES

    assert SAMPLE_RECORDING_LINES["sample"] == D.ENOUGH_LINES


def test_extraction_of_a_short_recording_warns(tmp_path_factory):
    pytest.importorskip("torch")
    import stage_fixtures as sf

    ex, rec, _ = sf.sample_extraction(tmp_path_factory)             # 2 corpus lines, ~4.6 s
    ds = D.load_dataset(ex.dataset)
    assert ex.warning == D.dataset_warning(ds)
    assert f"{ex.n_valid / FPS:.1f} s of speech in {len(ds.line_ids)} lines" in ex.warning


@pytest.fixture(scope="module")
def a2m():
    pytest.importorskip("torch")
    from talkinghead import a2m
    return a2m


def _small(a2m):
    """A small Audio2Motion (seconds per epoch on a shared 2-core machine)."""
    return a2m.A2MConfig.for_features(D.default_feature_params(), hidden=32, emotion_dim=4)


def test_training_on_a_short_recording_warns_once_and_records_it(a2m, tmp_path, capsys):
    path = D.write_synthetic(tmp_path / "short.npz", n_lines=4)
    r = a2m.run_training(path, tmp_path / "avatar", _small(a2m), epochs=1, progress=False, verbose=True)
    out = capsys.readouterr().out
    assert out.count("warning: ") >= 1 and out.count("s of speech in 4 lines") == 1
    assert r.metrics["warnings"][0].startswith("warning: ") and "in 4 lines" in r.metrics["warnings"][0]
    saved = json.loads((tmp_path / "avatar" / "audio2motion.metrics.json").read_text())
    assert saved["warnings"] == r.metrics["warnings"] and saved["beats_baseline"] == r.metrics["beats_baseline"]


def test_no_warning_for_a_long_enough_recording_that_is_learnt(a2m, tmp_path, capsys):
    path = D.write_synthetic(tmp_path / "long.npz", n_lines=18)                # ~70 s, 18 lines
    r = a2m.run_training(path, tmp_path / "avatar", _small(a2m), epochs=4, progress=False, verbose=True)
    out = capsys.readouterr().out
    assert "warning" not in out and r.metrics["warnings"] == [] and r.metrics["beats_baseline"] is True
    assert "the model beats the mean baseline" in out


def test_a_model_no_better_than_the_baseline_is_said_plainly(a2m, tmp_path, capsys):
    """Motion that is noise, independent of the audio: nothing to learn, so the held-out metrics cannot beat the
    mean (the best predictor of independent noise); the stage says so."""
    ds = D.synthetic_dataset(n_lines=18)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, ds.motion.shape).astype(np.float32) * ds.motion[ds.valid].std(0)
    path = D.save_dataset(tmp_path / "noise.npz", noise, ds.features, ds.valid, ds.segment, ds.emotion, ds.time_s,
                          ds.meta)
    r = a2m.run_training(path, tmp_path / "avatar", _small(a2m), epochs=3, progress=False, verbose=True)
    out = capsys.readouterr().out
    m, b = r.metrics["model"], r.metrics["baseline"]
    assert r.metrics["beats_baseline"] is False, (m, b)
    assert "does NOT beat the mean baseline" in out and f"{m['mse_mouth']:.3g} vs {b['mse_mouth']:.3g}" in out
    assert any("does NOT beat" in w for w in r.metrics["warnings"])


def test_baseline_verdict_rule(a2m):
    base = {"mse_mouth": 8e-6, "mse_norm": 0.31, "mouth_open_r": 0.0}
    good = {"mse_mouth": 3e-6, "mse_norm": 0.24, "mouth_open_r": 0.75}
    assert a2m.baseline_verdict({"model": good, "baseline": base})[0] is True
    for worse in ({"mse_mouth": 8e-6}, {"mouth_open_r": 0.02}):       # the noise model's: MSE 0.997x, r 0.016
        ok, why = a2m.baseline_verdict({"model": dict(good, **worse), "baseline": base})
        assert ok is False and "does NOT beat" in why
