"""Audio2Motion: streaming equals offline, size, learnability on the procedural dataset, reproducibility, split by
line, idle motion, checkpoints and run_training. Kept small: the whole file runs in well under a minute on 2 cores."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from talkinghead import layout
from talkinghead.a2m import (A2MConfig, Audio2Motion, IdleMotion, TrainConfig, combine, load_checkpoint,
                             metrics_table, pearson, plot_history, plot_mouth, predict, run_training, split_lines,
                             train)
from talkinghead.dataset import params_dict, save_dataset, synthetic_dataset, write_synthetic
from talkinghead.errors import DatasetError

SMALL = dict(hidden=96, layers=2)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and the machine is shared); restored afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def synth():
    return synthetic_dataset(n_lines=24, seed=0)


@pytest.fixture(scope="module")
def trained(synth):
    return train(synth, A2MConfig(**SMALL), epochs=25, seed=0, progress=False)


# ---------------------------------------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("lookahead", [0, 2])
def test_stream_equals_offline(lookahead):
    torch.manual_seed(0)
    model = Audio2Motion(A2MConfig(hidden=48, lookahead_frames=lookahead)).eval()
    torch.nn.init.normal_(model.head.weight, std=0.2)                   # the head starts at zero: make it matter
    x = torch.randn(2, 29, 4, 80) * 2 - 9
    emotions = [None, torch.tensor([1, 4]), torch.randint(0, len(layout.EMOTIONS), (2, 29))]
    for emo in emotions:
        with torch.no_grad():
            offline = model(x, emo)
        assert offline.shape == (2, 29, 69)
        for chunk in (1, 3, 7):
            streamed = model.stream(x, emo, chunk=chunk)
            torch.testing.assert_close(streamed, offline, atol=1e-5, rtol=0)
    # emotion changes the output, and the lookahead is real: frame k depends on features k + L but not k + L + 1
    with torch.no_grad():
        assert not torch.allclose(model(x, torch.tensor([0, 0])), model(x, torch.tensor([1, 1])))
        y = torch.randn(2, 29, 4, 80) * 2 - 9
        x2 = x.clone()
        x2[:, 10 + lookahead] = y[:, 10 + lookahead]
        diff = (model(x2) - model(x)).abs().amax(dim=(0, 2))
        assert diff[:10].max() == 0 and diff[10] > 0


def test_step_warmup_and_state_shapes():
    model = Audio2Motion(A2MConfig(hidden=32)).eval()
    state = model.init_state(3)
    assert state[0].shape == (3, 2, 32) and state[1].shape == (2, 3, 32)
    out, new = model.step(torch.zeros(3, 5, 4, 80), state)
    assert out.shape == (3, 5, 69) and all(a.shape == b.shape for a, b in zip(new, state))


def test_size_and_describe(capsys):
    model = Audio2Motion(A2MConfig())
    assert A2MConfig().lookahead_frames == round(0.080 * 25) == A2MConfig.for_features(None).lookahead_frames
    assert model.n_params() <= 1_200_000
    info = model.describe(frames=20)
    assert info["params"] == model.n_params() and info["per_frame_ms"] > 0
    assert "parameters" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------- training
def test_learns_visemes_beats_mean_baseline(trained):
    m, b = trained.metrics["model"], trained.metrics["baseline"]
    print(metrics_table(trained.metrics))
    assert m["mouth_open_r"] > 0.5 and b["mouth_open_r"] == 0.0
    assert m["mse_exp"] < 0.7 * b["mse_exp"]
    assert m["mse_mouth"] < 0.6 * b["mse_mouth"]
    assert m["mouth_kp_dist_expr"] < 0.8 * b["mouth_kp_dist_expr"]
    assert m["mse_norm"] < b["mse_norm"]
    assert len(trained.history["val_loss"]) == trained.metrics["epochs_run"]
    json.dumps(trained.metrics)                                         # JSON-able


def test_split_is_by_line(synth, trained):
    split = trained.split
    assert not set(split["train"]) & set(split["val"])
    assert sorted(split["train"] + split["val"]) == sorted(synth.line_ids)
    assert trained.metrics["lines"] == split["val"]
    assert split_lines(synth, seed=0) == split and split_lines(synth, seed=1) != split


def test_reproducible_on_cpu(synth):
    cfg, tc = A2MConfig(hidden=16, layers=1), TrainConfig(crops_per_epoch=16)
    a = train(synth, cfg, epochs=1, seed=3, device="cpu", progress=False, train_config=tc).model.state_dict()
    b = train(synth, cfg, epochs=1, seed=3, device="cpu", progress=False, train_config=tc).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pearson_constant_is_zero():
    assert pearson(np.ones(10), np.arange(10)) == 0.0
    assert pearson(np.arange(10), np.arange(10)) == pytest.approx(1.0)


def test_plots(trained, synth):
    import matplotlib.pyplot as plt

    line = trained.split["val"][0]
    f = synth.line_frames(line)
    pred = predict(trained.model, synth.features[f], synth.emotion[f])
    for fig in (plot_history(trained.history), plot_mouth(pred, synth.motion[f], synth.fps)):
        assert fig.axes
        plt.close(fig)


# ---------------------------------------------------------------------------------------------------------- idle
def test_idle_loop_is_continuous(synth, trained):
    for model in (None, trained.model):
        idle = IdleMotion.from_dataset(synth, model)
        track, loop, fade = idle.track, idle.loop, idle.crossfade
        max_step = np.abs(np.diff(track, axis=0)).max(0)
        seam = np.abs(loop[0] - loop[-1])
        assert (seam <= max_step + 1e-7).all()
        window = np.concatenate([loop[-3:], loop[:fade + 3]])           # the seam and the whole cross-fade
        assert (np.abs(np.diff(window, axis=0)) <= 1.25 * max_step + 1e-7).all()
        s = idle.sample(2 * len(loop) + 7, seed=5)
        assert s.shape == (2 * len(loop) + 7, 69)
        outside = np.setdiff1d(np.arange(69), idle.dims)
        assert not s[:, outside].any() and np.abs(s[:, idle.dims]).max() > 0
        assert np.array_equal(s, idle.sample(len(s), seed=5))


def test_combine_modes(synth):
    idle = IdleMotion.from_dataset(synth)
    pred = np.zeros((50, 69), np.float32)
    assert combine(pred, idle, "audio_only") is pred
    assert np.array_equal(combine(pred, idle, "idle_from_recording"), idle.sample(50))
    out = combine(torch.zeros(50, 69), idle.sample(50), "idle_from_recording")
    assert isinstance(out, torch.Tensor)
    with pytest.raises(ValueError, match="unknown idle mode"):
        combine(pred, idle, "dance")


# ---------------------------------------------------------------------------------------------------------- files
def test_run_training_writes_bundle_and_checkpoint_round_trips(tmp_path):
    path = write_synthetic(tmp_path / "data" / "dataset.npz", n_lines=6, seed=2)
    bundle = tmp_path / "avatar"
    res = run_training(path, bundle, A2MConfig(hidden=24, layers=1), epochs=2, progress=False, verbose=False)
    ckpt_path, metrics_path = bundle / "audio2motion.pt", bundle / "audio2motion.metrics.json"
    assert res.paths == {"checkpoint": ckpt_path, "metrics": metrics_path}
    saved = json.loads(metrics_path.read_text())
    assert saved["mode"] == "idle_from_recording" and "model" in saved and "baseline" in saved
    torch.load(ckpt_path, weights_only=True)                           # plain dicts and tensors only
    ck = load_checkpoint(ckpt_path)
    assert ck.mode == "idle_from_recording" and ck.metrics["mode"] == ck.mode and ck.idle is not None
    assert np.array_equal(ck.idle.loop, res.idle.loop)
    x = torch.randn(1, 12, 4, 80) - 9
    with torch.no_grad():
        torch.testing.assert_close(ck.model(x), res.model.eval()(x))
    # a checkpoint against features of other parameters is refused with a sentence
    other = dict(params_dict(None), n_mels=64)
    with pytest.raises(DatasetError, match="audio2motion.pt"):
        load_checkpoint(ckpt_path, expect_params=other)
    ds = synthetic_dataset(n_lines=4)
    ds.meta = dict(ds.meta, feature_params=other)
    with pytest.raises(DatasetError, match="other parameters"):
        ck.check_dataset(ds)


def test_run_training_refuses_mismatched_dataset(tmp_path):
    ds = synthetic_dataset(n_lines=4, seed=1)
    path = save_dataset(tmp_path / "dataset.npz", ds.motion, ds.features, ds.valid, ds.segment, ds.emotion, ds.time_s,
                        dict(ds.meta, feature_params=dict(ds.feature_params, fmax=8000.0)))
    with pytest.raises(DatasetError, match="fmax"):
        run_training(path, tmp_path / "avatar", epochs=1, progress=False, verbose=False)
    assert not (tmp_path / "avatar" / "audio2motion.pt").exists()
