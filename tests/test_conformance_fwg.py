"""Conformance of LivePortrait's F (appearance), W (warping) and G (SPADE generator) with the reference fixtures.

Each network is built from the case config, loads the fixture weights with strict=True and must reproduce the
reference outputs (atol=rtol=1e-4, shared/conformance/README.md). The full-config modules must have exactly the
released checkpoints' state_dict keys, shapes and dtypes, and the sample profile must chain at its own sizes (config.IMAGE_SIZES).
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from talkinghead.liveportrait.appearance import AppearanceFeatureExtractor
from talkinghead.liveportrait.config import image_sizes, network_config
from talkinghead.liveportrait.generator import SPADEDecoder, fold_spectral_norm
from talkinghead.liveportrait.warping import WarpingNetwork

NETWORKS = {
    "appearance_feature_extractor": AppearanceFeatureExtractor,
    "warping_module": WarpingNetwork,
    "spade_generator": SPADEDecoder,
}
TOL = dict(atol=1e-4, rtol=1e-4)


def _build_loaded(load_case, name):
    """(module in eval mode with the fixture weights, inputs as tensors, expected outputs as arrays)."""
    io, weights, case = load_case(name)
    module = NETWORKS[name](**case["config"])
    module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    module.eval()
    inputs = {k[len("in."):]: torch.from_numpy(v) for k, v in io.items() if k.startswith("in.")}
    expected = {k[len("out."):]: v for k, v in io.items() if k.startswith("out.")}
    return module, inputs, expected


def _as_dict(out, expected):
    return out if isinstance(out, dict) else {next(iter(expected)): out}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_reproduces_reference(load_case, name):
    module, inputs, expected = _build_loaded(load_case, name)
    with torch.no_grad():
        out = _as_dict(module(**inputs), expected)  # inputs by name: W's signature is (feature_3d, kp_driving, kp_source)
    for key, want in expected.items():
        got = out[key].numpy()
        assert got.shape == want.shape, key
        np.testing.assert_allclose(got, want, err_msg=f"{name}: out.{key}", **TOL)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_full_config_matches_release_state_dict(conformance, name):
    manifest = json.loads((conformance / "manifest.json").read_text())
    want = manifest["checkpoints"][f"liveportrait/base_models/{name}.pth"]["keys"]
    with torch.device("meta"):
        module = NETWORKS[name](**network_config("full", name))
    got = {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
           for k, v in module.state_dict().items()}
    assert list(got) == list(want)  # same keys, same order
    assert got == want


def test_spectral_norm_eval_uses_stored_vectors(load_case):
    """Eval-mode weight is weight_orig / (u . (W v)), W = weight_orig as (out, -1), with no power iteration."""
    module, inputs, _ = _build_loaded(load_case, "spade_generator")
    conv = module.G_middle_0.conv_0
    u_before = conv.weight_u.clone()
    with torch.no_grad():
        module(**inputs)
        w_mat = conv.weight_orig.reshape(conv.weight_orig.shape[0], -1)
        sigma = torch.dot(conv.weight_u, w_mat @ conv.weight_v)
        torch.testing.assert_close(conv.weight, conv.weight_orig / sigma, rtol=0, atol=0)
    assert torch.equal(conv.weight_u, u_before)


def test_fold_spectral_norm_keeps_outputs(load_case):
    module, inputs, expected = _build_loaded(load_case, "spade_generator")
    with torch.no_grad():
        before = module(**inputs)
        fold_spectral_norm(module)
        after = module(**inputs)
    keys = module.state_dict().keys()
    assert not any(k.endswith(("weight_orig", "weight_u", "weight_v")) for k in keys)
    assert "G_middle_0.conv_0.weight" in keys and "up_0.conv_s.weight" in keys
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    np.testing.assert_allclose(after.numpy(), expected["image"], **TOL)


def test_sample_chain_at_profile_sizes():
    torch.manual_seed(0)
    f = AppearanceFeatureExtractor(**network_config("sample", "appearance_feature_extractor")).eval()
    w = WarpingNetwork(**network_config("sample", "warping_module")).eval()
    g = SPADEDecoder(**network_config("sample", "spade_generator")).eval()
    size_in, size_out = image_sizes("sample")
    image = torch.rand(1, 3, size_in, size_in)
    kp_source = torch.rand(1, 21, 3) * 1.6 - 0.8
    kp_driving = kp_source + 0.02 * torch.randn(1, 21, 3)
    with torch.no_grad():
        start = time.perf_counter()
        f_s = f(image)
        warped = w(f_s, kp_driving=kp_driving, kp_source=kp_source)
        out = g(warped["out"])
        seconds = time.perf_counter() - start
    print(f"\nsample F+W+G forward, one {size_in}x{size_in} frame, CPU: {seconds:.2f} s")
    g4 = size_in // 4
    assert f_s.shape == (1, 8, 4, g4, g4)
    assert warped["out"].shape == (1, 32, g4, g4)
    assert warped["occlusion_map"].shape == (1, 1, g4, g4)
    assert warped["deformation"].shape == (1, 4, g4, g4, 3)
    assert out.shape == (1, 3, size_out, size_out)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
