"""The pocket renderer's frame graph (talkinghead.pocket.frame): motion -> only the box of the pasted frame that can
move, as RGBA bytes over a fixed background. It must give the frames of pocket.onnx + paste.onnx (within one grey
level, and exactly the background outside the box), be hashed in the manifest, and be what the live runtime and the
browser page run for the pocket variant.

The student is the sample-size one with random last-layer weights (so it moves) and a region smaller than the crop,
on the sample portrait baked and exported as in tests/test_pocket.py.
"""
from __future__ import annotations


import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import torch.nn.functional as F  # noqa: E402

from talkinghead import bake, export, live, pocket  # noqa: E402
from talkinghead.bundle import read_png  # noqa: E402
from talkinghead.errors import BundleError  # noqa: E402
from talkinghead.fileio import load_json, save_json, sha256_file  # noqa: E402
from talkinghead.pixels import over_background, to_uint8  # noqa: E402
from talkinghead.pocket import frame  # noqa: E402

import stage_fixtures as sf  # noqa: E402

ROI = (160, 128, 256, 224)         # (y0, x0, h, w) in the 512 crop: the mouth-and-jaw kind of region


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """(bundle folder with pocket.onnx + the frame graph registered, the student, the frame entry)."""
    lp = sf.liveportrait()
    path, _, _ = sf.exported_bundle(tmp_path_factory.mktemp("frame") / "avatar", lp)
    student = sf.moving_student()
    f = pocket.export_onnx(student, path / pocket.POCKET_FILE)
    pocket.register(path, {"file": pocket.POCKET_FILE, "use": "test", "bytes": f.stat().st_size})
    entry = pocket.export_frame(path, student)
    return path, student, entry


def reference_frames(bundle, student, motions):
    """pocket + paste in PyTorch, rounded like the live runtime: (B, H, W, 3) uint8."""
    with torch.no_grad():
        return to_uint8(export.paste_module(bundle)(student(torch.from_numpy(motions))).numpy())


@pytest.mark.parametrize("w,start,length", [(128, 40, 56), (256, 0, 100), (256, 200, 56), (128, 0, 128), (512, 8, 40)])
def test_resizing_a_block_gives_the_whole_resize_on_its_support(w, start, length):
    # a change that is zero outside rows start..start+length (and columns 3..5 of 8): resizing the region and a pixel
    # around it (student.upsampled_region) equals the whole resize on that block, and the whole resize is exactly
    # zero outside it
    from talkinghead.pocket.student import upsampled_region

    rng = np.random.default_rng(w + start)
    roi = (start, 3, length, 2)
    region = torch.from_numpy(rng.normal(size=(1, 1, length, 2)).astype(np.float32))
    d = F.pad(region, (3, 8 - 5, start, w - start - length))
    k = 512 // w
    whole = F.interpolate(d, size=(512, 8 * k), mode="bilinear", align_corners=False)[0, 0]
    part, (p0, c0) = upsampled_region(region, roi, w, 512)
    part = part[0, 0]
    p1, c1 = p0 + part.shape[0], c0 + part.shape[1]
    outside = torch.ones_like(whole, dtype=torch.bool)
    outside[p0:p1, c0:c1] = False
    assert torch.all(whole[outside] == 0)
    assert torch.allclose(part, whole[p0:p1, c0:c1], rtol=0, atol=1e-6)      # the same sums (float rounding aside)


@pytest.mark.parametrize("roi,warp", [(ROI, 128), (None, 128), ((96, 64, 320, 384), 256), (ROI, 512)])
def test_frame_module_gives_pocket_plus_paste(env, roi, warp):
    path = env[0]
    bundle = bake.load_bundle(path, verify=False)
    student = sf.moving_student(roi, warp, seed=3)
    module = frame.frame_module(student, bundle)
    m = export.random_motions(3, 7)
    with torch.no_grad():
        rgba = module(torch.from_numpy(m)).numpy()
    full = reference_frames(bundle, student, m)
    rest = frame.background(student, bundle)
    y0, x0, h, w = module.box
    assert rgba.shape == (3, h, w, 4) and rgba.dtype == np.uint8 and (rgba[..., 3] == 255).all()
    out = over_background(rest, module.box, rgba)
    diff = np.abs(out.astype(int) - full)
    assert diff.max() <= frame.MAX_GREY_DIFF and (diff > 0).mean() < 1e-3
    moved = (full != rest[None]).any(-1).any(0)             # the pixels that changed in some frame ...
    ys, xs = np.nonzero(moved)
    assert len(ys) > 500                                     # (the student does move the face)
    assert ys.min() >= y0 and ys.max() < y0 + h and xs.min() >= x0 and xs.max() < x0 + w   # ... lie in the box
    if roi is not None:
        assert h * w < 0.6 * full.shape[1] * full.shape[2]   # and the box is a part of the frame


def test_export_frame_registers_hashed_files(env):
    path, student, entry = env
    manifest = load_json(path / "manifest.json")
    got = manifest["models"]["renderer"]["variants"]["pocket"]["frame"]
    assert got == entry and entry["max_grey_diff"] <= frame.MAX_GREY_DIFF
    for name in (frame.FRAME_FILE, frame.BACKGROUND_FILE):
        assert manifest["files"][name]["sha256"] == sha256_file(path / name)
    y0, x0, h, w = entry["box"]
    assert entry["shape"]["rgba"] == ["B", h, w, 4]
    rest = read_png(path / frame.BACKGROUND_FILE)
    assert rest.shape == bake.load_bundle(path).portrait.shape


def test_runtime_renders_through_the_frame_graph(env):
    path, student, _ = env
    rt = live.BundleRuntime(path, variant="pocket")
    old = live.BundleRuntime(path, variant="pocket", frame_graph=False)
    assert rt.patch is not None and "paste" not in rt.sessions and "renderer" not in rt.sessions
    assert "frame graph" in rt.renderer_name and "frame graph" not in old.renderer_name
    m = export.random_motions(4, 11)
    times = {}
    a, b = rt.render(m, times), old.render(m)
    assert a.shape == b.shape == (4, rt.height, rt.width, 3) and set(times) == {"renderer"}
    assert np.abs(a.astype(int) - b).max() <= frame.MAX_GREY_DIFF
    assert (a != b).any(-1).mean() < 1e-3


def test_a_tampered_frame_graph_is_one_sentence(env, tmp_path):
    import shutil

    path = tmp_path / "avatar"
    shutil.copytree(env[0], path)
    (path / frame.FRAME_FILE).write_bytes(b"not a model")
    with pytest.raises(BundleError, match=frame.FRAME_FILE):
        live.BundleRuntime(path, variant="pocket")


def test_a_box_outside_the_frame_is_one_sentence(env, tmp_path):
    import shutil

    path = tmp_path / "avatar"
    shutil.copytree(env[0], path)
    manifest = load_json(path / "manifest.json")
    manifest["models"]["renderer"]["variants"]["pocket"]["frame"]["box"] = [0, 0, 10_000, 10]
    save_json(path / "manifest.json", manifest)
    with pytest.raises(BundleError, match="does not fit"):
        live.BundleRuntime(path, variant="pocket", verify=False)


def test_background_must_be_listed(env, tmp_path):
    import shutil

    path = tmp_path / "avatar"
    shutil.copytree(env[0], path)
    manifest = load_json(path / "manifest.json")
    del manifest["files"][frame.BACKGROUND_FILE]
    save_json(path / "manifest.json", manifest)
    with pytest.raises(BundleError, match="not listed"):
        live.BundleRuntime(path, variant="pocket", verify=False)


def test_export_frame_needs_a_pocket_renderer(tmp_path):
    lp = sf.liveportrait()
    path = bake.bake(bake.sample_portrait(), tmp_path / "avatar", lp=lp)
    with pytest.raises(BundleError, match="no pocket renderer"):
        pocket.export_frame(path, sf.moving_student())


def test_the_box_is_drawn_where_the_frame_graph_paints(env):
    import matplotlib

    matplotlib.use("Agg")
    from talkinghead.pocket import plots

    path, _, entry = env
    y0, x0, h, w = entry["box"]
    ax = plots.show_frame_box(path, entry)
    rect = ax.patches[0]
    assert (rect.get_x() + 0.5, rect.get_y() + 0.5, rect.get_width(), rect.get_height()) == (x0, y0, w, h)
    assert f"{w}x{h} of" in ax.get_title()
    matplotlib.pyplot.close("all")
