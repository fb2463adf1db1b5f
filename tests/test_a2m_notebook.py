"""Notebook-04 helpers of talkinghead.a2m not covered by test_a2m_helpers.py: the idle mode of `line_example` and
`render_comparison` through a baked sample bundle."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from talkinghead import a2m, layout
from talkinghead.dataset import synthetic_dataset


def test_line_example_idle_mode():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ds = synthetic_dataset(n_lines=6, seed=3)
        res = a2m.train(ds, a2m.A2MConfig(hidden=24, layers=1), epochs=2, seed=0, progress=False)
    finally:
        torch.set_num_threads(old)
    line = res.split["val"][0]
    s, e = ds.line_spans(line)[0]
    ex = a2m.line_example(res.model, ds, line)
    assert (ex["start"], ex["end"], ex["line"]) == (s, e, line)
    np.testing.assert_allclose(ex["pred"], a2m.predict(res.model, ds.features[s:e], ds.emotion[s:e]))
    assert np.allclose(ex["baseline"], res.model.motion_mean.numpy())
    idle = a2m.IdleMotion.from_dataset(ds, res.model)
    ex2 = a2m.line_example(res.model, ds, line, mode="idle_from_recording", idle=idle, seed=1)
    np.testing.assert_allclose(ex2["runtime"] - ex2["pred"], idle.sample(e - s, 1), atol=1e-6)
    with pytest.raises(ValueError, match="needs idle motion"):
        a2m.line_example(res.model, ds, line, mode="idle_from_recording", idle=None)


def test_render_comparison(tmp_path):
    from talkinghead import bake
    from talkinghead.liveportrait import load_liveportrait

    lp = load_liveportrait(profile="sample")
    bundle = bake.load_bundle(bake.bake(bake.sample_portrait(), tmp_path / "avatar", lp=lp))
    rng = np.random.default_rng(0)
    rows = {"true": rng.normal(0, 0.01, (10, layout.MOTION_DIM)).astype(np.float32), "predicted": layout.empty(10)}
    images, titles = a2m.render_comparison(bundle, rows, [2, 7], lp=lp)
    assert len(images) == len(titles) == 4 and images[0].shape == (512, 512, 3) and images[0].dtype == np.uint8
    assert titles[0].startswith("true, 0.08 s") and titles[2].startswith("predicted")
    assert not np.array_equal(images[0], images[2])                      # true motion vs zero motion differ
    full, _ = a2m.render_comparison(bundle, {"x": rows["true"]}, [2], lp=lp, paste=True)
    assert full[0].shape == bundle.portrait.shape
