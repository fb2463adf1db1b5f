"""Conformance of M (motion extractor), S (stitching/retargeting) and the keypoint arithmetic with the reference.

Fixtures: shared/conformance/{motion_extractor,stitching_retargeting_module,keypoint_math}.* (see its README).
Tolerances are the README's and must not be loosened: networks atol=rtol=1e-4, arithmetic atol=rtol=1e-5.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from talkinghead.liveportrait import keypoints as K
from talkinghead.liveportrait.motion_extractor import MotionExtractor
from talkinghead.liveportrait.stitching import RELEASED_PARTS, StitchingRetargetingModule

NET_TOL = dict(atol=1e-4, rtol=1e-4)
MATH_TOL = dict(atol=1e-5, rtol=1e-5)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def test_motion_extractor(load_case):
    io, weights, case = load_case("motion_extractor")
    net = MotionExtractor(**case["config"]).eval()
    net.load_state_dict({k: _t(v) for k, v in weights.items()}, strict=True)
    with torch.no_grad():
        out = net(_t(io["in.image"]))
    assert set(out) == {k[len("out."):] for k in io if k.startswith("out.")}
    for name, got in out.items():
        np.testing.assert_allclose(got.numpy(), io[f"out.{name}"], err_msg=name, **NET_TOL)


@pytest.fixture(scope="module")
def stitching_case(load_case):
    io, weights, case = load_case("stitching_retargeting_module")
    net = StitchingRetargetingModule(**case["config"]).eval()
    checkpoint: dict[str, dict] = {}
    for key, value in weights.items():
        part, sub = key.split(".", 1)
        checkpoint.setdefault(part, {})[sub] = _t(value)
    assert set(checkpoint) == set(RELEASED_PARTS.values())
    net.load_released(checkpoint, strict=True)
    return net, {k: _t(v) for k, v in io.items() if k.startswith("in.")}, io


def test_stitching_mlp_raw(stitching_case):
    net, x, io = stitching_case
    with torch.no_grad():
        raw = net.stitch_delta(x["in.kp_source"], x["in.kp_driving"])
    np.testing.assert_allclose(raw.numpy(), io["out.stitching_mlp_raw"], **NET_TOL)


def test_stitched_driving_keypoints(stitching_case):
    net, x, io = stitching_case
    kp_driving = x["in.kp_driving"].clone()
    with torch.no_grad():
        stitched = net.stitch(x["in.kp_source"], kp_driving)
    np.testing.assert_allclose(stitched.numpy(), io["out.kp_driving_stitched"], **NET_TOL)
    assert torch.equal(kp_driving, x["in.kp_driving"]), "stitch() must not modify its input"


def test_lip_and_eye_retargeting(stitching_case):
    net, x, io = stitching_case
    with torch.no_grad():
        lip = net.retarget_lip(x["in.kp_source"], x["in.lip_close_ratio"])
        eye = net.retarget_eye(x["in.kp_source"], x["in.eye_close_ratio"])
    np.testing.assert_allclose(lip.numpy(), io["out.lip_delta"], **NET_TOL)
    np.testing.assert_allclose(eye.numpy(), io["out.eye_delta"], **NET_TOL)


def test_pose_degree(load_case):
    io, _, _ = load_case("keypoint_math")
    got = K.headpose_pred_to_degree(_t(io["in.pose_logits"]))
    np.testing.assert_allclose(got.numpy(), io["out.pose_degree"], **MATH_TOL)


def test_rotation_matrix(load_case):
    io, _, _ = load_case("keypoint_math")
    pyr = _t(io["in.pitch_yaw_roll_degree"])
    got = K.rotation_matrix(pyr[:, 0], pyr[:, 1], pyr[:, 2])
    np.testing.assert_allclose(got.numpy(), io["out.rotation_matrix"], **MATH_TOL)
    eye = got @ got.transpose(-1, -2)
    np.testing.assert_allclose(eye.numpy(), np.broadcast_to(np.eye(3), eye.shape), atol=1e-5)


def test_transform_keypoints(load_case):
    io, _, _ = load_case("keypoint_math")
    info = {k[len("in.kp_info."):]: _t(v) for k, v in io.items() if k.startswith("in.kp_info.")}
    got = K.transform_keypoints(info["kp"], info["pitch"], info["yaw"], info["roll"], info["exp"], info["scale"],
                                info["t"])
    np.testing.assert_allclose(got.numpy(), io["out.kp_transformed"], **MATH_TOL)

    # The degrees variant (used with layout.apply_to_source) agrees, with kp/exp as (B, 21, 3) and t as (B, 2).
    pose = K.pose_degrees(info)
    b = info["kp"].shape[0]
    got_deg = K.transform_keypoints_degrees(info["kp"].reshape(b, 21, 3), pose, info["exp"].reshape(b, 21, 3),
                                            info["scale"], info["t"][:, :2])
    np.testing.assert_allclose(got_deg.numpy(), io["out.kp_transformed"], **MATH_TOL)


def test_transform_keypoints_broadcasts_one_source_over_frames(load_case):
    """One source's canonical keypoints (1, 21, 3) posed by N frames of motion gives (N, 21, 3)."""
    io, _, _ = load_case("keypoint_math")
    kp = _t(io["in.kp_info.kp"][:1]).reshape(1, 21, 3)
    n = 5
    pose = torch.linspace(-20, 20, n * 3).reshape(n, 3)
    exp = torch.zeros(n, 21, 3)
    scale = torch.ones(n, 1)
    t = torch.zeros(n, 2)
    got = K.transform_keypoints_degrees(kp, pose, exp, scale, t)
    assert got.shape == (n, 21, 3)
    for i in range(n):
        one = K.transform_keypoints_degrees(kp, pose[i:i + 1], exp[i:i + 1], scale[i:i + 1], t[i:i + 1])
        torch.testing.assert_close(got[i:i + 1], one)
