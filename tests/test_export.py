"""ONNX export of the avatar (talkinghead.export): parity with PyTorch, the manifest's `models` section, variants, and
a bundle that renders in a process where torch cannot be imported."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from talkinghead import a2m, bake, export, layout, live  # noqa: E402
from talkinghead.dataset import synthetic_dataset, write_synthetic  # noqa: E402
from talkinghead.liveportrait import load_liveportrait  # noqa: E402


INT8_MIN_PSNR_DB = 33.0     # not the default (35): export_bundle passes it down to make_int8


@pytest.fixture(scope="module")
def lp():
    return load_liveportrait(profile="sample")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, lp):
    """A baked sample bundle with a tiny Audio2Motion (normaliser fitted, idle motion) exported in all variants."""
    root = tmp_path_factory.mktemp("export")
    bundle_dir = bake.bake(bake.sample_portrait(), root / "avatar", lp=lp, detector="opencv")
    ds_path = write_synthetic(root / "dataset.npz", n_lines=6)
    ds = synthetic_dataset(n_lines=6)
    config = a2m.A2MConfig.for_features(ds.feature_params, hidden=32, emotion_dim=4)
    torch.manual_seed(0)
    model = a2m.Audio2Motion(config).eval()
    model.fit_normaliser(ds.features[ds.valid], ds.motion[ds.valid], -11.5)
    torch.nn.init.normal_(model.head.weight, std=0.05)       # a non-trivial output (the head starts at zero)
    idle = a2m.IdleMotion.from_dataset(ds)
    a2m.save_checkpoint(bundle_dir / a2m.CHECKPOINT_NAME, model, config, ds.feature_params, {}, "idle_from_recording",
                        idle)
    report = export.export_bundle(bundle_dir, ds_path, lp=lp, progress=False, n_calibration=8, n_eval=3,
                                  latency_frames=2, int8_min_psnr_db=INT8_MIN_PSNR_DB)
    return bundle_dir, report, model


def test_manifest_models_section(exported):
    bundle_dir, report, model = exported
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    models = manifest["models"]
    assert models["opset"] == 20
    r = models["renderer"]
    assert (r["input"], r["output"]) == ("motion", "face")
    ok = [v for v, d in r["variants"].items() if v == "fp32" or d["psnr_db"] >= 30.0]   # live.choice.MIN_PSNR_DB
    assert r["default"] == min(ok, key=lambda v: r["variants"][v]["latency_ms"]) and "measured" in r["default_why"]
    assert set(r["variants"]) == {"fp32", "fp16", "int8"}
    for v, d in r["variants"].items():
        assert d["file"] == export.RENDERER_FILES[v] and d["file"] in manifest["files"]
        for k in ("bytes", "max_abs_err", "mean_abs_err", "psnr_db", "latency_ms", "float_ops"):
            assert k in d, (v, k)
    int8 = r["variants"]["int8"]
    assert isinstance(int8["kept_float"], list) and int8["min_block_psnr_db"] == INT8_MIN_PSNR_DB   # the parameter
    assert all((p < INT8_MIN_PSNR_DB) == (g in int8["kept_float"]) for g, p in int8["block_psnr_db"].items())
    assert r["variants"]["fp32"]["psnr_db"] > 60 and r["variants"]["fp16"]["psnr_db"] > 30
    assert models["paste"] == {"file": "paste.onnx", "input": "face", "output": "frame", "height": 512, "width": 512}
    a = models["audio2motion"]
    c = model.config
    assert a["lookahead_frames"] == c.lookahead_frames and a["no_emotion_id"] == a["n_emotions"] == c.n_emotions
    assert a["conv_state_shape"] == [1, c.conv_kernel - 1, c.hidden] and a["gru_state_shape"] == [c.layers, 1, c.hidden]
    assert a["mode"] == "idle_from_recording" and a["idle"]["file"] == "idle.npy" and "idle.npy" in manifest["files"]
    assert np.load(bundle_dir / "idle.npy").shape == (a["idle"]["frames"], len(a["idle"]["dims"]))
    assert a["feature_params"]["n_mels"] == 80
    bake.verify_bundle(bundle_dir)                               # every hash matches
    table = export.variant_table(report)
    assert table.splitlines()[0].startswith("variant") and len(table.splitlines()) == 5


def test_graphs_io_and_checker(exported):
    bundle_dir, _, model = exported
    for f in ("renderer.onnx", "renderer.fp16.onnx", "renderer.int8.onnx", "paste.onnx", "audio2motion.onnx"):
        m = onnx.load(str(bundle_dir / f))
        onnx.checker.check_model(m)
        assert any(o.domain in ("", "ai.onnx") and o.version == 20 for o in m.opset_import), f
    s = export.session(bundle_dir / "renderer.fp16.onnx")
    assert [(i.name, i.type) for i in s.get_inputs()] == [("motion", "tensor(float)")]
    assert [(o.name, o.type) for o in s.get_outputs()] == [("face", "tensor(float)")]
    s = export.session(bundle_dir / "audio2motion.onnx")
    assert [i.name for i in s.get_inputs()] == ["features", "conv_state", "gru_state", "emotion"]
    assert [o.name for o in s.get_outputs()] == ["motion", "conv_state_out", "gru_state_out"]
    assert s.get_inputs()[3].type == "tensor(int64)"
    # batch is dynamic in the renderer: 1 and 3 frames
    r = export.session(bundle_dir / "renderer.onnx")
    for b in (1, 3):
        assert r.run(None, {"motion": np.zeros((b, 69), np.float32)})[0].shape == (b, 3, 512, 512)
    # the warping's 5-D GridSample is in the graph, and the shape arithmetic was folded into constants
    ops = export.op_types(bundle_dir / "renderer.onnx")
    assert "GridSample" in ops and "Range" not in ops


def test_parity_with_pytorch(exported, lp):
    bundle_dir, _, model = exported
    rng = np.random.default_rng(5)
    motions = export.random_motions(3, 11)
    features = (model.feat_mean.numpy() + model.feat_std.numpy() * rng.normal(0, 1, (29, 4, 80))).astype(np.float32)
    p = export.parity(bundle_dir, lp=lp, motions=motions, features=features, chunk=4)
    assert p["ok"], p
    assert p["pre_g"]["max_abs_err"] < 1e-4                       # keypoints, stitching, W
    assert p["renderer"]["max_abs_err"] < 1e-4                    # the whole renderer, every pixel
    assert p["renderer"]["mean_abs_err"] < 1e-6
    assert p["paste"]["shape"] == [3, 3, 512, 512] and p["paste"]["max_abs_err"] < 1e-4
    assert p["a2m"]["max_abs_err"] < 1e-4                          # streamed ONNX == offline PyTorch, with and without emotion


def test_a2m_stream_chunk_sizes(exported):
    """Chunks of 1 and 7 frames, streamed through the live runtime's own step, give the offline model's motion."""
    bundle_dir, _, model = exported
    runtime = live.BundleRuntime(bundle_dir)
    feats = model.silence.numpy()[None] + np.random.default_rng(1).normal(0, 2, (20, 4, 80)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(feats)[None], torch.tensor([2]))[0].numpy()
    for chunk in (1, 7):
        got = export.stream_onnx(runtime, feats, emotion=2, chunk=chunk)
        assert got.shape == (20, layout.MOTION_DIM)
        np.testing.assert_allclose(got, ref, atol=1e-4)
    np.testing.assert_allclose(export.stream_onnx(bundle_dir, feats, emotion=2), ref, atol=1e-4)   # a folder works too


def test_renderer_batch_matches_pytorch_pipeline(exported, lp):
    """The fp32 graph reproduces BakedRenderer (paste=False) for a batch of dataset-like motions."""
    bundle_dir, _, _ = exported
    bundle = bake.load_bundle(bundle_dir)
    motions = synthetic_dataset(n_lines=4).motion[::37][:4]
    got = export.session(bundle_dir / "renderer.onnx").run(None, {"motion": motions})[0]
    from talkinghead.render import BakedRenderer
    with torch.no_grad():
        ref = BakedRenderer(lp, bundle, paste=False).eval()(torch.from_numpy(motions)).numpy()
    assert got.shape == ref.shape == (4, 3, 512, 512)
    assert np.abs(got - ref).mean() < 1e-5 and export.psnr(got, ref) > 80


NO_TORCH = textwrap.dedent("""
    import json, sys
    sys.modules["torch"] = None                 # any `import torch` now fails
    import cv2, numpy as np, onnxruntime as ort
    bundle = sys.argv[1]
    models = json.load(open(bundle + "/manifest.json"))["models"]
    opts = ort.SessionOptions(); opts.log_severity_level = 3
    r = ort.InferenceSession(bundle + "/" + models["renderer"]["variants"]["fp32"]["file"], opts,
                             providers=["CPUExecutionProvider"])
    p = ort.InferenceSession(bundle + "/" + models["paste"]["file"], opts, providers=["CPUExecutionProvider"])
    face = r.run(None, {models["renderer"]["input"]: np.zeros((1, 69), np.float32)})[0]
    frame = p.run(None, {models["paste"]["input"]: face})[0]
    a = models["audio2motion"]
    s = ort.InferenceSession(bundle + "/" + a["file"], opts, providers=["CPUExecutionProvider"])
    feats = np.full((1, 3, 4, 80), a["silence"], np.float32)
    motion, c, g = s.run(None, {"features": feats, "conv_state": np.zeros(a["conv_state_shape"], np.float32),
                                "gru_state": np.zeros(a["gru_state_shape"], np.float32),
                                "emotion": np.array([a["no_emotion_id"]], np.int64)})
    img = cv2.cvtColor((frame[0].transpose(1, 2, 0) * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)
    assert "talkinghead" not in sys.modules and sys.modules["torch"] is None
    print(json.dumps({"face": face.shape, "frame": frame.shape, "min": float(frame.min()), "max": float(frame.max()),
                      "motion": motion.shape, "png": len(cv2.imencode(".png", img)[1])}))
""")


def test_bundle_runs_without_torch(exported):
    bundle_dir, _, _ = exported
    out = subprocess.run([sys.executable, "-c", NO_TORCH, str(bundle_dir)], capture_output=True, text=True,
                         timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(bundle_dir)})
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["face"] == [1, 3, 512, 512] and res["frame"] == [1, 3, 512, 512] and res["motion"] == [1, 3, 69]
    assert 0.0 <= res["min"] <= res["max"] <= 1.0 and res["png"] > 1000


def test_dataset_motions_are_held_out():
    ds = synthetic_dataset(n_lines=6)
    cal, ev, how = export.dataset_motions(ds, 8, 3)
    assert cal.shape == (8, 69) and ev.shape == (3, 69) and "held-out" in how
    assert not any((ev[i] == cal).all(1).any() for i in range(len(ev)))
    m = export.random_motions(5)
    assert m.shape == (5, 69) and np.abs(m[:, layout.EXP]).max() < 0.1


def test_variant_validation(exported, lp):
    bundle_dir, _, _ = exported
    with pytest.raises(ValueError, match="unknown renderer variant"):
        export.export_renderer(bundle_dir, lp=lp, variants=("fp8",), register=False)
