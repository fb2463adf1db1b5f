"""The live engine (talkinghead.live): streamed frames equal the offline render, any chunking, any input rate, the
clock drops frames when rendering is slow, stops leave playable files, and a bad bundle is one clear sentence.

The bundle is the sample portrait baked and exported by `talkinghead.export.export_bundle`, with a small Audio2Motion
whose output moves and an idle track, so the export contract is tested end to end.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from talkinghead import a2m, bake, live, render  # noqa: E402
from talkinghead.audio import features_for_frames  # noqa: E402
from talkinghead.errors import BundleError, MediaError  # noqa: E402

import stage_fixtures as sf  # noqa: E402

SR = 16000
SPF = 640


# ---------------------------------------------------------------------------------------------------------- fixture
@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """(bundle folder, torch Audio2Motion, IdleMotion, PyTorch BakedRenderer(paste=True), Bundle)."""
    from talkinghead.liveportrait import load_liveportrait

    lp = load_liveportrait(profile="sample")
    path, model, idle = sf.exported_bundle(tmp_path_factory.mktemp("live") / "avatar", lp)
    b = bake.load_bundle(path)
    return path, model, idle, render.BakedRenderer(lp, b, paste=True).eval(), b


@pytest.fixture(scope="module")
def runtime(env):
    return live.BundleRuntime(env[0], threads=1)   # one thread: steadier on a shared 2-core machine


def _speechy(seconds: float, seed: int = 0) -> np.ndarray:
    """Syllable-like tone bursts with noise at 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    env_ = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    x = env_ * (0.3 * np.sin(2 * np.pi * 180 * t) + 0.2 * np.sin(2 * np.pi * 900 * t)) + 0.02 * rng.normal(size=len(t))
    return x.astype(np.float32)


def _stream(runtime, samples, sr=SR, chunk=SPF, mode="preview", **kw) -> tuple[np.ndarray, live.LiveEngine]:
    eng = live.LiveEngine(runtime, mode=mode, verbose=False, **kw)
    frames = [f.image for f in eng.frames(live.ArraySource(samples, sr, chunk=chunk))]
    return (np.stack(frames) if frames else np.zeros((0,), np.uint8)), eng


def _offline(env, samples) -> np.ndarray:
    """Offline features -> PyTorch Audio2Motion.forward (+ the idle track) -> PyTorch BakedRenderer(paste=True)."""
    _, model, idle, renderer, b = env
    feats = features_for_frames(samples)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                     # two torch threads on a busy 2-core machine run 5-10x slower
    try:
        motion = a2m.combine(a2m.predict(model, feats), idle, "idle_from_recording")
        return render.render(b, motion, renderer=renderer, progress=False)
    finally:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------------------------ tests
def test_streamed_frames_equal_offline_render(env, runtime):
    x = _speechy(0.6)
    streamed, eng = _stream(runtime, x, chunk=SPF)
    offline = _offline(env, x)
    assert streamed.shape == offline.shape == (15, *env[4].portrait.shape)
    diff = np.abs(streamed.astype(int) - offline.astype(int))
    assert diff.max() <= 2, diff.max()
    assert (np.abs(np.diff(streamed.astype(int), axis=0)).max(axis=(1, 2, 3)) > 0).all()  # the face moves
    r = eng.report
    assert (r.frames, r.rendered, r.dropped) == (15, 15, 0)
    assert abs(sum(r.shares.values()) - 1) < 1e-9 and r.stage_s["renderer"] > 0 and r.latency_p95_ms > 0
    # the ONNX whole-utterance path agrees too
    motion = runtime.motion_offline(x)
    assert np.abs(runtime.render(motion).astype(int) - offline.astype(int)).max() <= 2


def test_any_chunk_size_gives_identical_frames(runtime):
    x = _speechy(0.35, seed=3)
    ref, _ = _stream(runtime, x, chunk=640)
    assert len(ref) == 9                                                   # two batches of 4 and a tail of 1
    for chunk in (160, 333, 16000):
        got, _ = _stream(runtime, x, chunk=chunk)
        np.testing.assert_array_equal(got, ref, err_msg=f"chunk {chunk}")


def test_44k_stereo_array_and_file(runtime, tmp_path):
    import soundfile as sf

    from talkinghead.audio import load_audio

    n = int(0.3 * 44100)
    t = np.arange(n) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 220 * t), 0.5 * np.sin(2 * np.pi * 330 * t)], 1).astype(np.float32) * 0.3
    frames, eng = _stream(runtime, stereo, sr=44100, chunk=700)
    n16 = len(load_audio(stereo, sr=SR, orig_sr=44100))
    assert len(frames) == -(-n16 // SPF) == eng.report.frames
    sf.write(tmp_path / "a.wav", stereo, 44100, subtype="FLOAT")
    eng2 = live.LiveEngine(runtime, mode="preview", verbose=False)
    from_file = np.stack([f.image for f in eng2.frames(live.FileSource(tmp_path / "a.wav", realtime=False))])
    np.testing.assert_array_equal(from_file, frames)


def test_empty_and_silent_input(runtime, tmp_path):
    frames, eng = _stream(runtime, np.zeros(0, np.float32))
    assert len(frames) == 0 and eng.report.frames == 0
    sink = live.VideoSink(tmp_path / "empty.mp4", verbose=False)
    live.LiveEngine(runtime, mode="preview", verbose=False).run(live.ArraySource(np.zeros(0)), sink)
    assert sink.path is None and not (tmp_path / "empty.mp4").exists()
    silent, eng = _stream(runtime, np.zeros(5000, np.float32), chunk=320)      # idle avatar, not an error
    assert silent.shape[0] == 8 and eng.report.rendered == 8
    assert np.abs(np.diff(silent.astype(int), axis=0)).max() > 0              # idle motion moves


def test_mp4_durations_agree_and_stop_leaves_playable_file(runtime, tmp_path):
    from talkinghead.video import durations

    out = tmp_path / "full.mp4"
    r = live.LiveEngine(runtime, mode="preview", verbose=False).run(live.ArraySource(_speechy(0.5)),
                                                                    live.VideoSink(out, verbose=False))
    v, a = durations(out)
    assert r.frames == 13 and abs(v - 13 / 25) < 1e-6 and abs(v - a) <= 1 / 25

    eng = live.LiveEngine(runtime, mode="preview", verbose=False)

    class StopAt(live.Sink):
        def frame(self, f):
            if f.index == 5:
                eng.stop()

    out2 = tmp_path / "stopped.mp4"
    r2 = eng.run(live.ArraySource(_speechy(3.0), chunk=320), [live.VideoSink(out2, verbose=False), StopAt()])
    assert r2.stopped and 6 <= r2.frames < 75
    v, a = durations(out2)
    assert abs(v - r2.frames / 25) < 1e-6 and abs(v - a) <= 1 / 25
    assert not list(tmp_path.glob(".*part*"))                                # no temporary leftovers


def test_realtime_slow_renderer_drops_frames(runtime, capsys, monkeypatch):
    import time

    fast = runtime.render

    def slow(motion, times=None):
        time.sleep(0.1)
        return fast(motion, times)

    monkeypatch.setattr(runtime, "render", slow)
    eng = live.LiveEngine(runtime, mode="realtime", drop_frames=True)
    frames = list(eng.frames(live.ArraySource(_speechy(1.0), realtime=True)))
    r = eng.report
    assert [f.index for f in frames] == list(range(25)) and r.frames == 25
    assert r.dropped > 5 and r.rendered + r.dropped == 25 and r.rendered >= 3     # still renders what it can
    assert all(f.repeated == (f.latency_s is None) for f in frames)
    assert capsys.readouterr().out.count("slower than real time") == 1
    assert r.achieved_fps < 25 and "dropped" in r.summary() and "| renderer |" in r.table()


def test_bundle_errors(env, tmp_path):
    bad = tmp_path / "avatar"
    shutil.copytree(env[0], bad)
    with open(bad / "renderer.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError) as e:
        live.BundleRuntime(bad)
    msg = str(e.value)
    assert "renderer.onnx" in msg and "sha256" in msg and "\n" not in msg
    with pytest.raises(BundleError, match="variant 'int8'"):
        live.BundleRuntime(env[0], variant="int8")
    plain = bake.bake(bake.sample_portrait(), tmp_path / "plain",
                      lp=__import__("talkinghead.liveportrait", fromlist=["x"]).load_liveportrait(profile="sample"))
    with pytest.raises(BundleError, match="no exported models"):
        live.BundleRuntime(plain)


def test_speak_text_to_mp4(env, runtime, tmp_path):
    pytest.importorskip("espeakng_loader")
    from talkinghead.video import durations

    assert live.language_of("你好") == "zh" and live.language_of("Hello") == "en"
    assert [lang for lang, _ in live.script_runs("你好，世界。Hello there!")] == ["zh", "en"]
    res = live.speak(env[0], "你好", tmp_path / "s.mp4", runtime=runtime)
    assert res.path == tmp_path / "s.mp4" and res.language == "zh" and res.report.dropped == 0
    v, a = durations(res.path)
    assert abs(v - res.report.frames / 25) < 1e-6 and abs(v - a) <= 1 / 25 and "->" in res.summary()
    with pytest.raises(MediaError, match="does not exist"):
        live.speak(env[0], "no_such_take.wav", tmp_path / "x.mp4", runtime=runtime)


def test_mic_without_sounddevice_is_one_sentence():
    try:
        import sounddevice  # noqa: F401
        pytest.skip("sounddevice is installed")
    except (ImportError, OSError):
        pass
    with pytest.raises(MediaError, match="sounddevice"):
        live.MicSource()


# ------------------------------------------------------------------------------------------------- no torch, closed world
NO_TORCH = r"""
import importlib.abc, json, sys

BLOCKED = ("torch", "torchvision", "talkinghead.a2m", "talkinghead.export", "talkinghead.bake", "talkinghead.pipeline",
           "talkinghead.render", "talkinghead.liveportrait", "talkinghead.dataset", "talkinghead.tts",
           "talkinghead.corpus", "talkinghead.motion", "talkinghead.sample")


class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"{name} is blocked: the runtime must not need it")
        return None


sys.meta_path.insert(0, Block())
try:
    import torch  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("the blocker let torch in")
import numpy as np

from talkinghead import bundle, idle, live, onnxrt, pixels  # noqa: F401
from talkinghead.live import engine, report, runtime, sinks, sources  # noqa: F401

b = bundle.load_bundle(sys.argv[1])
rt = live.BundleRuntime(sys.argv[1], threads=1)
eng = live.LiveEngine(rt, mode="preview", verbose=False)
frames = np.stack([f.image for f in eng.frames(live.ArraySource(np.load(sys.argv[2]), chunk=320))])
np.save(sys.argv[3], frames)
bad = sorted(m for m in sys.modules if m.split(".")[0] == "torch" or any(m.startswith(x) for x in BLOCKED))
print(json.dumps({"frames": len(frames), "loaded": bad, "idle": rt.idle_loop is not None}))
"""


def test_runtime_runs_where_torch_cannot_be_imported(env, runtime, tmp_path):
    """The runtime package (bundle, live's runtime/sources/sinks/report/engine, idle, onnxrt) imports and renders a
    stream in a process where `import torch` and every training module fail; the frames equal this process's."""
    import json
    import subprocess
    import sys

    x = _speechy(0.3, seed=5)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "no_torch.py").write_text(NO_TORCH)
    r = subprocess.run([sys.executable, str(tmp_path / "no_torch.py"), str(env[0]), str(tmp_path / "x.npy"),
                        str(tmp_path / "frames.npy")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"frames": 8, "loaded": [], "idle": True}
    ref, _ = _stream(runtime, x, chunk=320)
    np.testing.assert_array_equal(np.load(tmp_path / "frames.npy"), ref)


def test_idle_player_is_the_training_idle_motion(env, runtime):
    """`a2m.IdleMotion.sample(n, seed)` == the runtime's idle frames 0..n-1 (one numpy player, `talkinghead.idle`)."""
    idle = env[2]
    for seed in (0, 3):
        np.testing.assert_array_equal(runtime.idle(0, 40, seed), idle.sample(40, seed))
        np.testing.assert_array_equal(runtime.idle(7, 5, seed), idle.sample(12, seed)[7:])


def _tamper(env, tmp_path, change) -> "Path":
    import json

    bad = tmp_path / "avatar"
    shutil.copytree(env[0], bad)
    m = json.loads((bad / "manifest.json").read_text())
    change(m, bad)
    (bad / "manifest.json").write_text(json.dumps(m))
    return bad


def _one_sentence(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg.endswith(".") and msg.count(". ") == 0, msg
    assert e.value.__cause__ is None and (e.value.__context__ is None or e.value.__suppress_context__)
    return msg


def test_runtime_loads_models_only_through_the_hash_list(env, tmp_path):
    import os

    def unhashed(m, bad):                       # a model the manifest names but does not hash
        shutil.copy(bad / "renderer.onnx", bad / "other.onnx")
        m["models"]["renderer"]["variants"]["fp32"]["file"] = "other.onnx"

    def outside(m, bad):                        # an absolute path to a real model outside, "hashed"
        m["models"]["paste"]["file"] = str(env[0] / "paste.onnx")
        m["files"][str(env[0] / "paste.onnx")] = m["files"]["paste.onnx"]

    def dotdot(m, bad):
        m["models"]["audio2motion"]["idle"]["file"] = "../idle.npy"
        shutil.copy(bad / "idle.npy", bad.parent / "idle.npy")

    for change, name in ((unhashed, "other.onnx"), (outside, str(env[0] / "paste.onnx")), (dotdot, "../idle.npy")):
        bad = _tamper(env, tmp_path / change.__name__, change)
        for verify in (True, False):
            with pytest.raises(BundleError) as e:
                live.BundleRuntime(bad, verify=verify)
            assert repr(name) in _one_sentence(e), change.__name__

    def link(m, bad):                           # renderer.onnx a symlink to an identical file outside
        (bad / "renderer.onnx").unlink()
        os.symlink(env[0] / "renderer.onnx", bad / "renderer.onnx")

    bad = _tamper(env, tmp_path / "link", link)
    for verify in (True, False):
        with pytest.raises(BundleError) as e:
            live.BundleRuntime(bad, verify=verify)
        assert str(bad / "renderer.onnx") in _one_sentence(e) and "symbolic link" in str(e.value)


@pytest.mark.parametrize("change", [
    lambda m: m["models"].__setitem__("audio2motion", "audio2motion.onnx"),
    lambda m: m["models"]["audio2motion"].__setitem__("lookahead_frames", "two"),
    lambda m: m["models"]["audio2motion"].__setitem__("conv_state_shape", 5),
    lambda m: m["models"]["renderer"].__setitem__("variants", ["fp32"]),
    lambda m: m["models"]["paste"].__setitem__("height", {"h": 1}),
    lambda m: m["models"]["audio2motion"]["idle"].__setitem__("dims", [[0, 1], [2]]),
    lambda m: m["models"]["audio2motion"].__setitem__("idle", [1, 2]),
], ids=["a2m-str", "lookahead-str", "state-int", "variants-list", "height-dict", "idle-dims", "idle-list"])
def test_runtime_manifest_with_wrong_types_is_one_sentence(env, tmp_path, change):
    bad = _tamper(env, tmp_path, lambda m, _: change(m))
    with pytest.raises(BundleError) as e:
        live.BundleRuntime(bad, verify=False)
    assert str(bad / "manifest.json") in _one_sentence(e)


def test_runtime_streams_through_the_bundles_features_onnx(env, runtime, tmp_path):
    """Export writes features.onnx (the graph the browser page runs); the runtime streams with it, and its motion
    equals the motion of the same runtime on `talkinghead.audio`'s front end (the bundle without that model)."""
    from talkinghead.features_onnx import FEATURES_FILE, OnnxFeatures

    b = bake.load_bundle(env[0])
    assert b.models["features"]["file"] == FEATURES_FILE and FEATURES_FILE in b.manifest["files"]
    assert isinstance(runtime.feature_stream(), OnnxFeatures)
    x = _speechy(0.5, seed=5)
    np.testing.assert_allclose(runtime.feature_stream().features_for_frames(x), features_for_frames(x), atol=1e-5)
    plain = tmp_path / "plain"
    shutil.copytree(env[0], plain)
    m = bake.load_bundle(plain).manifest
    del m["models"]["features"]
    del m["files"][FEATURES_FILE]
    (plain / FEATURES_FILE).unlink()
    (plain / "manifest.json").write_text(__import__("json").dumps(m))
    rt = live.BundleRuntime(plain, threads=1)
    assert rt.features_session is None and not isinstance(rt.feature_stream(), OnnxFeatures)
    np.testing.assert_allclose(runtime.motion_offline(x), rt.motion_offline(x), atol=1e-5)
    streamed, _ = _stream(runtime, x, chunk=333)
    plain_streamed, _ = _stream(rt, x, chunk=333)
    assert np.abs(streamed.astype(int) - plain_streamed.astype(int)).max() <= 1


def test_torch_renderer_backend_in_the_runtime(env, runtime, monkeypatch):
    """The `torch` backend (issue 11) renders inside the runtime like renderer.onnx + paste.onnx, skips loading
    those two sessions, and the runtime and the timing report name it; "auto" is onnx without a CUDA GPU."""
    from talkinghead.live.speech import open_runtime
    from talkinghead.torch_renderer import TorchBackend

    rt = live.BundleRuntime(env[0], threads=1, renderer=TorchBackend(env[0], device="cpu", log=None))
    assert set(rt.sessions) == {"audio2motion"} and rt.renderer_name == "torch (PyTorch on cpu (float32, eager))"
    m = np.zeros((3, 69), np.float32)
    m[1, 3 * 19 + 1], m[2, 64] = 0.03, 8.0
    times = {}
    got, want = rt.render(m, times), runtime.render(m)
    assert got.shape == want.shape and np.abs(got.astype(int) - want).max() <= 2 and times["renderer"] > 0
    frames, eng = _stream(rt, _speechy(0.4))
    report = eng.report
    assert len(frames) == report.frames > 0 and report.renderer.startswith("torch (PyTorch on cpu") and "renderer backend" in report.table()
    assert runtime.renderer_name == "onnx (CPUExecutionProvider)" and "renderer backend onnx" in runtime.describe()
    auto = open_runtime(env[0], renderer="auto", verbose=False, threads=1)
    assert auto.frame_renderer is None and auto.renderer_name.startswith("onnx (")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(Exception, match="auto, onnx, torch"):
        open_runtime(env[0], renderer="tensorrt", verbose=False)


def test_auto_renderer_falls_back_to_onnx_when_torch_cannot_start(env, monkeypatch, capsys):
    from talkinghead import torch_renderer
    from talkinghead.errors import WeightsError
    from talkinghead.live.speech import open_runtime

    def no_weights(*a, **k):
        raise WeightsError("liveportrait/base_models/warping_module.pth: missing; download it.")

    monkeypatch.setattr(torch_renderer, "choose_backend", lambda r="auto": ("torch", "a CUDA GPU") if r == "auto"
                        else (r, "asked for explicitly"))
    monkeypatch.setattr(torch_renderer, "TorchBackend", no_weights)
    rt = open_runtime(env[0], renderer="auto", threads=1)
    assert rt.frame_renderer is None and "cannot start here" in capsys.readouterr().out
    with pytest.raises(WeightsError):
        open_runtime(env[0], renderer="torch", threads=1)
