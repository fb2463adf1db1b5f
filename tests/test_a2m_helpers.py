"""The notebook-04 helpers of talkinghead.a2m: frame picking, held-out line examples, default epochs, idle plot."""
from __future__ import annotations

import numpy as np
import pytest

from talkinghead import a2m, layout
from talkinghead.dataset import synthetic_dataset


def test_pick_frames_spans_the_mouth_opening_in_time_order():
    m = layout.empty(50)
    opening = np.sin(np.linspace(0, 3 * np.pi, 50)) ** 2
    m[:, 3 * 19 + 1] = 0.01 * opening
    valid = np.ones(50, bool)
    valid[::7] = False
    picks = a2m.pick_frames(m, 4, valid)
    assert list(picks) == sorted(picks) and len(set(picks)) == len(picks) == 4
    assert all(valid[picks])
    mouth = layout.mouth_open(m[picks])
    assert mouth.min() == pytest.approx(layout.mouth_open(m[valid]).min())
    assert mouth.max() == pytest.approx(layout.mouth_open(m[valid]).max())
    assert len(a2m.pick_frames(m, 4, np.zeros(50, bool))) == 0


def test_line_example_and_default_epochs():
    ds = synthetic_dataset(n_lines=6, seed=1)
    model = a2m.Audio2Motion(a2m.A2MConfig(hidden=16, layers=1)).eval()
    line = ds.line_ids[0]
    ex = a2m.line_example(model, ds, line, mode="audio_only")
    s, e = ds.line_spans(line)[0]
    assert ex["true"].shape == ex["pred"].shape == ex["baseline"].shape == (e - s, layout.MOTION_DIM)
    np.testing.assert_array_equal(ex["true"], ds.motion[s:e])
    np.testing.assert_array_equal(ex["runtime"], ex["pred"])  # audio_only adds nothing
    assert a2m.default_epochs("sample") == a2m.SAMPLE_EPOCHS
    assert a2m.default_epochs("full") == a2m.TrainConfig().epochs


def test_plot_idle_draws_both_modes():
    import matplotlib

    matplotlib.use("Agg")
    ds = synthetic_dataset(n_lines=6, seed=2)
    idle = a2m.IdleMotion.from_dataset(ds)
    for mode in a2m.MODES:
        fig = a2m.plot_idle(idle, mode, seconds=4)
        lines = fig.axes[0].get_lines()
        assert len(lines) == 3
        flat = np.allclose(lines[0].get_ydata(), 0)
        assert flat == (mode == "audio_only")
