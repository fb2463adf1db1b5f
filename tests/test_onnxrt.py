"""talkinghead.onnxrt (the one onnxruntime session builder), talkinghead.pixels.to_uint8 and talkinghead.idle."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from talkinghead import idle, layout, onnxrt, pixels
from talkinghead.errors import TalkingHeadError, WeightsError

ort = pytest.importorskip("onnxruntime")


def _identity_model() -> bytes:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def test_providers_resolve_to_what_onnxruntime_has():
    have = ort.get_available_providers()
    assert onnxrt.resolve_providers(None) == onnxrt.resolve_providers("cpu") == ["CPUExecutionProvider"]
    auto = onnxrt.resolve_providers("auto")                 # every accelerator it has, fastest first, CPU last
    assert auto == onnxrt.ordered_providers(have) and auto[-1] == "CPUExecutionProvider"
    assert ("CUDAExecutionProvider" in auto) == ("CUDAExecutionProvider" in have)
    assert onnxrt.resolve_providers(["NoSuchProvider"]) == ["CPUExecutionProvider"]
    assert onnxrt.resolve_providers([("CPUExecutionProvider", {})]) == [("CPUExecutionProvider", {})]
    assert onnxrt.provider_names([("CUDAExecutionProvider", {}), "CPUExecutionProvider"]) == \
        "CUDAExecutionProvider, CPUExecutionProvider"


def test_session_runs_a_model_from_bytes_and_from_a_file(tmp_path):
    model = _identity_model()
    (tmp_path / "m.onnx").write_bytes(model)
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)
    for src in (model, tmp_path / "m.onnx"):
        s = onnxrt.session(src, threads=1)
        np.testing.assert_array_equal(s.run(None, {"x": x})[0], [[0.0, 0.5, 2.0]])
        assert onnxrt.input_dtype(s) is np.float32


def test_idle_threads_sleep_unless_asked_to_spin():
    # several sessions run one after another in the live runtime: spinning threads would steal the next one's cores
    model = _identity_model()
    entry = "session.intra_op.allow_spinning"
    assert onnxrt.session(model, threads=2).get_session_options().get_session_config_entry(entry) == "0"
    assert onnxrt.session(model, threads=2, spin=True).get_session_options().get_session_config_entry(entry) == "1"
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = onnxrt.session(model, options=so, threads=2)         # prepared options: threads and spinning set here too
    assert s.get_session_options().intra_op_num_threads == 2
    assert s.get_session_options().get_session_config_entry(entry) == "0"


def test_a_broken_model_is_the_callers_one_sentence(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(WeightsError) as e:
        onnxrt.session(bad, error=lambda err: WeightsError(f"{bad}: corrupt ({type(err).__name__}); download it again."))
    assert str(bad) in str(e.value) and e.value.__suppress_context__ and e.value.__cause__ is None
    with pytest.raises(Exception) as raw:                       # no mapping: onnxruntime's own error
        onnxrt.session(bad)
    assert not isinstance(raw.value, TalkingHeadError)


def test_missing_onnxruntime_is_one_sentence(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)       # `import onnxruntime` now raises ImportError
    with pytest.raises(TalkingHeadError, match="pip install onnxruntime"):
        onnxrt.session(b"")


def test_to_uint8_clips_rounds_half_to_even_and_moves_channels_last():
    x = np.array([-0.5, 0.0, 0.5 / 255, 1.5 / 255, 2.5 / 255, 1.0, 7.0], np.float32)
    frames = np.broadcast_to(x, (1, 3, 2, 7))
    out = pixels.to_uint8(frames)
    assert out.shape == (1, 2, 7, 3) and out.dtype == np.uint8 and out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out[0, 0, :, 0], [0, 0, 0, 2, 2, 255, 255])


def test_idle_loop_plays_cyclically_from_a_seeded_start():
    rng = np.random.default_rng(0)
    track = np.cumsum(rng.normal(0, 0.05, (100, 4)), 0).astype(np.float32)
    dims = np.array([3, 40, 63, 68])
    loop = idle.IdleLoop.from_track(track, dims, crossfade=8)
    m = len(loop.loop)
    assert 50 <= m <= 92 and np.array_equal(loop.loop[8:], track[8:m])      # the cut is in the second half
    a = loop.frames(0, 2 * m + 5, seed=4)
    assert a.shape == (2 * m + 5, layout.MOTION_DIM) and not a[:, np.setdiff1d(np.arange(69), dims)].any()
    np.testing.assert_array_equal(a[:m], a[m:2 * m])                         # periodic
    np.testing.assert_array_equal(loop.frames(10, 5, seed=4), a[10:15])      # any window of the same stream
    assert a[0, 3] == loop.loop[loop.start(4), 0]
    assert idle.longest_valid_run(np.array([1, 1, 0, 1, 1, 1, 0], bool)) == (3, 6)
    assert idle.longest_valid_run(np.zeros(3, bool)) == (0, 0)
    with pytest.raises(ValueError, match="shape"):
        idle.IdleLoop(np.zeros((5, 3)), dims)


def test_over_background_replaces_only_the_box():
    bg = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    rgba = np.full((2, 2, 3, 4), 200, np.uint8)
    rgba[1, ..., :3] = 7
    out = pixels.over_background(bg, (1, 2, 2, 3), rgba)
    assert out.shape == (2, 5, 6, 3) and out.dtype == np.uint8
    assert (out[0, 1:3, 2:5] == 200).all() and (out[1, 1:3, 2:5] == 7).all()
    outside = np.ones((5, 6), bool)
    outside[1:3, 2:5] = False
    assert (out[:, outside] == bg[outside]).all()
