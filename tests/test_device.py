"""talkinghead.device (one device rule, precision) and the renderer following its networks' device and dtype.

CPU tests use monkeypatched availability for the CUDA/MPS branches; the tests marked `cuda` run only where PyTorch
sees a CUDA GPU (benchmarks/gpu_check.sh runs them there) and skip elsewhere.
"""
from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import stage_fixtures as sf
from talkinghead import bake, device, layout, render
from talkinghead.errors import DeviceError, TalkingHeadError
from talkinghead.liveportrait import load_liveportrait

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


# ------------------------------------------------------------------------------------------------ the device rule
@pytest.fixture
def machine(monkeypatch):
    """Pretend availability: machine(cuda=bool, mps=bool, gpus=int)."""
    def set_(cuda=False, mps=False, gpus=1):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus if cuda else 0)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Fake GPU 80GB")
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
        monkeypatch.delenv(device.DEVICE_ENV, raising=False)
    return set_


@pytest.mark.parametrize("cuda_, mps, want", [(True, True, "cuda:0"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_prefers_cuda_then_mps_then_cpu(machine, cuda_, mps, want):
    machine(cuda=cuda_, mps=mps)
    dev, why = device.resolve_device("auto")
    assert str(dev) == want
    assert device.resolve_device(None)[0] == dev and device.get_device() == dev
    assert isinstance(why, str) and len(why) > 10
    if want == "cuda:0":
        assert "Fake GPU" in why


def test_auto_skips_mps_where_torch_lacks_its_3d_grid_sampling(machine, monkeypatch):
    machine(cuda=False, mps=True)
    monkeypatch.setattr(torch, "__version__", "2.8.1")
    dev, why = device.resolve_device()
    assert dev == torch.device("cpu") and "torch >= 2.9" in why
    monkeypatch.setattr(torch, "__version__", "2.10.0+cpu")
    assert device.get_device() == torch.device("mps")


def test_explicit_devices_are_honoured(machine):
    machine(cuda=True, mps=True, gpus=2)
    assert device.get_device("cpu") == torch.device("cpu")          # CPU even where a GPU is present
    assert device.get_device("cuda") == torch.device("cuda", 0)
    assert device.get_device("cuda:1") == torch.device("cuda", 1)
    assert device.get_device("mps") == torch.device("mps")
    assert device.resolve_device("cpu")[1] == "asked for explicitly"


@pytest.mark.parametrize("name, words", [("cuda", "no CUDA GPU"), ("cuda:0", "no CUDA GPU"), ("mps", "MPS"),
                                         ("tpu", "auto, cpu, cuda"), ("gpu0", "auto, cpu, cuda")])
def test_absent_or_unknown_device_is_one_sentence(machine, name, words):
    machine(cuda=False, mps=False)
    with pytest.raises(DeviceError, match=words) as e:
        device.resolve_device(name)
    msg = str(e.value)
    assert isinstance(e.value, TalkingHeadError) and isinstance(e.value, ValueError)
    assert msg.count(". ") == 0 and msg.endswith(".") and repr(name) in msg


def test_gpu_index_beyond_the_machine(machine):
    machine(cuda=True, gpus=2)
    with pytest.raises(DeviceError, match=r"2 CUDA GPU\(s\)"):
        device.resolve_device("cuda:2")


def test_auto_follows_the_environment(machine, monkeypatch):
    machine(cuda=True)
    monkeypatch.setenv(device.DEVICE_ENV, "cpu")
    dev, why = device.resolve_device("auto")
    assert dev == torch.device("cpu") and device.DEVICE_ENV in why
    assert device.get_device("cuda") == torch.device("cuda", 0)       # an explicit argument beats the environment
    monkeypatch.setenv(device.DEVICE_ENV, "auto")
    assert device.get_device() == torch.device("cuda", 0)
    machine(cuda=False)
    monkeypatch.setenv(device.DEVICE_ENV, "cuda")
    with pytest.raises(DeviceError, match=r"\$TALKINGHEAD_DEVICE"):
        device.get_device()


def test_tests_run_on_the_cpu():
    """tests/conftest.py pins the rule to the CPU, so expected numbers are the CPU's on any machine."""
    assert device.get_device() == torch.device("cpu")
    assert load_liveportrait(profile="sample").device == torch.device("cpu")


def test_loader_refuses_an_absent_gpu_in_one_sentence(machine):
    machine(cuda=False)
    with pytest.raises(DeviceError, match="device='cpu'"):
        load_liveportrait(profile="sample", device="cuda")


# ------------------------------------------------------------------------------------------------ precision rule
def test_autocast_only_on_cuda_float32():
    assert device.uses_autocast(torch.device("cuda", 0)) and device.uses_autocast("cuda", torch.float32)
    assert not device.uses_autocast("cuda", torch.float16)          # already-half networks: no second cast
    for d in ("cpu", "mps"):
        assert not device.uses_autocast(d)
        with device.autocast(torch.device(d)):                      # nothing switched on, no CPU bfloat16
            assert not torch.is_autocast_enabled("cpu")
            assert torch.get_autocast_dtype("cpu") == torch.bfloat16  # (the default, untouched) ...
            y = torch.ones(2, 2) @ torch.ones(2, 2)
        assert y.dtype == torch.float32                              # ... and not used
    assert device.precision_name("cuda") == "float32 weights under autocast float16"
    assert device.precision_name("cpu") == "float32"
    assert device.render_batch_size("cpu") == 8 and device.render_batch_size("mps") == 4


@pytest.mark.parametrize("gib, batch", [(141, 16), (80, 16), (16, 8), (8, 4)])
def test_cuda_render_batch_follows_gpu_memory(monkeypatch, gib, batch):
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: SimpleNamespace(total_memory=gib * 2**30))
    assert device.render_batch_size(torch.device("cuda", 0)) == batch


def test_describe_for_the_machine_report():
    d = device.describe("cpu")
    assert d["device"] == "cpu" and d["precision"] == "float32" and d["render_batch"] == 8 and d["device_reason"]


def test_provider_order(monkeypatch):
    from talkinghead import onnxrt

    have = ["CPUExecutionProvider", "CUDAExecutionProvider", "AzureExecutionProvider", "TensorrtExecutionProvider"]
    assert onnxrt.ordered_providers(have) == ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                              "CPUExecutionProvider"]
    assert onnxrt.ordered_providers(["CoreMLExecutionProvider", "CPUExecutionProvider"]) == [
        "CoreMLExecutionProvider", "CPUExecutionProvider"]
    assert onnxrt.ordered_providers([]) == ["CPUExecutionProvider"]
    ort = onnxrt.ort()
    monkeypatch.setattr(ort, "get_available_providers", lambda: have)
    assert onnxrt.resolve_providers("auto") == onnxrt.resolve_providers("gpu") == onnxrt.ordered_providers(have)
    assert onnxrt.resolve_providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnxrt.resolve_providers(None) == ["CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert onnxrt.resolve_providers("auto") == ["CPUExecutionProvider"]


# ------------------------------------------------------------------------------------------------ renderer follows
@pytest.fixture(scope="module")
def lp():
    return load_liveportrait(profile="sample", device="cpu")        # our own copy: tests below convert it


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    with sf.one_thread():
        return bake.load_bundle(bake.bake(sf.astronaut(), tmp_path_factory.mktemp("dev") / "avatar",
                                          lp=sf.liveportrait(), name="a.png"))


@pytest.fixture(scope="module")
def motions():
    m = layout.empty(3)
    m[1, 3 * 19 + 1], m[2, 64] = 0.03, 8.0
    return m


def _frames(renderer, motions):
    with torch.no_grad(), sf.one_thread():
        return render.to_uint8(renderer(torch.from_numpy(motions).to(next(renderer.parameters()).dtype)))


def test_renderer_follows_a_dtype_change(lp, bundle, motions):
    r = render.BakedRenderer(lp, bundle).eval()
    ref = _frames(r, motions)
    try:
        r.to(torch.float64)
        assert all(b.dtype == torch.float64 for b in r.buffers(recurse=False)) and r.portrait.dtype == torch.float64
        f64 = _frames(r, motions)
    finally:
        r.to(torch.float32)
    assert all(b.dtype == torch.float32 for b in r.buffers(recurse=False))
    assert np.abs(f64.astype(int) - ref).max() <= 1 and render.psnr(f64, ref) > 50
    assert np.array_equal(_frames(r, motions), ref)                  # and back: float32 -> 64 -> 32 is lossless


def test_renderer_built_from_converted_networks(lp, bundle, motions):
    ref = _frames(render.BakedRenderer(lp, bundle).eval(), motions)
    nets = {k: copy.deepcopy(getattr(lp, k)).to(torch.float64)
            for k in ("warping_module", "spade_generator", "stitching_retargeting_module")}
    r = render.BakedRenderer(SimpleNamespace(**nets, dtype=torch.float32), bundle).eval()  # lp.dtype is stale
    assert {b.dtype for b in r.buffers(recurse=False)} == {torch.float64}
    f64 = _frames(r, motions)
    assert np.abs(f64.astype(int) - ref).max() <= 1


def test_frame_renderer_on_cpu_is_the_plain_forward(lp, bundle, motions):
    r = render.BakedRenderer(lp, bundle).eval()
    fr = render.FrameRenderer(r, batch_size=3)
    assert not fr.autocast and not fr.compile and fr.status == "eager"
    assert not render.FrameRenderer(r, autocast=True).autocast        # never a CPU (bfloat16) autocast, even asked
    with sf.one_thread():
        out = fr.frames(motions)
    assert out.shape == (3, *bundle.portrait.shape) and np.array_equal(out, _frames(r, motions))
    assert fr.frames(np.zeros((0, 69), np.float32)).shape == (0, *bundle.portrait.shape)


def test_compile_failure_falls_back_to_eager_and_says_why(lp, bundle, motions, monkeypatch):
    def broken_compile(fn, **kw):
        def call(x):
            raise RuntimeError("no working C++ compiler found\nlong details")
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    said = []
    r = render.BakedRenderer(lp, bundle).eval()
    fr = render.FrameRenderer(r, compile=True, batch_size=3, log=said.append)
    with sf.one_thread():
        out = fr.frames(motions)
    assert np.array_equal(out, _frames(r, motions))
    assert "about 30 s" in said[0]                                    # the warm-up is announced ...
    assert "torch.compile failed (RuntimeError: no working C++ compiler found)" in said[1]  # ... and the fall-back
    assert not fr.compile and fr.status.startswith("eager (torch.compile failed")
    assert fr.frames(motions[:1]).shape[0] == 1 and len(said) == 2    # said once


def test_compiled_path_pads_short_batches_to_two_shapes(lp, bundle, motions, monkeypatch):
    shapes = []

    def fake_compile(fn, **kw):
        assert kw.get("dynamic") is False
        return lambda x: (shapes.append(tuple(x.shape)), fn(x))[1]

    monkeypatch.setattr(torch, "compile", fake_compile)
    r = render.BakedRenderer(lp, bundle).eval()
    g_hooks = sum(len(m._forward_pre_hooks) for m in r.spade_generator.modules())
    fr = render.FrameRenderer(r, compile=True, batch_size=4, log=lambda s: None)
    with sf.one_thread():
        out = fr.frames(np.concatenate([motions, motions[:2]]))       # 5 frames: 4 + 1
        six = fr.frames(np.concatenate([motions, motions]))           # 6 frames: 4 + 2 padded to 4
        one = fr.frames(motions[:1])                                  # batch 1 stays 1
    assert shapes == [(4, 69), (1, 69), (4, 69), (4, 69), (1, 69)]
    assert out.shape[0] == 5 and six.shape[0] == 6 and one.shape[0] == 1
    assert np.array_equal(six[3:], six[:3])
    assert np.abs(out[:3].astype(int) - _frames(r, motions)).max() <= 1   # G folded: same numbers in eval mode
    assert sum(len(m._forward_pre_hooks) for m in r.spade_generator.modules()) == g_hooks  # caller's G untouched


# ------------------------------------------------------------------------------------------------ live torch backend
def test_backend_choice(machine, monkeypatch):
    from talkinghead.torch_renderer import choose_backend

    machine(cuda=False)
    assert choose_backend("auto")[0] == "onnx" and choose_backend()[0] == "onnx"
    machine(cuda=True)
    name, why = choose_backend("auto")
    assert name == "torch" and "Fake GPU" in why
    monkeypatch.setenv(device.DEVICE_ENV, "cpu")                       # the device rule decides, as everywhere
    assert choose_backend("auto")[0] == "onnx"
    monkeypatch.delenv(device.DEVICE_ENV)
    assert choose_backend("onnx") == ("onnx", "asked for explicitly") and choose_backend("TORCH")[0] == "torch"
    with pytest.raises(TalkingHeadError, match="auto, onnx, torch"):
        choose_backend("tensorrt")


def test_torch_backend_renders_like_render(bundle, motions):
    from talkinghead.torch_renderer import TorchBackend

    tb = TorchBackend(bundle.path, device="cpu", log=None)
    assert tb.device == torch.device("cpu") and (tb.height, tb.width) == bundle.portrait.shape[:2]
    times = {}
    with sf.one_thread():
        out = tb.render(motions, times)
        ref = render.render(bundle, motions, lp=load_liveportrait(profile="sample", device="cpu"), batch_size=3,
                            progress=False)
    assert out.dtype == np.uint8 and np.abs(out.astype(int) - ref).max() <= 1
    assert times["renderer"] > 0 and "PyTorch on cpu (float32, eager)" == tb.describe()


# ------------------------------------------------------------------------------------------------ CUDA (skipped here)
@cuda
def test_cuda_renderer_autocast_psnr(bundle, motions, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)    # a true float32 reference on the GPU
    lp_gpu = load_liveportrait(profile="sample", device="cuda")
    ref = _frames(render.BakedRenderer(load_liveportrait(profile="sample", device="cpu"), bundle).eval(), motions)
    r = render.BakedRenderer(lp_gpu, bundle).eval()
    assert {b.device.type for b in r.buffers()} == {"cuda"}
    fp32 = render.FrameRenderer(r, compile=False, autocast=False)
    fast = render.FrameRenderer(r, compile=False)
    assert fast.autocast and fast.batch_size == device.render_batch_size(fast.device)
    a, b = fp32.frames(motions), fast.frames(motions)
    print(f"CUDA fp32 vs CPU: {render.psnr(a, ref):.1f} dB; autocast vs CUDA fp32: {render.psnr(b, a):.1f} dB")
    assert render.psnr(a, ref) > 40
    assert render.psnr(b, a) > 20                                    # full size measured 29.2 dB (issue 11)


@cuda
def test_cuda_compiled_render_matches_eager(bundle, motions):
    r = render.BakedRenderer(load_liveportrait(profile="sample", device="cuda"), bundle).eval()
    eager = render.FrameRenderer(r, compile=False).frames(motions)
    said = []
    fr = render.FrameRenderer(r, compile="auto", log=said.append)
    out = fr.frames(motions)
    print(said, fr.status)
    assert render.psnr(out, eager) > 20
    assert fr.status.startswith("compiled") or "failed" in said[-1]


@cuda
def test_cuda_render_default_is_the_gpu(bundle, motions, monkeypatch):
    monkeypatch.setenv(device.DEVICE_ENV, "auto")
    assert device.get_device().type == "cuda"
    frames = render.render(bundle, motions, progress=False, compile=False)
    assert frames.shape == (3, *bundle.portrait.shape)


# ------------------------------------------------------------------------------------------------ report and CLI
def test_machine_report_says_the_device_and_why(monkeypatch):
    from talkinghead.machine import format_report, machine_report

    r = machine_report()
    assert r["device"] == "cpu" and device.DEVICE_ENV in r["device_reason"] and r["precision"] == "float32"
    assert "device_reason" in format_report(r)
    monkeypatch.setenv(device.DEVICE_ENV, "tpu")                       # a bad setting is reported, never raised
    assert machine_report()["device"].startswith("none usable: device='tpu'")


def test_cli_device_flag(tmp_path, monkeypatch, capsys):
    from talkinghead import cli

    import os

    for var in (device.DEVICE_ENV, "TALKINGHEAD_PROFILE", "TALKINGHEAD_WORKSPACE"):   # restored after the test
        monkeypatch.setenv(var, os.environ.get(var, "auto"))
    with pytest.raises(SystemExit) as e:
        cli.main(["setup", "--device", "tpu"])
    assert e.value.code == 2 and "--device" in capsys.readouterr().err
    assert cli.main(["setup", "--profile", "sample", "--device", "cpu", "--workspace", str(tmp_path)]) == 0
    assert os.environ[device.DEVICE_ENV] == "cpu"
    out = capsys.readouterr().out
    assert "device_reason : $TALKINGHEAD_DEVICE=cpu asks for it" in out
    with pytest.raises(SystemExit):
        cli.main(["speak", "--help"])
    assert "--renderer {auto,onnx,torch}" in capsys.readouterr().out
