"""The renderer variant follows a measurement on the machine (issue 13): `live.choice` (quality rule, measured speed),
`BundleRuntime(variant="auto")` on a bundle whose variants have known relative speeds, and export's default.

The stand-in renderers are small ONNX graphs with the renderer's signature (motion (B, 69) -> face (B, 3, 512, 512)):
a fast one, and a deliberately slow one (a chain of matrix products that depends on the input, so onnxruntime cannot
fold it away), tens of times slower on any machine."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

from talkinghead import layout, onnxrt  # noqa: E402
from talkinghead.live import choice  # noqa: E402

CROP = layout.CROP_SIZE


def stand_in_renderer(path, slow_matmuls: int = 0):
    """An ONNX renderer stand-in: face = sigmoid(sum(motion)) everywhere; `slow_matmuls` 256x256 matrix products
    (on a matrix made from the input) added to it times zero."""
    nodes = [helper.make_node("ReduceSum", ["motion", "ax1"], ["s"], keepdims=1),
             helper.make_node("Unsqueeze", ["s", "ax23"], ["u"]),
             helper.make_node("Shape", ["motion"], ["shp"]),
             helper.make_node("Slice", ["shp", "zero", "one"], ["b"]),
             helper.make_node("Concat", ["b", "chw"], ["full"], axis=0),
             helper.make_node("Expand", ["u", "full"], ["e"]),
             helper.make_node("Sigmoid", ["e"], ["face0"])]
    inits = [helper.make_tensor("ax1", TensorProto.INT64, [1], [1]),
             helper.make_tensor("ax23", TensorProto.INT64, [2], [2, 3]),
             helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
             helper.make_tensor("one", TensorProto.INT64, [1], [1]),
             helper.make_tensor("chw", TensorProto.INT64, [3], [3, CROP, CROP])]
    if slow_matmuls:
        rng = np.random.default_rng(0)
        w = (rng.normal(0, 1 / 16, (256, 256))).astype(np.float32)
        inits += [helper.make_tensor("w", TensorProto.FLOAT, [256, 256], w.ravel().tolist()),
                  helper.make_tensor("sq", TensorProto.INT64, [2], [256, 256]),
                  helper.make_tensor("nil", TensorProto.FLOAT, [], [0.0])]
        nodes += [helper.make_node("ReduceSum", ["s"], ["s0"], keepdims=0),
                  helper.make_node("Expand", ["s0", "sq"], ["m0"])]
        for i in range(slow_matmuls):
            nodes.append(helper.make_node("MatMul", [f"m{i}", "w"], [f"m{i + 1}"]))
        nodes += [helper.make_node("ReduceMean", [f"m{slow_matmuls}"], ["r"], keepdims=0),
                  helper.make_node("Mul", ["r", "nil"], ["r0"]),
                  helper.make_node("Add", ["face0", "r0"], ["face"])]
    else:
        nodes.append(helper.make_node("Identity", ["face0"], ["face"]))
    graph = helper.make_graph(nodes, "stand_in", [helper.make_tensor_value_info("motion", TensorProto.FLOAT,
                                                                                 ["B", layout.MOTION_DIM])],
                              [helper.make_tensor_value_info("face", TensorProto.FLOAT, ["B", 3, CROP, CROP])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    d = tmp_path_factory.mktemp("stand_ins")
    return {"fast": stand_in_renderer(d / "fast.onnx"), "slow": stand_in_renderer(d / "slow.onnx", 60)}


def _sessions(paths: dict):
    return lambda name: onnxrt.session(paths[name], None, 1)


# ------------------------------------------------------------------------------------------------ the quality rule
@pytest.mark.parametrize("name, entry, passes", [
    ("fp32", {}, True),                                               # the reference
    ("fp16", {"psnr_db": 52.3}, True),
    ("int8", {"psnr_db": 29.9}, False),                               # under MIN_PSNR_DB
    ("int8", {"psnr_db": 30.0}, True),
    ("int8", {}, False),                                              # no measured quality
    ("int8", {"psnr_db": "n/a"}, False),
    ("pocket", {"psnr_db": 31.0, "held_out": {"psnr_db_student": 28.0, "psnr_db_static": 22.0,
                                              "psnr_db_nearest": 24.0}}, True),
    ("pocket", {"psnr_db": 24.0, "held_out": {"psnr_db_student": 28.0, "psnr_db_static": 22.0,
                                              "psnr_db_nearest": 24.0}}, False),   # under POCKET_MIN_PSNR_DB
    ("pocket", {"psnr_db": 31.0, "held_out": {"psnr_db_student": 23.0, "psnr_db_static": 22.0,
                                              "psnr_db_nearest": 24.0}}, False),   # no better than nearest frame
    ("pocket", {"psnr_db": 31.0}, False),                             # no held-out baselines
])
def test_quality_rule(name, entry, passes):
    ok, why = choice.quality(name, entry)
    assert ok is passes and why


# ------------------------------------------------------------------------------------------------ measured speed
def test_auto_picks_the_fastest_measured_variant(graphs):
    variants = {"fp32": {"file": "slow"}, "fp16": {"file": "fast", "psnr_db": 45.0}}
    c = choice.choose(variants, _sessions({"fp32": graphs["slow"], "fp16": graphs["fast"]}), gpu=False)
    assert c.variant == "fp16" and set(c.ms) == {"fp32", "fp16"} and c.ms["fp16"] < c.ms["fp32"]
    assert "fastest measured here" in c.why
    c = choice.choose(variants, _sessions({"fp32": graphs["fast"], "fp16": graphs["slow"]}), gpu=False)
    assert c.variant == "fp32", c                                     # the same names, the speeds swapped


def test_auto_never_picks_a_variant_that_fails_quality(graphs):
    opened = []

    def open_session(name):
        opened.append(name)
        return onnxrt.session(graphs["fast" if name == "int8" else "slow"], None, 1)

    variants = {"fp32": {}, "int8": {"psnr_db": 21.0}, "fp16": {"psnr_db": 33.0}}
    c = choice.choose(variants, open_session, gpu=False)
    assert c.variant in ("fp32", "fp16") and "int8" not in c.ms and "int8" not in opened   # never even measured
    assert c.quality["int8"][0] is False and "not int8" in c.why
    c = choice.choose({"fp32": {}, "int8": {"psnr_db": 21.0}}, open_session, gpu=False)
    assert c.variant == "fp32" and "only variant whose quality passes" in c.why and c.ms == {}


def test_pocket_is_preferred_without_a_gpu_only_when_its_quality_passes(graphs):
    good = {"psnr_db": 31.0, "held_out": {"psnr_db_student": 28.0, "psnr_db_static": 22.0, "psnr_db_nearest": 24.0}}
    paths = {"fp32": graphs["fast"], "pocket": graphs["slow"]}
    c = choice.choose({"fp32": {}, "pocket": good}, _sessions(paths), gpu=False)
    assert c.variant == "pocket" and "no GPU" in c.why
    c = choice.choose({"fp32": {}, "pocket": good}, _sessions(paths), gpu=True)       # with a GPU: measured
    assert c.variant == "fp32" and set(c.ms) == {"fp32", "pocket"}
    bad = dict(good, psnr_db=18.0)
    c = choice.choose({"fp32": {}, "pocket": bad}, _sessions(paths), gpu=False)
    assert c.variant == "fp32"


def test_one_measurement_per_process_for_the_same_key(graphs):
    calls = []

    def open_session(name):
        calls.append(name)
        return onnxrt.session(graphs["fast"], None, 1)

    variants = {"fp32": {}, "fp16": {"psnr_db": 40.0}}
    key = ("test-bundle", ("hashes",), "cpu", 1)
    first = choice.choose(variants, open_session, gpu=False, key=key)
    assert choice.choose(variants, open_session, gpu=False, key=key) is first and len(calls) == 2


# ------------------------------------------------------------------------------------------------ export's default
def test_export_default_is_the_fastest_passing_variant():
    from talkinghead.export.stage import default_variant

    measured = {"fp32": {"latency_ms": 421.0, "psnr_db": 130.0}, "fp16": {"latency_ms": 450.0, "psnr_db": 60.0},
                "int8": {"latency_ms": 537.8, "psnr_db": 38.0}}              # issue 13's CPU: int8 the slowest
    d = default_variant(measured)
    assert d["default"] == "fp32" and "421.0" in d["default_why"]
    measured["int8"]["latency_ms"] = 200.0
    assert default_variant(measured)["default"] == "int8"
    measured["int8"]["psnr_db"] = 25.0                                       # faster but failing quality
    d = default_variant(measured)
    assert d["default"] == "fp32" and "not int8" in d["default_why"]


# ------------------------------------------------------------------------------------------------ the runtime
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A sample bundle exported with its real fp32 renderer (and a tiny Audio2Motion)."""
    torch = pytest.importorskip("torch")
    import stage_fixtures as sf
    from talkinghead import a2m, bake
    from talkinghead.audio import FeatureParams
    from talkinghead.export import export_bundle

    def make():
        lp = sf.liveportrait()
        path = bake.bake(bake.sample_portrait(), tmp_path_factory.mktemp("choice") / "avatar", lp=lp)
        torch.manual_seed(0)
        model = a2m.Audio2Motion(a2m.A2MConfig(hidden=16)).eval()
        a2m.save_checkpoint(path / a2m.CHECKPOINT_NAME, model, model.config, FeatureParams(), {}, mode="audio_only")
        bake.add_files(path, [a2m.CHECKPOINT_NAME])
        export_bundle(path, None, variants=("fp32",), progress=False, lp=lp, latency_frames=1)
        return path

    return sf.cached("fp32-exported-bundle", make)      # once per test process (test_speak_progress uses it too)


def _with_stand_in(exported, tmp_path, psnr_db: float):
    """A copy of the bundle whose 'int8' variant is the fast stand-in (tens of times faster than the real renderer)
    with the given measured quality."""
    import shutil

    from talkinghead.bundle import add_files, read_manifest

    dst = tmp_path / "avatar"
    shutil.copytree(exported, dst)
    stand_in_renderer(dst / "renderer.int8.onnx")
    models = read_manifest(dst)["models"]
    models["renderer"]["variants"]["int8"] = {"file": "renderer.int8.onnx", "psnr_db": psnr_db}
    add_files(dst, ["renderer.int8.onnx"], models=models)
    return dst


@pytest.mark.parametrize("psnr_db, expect", [(45.0, "int8"), (20.0, "fp32")])
def test_runtime_auto_measures_here_and_respects_quality(exported, tmp_path, capsys, psnr_db, expect):
    from talkinghead import live

    bundle = _with_stand_in(exported, tmp_path, psnr_db)
    rt = live.BundleRuntime(bundle, threads=1)                         # variant="auto" is the default
    assert rt.variant == expect and rt.choice.variant == expect
    assert f"renderer variant {expect}" in rt.describe() and rt.choice.why in rt.describe()
    if expect == "int8":
        assert rt.choice.ms["int8"] < rt.choice.ms["fp32"] and "fastest measured here" in rt.choice.why
    else:
        assert "not int8" in rt.choice.why and "int8" not in rt.choice.ms
    report = live.LiveEngine(rt, mode="preview", verbose=False).run(np.zeros(1600, np.float32), [])
    assert report.variant.startswith(expect) and rt.choice.why in report.variant
    assert live.BundleRuntime(bundle, variant="fp32", threads=1).choice is None          # asked by name: no choice
    capsys.readouterr()
    live.speak(bundle, (np.zeros(3200, np.float32), 16000), tmp_path / "a.mp4", runtime=rt)
    assert capsys.readouterr().out.splitlines()[0] == f"renderer variant {expect}: {rt.choice.why}"   # speak says it
