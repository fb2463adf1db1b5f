"""talkinghead.bake: portrait -> avatar bundle (notebook 02), on the sample profile.

The bundle is checked against what it claims to hold (the tensors recomputed from its own crop, the crop from its
matrices, the mask from its crop-space mask), baking is byte-for-byte repeatable, writes are atomic, loading refuses
a changed bundle with one sentence, and bad portraits get one sentence naming the file.
"""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import stage_fixtures as sf
from talkinghead import bake, layout
from talkinghead import crop as cropping
from talkinghead.errors import BundleError, FaceError, MediaError
from talkinghead.fileio import sha256_file

BUNDLE_FILES = {"manifest.json", "source.npz", "portrait.png", "crop.png", "paste_mask.png"}


def non_square_portrait() -> np.ndarray:
    """The astronaut on a 480 x 600 canvas (H x W), so height and width can't be confused."""
    a = sf.astronaut()
    canvas = np.full((480, 600, 3), 90, np.uint8)
    canvas[:, 44:556] = a[:480]
    return canvas


@pytest.fixture(scope="module")
def lp():
    return sf.liveportrait()


@pytest.fixture(scope="module")
def portrait_png(tmp_path_factory):
    p = tmp_path_factory.mktemp("portrait") / "wide.png"
    Image.fromarray(non_square_portrait()).save(p)
    return p


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory, portrait_png, lp):
    with sf.one_thread():
        return bake.bake(portrait_png, tmp_path_factory.mktemp("baked") / "avatar", lp=lp)


def one_sentence(err: Exception) -> str:
    msg = str(err)
    assert "\n" not in msg and msg.endswith(".") and msg.count(". ") == 0, msg
    leaked = err.__cause__ is not None or (err.__context__ is not None and not err.__suppress_context__)
    assert not leaked, "a library's stack trace leaks into the message"
    return msg


def no_leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ------------------------------------------------------------------------------------------------------ contents
def test_bundle_holds_what_the_manifest_says(bundle_dir, portrait_png):
    assert {p.name for p in bundle_dir.iterdir()} == BUNDLE_FILES
    b = bake.load_bundle(bundle_dir)
    m = b.manifest
    assert (m["format"], m["format_version"], m["profile"], m["fps"]) == ("talkinghead-avatar", bake.FORMAT_VERSION,
                                                                           "sample", 25)
    assert m["source"]["name"] == "wide.png" and (m["source"]["height"], m["source"]["width"]) == (480, 600)
    assert m["crop"]["dsize"] == 512 and m["crop"]["network_size"] == 64  # sample profile: 64 px network input
    assert m["motion_layout"]["dim"] == layout.MOTION_DIM and len(m["motion_layout"]["names"]) == 69
    assert m["audio_features"]["fps"] == 25 and m["audio_features"]["n_mels"] == 80
    # every file is listed with its true hash and size, and nothing refers outside the folder
    assert set(m["files"]) == BUNDLE_FILES - {"manifest.json"}
    for name, entry in m["files"].items():
        assert entry == {"sha256": sha256_file(bundle_dir / name), "bytes": (bundle_dir / name).stat().st_size}
    text = (bundle_dir / "manifest.json").read_text()
    assert str(bundle_dir.parent) not in text and str(portrait_png.parent) not in text
    # the portrait is the input, pixel for pixel
    assert b.portrait.dtype == np.uint8 and np.array_equal(b.portrait, non_square_portrait())
    assert m["source"]["sha256"] == bake._array_sha(non_square_portrait())


def test_bundle_tensors_match_a_recomputation(bundle_dir, lp):
    from talkinghead.liveportrait.keypoints import transform_keypoints_degrees

    b = bake.load_bundle(bundle_dir)
    s = b.source
    assert set(s) == set(bake.SOURCE_ARRAYS)
    assert all(v.dtype == np.float32 for v in s.values())
    assert s["feature_3d"].shape == (1, 8, 4, 16, 16)  # sample profile's F output
    assert {k: s[k].shape for k in ("kp", "exp", "x_s", "pose", "t", "scale")} == {
        "kp": (21, 3), "exp": (21, 3), "x_s": (21, 3), "pose": (3,), "t": (3,), "scale": (1,)}
    # F and M on the bundle's own (lossless) crop give back exactly the stored tensors
    with sf.one_thread():
        again = bake.source_info(lp, cropping.resize_for_network(b.crop, 64))
    for k in ("feature_3d", "kp", "exp", "pose", "t", "scale", "x_s", "lip_open"):
        np.testing.assert_allclose(s[k], again[k], atol=1e-6, err_msg=k)
    # x_s is the posed source: s * (x_c R + exp) + t
    x_s = transform_keypoints_degrees(*(torch.from_numpy(s[k]) for k in ("kp", "pose", "exp", "scale", "t")))
    np.testing.assert_allclose(s["x_s"], x_s.numpy(), atol=1e-6)
    assert s["lip_open"].shape == (1,) and s["lip_open"][0] == pytest.approx(s["exp"][19, 1] - s["exp"][17, 1])
    assert abs(s["pose"]).max() < 97.5  # degrees inside M's bin range


def test_crop_matrices_and_mask_are_consistent(bundle_dir):
    b = bake.load_bundle(bundle_dir)
    s, m = b.source, b.manifest
    np.testing.assert_allclose(s["M_o2c"].astype(np.float64) @ s["M_c2o"], np.eye(3), atol=1e-4)
    np.testing.assert_allclose(np.asarray(m["crop"]["M_o2c"]), s["M_o2c"], atol=1e-6)
    # the crop is the portrait warped by M_o2c
    warped = cv2.warpAffine(b.portrait, s["M_o2c"][:2].astype(np.float64), (512, 512), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT)
    assert b.crop.shape == (512, 512, 3) and np.abs(warped.astype(int) - b.crop).mean() < 1.0
    # the face (the detected nose) is inside the crop's middle
    nose = cropping.transform_points(np.asarray(m["source"]["points5"], np.float32)[2:3], s["M_o2c"])[0]
    assert 180 < nose[0] < 330 and 180 < nose[1] < 380
    # the paste mask: original coordinates, 1 on the face, 0 far away, and the crop-space mask carried over
    assert b.mask.shape == (480, 600) and b.mask.dtype == np.float32
    nx, ny = np.asarray(m["source"]["points5"])[2].round().astype(int)
    assert b.mask[ny, nx] == 1.0 and b.mask[0, 0] == 0.0 and b.mask[-1, -1] == 0.0 and b.mask[0, -1] == 0.0
    expect = cropping.mask_to_original(s["mask_crop"], s["M_c2o"], (480, 600))[..., 0]
    assert np.abs(b.mask - expect).max() <= 1 / 255 + 1e-6
    np.testing.assert_allclose(s["mask_crop"], cropping.make_paste_mask()[..., 0])
    assert 0.05 < b.mask.mean() < 0.5  # the face, not the whole picture


# ------------------------------------------------------------------------------------------------------ repeatable
def test_baking_twice_gives_identical_bytes(tmp_path, portrait_png, bundle_dir):
    with sf.one_thread():
        again = bake.bake(portrait_png, tmp_path / "again")  # networks loaded afresh: seeded, identical
    names = sorted(p.name for p in bundle_dir.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    for name in names:
        assert (bundle_dir / name).read_bytes() == (again / name).read_bytes(), name


# ------------------------------------------------------------------------------------------------------ atomic
def _fail_on_second_call(monkeypatch, name):
    real, calls = getattr(bake, name), []

    def flaky(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full (simulated)")
        return real(*a, **kw)

    monkeypatch.setattr(bake, name, flaky)
    return calls


@pytest.mark.parametrize("writer", ["_write_png", "save_npz", "save_json"])
def test_interrupted_bake_keeps_the_old_bundle(tmp_path, monkeypatch, bundle_dir, lp, writer):
    target = tmp_path / "avatar"
    shutil.copytree(bundle_dir, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    if writer == "save_npz":  # bake saves one npz: fail on the first instead
        monkeypatch.setattr(bake, "save_npz", lambda *a, **kw: (_ for _ in ()).throw(RuntimeError("disk full")))
    elif writer == "save_json":
        monkeypatch.setattr(bake, "save_json", lambda *a, **kw: (_ for _ in ()).throw(RuntimeError("disk full")))
    else:
        _fail_on_second_call(monkeypatch, writer)
    with pytest.raises(RuntimeError, match="disk full"):
        bake.bake(sf.astronaut()[:, ::-1], target, lp=lp)  # a different portrait, so a half-write would show
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert bake.load_bundle(target).manifest["source"]["name"] == "wide.png"
    assert no_leftovers(tmp_path) == []  # no temporary folder left behind


def test_interrupted_first_bake_leaves_nothing_that_loads(tmp_path, monkeypatch, lp):
    _fail_on_second_call(monkeypatch, "_write_png")
    with pytest.raises(RuntimeError, match="disk full"):
        bake.bake(sf.astronaut(), tmp_path / "avatar", lp=lp)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(BundleError, match="no manifest.json"):
        bake.load_bundle(tmp_path / "avatar")


# ------------------------------------------------------------------------------------------------------ loading
@pytest.fixture
def copy(tmp_path, bundle_dir):
    d = tmp_path / "copy"
    shutil.copytree(bundle_dir, d)
    return d


def test_other_format_version_is_refused(copy):
    mf = copy / "manifest.json"
    m = json.loads(mf.read_text())
    m["format_version"] = bake.FORMAT_VERSION + 1
    mf.write_text(json.dumps(m))
    with pytest.raises(BundleError) as e:
        bake.load_bundle(copy)
    msg = one_sentence(e.value)
    assert str(mf) in msg and f"version {bake.FORMAT_VERSION + 1}" in msg and "bake the portrait again" in msg


def test_changed_file_is_refused(copy):
    f = copy / "source.npz"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, inside a tensor
    f.write_bytes(bytes(data))
    with pytest.raises(BundleError) as e:
        bake.load_bundle(copy)
    assert str(f) in one_sentence(e.value) and "sha256" in str(e.value)
    with pytest.raises(BundleError, match="source.npz"):  # without the hash check, the zip's CRC still notices
        bake.load_bundle(copy, verify=False)


def test_missing_file_is_refused(copy):
    (copy / "paste_mask.png").unlink()
    with pytest.raises(BundleError) as e:
        bake.load_bundle(copy)
    assert str(copy / "paste_mask.png") in one_sentence(e.value) and "missing" in str(e.value)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"format": "talkinghead-avatar", "format_version": 1}'],
                         ids=["garbage", "list", "no-files"])
def test_broken_manifest_is_a_bundle_error(copy, content):
    (copy / "manifest.json").write_text(content)
    with pytest.raises(BundleError) as e:
        bake.load_bundle(copy)
    assert "manifest.json" in one_sentence(e.value)


def test_unlisted_file_is_refused(copy):
    mf = copy / "manifest.json"
    m = json.loads(mf.read_text())
    del m["files"]["source.npz"]  # else a changed source.npz would load unchecked
    mf.write_text(json.dumps(m))
    with pytest.raises(BundleError) as e:
        bake.load_bundle(copy)
    assert str(mf) in one_sentence(e.value) and "source.npz" in str(e.value)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError) as e:
        bake.load_bundle(tmp_path)
    assert str(tmp_path) in one_sentence(e.value) and "bake" in str(e.value)


def test_add_files_registers_later_stage_outputs(copy):
    (copy / "audio2motion.pt").write_bytes(b"weights")
    m = bake.add_files(copy, ["audio2motion.pt"], audio2motion={"params": 3})
    assert m["files"]["audio2motion.pt"]["sha256"] == sha256_file(copy / "audio2motion.pt")
    assert bake.load_bundle(copy).manifest["audio2motion"] == {"params": 3}
    (copy / "audio2motion.pt").write_bytes(b"weightz")
    with pytest.raises(BundleError, match="audio2motion.pt"):
        bake.load_bundle(copy)


# ------------------------------------------------------------------------------------------------------ bad inputs
def test_not_an_image(tmp_path, lp):
    p = tmp_path / "me.jpg"
    p.write_text("this is not a photo")
    for call in (lambda: bake.load_portrait(p), lambda: bake.bake(p, tmp_path / "avatar", lp=lp)):
        with pytest.raises(MediaError) as e:
            call()
        assert str(p) in one_sentence(e.value) and "not a readable image" in str(e.value)
    assert not (tmp_path / "avatar").exists()


def test_missing_portrait(tmp_path, lp):
    with pytest.raises(MediaError) as e:
        bake.bake(tmp_path / "nope.png", tmp_path / "avatar", lp=lp)
    assert str(tmp_path / "nope.png") in one_sentence(e.value) and "no such" in str(e.value)


def test_truncated_image(tmp_path):
    p = tmp_path / "cut.jpg"
    Image.fromarray(sf.astronaut()).save(p, quality=90)
    p.write_bytes(p.read_bytes()[:3000])
    with pytest.raises(MediaError) as e:
        bake.load_portrait(p)
    assert str(p) in one_sentence(e.value)


def test_no_face(tmp_path, lp):
    p = tmp_path / "grey.png"
    Image.fromarray(np.full((300, 400, 3), 128, np.uint8)).save(p)
    with pytest.raises(FaceError) as e:
        bake.bake(p, tmp_path / "avatar", lp=lp)
    assert "grey.png" in one_sentence(e.value) and "no face" in str(e.value)
    assert not (tmp_path / "avatar").exists()


def test_two_faces_need_pick_largest(tmp_path, lp):
    a = sf.astronaut()
    pair = np.full((512, 900, 3), 200, np.uint8)
    pair[:, :512] = a
    pair[100:420, 560:880] = cv2.resize(a, (320, 320), interpolation=cv2.INTER_AREA)  # a smaller second face
    p = tmp_path / "two.png"
    Image.fromarray(pair).save(p)
    with pytest.raises(FaceError) as e:
        bake.bake(p, tmp_path / "avatar", lp=lp)
    assert "two.png" in one_sentence(e.value) and "2 faces" in str(e.value) and "pick='largest'" in str(e.value)
    with sf.one_thread():
        out = bake.bake(p, tmp_path / "avatar", lp=lp, pick="largest")
    box = bake.load_bundle(out).manifest["source"]["face_box"]
    assert box[2] < 512  # the big face, on the left


# ------------------------------------------------------------------------------------------------------ image formats
@pytest.mark.parametrize("orientation,turns", [(6, 1), (8, -1), (3, 2)])
def test_exif_orientation_is_honoured(tmp_path, orientation, turns):
    upright = non_square_portrait()
    stored = np.ascontiguousarray(np.rot90(upright, turns))  # what the camera wrote; the tag says how to turn it
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / f"exif{orientation}.jpg"
    Image.fromarray(stored).save(p, quality=95, exif=exif)
    got = bake.load_portrait(p)
    assert got.shape == upright.shape and got.dtype == np.uint8
    assert np.abs(got.astype(int) - upright).mean() < 4  # JPEG-close to the upright picture
    if orientation != 3:
        assert np.array(Image.open(p)).shape != upright.shape  # without the tag's turn it would be sideways


def test_exif_rotated_photo_bakes_like_the_upright_one(tmp_path, bundle_dir, lp):
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "phone.jpg"
    Image.fromarray(np.ascontiguousarray(np.rot90(non_square_portrait(), 1))).save(p, quality=95, exif=exif)
    with sf.one_thread():
        m = bake.load_bundle(bake.bake(p, tmp_path / "avatar", lp=lp)).manifest
    ref = bake.load_bundle(bundle_dir).manifest
    assert (m["source"]["height"], m["source"]["width"]) == (480, 600)
    np.testing.assert_allclose(m["source"]["points5"], ref["source"]["points5"], atol=6)


def test_rgba_transparency_becomes_white(tmp_path):
    rgb = non_square_portrait()
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :44] = 0          # fully transparent band
    alpha[:, 556:] = 128       # half transparent band
    p = tmp_path / "cutout.png"
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(p)
    got = bake.load_portrait(p)
    assert got.shape == rgb.shape and got.dtype == np.uint8
    assert (got[:, :44] == 255).all()
    assert np.array_equal(got[:, 44:556], rgb[:, 44:556])
    assert np.abs(got[:, 556:].astype(int) - (rgb[:, 556:].astype(int) * 128 + 255 * 127) / 255).max() <= 1


def test_grey_and_palette_images_come_out_rgb(tmp_path):
    g = tmp_path / "grey.png"
    Image.fromarray(sf.astronaut()[..., 1]).save(g)
    got = bake.load_portrait(g)
    assert got.shape == (512, 512, 3) and np.array_equal(got[..., 0], sf.astronaut()[..., 1])
    pal = tmp_path / "pal.png"
    img = Image.fromarray(np.zeros((8, 8, 3), np.uint8)).convert("P")
    img.info["transparency"] = 0
    img.save(pal, transparency=0)
    assert (bake.load_portrait(pal) == 255).all()  # the transparent palette entry is white
