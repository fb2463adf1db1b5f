"""The pocket renderer (talkinghead.pocket): a student distilled in seconds on the sample profile beats the static
reference and the nearest training frame on held-out lines, paints only its region, streams frame by frame equal to
its batch output, exports to ONNX within 1e-4, is registered (hashed) as the renderer variant "pocket" that the live
engine runs, and bad inputs are one sentence.

The bundle is the sample portrait baked and exported (fp32 only) with a small Audio2Motion whose output moves and an
idle track, as in tests/test_live.py; motions come from a procedural dataset (`dataset.synthetic_dataset`).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from talkinghead import bake, cli, dataset, live, pocket  # noqa: E402
from talkinghead.errors import BundleError, DatasetError  # noqa: E402
from talkinghead.fileio import load_json, sha256_file  # noqa: E402

import stage_fixtures as sf  # noqa: E402

# Tiny and fast: 200 teacher frames (128 px, the sample teacher's own size), 200 steps (seconds on two cores).
CFG = pocket.DistillConfig(steps=200, n_train=160, n_held=40, lr=4e-3)
MARGIN_DB = 1.0     # "a clear margin" over both baselines on held-out lines


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """(bundle folder, LivePortrait, synthetic dataset, DistillResult with pocket.onnx exported and registered)."""
    lp = sf.liveportrait()
    path, _, _ = sf.exported_bundle(tmp_path_factory.mktemp("pocket") / "avatar", lp)
    ds = dataset.synthetic_dataset(n_lines=6, seed=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = pocket.distill(path, ds, config=CFG, lp=lp, progress=False)
    finally:
        torch.set_num_threads(threads)
    return path, lp, ds, result


# ------------------------------------------------------------------------------------------------------- quality
def test_student_beats_static_reference_and_nearest_frame(env):
    e = env[3].evaluation
    assert e["frames"] == 40 and e["lines"]
    assert e["psnr_student"] > e["psnr_static"] + MARGIN_DB, e
    assert e["psnr_student"] > e["psnr_nearest"] + MARGIN_DB, e
    assert np.isfinite(e["psnr_512"]) and 0.0 < e["ssim_512"] <= 1.0
    # training improved on held-out lines, not only on the training frames
    h = env[3].history
    assert h["held_psnr"][-1] > h["held_psnr"][0]


def test_held_out_lines_are_never_trained_on(env):
    m = env[3].data.motions
    held_lines = set(m.line[m.held_out]) - {""}
    train_lines = set(m.line[~m.held_out]) - {""}
    assert held_lines and not held_lines & train_lines
    kinds = m.counts()
    for k in ("recording", "audio2motion", "emotion", "idle", "perturbed", "rest"):
        assert k in kinds, kinds
    assert kinds["idle"][1] == kinds["perturbed"][1] == 0          # only line motions are held out
    n = len(env[3].data.train)
    assert not m.held_out[:n].any() and m.held_out[n:].all()


# ------------------------------------------------------------------------------------------------------- the student
def test_untrained_student_is_the_reference_and_paints_only_its_region():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 1, (3, 512, 512)).astype(np.float32)
    mean, std = pocket.motion_stats(rng.normal(0, 0.01, (50, 69)))
    m = torch.from_numpy(rng.normal(0, 0.02, (3, 69)).astype(np.float32))
    s = pocket.PocketStudent(ref, mean, std, pocket.PocketConfig(channels=(8, 8), roi=(128, 64, 256, 320)))
    with torch.no_grad():
        np.testing.assert_allclose(s(m).numpy(), np.broadcast_to(ref, (3, 3, 512, 512)), atol=1e-6, rtol=0)
        for p in s.head.parameters():
            p.normal_(0, 0.5)
        out = s(m).numpy()
    inside = np.zeros((512, 512), bool)
    inside[128:384, 64:384] = True
    np.testing.assert_array_equal(out[:, :, ~inside], np.broadcast_to(ref[:, ~inside], (3, 3, int((~inside).sum()))))
    assert np.abs(out[:, :, inside] - ref[:, inside]).mean() > 0.01
    # warping at 256 px and adding the reference's detail back: the same, up to float rounding and the 2 px that the
    # final x2 resize blends across the region's border
    s256 = pocket.PocketStudent(ref, mean, std, dataclasses.replace(s.config, warp_size=256))
    s256.load_state_dict(s.state_dict())
    with torch.no_grad():
        out = s256(m).numpy()
    far = np.ones((512, 512), bool)
    far[124:388, 60:388] = False
    np.testing.assert_allclose(out[:, :, far], np.broadcast_to(ref[:, far], (3, 3, int(far.sum()))), atol=1e-5)
    assert np.abs(out[:, :, inside] - ref[:, inside]).mean() > 0.01


def test_streaming_one_frame_at_a_time_equals_the_batch(env):
    s = env[3].student
    m = torch.from_numpy(env[3].data.motions.motion[-7:])
    with torch.no_grad():
        batch = s(m)
        single = torch.cat([s(m[i:i + 1]) for i in range(len(m))])
    assert float((batch - single).abs().max()) < 1e-5
    sess = pocket.bundle_entry.session(env[0] / pocket.POCKET_FILE)
    one = np.concatenate([sess.run(None, {"motion": m[i:i + 1].numpy()})[0] for i in range(len(m))])
    np.testing.assert_allclose(one, sess.run(None, {"motion": m.numpy()})[0], atol=1e-5, rtol=0)


def test_onnx_export_matches_pytorch(env):
    path, _, _, r = env
    motions = r.data.motions.motion[::17]
    p = pocket.parity(r.student, path / pocket.POCKET_FILE, motions)
    assert p["max_abs_err"] < 1e-4 and p["ok"], p
    assert r.entry["max_abs_err"] < 1e-4


def test_flop_counter_counts_a_known_graph(tmp_path):
    conv = torch.nn.Sequential(torch.nn.Linear(69, 16 * 8 * 8), torch.nn.Unflatten(1, (16, 8, 8)),
                               torch.nn.Conv2d(16, 4, 3, padding=1)).eval()
    f = tmp_path / "tiny.onnx"
    torch.onnx.export(conv, (torch.zeros(1, 69),), str(f), opset_version=17, dynamo=False, input_names=["motion"])
    c = pocket.count_onnx(f)
    gemm = 2 * 69 * 1024 + 1024
    conv_f = 2 * 4 * 8 * 8 * 16 * 9 + 4 * 8 * 8
    assert c["by_op"] == {"Conv": conv_f, "Gemm": gemm} and c["total"] == gemm + conv_f
    assert pocket.count_torch(conv) == 2 * 69 * 1024 + 2 * 4 * 8 * 8 * 16 * 9


# ------------------------------------------------------------------------------------------------------- the bundle
def test_manifest_entry_is_hashed_and_the_runtime_loads_it(env):
    path, _, _, r = env
    manifest = load_json(path / "manifest.json")
    entry = manifest["models"]["renderer"]["variants"]["pocket"]
    assert entry["file"] == pocket.POCKET_FILE
    assert manifest["files"][pocket.POCKET_FILE]["sha256"] == sha256_file(path / pocket.POCKET_FILE)
    assert "fp32" in manifest["models"]["renderer"]["variants"]      # the other variants stay
    assert 0 < entry["gflop_per_frame"] < 2.0 and entry["latency_ms"] > 0 and entry["cpu_threads"] == 2
    assert entry["psnr_db"] == round(r.evaluation["psnr_512"], 2)
    assert entry["held_out"]["psnr_db_student"] > entry["held_out"]["psnr_db_static"]
    rt = live.BundleRuntime(path, variant="pocket", threads=1)
    assert rt.variant == "pocket" and rt.files["renderer"] == pocket.POCKET_FILE
    frame = entry["frame"]                                   # distill writes the frame graph too, and says so
    assert rt.patch is not None and list(rt.patch.box) == frame["box"]
    assert f"{pocket.FRAME_FILE}: the frame graph, {frame['box'][3]}x{frame['box'][2]} pixels" in r.summary()


def test_a_re_export_keeps_the_pocket_variant(env, tmp_path):
    """export_renderer makes fp32/fp16/int8 only; the pocket student (same portrait, same networks) stays listed."""
    import shutil

    from talkinghead.export import export_renderer

    path, lp = tmp_path / "avatar", env[1]
    shutil.copytree(env[0], path)
    before = load_json(path / "manifest.json")["models"]["renderer"]["variants"]["pocket"]
    with sf.one_thread():
        export_renderer(path, lp=lp, variants=("fp32",), progress=False, latency_frames=1)
    manifest = load_json(path / "manifest.json")
    assert manifest["models"]["renderer"]["variants"]["pocket"] == before
    assert manifest["files"][pocket.POCKET_FILE]["sha256"] == sha256_file(path / pocket.POCKET_FILE)
    for name in (pocket.FRAME_FILE, pocket.BACKGROUND_FILE):                 # and its frame graph
        assert manifest["files"][name]["sha256"] == sha256_file(path / name)
    rt = live.BundleRuntime(path, variant="pocket", threads=1)
    assert rt.variant == "pocket" and rt.patch is not None


def test_live_engine_streams_speech_through_the_pocket_renderer(env):
    from talkinghead.export import paste_module

    path, _, _, r = env
    rt = live.BundleRuntime(path, variant="pocket", threads=1)
    t = np.arange(int(0.48 * 16000)) / 16000       # 12 frames of 40 ms
    x = (np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2 * 0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    eng = live.LiveEngine(rt, mode="preview", verbose=False)
    frames = np.stack([f.image for f in eng.frames(live.ArraySource(x, 16000, chunk=320))])
    assert frames.shape == (12, *rt.portrait.shape) and eng.report.variant == "pocket"
    assert (np.abs(np.diff(frames.astype(int), axis=0)).max(axis=(1, 2, 3)) > 0).all()     # the face moves
    motion = rt.motion_offline(x)
    b = bake.load_bundle(path)
    with torch.no_grad():
        ref = paste_module(b)(r.student(torch.from_numpy(motion))).numpy()
    ref = np.rint(np.clip(ref, 0, 1) * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    assert np.abs(frames.astype(int) - ref.astype(int)).max() <= 2


# ------------------------------------------------------------------------------------------------------- bad inputs
def test_bundle_without_models_is_one_sentence(tmp_path, env):
    path = bake.bake(bake.sample_portrait(), tmp_path / "avatar", lp=env[1])
    with pytest.raises(BundleError, match=r"no exported models.*export it first"):
        pocket.distill(path, env[2], config=CFG, lp=env[1], progress=False)


def test_missing_dataset_is_one_sentence(tmp_path, env, workspace, capsys):
    with pytest.raises(DatasetError, match=r"no such dataset"):
        pocket.resolve_inputs(env[0], tmp_path / "nope.npz")
    with pytest.raises(DatasetError, match=r"no dataset; extract one"):
        pocket.resolve_inputs(env[0], None)
    assert cli.main(["distill", "--bundle", str(env[0])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "dataset.npz" in err and len(err.splitlines()) == 1


def test_one_line_dataset_is_one_sentence(env):
    ds = dataset.synthetic_dataset(n_lines=1, seed=2)
    with pytest.raises(DatasetError, match="at least 2"):
        pocket.gather_motions(ds, None, n_train=10, n_held=5)


def test_config_round_trip():
    c = dataclasses.replace(pocket.CONFIGS["full"], roi=(0, 32, 480, 448))
    assert pocket.PocketConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="activation must be one of"):
        pocket.PocketConfig(activation="swish")


# ------------------------------------------------------------------------------------------------------- architectures
def _legacy_forward(s, motion):
    """The first release's forward pass, written out (GELU, x2 bilinear before each conv, paint and blend resized
    apart, the whole W crop resized to 512 then the detail added): what a bundle saved then must still render."""
    F = torch.nn.functional
    c = s.config
    z = F.gelu(s.mlp[0]((motion - s.mean) / s.std))
    blend = (s.coef(z) @ s.basis).reshape(-1, 3, c.basis_size, c.basis_size)
    h = F.gelu(s.seed[0](z)).reshape(-1, c.seed_channels, c.grid, c.grid)
    for conv in s.stages:
        h = F.gelu(conv(F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)))
    out = s.head(h)
    fields = torch.cat([c.max_flow * torch.tanh(out[:, 0:2]), torch.sigmoid(out[:, 5:6]) * out[:, 2:5]], 1)
    w = c.warp_size
    y0, x0, hh, ww = pocket.student.scaled_roi(c.roi, w)
    f = F.interpolate(fields, size=(hh, ww), mode="bilinear", align_corners=False)
    b = F.interpolate(blend, size=(hh, ww), mode="bilinear", align_corners=False)
    g = s.grid_w + f[:, 0:2].permute(0, 2, 3, 1)
    region = F.grid_sample(s.reference_w.expand(len(motion), -1, -1, -1), g, mode="bilinear", padding_mode="border",
                           align_corners=False) + f[:, 2:5] + b
    delta = region - s.reference_w[:, :, y0:y0 + hh, x0:x0 + ww]
    face = s.reference_w + F.pad(delta, (x0, w - x0 - ww, y0, w - y0 - hh))
    face = F.interpolate(face, size=(512, 512), mode="bilinear", align_corners=False) + s.detail
    return torch.clamp(face, 0, 1)


def _random_student(config, seed=0):
    rng = np.random.default_rng(seed)
    ref = rng.uniform(0, 1, (3, 512, 512)).astype(np.float32)
    mean, std = pocket.motion_stats(rng.normal(0, 0.01, (50, 69)))
    torch.manual_seed(seed)
    s = pocket.PocketStudent(ref, mean, std, config)
    with torch.no_grad():
        for p in list(s.head.parameters()) + [s.basis, s.coef.weight]:
            p.normal_(0, 0.05)
    return s.eval()


def test_a_student_saved_before_the_new_architecture_loads_and_renders_as_then():
    old = dataclasses.replace(pocket.student.CONFIGS_V1["sample"], basis_size=32, warp_size=256,
                              roi=(96, 64, 320, 384))
    s = _random_student(old)
    state = s.state()
    for k in ("activation", "upsample", "head_kernel"):        # a bundle written before these keys existed
        del state["config"][k]
    loaded = pocket.PocketStudent.from_state(state)
    c = loaded.config
    assert (c.activation, c.upsample, c.head_kernel) == ("gelu", "bilinear", 3) and c == old
    m = torch.from_numpy(np.random.default_rng(1).normal(0, 0.03, (3, 69)).astype(np.float32))
    with torch.no_grad():
        then, now = _legacy_forward(s, m), loaded(m)
    assert float((then - now).abs().max()) < 1e-5           # the same, up to float rounding (fewer resizes now)
    assert float((then - s.reference).abs().mean()) > 1e-3  # and it does paint something


@pytest.mark.parametrize("act, up", [("relu", "shuffle"), ("leaky_relu", "bilinear")])
def test_the_new_architectures_export_with_parity_and_fused_activations(tmp_path, act, up):
    """Today's stages (`CONFIGS`): a conv at the low resolution to 4x the channels, ReLU, pixel shuffle
    (DepthToSpace): no GELU and no resize between the stages; with either option onnxruntime fuses every stage's
    activation into its Conv."""
    import onnx
    import onnxruntime as ort

    today = pocket.CONFIGS["sample"]
    assert (today.activation, today.upsample, today.head_kernel) == ("relu", "shuffle", 1)
    cfg = dataclasses.replace(today, roi=(64, 96, 384, 320), activation=act, upsample=up)
    s = _random_student(cfg)
    path = pocket.export_onnx(s, tmp_path / "pocket.onnx")
    m = np.random.default_rng(2).normal(0, 0.03, (4, 69)).astype(np.float32)
    p = pocket.parity(s, path, m)
    assert p["ok"] and p["max_abs_err"] < 1e-4, p
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    stages = len(cfg.channels)
    assert ops.count("Gelu") == 2                               # the MLP's two only
    assert ops.count("DepthToSpace") == (stages if up == "shuffle" else 0)
    # fields to the region, blend (a different size here), the region's change to 512 (+ one per bilinear stage)
    assert ops.count("Resize") == 3 + (stages if up == "bilinear" else 0)
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    opt = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    assert "Relu" not in opt and "LeakyRelu" not in opt and opt.count("FusedConv") == stages, opt
    c = pocket.count_onnx(path)
    assert c["unknown"] == [] and c["by_op"]["Relu" if act == "relu" else "LeakyRelu"] > 0


def test_shuffle_stage_is_a_conv_then_depth_to_space(tmp_path):
    """The FLOP counter knows DepthToSpace (data movement: 0) and counts the conv before it at the low resolution."""
    net = torch.nn.Sequential(torch.nn.Linear(69, 8 * 4 * 4), torch.nn.Unflatten(1, (8, 4, 4)),
                              torch.nn.Conv2d(8, 4 * 3, 3, padding=1), torch.nn.ReLU(), torch.nn.PixelShuffle(2)).eval()
    f = tmp_path / "shuffle.onnx"
    torch.onnx.export(net, (torch.zeros(1, 69),), str(f), opset_version=20, dynamo=False, input_names=["motion"])
    c = pocket.count_onnx(f)
    conv = 2 * 12 * 4 * 4 * 8 * 9 + 12 * 4 * 4
    assert c["by_op"] == {"Gemm": 2 * 69 * 128 + 128, "Conv": conv, "Relu": 12 * 16} and c["unknown"] == []
    assert "DepthToSpace" in pocket.flops.MOVEMENT


def test_teacher_time_is_estimated_and_a_gpu_is_asked_for_on_the_full_profile():
    import torch as _t

    full = pocket.estimate_note("full", _t.device("cpu"), 12.0, 3250)
    assert "10.8 h" in full and "wants a GPU" in full
    assert "GPU" not in pocket.estimate_note("full", _t.device("cuda"), 0.3, 3250)
    assert "GPU" not in pocket.estimate_note("sample", _t.device("cpu"), 0.04, 200)
    assert "16 min" in pocket.estimate_note("full", _t.device("cuda"), 0.3, 3250)
