"""load_liveportrait: the released file formats load strictly, bad files give one WeightsError sentence, and the
sample profile is fast and bit-identical.

The full-profile tests write checkpoint files in the released formats (random weights at the REAL sizes, ~400 MB)
once per module into a folder laid out like the hub repo.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from talkinghead.errors import WeightsError
from talkinghead.hub import LIVEPORTRAIT_FILES, WEIGHTS_ENV
from talkinghead.liveportrait import load_liveportrait
from talkinghead.liveportrait.loader import NETWORKS, _released_network, build_network

SEED = 1234


def _released_state(name: str, net: torch.nn.Module) -> dict:
    """What the released file for `name` holds: a flat state_dict, or for S three state_dicts with `module.` keys."""
    if name == "stitching_retargeting_module":
        return {released: {f"module.{k}": v for k, v in sd.items()} for released, sd in net.released_state_dict().items()}
    return net.state_dict()


@pytest.fixture(scope="module")
def released_dir(tmp_path_factory) -> tuple[Path, dict]:
    """A hub-like folder with all five files at real sizes, and each network's state_dict (for comparison)."""
    root = tmp_path_factory.mktemp("hub")
    states = {}
    t0 = time.perf_counter()
    torch.manual_seed(SEED)
    for name, relpath in LIVEPORTRAIT_FILES.items():
        with torch.device("cpu"):
            net = build_network(name, "full")
        with torch.no_grad():
            for value in net.state_dict().values():   # off the default init, so a skipped load would show
                if value.is_floating_point():
                    value.add_(0.01 * torch.randn_like(value))
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(_released_state(name, net), path)
        states[name] = {k: v.clone() for k, v in net.state_dict().items()}
    print(f"wrote the five released-format files in {time.perf_counter() - t0:.1f} s")
    return root, states


def _link_copy(src: Path, dst: Path, skip: str | None = None) -> Path:
    """A hub-like folder at `dst` whose files are symlinks to `src`'s, leaving out `skip` (a relpath)."""
    for relpath in LIVEPORTRAIT_FILES.values():
        (dst / relpath).parent.mkdir(parents=True, exist_ok=True)
        if relpath != skip:
            (dst / relpath).symlink_to(src / relpath)
    return dst


def _assert_loaded(lp, states) -> None:
    assert lp.profile == "full"
    for name in NETWORKS:
        net = getattr(lp, name)
        assert not net.training, f"{name} not in eval mode"
        got = net.state_dict()
        for key, want in states[name].items():
            assert torch.equal(got[key], want), f"{name}.{key} was not loaded"


def test_full_profile_from_weights_dir(released_dir, monkeypatch):
    root, states = released_dir
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    t0 = time.perf_counter()
    lp = load_liveportrait(weights_dir=root, profile="full")
    print(f"full profile loaded in {time.perf_counter() - t0:.1f} s")
    _assert_loaded(lp, states)
    assert lp.config["motion_extractor"]["backbone"] == "convnextv2_tiny"


def test_full_profile_from_env(released_dir, monkeypatch):
    root, states = released_dir
    monkeypatch.setenv(WEIGHTS_ENV, str(root))
    _assert_loaded(load_liveportrait(profile="full"), states)


def test_truncated_file_names_the_file(released_dir, tmp_path):
    root, _ = released_dir
    relpath = LIVEPORTRAIT_FILES["appearance_feature_extractor"]   # loaded first: fails fast
    d = _link_copy(root, tmp_path, skip=relpath)
    data = (root / relpath).read_bytes()
    (d / relpath).write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError) as err:
        load_liveportrait(weights_dir=d, profile="full")
    assert str(d / relpath) in str(err.value)
    assert "download it again" in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_truncated_stitching_file(released_dir, tmp_path):
    root, _ = released_dir
    relpath = LIVEPORTRAIT_FILES["stitching_retargeting_module"]
    d = _link_copy(root, tmp_path, skip=relpath)
    data = (root / relpath).read_bytes()
    (d / relpath).write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="stitching_retargeting_module.pth"):
        _released_network("stitching_retargeting_module", d)


def test_garbage_file(tmp_path):
    relpath = LIVEPORTRAIT_FILES["appearance_feature_extractor"]
    (tmp_path / relpath).parent.mkdir(parents=True)
    (tmp_path / relpath).write_bytes(b"<html>rate limited</html>")
    with pytest.raises(WeightsError, match="appearance_feature_extractor.pth"):
        load_liveportrait(weights_dir=tmp_path, profile="full")


def test_missing_file_names_the_file(released_dir, tmp_path):
    root, _ = released_dir
    relpath = LIVEPORTRAIT_FILES["appearance_feature_extractor"]
    d = _link_copy(root, tmp_path, skip=relpath)
    with pytest.raises(WeightsError) as err:
        load_liveportrait(weights_dir=d, profile="full")
    assert relpath in str(err.value)


@pytest.mark.parametrize("damage", ["rename", "reshape"])
def test_key_or_shape_mismatch(released_dir, tmp_path, damage):
    root, states = released_dir
    name = "appearance_feature_extractor"
    relpath = LIVEPORTRAIT_FILES[name]
    d = _link_copy(root, tmp_path, skip=relpath)
    state = dict(states[name])
    key = next(iter(state))
    if damage == "rename":
        state["extra." + key] = state.pop(key)
    else:
        state[key] = state[key].reshape(-1)[:-1]
    torch.save(state, d / relpath)
    with pytest.raises(WeightsError) as err:
        load_liveportrait(weights_dir=d, profile="full")
    assert str(d / relpath) in str(err.value) and key in str(err.value)


def test_stitching_file_without_its_parts(tmp_path):
    relpath = LIVEPORTRAIT_FILES["stitching_retargeting_module"]
    (tmp_path / relpath).parent.mkdir(parents=True)
    torch.save({"retarget_shoulder": {}}, tmp_path / relpath)
    with pytest.raises(WeightsError, match="retarget_mouth"):
        _released_network("stitching_retargeting_module", tmp_path)


def test_no_network_hub_failure(tmp_path, monkeypatch):
    """No weights folder, offline, empty cache: one WeightsError naming the hub file, not a huggingface trace."""
    pytest.importorskip("huggingface_hub")
    from huggingface_hub import constants

    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)       # in case huggingface_hub was imported already
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(WeightsError) as err:
        load_liveportrait(profile="full")
    assert LIVEPORTRAIT_FILES["appearance_feature_extractor"] in str(err.value)
    assert err.value.__cause__ is None


def test_sample_profile_identical():
    """Two sample loads are the same seeded networks, in eval mode (how fast it builds is benchmarks' business:
    benchmarks/bench_networks.py prints it; a timed assertion fails on a busy machine)."""
    a = load_liveportrait(profile="sample")
    b = load_liveportrait(profile="sample")
    assert a.profile == "sample"
    for name in NETWORKS:
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert list(sa) == list(sb)
        for key in sa:
            assert torch.equal(sa[key], sb[key]), f"{name}.{key} differs between two sample loads"
        assert not getattr(a, name).training


def test_sample_profile_follows_env(monkeypatch):
    monkeypatch.setenv("TALKINGHEAD_PROFILE", "sample")
    assert load_liveportrait().profile == "sample"


def test_sample_profile_runs_motion_and_keypoints():
    from talkinghead import layout
    from talkinghead.liveportrait import transform_keypoints, transform_keypoints_degrees
    from talkinghead.liveportrait.keypoints import pose_degrees

    lp = load_liveportrait(profile="sample")
    with torch.no_grad():
        info = lp.motion_extractor(torch.rand(2, 3, 256, 256))
        x_s = transform_keypoints(info["kp"], info["pitch"], info["yaw"], info["roll"], info["exp"], info["scale"],
                                  info["t"])
        assert x_s.shape == (2, 21, 3) and torch.isfinite(x_s).all()
        source = {"exp": info["exp"][0].reshape(21, 3), "pose": pose_degrees(info)[0], "t": info["t"][0],
                  "scale": info["scale"][0]}
        drive = layout.apply_to_source(torch.zeros(4, layout.MOTION_DIM), source)
        x_d = transform_keypoints_degrees(info["kp"][:1], drive["pose"], drive["exp"], drive["scale"], drive["t"])
        torch.testing.assert_close(x_d, x_s[:1].expand(4, 21, 3), atol=1e-5, rtol=1e-5)
        stitched = lp.stitching_retargeting_module.stitch(x_s[:1].expand(4, 21, 3), x_d)
        assert stitched.shape == (4, 21, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_sample_profile_cuda_half():
    lp = load_liveportrait(profile="sample", device="cuda", dtype=torch.float16)
    with torch.no_grad():
        info = lp.motion_extractor(torch.rand(1, 3, 256, 256, device="cuda", dtype=torch.float16))
    assert info["kp"].dtype == torch.float16 and info["kp"].is_cuda and torch.isfinite(info["kp"]).all()


def test_cuda_request_without_gpu_is_one_sentence():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="device='cpu'"):
        load_liveportrait(profile="sample", device="cuda")


def test_sample_profile_is_well_conditioned():
    """Seeded networks get trained-like statistics: converged spectral norms (sigma = the largest singular value) and
    BatchNorm statistics of a seeded input, so W's output is unit-scale and float32 rounding is not amplified."""
    from talkinghead.liveportrait.config import image_sizes

    lp = load_liveportrait(profile="sample")
    for name, m in lp.spade_generator.named_modules():
        if hasattr(m, "weight_orig"):
            w = m.weight_orig.reshape(m.weight_orig.shape[0], -1)
            sigma = m.weight_u @ (w @ m.weight_v)
            # random matrices have nearly equal top singular values, so 50 power steps land within a few percent
            # (unconverged random u, v gave sigma a random fraction of it, and G activations of ~5e3)
            np.testing.assert_allclose(float(sigma), float(torch.linalg.svdvals(w)[0]), rtol=0.03, err_msg=name)
    size, _ = image_sizes("sample")
    torch.manual_seed(1)
    img = torch.rand(1, 3, size, size)
    with torch.inference_mode():
        f_s = lp.appearance_feature_extractor(img)
        kp = torch.rand(1, 21, 3) - 0.5
        out = lp.warping_module(f_s, kp_driving=kp, kp_source=kp)["out"]
        std = out.std(dim=(2, 3))
        assert 0.05 < float(std.median()) < 5, float(std.median())
        face32 = lp.spade_generator(out)
        g64 = copy.deepcopy(lp.spade_generator).double()
        face64 = g64(out.double())
    assert float((face32.double() - face64).abs().max()) < 1e-5
    assert 0.0 < float(face32.min()) and float(face32.max()) < 1.0, "no saturated pixels"
