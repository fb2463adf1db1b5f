"""talkinghead.render: BakedRenderer (motion (B, 69) -> keypoints -> stitching -> W -> G -> paste-back), sample profile.

On the sample profile the painted face is noise, so "zero motion reproduces the source" is checked where it can be:
the keypoint arithmetic reproduces the baked x_s, and every pixel outside the paste mask is the portrait's own.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import stage_fixtures as sf
from talkinghead import bake, layout, render
from talkinghead.liveportrait.keypoints import rotation_matrix


@pytest.fixture(scope="module")
def lp():
    return sf.liveportrait()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, lp):
    """The astronaut on a 400 x 560 (H x W) canvas: non-square, so a swapped height and width would show."""
    img = np.full((400, 560, 3), 60, np.uint8)
    img[:, 24:536] = sf.astronaut()[40:440]
    with sf.one_thread():
        return bake.load_bundle(bake.bake(img, tmp_path_factory.mktemp("render") / "avatar", lp=lp, name="wide.png"))


@pytest.fixture(scope="module")
def motions():
    """8 motions: zero, mouth open ("aaa" 30 units), yaw +10, pitch -8, roll 5, smaller/larger, shifted, mixed."""
    m = layout.empty(8)
    m[1, 3 * 19 + 1], m[1, 3 * 17 + 1] = 0.03, -0.003
    m[2, 64] = 10.0
    m[3, 63] = -8.0
    m[4, 65] = 5.0
    m[5, 68] = math.log(0.9)
    m[6, 66:68] = (0.05, -0.03)
    m[7] = m[1] + m[2] + m[6]
    return m


@pytest.fixture(scope="module")
def frames(bundle, lp, motions):
    with sf.one_thread():
        return render.render(bundle, motions, lp=lp, batch_size=8, progress=False)


def _plain(lp, bundle, **kw):
    return render.BakedRenderer(lp, bundle, **kw).eval()


# ------------------------------------------------------------------------------------------------------ frames
def test_frames_are_the_portrait_outside_the_mask(frames, bundle):
    assert frames.shape == (8, 400, 560, 3) and frames.dtype == np.uint8
    outside = bundle.mask == 0
    assert 0.3 < outside.mean() < 0.97
    for f in frames:
        assert np.array_equal(f[outside], bundle.portrait[outside])  # exactly, every motion
    # inside the mask the generator's face is painted in (noise on the sample profile: it is not the photo)
    inside = bundle.mask == 1
    assert np.abs(frames[0][inside].astype(int) - bundle.portrait[inside]).mean() > 5


def test_render_is_deterministic_and_batch_independent(frames, bundle, lp, motions):
    with sf.one_thread():
        again = render.render(bundle, motions, lp=lp, batch_size=8, progress=False)
        one_by_one = render.render(bundle, motions, lp=lp, batch_size=1, progress=False)
        three = render.render(bundle, motions, lp=lp, batch_size=3, progress=False)
    assert np.array_equal(again, frames)
    assert np.abs(one_by_one.astype(int) - frames).max() <= 1
    assert np.abs(three.astype(int) - frames).max() <= 1


def test_different_motions_give_different_frames(frames, bundle):
    inside = bundle.mask > 0.5
    diffs = [np.abs(frames[k][inside].astype(int) - frames[0][inside]).mean() for k in range(1, 8)]
    assert min(diffs) > 0.2, diffs
    # and the motions differ among themselves too (no two frames alike)
    flat = frames.reshape(8, -1).astype(np.int16)
    assert len({f.tobytes() for f in flat}) == 8


def test_crops_without_paste(bundle, lp, motions):
    with sf.one_thread():
        crops = render.render(bundle, motions[:2], lp=lp, paste=False, progress=False)
    assert crops.shape == (2, 512, 512, 3) and crops.dtype == np.uint8
    assert not np.array_equal(crops[0], crops[1])


def test_empty_motion(bundle, lp):
    out = render.render(bundle, layout.empty(0), lp=lp, progress=False)
    assert out.shape == (0, 400, 560, 3) and out.dtype == np.uint8
    assert render.render(bundle, layout.empty(0), lp=lp, paste=False, progress=False).shape == (0, 512, 512, 3)


def test_to_uint8_rounds():
    x = torch.tensor([0.0, 0.5 / 255, 1.49 / 255, 1.51 / 255, 1.0, 1.2, -0.1]).reshape(1, 1, 1, 7).expand(1, 3, 1, 7)
    np.testing.assert_array_equal(render.to_uint8(x)[0, 0, :, 0], [0, 0, 1, 2, 255, 255, 0])


# ------------------------------------------------------------------------------------------------------ keypoints
def test_zero_motion_keypoints_are_the_baked_source(bundle, lp):
    x_s = torch.from_numpy(bundle.source["x_s"])[None]
    zero = torch.zeros(2, 69)
    with torch.inference_mode():
        plain = _plain(lp, bundle, stitching=False, paste=False).keypoints(zero)
        stitched = _plain(lp, bundle, paste=False).keypoints(zero)
        expect = lp.stitching_retargeting_module.stitch(x_s, x_s)
    assert plain.shape == (2, 21, 3)
    np.testing.assert_allclose(plain.numpy(), np.repeat(x_s.numpy(), 2, 0), atol=1e-5)
    np.testing.assert_allclose(stitched.numpy(), np.repeat(expect.numpy(), 2, 0), atol=1e-5)


def test_expression_translation_and_scale_arithmetic(bundle, lp):
    """x_d = s*exp(log_scale) * (x_c R + exp_s + dexp) + [t_s + dt, 0]; checked against the baked x_s."""
    s = bundle.source
    x_s, scale, t = s["x_s"].astype(np.float64), float(s["scale"][0]), np.r_[s["t"][:2], 0.0]
    dexp = np.random.default_rng(0).normal(0, 0.01, (21, 3)).astype(np.float32)
    m = layout.empty(3)
    m[0, :63] = dexp.reshape(63)
    m[1, 68], m[1, 66:68] = math.log(1.5), (0.1, -0.05)
    m[2, :63], m[2, 68] = dexp.reshape(63), math.log(0.8)
    with torch.inference_mode():
        kp = _plain(lp, bundle, stitching=False, paste=False).keypoints(torch.from_numpy(m)).double().numpy()
    np.testing.assert_allclose(kp[0], x_s + scale * dexp, atol=1e-5)
    np.testing.assert_allclose(kp[1], 1.5 * (x_s - t) + t + [0.1, -0.05, 0.0], atol=1e-5)
    np.testing.assert_allclose(kp[2], 0.8 * (x_s - t + scale * dexp) + t, atol=1e-5)


@pytest.mark.parametrize("axis,degrees", [(1, 12.0), (1, -20.0), (0, 7.0), (2, -9.0)])
def test_pose_motion_rotates_the_canonical_keypoints(bundle, lp, axis, degrees):
    s = bundle.source
    m = layout.empty(1)
    m[0, 63 + axis] = degrees
    with torch.inference_mode():
        kp = _plain(lp, bundle, stitching=False, paste=False).keypoints(torch.from_numpy(m))[0].double().numpy()
    pose = s["pose"].astype(np.float64).copy()
    pose[axis] += degrees
    rot = rotation_matrix(*(torch.tensor(a, dtype=torch.float64) for a in pose)).numpy()
    rotated = (kp - np.r_[s["t"][:2], 0.0]) / s["scale"][0] - s["exp"]  # = x_c @ R(pose + motion)
    np.testing.assert_allclose(rotated, s["kp"] @ rot, atol=1e-5)


def test_pure_yaw_turns_a_frontal_source_by_that_angle(bundle, lp):
    """With the source pose zeroed, a yaw motion of a degrees turns x_c about the vertical axis by exactly a."""
    src = dict(bundle.source, pose=np.zeros(3, np.float32))
    frontal = bake.Bundle(bundle.path, bundle.manifest, src, bundle.portrait, bundle.crop, bundle.mask)
    r = _plain(lp, frontal, stitching=False, paste=False)
    m = layout.empty(2)
    m[1, 64] = 25.0
    with torch.inference_mode():
        k0, k1 = (r.keypoints(torch.from_numpy(m))[i].double().numpy() for i in (0, 1))
    scale, t, exp = src["scale"][0], np.r_[src["t"][:2], 0.0], src["exp"]
    c0, c1 = (k0 - t) / scale - exp, (k1 - t) / scale - exp  # canonical parts: x_c, then x_c turned
    np.testing.assert_allclose(c0, src["kp"], atol=1e-5)
    np.testing.assert_allclose(c1[:, 1], c0[:, 1], atol=1e-5)  # heights unchanged
    r0, r1 = np.hypot(c0[:, 0], c0[:, 2]), np.hypot(c1[:, 0], c1[:, 2])
    np.testing.assert_allclose(r1, r0, atol=1e-5)  # distances from the axis unchanged
    far = r0 > 0.05
    turn = np.degrees(np.arctan2(c0[far, 0], c0[far, 2]) - np.arctan2(c1[far, 0], c1[far, 2]))
    turn = (turn + 180) % 360 - 180
    np.testing.assert_allclose(np.abs(turn), 25.0, atol=1e-3)
    assert np.ptp(turn) < 1e-3  # every keypoint turned the same way


def test_close_lips_removes_the_source_mouth_opening(bundle, lp):
    r = _plain(lp, bundle, stitching=False, paste=False, close_lips=1.0)
    closed = r.exp.numpy().reshape(1, 63)
    full = np.concatenate([closed, np.zeros((1, 6), np.float32)], axis=1)
    assert abs(float(layout.mouth_open(full)[0])) < 1e-7
    assert abs(float(bundle.source["lip_open"][0])) > 1e-5  # there was something to close
    diff = closed.reshape(21, 3) - bundle.source["exp"]
    moved = np.flatnonzero(np.abs(diff).max(axis=1) > 0)
    assert set(moved) <= {17, 19}  # only the "aaa" direction's keypoints move
