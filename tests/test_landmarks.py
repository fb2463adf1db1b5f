"""talkinghead.landmarks: LivePortrait's 203-point landmark model on a stand-in ONNX file with the released signature.

The stand-in (input `input` (1, 3, 224, 224) float32, outputs `output`, `853`, `856` with the points (1, 406) third)
finds a pure-red marker in its crop and returns a fixed 203-point face layout around it, so every step can be checked
against the marker's true position: the 1.5-scale crop, RGB order and /255 scaling of the input, the output scaled to
224 and mapped back to the image, the second pass, the crop from 203 points and the close ratios.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from talkinghead import face, landmarks
from talkinghead.errors import WeightsError
from talkinghead.hub import LANDMARK_FILE

EYE_A, EYE_B = 0.05, 0.015          # eye half-width and half-height, crop fractions: eye ratio 2b / 2a = 0.3
LIP_GAP, LIP_WIDTH = 0.02, 0.18     # lip ratio 0.02 / 0.18


def template() -> np.ndarray:
    """(203, 2) offsets from the nose tip in crop fractions: eyes, lips, pupils, nose, the rest on the face outline."""
    t = np.zeros((203, 2), np.float32)
    k = np.arange(203)
    ang = 2 * np.pi * k / 203
    t[:] = np.stack([0.3 * np.cos(ang), -0.02 + 0.38 * np.sin(ang)], axis=1)      # outline
    for start, cx, phase in ((0, -0.12, math.pi), (24, 0.12, 0.0)):            # eye rings: corners at +0, +12
        th = phase + 2 * np.pi * np.arange(24) / 24
        t[start:start + 24] = np.stack([cx + EYE_A * np.cos(th), -0.12 + EYE_B * np.sin(th)], axis=1)
    t[48], t[66] = (-LIP_WIDTH / 2, 0.1), (LIP_WIDTH / 2, 0.1)
    t[90], t[102] = (0.0, 0.1 - LIP_GAP / 2), (0.0, 0.1 + LIP_GAP / 2)
    t[197], t[198], t[201] = (-0.12, -0.12), (0.12, -0.12), (0.0, 0.0)
    return t


def make_stand_in(path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")

    class StandIn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("t", torch.from_numpy(template().reshape(1, 406)))
            self.register_buffer("c", torch.arange(224, dtype=torch.float32) / 224)

        def forward(self, x):
            w = torch.relu(x[:, 0] - x[:, 1] - x[:, 2] - 0.5)                   # pure red, RGB in [0, 1]
            w = w / (w.sum(dim=(1, 2), keepdim=True) + 1e-6)
            centre = torch.stack([(w.sum(1) * self.c).sum(-1), (w.sum(2) * self.c).sum(-1)], dim=-1)
            return x.mean(dim=(2, 3)), x.amax(dim=(1, 2, 3))[:, None], centre.repeat(1, 203) + self.t

    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.onnx.export(StandIn().eval(), (torch.zeros(1, 3, 224, 224),), str(path), opset_version=17,
                          input_names=["input"], output_names=["output", "o853", "o856"], dynamo=False)
    except Exception as e:  # an exporter missing here is not this module's fault
        pytest.skip(f"torch.onnx.export unavailable: {type(e).__name__}: {e}")
    model = onnx.load(str(path))             # the exporter refuses numeric names; the released file has them
    renames = {"o853": "853", "o856": "856"}
    for node in model.graph.node:
        node.output[:] = [renames.get(o, o) for o in node.output]
        node.input[:] = [renames.get(i, i) for i in node.input]
    for out in model.graph.output:
        out.name = renames.get(out.name, out.name)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("weights")
    make_stand_in(d / LANDMARK_FILE)
    return d


@pytest.fixture(scope="module")
def marked():
    """The astronaut with a 5x5 pure-red marker on her nose tip: (image, marker centre (x, y))."""
    skdata = pytest.importorskip("skimage.data")
    img = np.ascontiguousarray(skdata.astronaut())
    img[124:129, 222:227] = (255, 0, 0)
    return img, np.array([224.0, 126.0], np.float32)


def test_session_has_the_released_signature(weights):
    s = landmarks.landmark_session(weights)
    assert [(i.name, i.shape) for i in s.get_inputs()] == [("input", [1, 3, 224, 224])]
    assert [o.name for o in s.get_outputs()] == ["output", "853", "856"]
    assert s.get_outputs()[2].shape == [1, 406]


def test_one_pass_maps_the_points_back_to_the_image(weights, marked):
    img, nose = marked
    start = face.outline_points(face.detect_face(img, detector="mtcnn").points5)
    lmk = landmarks.run_landmarks(landmarks.landmark_session(weights), img, start)
    assert lmk.shape == (203, 2) and lmk.dtype == np.float32
    np.testing.assert_allclose(lmk[201], nose, atol=1.0)          # the model's nose is the marker, in image pixels
    np.testing.assert_allclose(lmk - lmk[201], _template_in_image(start), atol=1.0)  # scaled with the crop's side


def _template_in_image(points: np.ndarray) -> np.ndarray:
    """The template as the stand-in places it around the nose, for a crop framed by `points` (N, 2)."""
    _, side, angle = face.crop_rect(points, 1.5, 0.0, -0.1)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return template() @ rot.T * side


def test_second_pass_is_framed_by_the_first_passes_203_points(weights, marked):
    img, _ = marked
    start = face.outline_points(face.detect_face(img, detector="mtcnn").points5)
    session = landmarks.landmark_session(weights)
    first = landmarks.run_landmarks(session, img, start)
    second = landmarks.landmarks203(session, img, start)           # two passes by default
    side1, side2 = face.crop_rect(start, 1.5, 0.0, -0.1)[1], face.crop_rect(first, 1.5, 0.0, -0.1)[1]
    assert abs(side1 - side2) > 5                                   # the two framings differ measurably
    np.testing.assert_allclose(second - second[201], _template_in_image(first), atol=1.0)
    np.testing.assert_allclose(landmarks.landmarks203(session, img, start, passes=1), first, atol=1e-4)


def test_grey_or_bgr_input_would_miss_the_marker(weights, marked):
    img, nose = marked
    start = face.outline_points(face.detect_face(img, detector="mtcnn").points5)
    bgr = np.ascontiguousarray(img[..., ::-1])
    lmk = landmarks.run_landmarks(landmarks.landmark_session(weights), bgr, start)
    assert np.linalg.norm(lmk[201] - nose) > 5                    # the RGB check above is not vacuous


def test_detect_face_adds_landmarks_ratios_and_the_landmark_crop(weights, marked):
    img, nose = marked
    f = face.detect_face(img, detector="mtcnn", landmarks="on", weights_dir=weights)
    assert f.landmarks.shape == (203, 2)
    np.testing.assert_allclose(f.landmarks[201], nose, atol=1.0)  # after the second pass too
    np.testing.assert_allclose(landmarks.points5(f.landmarks)[2], nose, atol=1.0)
    r = f.close_ratios()
    np.testing.assert_allclose(r["eye"], [EYE_B / EYE_A] * 2, atol=1e-3)
    np.testing.assert_allclose(r["lip"], [LIP_GAP / LIP_WIDTH], atol=1e-3)
    c = face.crop_face(img, f)
    assert c.img_crop.shape == (512, 512, 3) and c.pt_crop.shape == (208, 2)
    m_o2c, _ = face.crop_matrices(f.landmarks)                    # framed by the 203 points, not the 5
    np.testing.assert_allclose(c.M_o2c, m_o2c, atol=1e-4)
    assert not np.allclose(c.M_o2c, face.crop_image(img, face.outline_points(f.points5)).M_o2c, atol=1e-2)
    np.testing.assert_allclose(c.pt_crop[:5], face.transform_points(f.points5, c.M_o2c), atol=1e-3)
    lmk_crop = c.pt_crop[5:]
    eye = (lmk_crop[[0, 6, 12, 18]].mean(0) + lmk_crop[[24, 30, 36, 42]].mean(0)) / 2
    mouth = lmk_crop[[48, 66]].mean(0)
    assert abs(eye[0] - mouth[0]) < 1e-2 and mouth[1] > eye[1]    # roll cancelled by the landmarks' own axis
    red = np.argwhere((c.img_crop[..., 0] > 200) & (c.img_crop[..., 1] < 60) & (c.img_crop[..., 2] < 60))
    np.testing.assert_allclose(red.mean(0)[::-1], lmk_crop[201], atol=1.5)   # the marker sits at the nose point


def test_rolled_face_gives_the_same_ratios(weights, marked):
    img, _ = marked
    h, w = img.shape[:2]
    M = cv2.getRotationMatrix2D((w / 2, h / 2), 20, 1.0)
    rolled = cv2.warpAffine(img, M, (w, h), flags=cv2.INTER_NEAREST)
    f = face.detect_face(rolled, detector="mtcnn", landmarks="on", weights_dir=weights)
    np.testing.assert_allclose(f.landmarks[201], M[:, :2] @ [224.0, 126.0] + M[:, 2], atol=1.5)
    np.testing.assert_allclose(f.close_ratios()["eye"], [EYE_B / EYE_A] * 2, atol=2e-3)


def test_landmark_choice_by_profile(weights, tmp_path, monkeypatch):
    monkeypatch.setattr(face, "_AUTO_LANDMARKS", {})
    monkeypatch.setenv("TALKINGHEAD_PROFILE", "sample")
    assert face.resolve_landmarks("auto", weights) is False         # sample: never
    monkeypatch.setenv("TALKINGHEAD_PROFILE", "full")
    assert face.resolve_landmarks("auto", weights) is True
    with pytest.warns(UserWarning, match="without LivePortrait's landmarks: .*landmark.onnx"):
        assert face.resolve_landmarks("auto", tmp_path / "empty") is False
    assert face.resolve_landmarks("off", weights) is False
    with pytest.raises(ValueError):
        face.resolve_landmarks("yes")


def test_missing_wrong_or_corrupt_model(tmp_path, marked):
    img, _ = marked
    with pytest.raises(WeightsError, match="landmark.onnx: not found"):
        face.detect_face(img, detector="mtcnn", landmarks="on", weights_dir=tmp_path)
    bad = tmp_path / LANDMARK_FILE
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(WeightsError, match="corrupt"):
        landmarks.landmark_session(tmp_path)
    with pytest.raises(WeightsError, match="no output of 406 values"):
        landmarks._points_output([np.zeros((1, 10)), np.zeros((1, 3))])


def test_fetch_all_includes_the_landmark_model(tmp_path):
    from talkinghead import hub

    for rel in [*hub.LIVEPORTRAIT_FILES.values(), hub.FACE_DETECTOR_FILE]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    with pytest.raises(WeightsError, match="landmark.onnx: not found"):
        hub.fetch_all(tmp_path)
    assert "landmarks" not in hub.fetch_all(tmp_path, landmarks=False)
    (tmp_path / LANDMARK_FILE).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / LANDMARK_FILE).write_bytes(b"x")
    assert hub.fetch_all(tmp_path)["landmarks"] == tmp_path / LANDMARK_FILE
