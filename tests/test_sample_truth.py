"""The sample path's training data: the sample recording's true motion (procedural visemes from real espeak-ng phoneme
timings) paired with its audio is learnable: Audio2Motion beats the mean-motion baseline on held-out lines.

On the sample profile the motion extracted from rendered noise carries nothing to learn; `pipeline.training_dataset`
therefore trains on this truth, and this test is what makes that choice honest (issue #5: "the procedural visemes are
learnable: the correlation of mouth opening is clearly positive").
"""
from __future__ import annotations

import numpy as np
import pytest

from talkinghead import dataset, layout, sample
from talkinghead.a2m import A2MConfig, metrics_table, train
from talkinghead.pipeline import build_corpus


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    d = tmp_path_factory.mktemp("truth")
    build_corpus(d / "corpus", limit=24, progress=False)
    timeline = sample.build_timeline(d / "corpus", max_lines=24)
    motion, sliders = sample.motion_track(timeline, seed=0)
    path = sample.truth_dataset(timeline, motion, d / "sample_truth.npz")
    return dataset.load_dataset(path), motion, timeline


def test_truth_dataset_has_the_extraction_layout_and_clock(truth):
    ds, motion, timeline = truth
    n = timeline.n_frames
    assert ds.motion.shape == (n, layout.MOTION_DIM) and ds.features.shape == (n, 4, 80)
    np.testing.assert_array_equal(ds.motion, motion)
    np.testing.assert_allclose(ds.time_s, np.arange(n) / 25)
    assert ds.valid.all()
    assert [s["id"] for s in ds.meta["segments"]] == [s["id"] for s in timeline.segments]
    inside = ds.segment >= 0
    assert 0.5 < inside.mean() < 1.0, "lines cover most frames; lead-in and gaps do not"


def test_procedural_visemes_are_learnable_from_the_audio(truth):
    ds, _, _ = truth
    result = train(ds, A2MConfig(hidden=64, layers=1), epochs=30, seed=0, progress=False)
    m, b = result.metrics["model"], result.metrics["baseline"]
    print(metrics_table(result.metrics))
    assert m["mouth_open_r"] > 0.5, "mouth opening follows the voice on held-out lines"
    assert m["mse_mouth"] < 0.7 * b["mse_mouth"]
    assert m["mse_exp"] < 0.8 * b["mse_exp"]
