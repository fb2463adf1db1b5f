"""talkinghead.motion: recording -> dataset.npz (face tracking, M per frame, neutral frame, audio features, segments).

"Done when": on the sample recording the extraction runs and its shapes and clock agree exactly with the motion the
frames were rendered from (the sample profile's faces are noise, so the values cannot), and odd inputs (30 fps,
variable frame rate, portrait rotation, no audio, frames without a face) are handled or refused with one sentence.
The odd videos are a talking astronaut (a real face for OpenCV's cascade) made with ffmpeg, 2 s or less.
"""
from __future__ import annotations

import subprocess
import warnings

import numpy as np
import pytest

import stage_fixtures as sf
from talkinghead import layout, motion, sample
from talkinghead import video as V
from talkinghead.audio import FeatureParams, features_for_frames
from talkinghead.dataset import load_dataset
from talkinghead.errors import MediaError
from talkinghead.face import detect_faces
from talkinghead.fileio import load_json, load_npz, sha256_file

FPS = 25
N30 = 52  # frames of the 30 fps videos: 1.7333 s, i.e. 43.33 frames at 25 fps -> 43


# ================================================================================================ the sample recording
@pytest.fixture(scope="module")
def sample_ex(tmp_path_factory):
    return sf.sample_extraction(tmp_path_factory)


def test_sample_recording_extracts_on_its_own_clock(sample_ex):
    ex, rec, _ = sample_ex
    truth = load_npz(rec.motion_file)
    ds = load_dataset(ex.dataset, expect_params=FeatureParams())  # trainable as it is
    n = rec.n_frames
    assert ex.n_frames == len(ds) == n == len(truth["motion"])
    assert ds.motion.shape == truth["motion"].shape == (n, layout.MOTION_DIM)
    np.testing.assert_array_equal(ds.time_s, truth["time_s"])
    np.testing.assert_array_equal(ds.time_s, np.arange(n) / FPS)
    assert ds.features.shape == (n, 4, 80) and ds.features.dtype == np.float32
    assert ds.fps == 25 and ds.meta["n_frames"] == n
    assert ds.valid.all() and ex.n_valid == n
    assert ds.meta["tracking"]["missing"] == 0


def test_sample_segments_come_from_the_sidecar(sample_ex):
    ex, rec, _ = sample_ex
    ds = load_dataset(ex.dataset)
    assert ds.segments == rec.segments
    assert [s["id"] for s in ds.segments] == [s["id"] for s in load_json(rec.meta_file)["segments"]]
    expect = np.full(rec.n_frames, -1)
    for k, s in enumerate(rec.segments):
        expect[s["start_frame"]:s["end_frame"]] = k
    np.testing.assert_array_equal(ds.segment, expect)
    assert (ds.emotion == layout.EMOTIONS.index("neutral")).all()
    assert ds.line_ids == [s["id"] for s in rec.segments]


def test_sample_reference_frame_and_relative_motion(sample_ex):
    ex, rec, _ = sample_ex
    ds = load_dataset(ex.dataset)
    raw = load_npz(ex.raw)
    ref = ds.meta["reference_frame"]
    assert ref == ex.reference_frame and 0 <= ref < ex.n_frames and ds.valid[ref]
    assert ref == motion.reference_frame(raw["exp"], raw["pose"], raw["valid"])
    np.testing.assert_allclose(ds.motion[ref], 0.0, atol=1e-7)  # relative to itself
    np.testing.assert_allclose(ds.motion, layout.relative(raw["exp"], raw["pose"], raw["t"], raw["scale"], ref),
                               atol=1e-6)
    assert np.ptp(ds.motion[:, :63], axis=0).max() > 0  # M sees different frames differently
    kp = ds.meta["reference_keypoints"]
    np.testing.assert_allclose(np.asarray(kp["exp"]).reshape(63), raw["exp"][ref], atol=1e-6)
    np.testing.assert_allclose(np.asarray(kp["x_c"]).reshape(63), raw["kp"][ref], atol=1e-6)
    # the face crop follows the sidecar's points wherever the (noise) face was not detected
    sidecar = np.asarray(load_json(rec.meta_file)["face_points5"], np.float32)
    assert raw["points5"].shape == (ex.n_frames, 5, 2)
    fell_back = raw["points5"][~raw["detected"]]
    np.testing.assert_allclose(fell_back, np.broadcast_to(sidecar, fell_back.shape))
    src = ds.meta["source"]
    assert (src["video"], src["sha256"]) == (rec.video.name, sha256_file(rec.video))
    assert (src["width"], src["height"], src["rotation_deg"]) == (512, 512, 0)


def test_sample_audio_features_share_the_video_clock(sample_ex):
    """The features from the mp4's sound line up, frame for frame, with the same features of the original audio."""
    ex, _, corpus = sample_ex
    ds = load_dataset(ex.dataset)
    timeline = sample.build_timeline(corpus, sf.RECORDING_LINES)
    ref = features_for_frames(timeline.audio, FeatureParams(), len(ds))
    a, b = ds.features.mean(axis=(1, 2)), ref.mean(axis=(1, 2))
    a, b = (a - a.mean()) / a.std(), (b - b.mean()) / b.std()
    corr = {lag: float(np.mean(a[max(lag, 0):len(a) + min(lag, 0)] * b[max(-lag, 0):len(b) + min(-lag, 0)]))
            for lag in range(-3, 4)}
    assert max(corr, key=corr.get) == 0 and corr[0] > 0.95, corr
    speech = ds.segment >= 0
    assert a[speech].mean() > a[~speech].mean() + 1  # the lines are the loud frames


# ================================================================================================ odd videos
@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    """Short talking-astronaut videos: clean 30 fps, the same with 5 grey frames, variable frame rate, portrait
    rotation, no audio, no face."""
    d = tmp_path_factory.mktemp("odd")
    v = {"clean": sf.talking_video(d / "clean30.mp4", n=N30),
         "grey": sf.talking_video(d / "grey30.mp4", n=N30, blank=range(20, 25)),
         "silent": sf.talking_video(d / "silent.mp4", n=20, audio=False),
         "noface": sf.talking_video(d / "noface.mp4", n=20, blank=range(20))}
    # variable frame rate: 30 frames at 30 fps, then 15 frames at 15 fps (2.0 s), the sound muxed in
    sf.talking_video(d / "cfr45.mp4", n=45, audio=False)
    V.write_video(d / "tone.mp4", np.zeros((50, 16, 16, 3), np.uint8), fps=25, audio=(sf.tone_with_pause(2.0), 16000),
                  progress=False)
    sf.ffmpeg("-i", str(d / "cfr45.mp4"), "-i", str(d / "tone.mp4"), "-map", "0:v", "-map", "1:a",
              "-vf", "settb=1/1000,setpts='if(lt(N,30),N/30,1+(N-30)/15)/TB'", "-fps_mode", "vfr",
              "-enc_time_base:v", "1/1000", "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", "-c:a", "copy",
              str(d / "vfr.mp4"))
    v["vfr"] = d / "vfr.mp4"
    # a phone video: landscape pixels, tagged "rotate 90 degrees clockwise" for display (portrait 192 x 256)
    upright = lambda k, n: sf.talking_frame(k, n, size=(192, 256))  # noqa: E731
    sf.talking_video(d / "land.mp4", n=N30, frame_fn=lambda k, n: np.ascontiguousarray(np.rot90(upright(k, n), 1)))
    sf.ffmpeg("-display_rotation", "-90", "-i", str(d / "land.mp4"), "-c", "copy", str(d / "rotated.mp4"))
    v["rotated"] = d / "rotated.mp4"
    v["upright0"] = upright(0, N30)
    return v


@pytest.fixture(scope="module")
def extracted(odd):
    """Extraction of each usable odd video (made once): name -> (Extraction, Dataset)."""
    def run(name):
        with sf.one_thread(), warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # no numpy warnings on frames without a face
            ex = motion.extract(odd[name], odd[name].with_name(f"{name}.npz"), lp=sf.liveportrait(), progress=False)
        return ex, load_dataset(ex.dataset, min_valid_s=1.0)

    cache = {}
    return lambda name: cache[name] if name in cache else cache.setdefault(name, run(name))


def frame_pts(path) -> np.ndarray:
    """Presentation times (s) of the video packets, sorted."""
    r = subprocess.run([V.ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "framecrc",
                        "-"], capture_output=True, text=True)
    tb = [ln for ln in r.stdout.splitlines() if ln.startswith("#tb 0")][0].split(":")[1].strip().split("/")
    pts = sorted(int(ln.split(",")[2]) for ln in r.stdout.splitlines() if ln and not ln.startswith("#"))
    return np.array(pts) * int(tb[0]) / int(tb[1])


def test_30fps_video_is_resampled_to_25(odd, extracted):
    info = V.probe(odd["clean"])
    assert info.fps == 30 and info.duration_s == pytest.approx(N30 / 30, abs=0.01)
    ex, ds = extracted("clean")
    assert len(ds) == ex.n_frames == round(N30 / 30 * FPS) == 43
    np.testing.assert_array_equal(ds.time_s, np.arange(43) / FPS)
    assert ds.features.shape == (43, 4, 80)
    assert ds.valid.all(), np.flatnonzero(~ds.valid)  # the astronaut is found in every frame
    # the tone's pause (0.8-1.2 s) splits it into two segments, in video frames at 25 fps
    assert [(s["start_frame"], s["end_frame"]) for s in ds.segments] == [(5, 20), (30, 43)]
    np.testing.assert_array_equal(ds.segment, np.r_[[-1] * 5, [0] * 15, [-1] * 10, [1] * 13])
    # the tracked face moves as the frames slide (+-6 px over the clip), smoothly
    raw = load_npz(ex.raw)
    nose_x = raw["points5"][:, 2, 0]
    assert 3 < np.ptp(nose_x) < 30 and np.abs(np.diff(nose_x)).max() < 6


def test_frames_without_a_face_are_flagged_not_dropped(odd, extracted):
    ex, ds = extracted("grey")
    _, clean = extracted("clean")
    # output frame k shows source frame floor((k + 1/2) * 30 / 25): grey source frames 20-24 are outputs 17-20
    assert np.flatnonzero(~ds.valid).tolist() == [17, 18, 19, 20]
    assert len(ds) == len(clean) and ex.n_valid == len(ds) - 4
    assert ds.meta["tracking"]["missing"] == 4
    np.testing.assert_array_equal(ds.motion[~ds.valid], 0.0)
    assert np.isfinite(ds.motion).all()
    assert ds.segments == clean.segments
    np.testing.assert_array_equal(ds.segment, clean.segment)
    np.testing.assert_allclose(ds.features, clean.features, atol=1e-4)  # the same sound, on the same clock
    raw = load_npz(ex.raw)
    assert np.isnan(raw["points5"][17:21]).all() and np.isfinite(raw["points5"][ds.valid]).all()
    assert ds.valid[ds.meta["reference_frame"]]


def test_variable_frame_rate(odd, extracted):
    pts = frame_pts(odd["vfr"])
    gaps = np.round(np.diff(pts), 2)
    assert set(gaps) == {0.03, 0.07}  # really variable: 30 fps, then 15 fps
    ex, ds = extracted("vfr")
    assert abs(len(ds) - 2.0 * FPS) <= 1
    np.testing.assert_array_equal(ds.time_s, np.arange(len(ds)) / FPS)
    assert ds.valid.mean() > 0.9
    assert [(s["start_frame"], s["end_frame"]) for s in ds.segments] == [(5, 20), (30, len(ds))]


def test_portrait_rotation_is_applied_before_tracking(odd, extracted):
    info = V.probe(odd["rotated"])
    assert (info.width, info.height, info.rotation_deg) == (192, 256, 90)
    stored = np.ascontiguousarray(np.rot90(odd["upright0"], 1))
    assert detect_faces(stored) == []  # sideways, as stored, the face would not be found
    ex, ds = extracted("rotated")
    assert len(ds) == 43 and ds.valid.all()
    src = ds.meta["source"]
    assert (src["width"], src["height"], src["rotation_deg"]) == (192, 256, 90)
    raw = load_npz(ex.raw)
    want = detect_faces(odd["upright0"])[0].points5
    np.testing.assert_allclose(raw["points5"][0], want, atol=6)  # points in upright (displayed) pixels


def test_video_without_audio_is_refused(odd, tmp_path):
    with pytest.raises(MediaError) as e:
        motion.extract(odd["silent"], tmp_path / "dataset.npz", lp=sf.liveportrait(), progress=False)
    msg = str(e.value)
    assert msg.startswith(str(odd["silent"])) and "has no audio track" in msg and "\n" not in msg
    assert e.value.__cause__ is None
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_video_without_any_face_is_refused(odd, tmp_path):
    with pytest.raises(MediaError) as e:
        with sf.one_thread():
            motion.extract(odd["noface"], tmp_path / "dataset.npz", lp=sf.liveportrait(), progress=False)
    assert str(e.value).startswith(str(odd["noface"])) and "no face found in any frame" in str(e.value)
    assert list(tmp_path.iterdir()) == []


# ================================================================================================ the rules
def test_segments_from_pauses():
    sr = 16000
    spans = [(0.52, 1.52), (2.12, 2.92), (3.12, 3.60)]  # 0.6 s pause (splits), then 0.2 s (does not)
    t = np.arange(int(4.12 * sr)) / sr
    x = np.zeros_like(t)
    for a, b in spans:
        on = (t >= a) & (t < b)
        x[on] = 0.5 * np.sin(2 * np.pi * 300 * t[on])
    x += 1e-4 * np.random.default_rng(0).standard_normal(len(x))  # -74 dB room noise is still a pause
    n = int(4.12 * FPS)
    segs = motion.segments_from_pauses(x.astype(np.float32), sr, n, FPS)
    assert [(s["start_frame"], s["end_frame"]) for s in segs] == [(13, 38), (53, 90)]
    assert [s["id"] for s in segs] == ["seg-000", "seg-001"]
    assert all(s["emotion"] == "neutral" for s in segs)
    # a shorter pause threshold splits at the short gap too; silence gives nothing
    assert len(motion.segments_from_pauses(x.astype(np.float32), sr, n, FPS, pause_s=0.15)) == 3
    assert motion.segments_from_pauses(np.zeros(sr, np.float32), sr, 25, FPS) == []
    assert motion.segments_from_pauses(np.zeros(10, np.float32), sr, 1, FPS) == []
    # speech running to the very end is closed at the last frame
    tail = motion.segments_from_pauses(x[: int(3.4 * sr)].astype(np.float32), sr, int(3.4 * FPS), FPS)
    assert tail[-1]["end_frame"] == int(3.4 * FPS)


def test_smooth_points_never_blends_across_gaps():
    n = 14
    rng = np.random.default_rng(1)
    pts = rng.normal(100, 5, (n, 5, 2)).astype(np.float32)
    detected = np.ones(n, bool)
    detected[6:8] = False
    pts[6:8] = np.nan
    pts[8:] += 500  # after the gap the face is elsewhere (a cut): nothing of it may leak back
    out = motion.smooth_points(pts, detected, width=5)
    assert np.isnan(out[6:8]).all() and np.isfinite(out[detected]).all()
    assert out[:6].max() < 200 and out[8:].min() > 300
    np.testing.assert_allclose(out[2], pts[0:5].mean(axis=0), rtol=1e-6)  # centred window inside a run
    np.testing.assert_allclose(out[0], pts[0:3].mean(axis=0), rtol=1e-6)  # shrunk at the run's edges
    np.testing.assert_allclose(out[5], pts[3:6].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(out[9], pts[8:12].mean(axis=0), rtol=1e-6)
    single = np.zeros(n, bool)
    single[3] = True
    np.testing.assert_array_equal(motion.smooth_points(pts, single)[3], pts[3])  # a lone detection stays put
    steady = np.repeat(pts[:1], n, axis=0)
    np.testing.assert_allclose(motion.smooth_points(steady, np.ones(n, bool)), steady, rtol=1e-6)


def test_pick_track_follows_the_speaker_not_a_larger_false_positive():
    def face(x, y, w):
        return np.array([[x - w / 4, y], [x + w / 4, y], [x, y + w / 5], [x - w / 5, y + w / 2.5],
                         [x + w / 5, y + w / 2.5]], np.float32)

    n = 12
    cands = [[(face(100 + k, 50, 60), 6.0)] for k in range(n)]
    for k in (0, 3, 4, 9):  # a bigger, less confident "face" on the collar now and then, listed first (largest)
        cands[k].insert(0, (face(200, 120, 90), 2.5))
    cands[6] = []  # a frame with no face
    cands[7] = [(face(200, 120, 90), 9.0), (face(107, 51, 60), 1.0)]  # the false one even wins on score once
    points, detected = motion.pick_track(cands)
    assert detected.tolist() == [k != 6 for k in range(n)]
    assert np.isnan(points[6]).all()
    xs = points[detected, 2, 0]
    np.testing.assert_allclose(xs, [100 + k for k in range(n) if k != 6])
    assert motion.pick_track([[], []])[1].tolist() == [False, False]


def test_reference_frame_is_closed_mouth_frontal_eyes_open():
    rng = np.random.default_rng(2)
    n = 30
    sliders = {"aaa": rng.uniform(5, 40, n), "blink": rng.uniform(-15, 0, n)}
    pose = rng.uniform(-12, 12, (n, 3))
    best, invalid_better, blinking = 11, 4, 7
    for k in (best, invalid_better, blinking):
        sliders["aaa"][k], sliders["blink"][k], pose[k] = -3.0, 0.0, (0.3, -0.2, 0.1)
    sliders["aaa"][invalid_better], pose[invalid_better] = -6.0, 0.0  # even better, but no face in that frame
    sliders["blink"][blinking] = -15.0  # as good as the best (and earlier), but mid-blink (sample: negative closes)
    base = rng.normal(0, 0.02, 63)
    exp = base + sample.sliders_to_exp(sliders, n)
    valid = np.ones(n, bool)
    valid[invalid_better] = False
    assert motion.reference_frame(exp, pose, valid) == best
    assert motion.reference_frame(exp, pose, np.ones(n, bool)) == invalid_better
    assert motion.reference_frame(exp, pose, np.zeros(n, bool)) == 0
    # the eye proxy grows as the eyes close (sample's blink direction), the mouth proxy as the jaw opens
    blink = sample.sliders_to_exp({"blink": np.array([0.0, -20.0])}, 2)
    assert motion.eye_closure(blink)[1] > motion.eye_closure(blink)[0]


def test_per_frame_labels():
    segs = [{"start_frame": -2, "end_frame": 3, "emotion": "happy"}, {"start_frame": 5, "end_frame": 99,
                                                                       "emotion": "unknown"}]
    seg, emo = motion.per_frame_labels(segs, 8)
    np.testing.assert_array_equal(seg, [0, 0, 0, -1, -1, 1, 1, 1])
    np.testing.assert_array_equal(emo, [1, 1, 1, 0, 0, 0, 0, 0])
    assert seg.dtype == np.int32 and emo.dtype == np.int16
