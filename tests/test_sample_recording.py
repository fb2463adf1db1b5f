"""talkinghead.sample: the procedural sample recording (visemes from phoneme timings -> motion -> mp4 with sound).

The recording is built once from a small espeak corpus (stage_fixtures); the motion-track rules (visemes, emotions,
determinism) are checked on synthetic timelines with known phoneme times.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import stage_fixtures as sf
from talkinghead import layout, sample
from talkinghead import video as V
from talkinghead.errors import TalkingHeadError
from talkinghead.fileio import load_json, load_npz
from talkinghead.tts import read_wav

FPS = layout.FPS


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    return sf.sample_recording(tmp_path_factory)


@pytest.fixture(scope="module")
def timeline(rec):
    _, corpus = rec
    return sample.build_timeline(corpus, sf.RECORDING_LINES)


def mouth(motion: np.ndarray) -> np.ndarray:
    return layout.mouth_open(motion)


def silent_timeline(seconds: float, phonemes=(), segments=()) -> sample.Timeline:
    return sample.Timeline(np.zeros(int(seconds * layout.SAMPLE_RATE), np.float32), list(segments),
                           [{"phoneme": p, "start_s": a, "end_s": b} for p, a, b in phonemes])


def frames_within(a: float, b: float, n: int) -> np.ndarray:
    """Frames whose centre time lies in [a, b)."""
    t = (np.arange(n) + 0.5) / FPS
    return np.flatnonzero((t >= a) & (t < b))


# ------------------------------------------------------------------------------------------------------ the mp4
def test_recording_plays_with_sound(rec):
    r, _ = rec
    info = V.probe(r.video)
    assert (info.width, info.height, info.fps, info.rotation_deg, info.has_audio) == (512, 512, 25.0, 0, True)
    assert sf.stream_codecs(r.video) == (["h264"], ["aac"])
    video_s, audio_s = V.durations(r.video)
    assert video_s == pytest.approx(r.n_frames / FPS, abs=1e-6)
    assert abs(audio_s - video_s) < 1 / FPS


def test_motion_file_is_the_exact_track(rec, timeline):
    r, _ = rec
    z = load_npz(r.motion_file)
    assert r.n_frames == timeline.n_frames == int(np.ceil(len(timeline.audio) / layout.SAMPLE_RATE * FPS))
    assert z["motion"].shape == (r.n_frames, layout.MOTION_DIM) and z["motion"].dtype == np.float32
    np.testing.assert_array_equal(z["time_s"], np.arange(r.n_frames) / FPS)
    motion, sliders = sample.motion_track(timeline, seed=0)  # what the frames were rendered from, reproducibly
    np.testing.assert_array_equal(z["motion"], motion)
    for name in sample.SLIDERS:
        np.testing.assert_array_equal(z[f"slider.{name}"], sliders[name])
    assert np.abs(z["motion"][:, 63:66]).max() < 15  # head pose stays within a few degrees
    assert np.ptp(mouth(z["motion"])) > 0.03  # the mouth really moves


def test_segments_are_the_corpus_lines(rec, timeline):
    r, corpus = rec
    meta = load_json(r.meta_file)
    assert (meta["fps"], meta["sample_rate"], meta["n_frames"], meta["profile"]) == (25, 16000, r.n_frames, "sample")
    segs = meta["segments"]
    assert segs == r.segments and len(segs) == sf.RECORDING_LINES
    index = {row["id"]: row for row in json.loads((corpus / "index.json").read_text())["lines"]}
    prev_end = 0
    for s in segs:
        assert s["start_frame"] == round(s["start_s"] * FPS) and s["end_frame"] == round(s["end_s"] * FPS)
        assert prev_end <= s["start_frame"] < s["end_frame"] < r.n_frames
        prev_end = s["end_frame"]
        wav, sr = read_wav(corpus / index[s["id"]]["file"])  # each segment lasts exactly its line's audio
        assert s["end_s"] - s["start_s"] == pytest.approx(len(wav) / sr, abs=2e-4)
        assert s["text"] == index[s["id"]]["text"]
    assert segs[0]["start_frame"] >= int(sample.LEAD_IN_S * FPS) - 1  # the lead-in (neutral frame) is silent
    assert meta["reference_frame"] == 0


def test_sound_is_on_the_lines_and_silent_between(rec):
    r, _ = rec
    x, sr = V.read_audio(r.video, 16000)
    segs = r.segments
    rms = lambda a, b: float(np.sqrt(np.mean(x[int(a * sr):int(b * sr)] ** 2)))  # noqa: E731
    for s in segs:
        assert rms(s["start_s"], s["end_s"]) > 0.02
    gaps = [(0.05, segs[0]["start_s"] - 0.05)]
    gaps += [(a["end_s"] + 0.05, b["start_s"] - 0.05) for a, b in zip(segs, segs[1:])]
    for a, b in gaps:
        assert rms(a, b) < 0.003, (a, b)


def test_sample_avatar_and_face_points(rec):
    from talkinghead.bake import load_bundle

    r, _ = rec
    b = load_bundle(r.video.parent / "sample_avatar")
    assert b.manifest["source"]["name"] == "astronaut.png" and b.portrait.shape == (512, 512, 3)
    np.testing.assert_allclose(load_json(r.meta_file)["face_points5"], b.manifest["source"]["points5"])


def test_lead_in_frame_is_neutral(rec):
    r, _ = rec
    z = load_npz(r.motion_file)
    for name in ("aaa", "eee", "woo", "smile", "brow"):
        assert z[f"slider.{name}"][0] == 0.0, name
    assert np.abs(z["motion"][0, :63]).max() < 1e-6 or z["slider.blink"][0] != 0
    assert np.abs(z["motion"][0, 63:66]).max() < 6.5  # only the slow sway


# ------------------------------------------------------------------------------------------------------ visemes
@pytest.mark.parametrize("phoneme,viseme", [
    ("p", "closed"), ("ph", "closed"), ("b", "closed"), ("m", "closed"), ("ˈm", "closed"),
    ("f", "lip_teeth"), ("v", "lip_teeth"),
    ("u", "round"), ("ˈuə", "round"), ("ˈo-", "round"), ("w", "round"), ("ˈy", "round"), ("ʊ", "round"),
    ("ɔː", "round"), ("onɡ", "round"),
    ("a", "open"), ("ˈai", "open"), ("ɑː", "open"), ("æ", "open"), ("aɪ", "open"), ("ˈɑu", "open"),
    ("i", "wide"), ("ˈi.", "wide"), ("ɪ", "wide"), ("eɪ", "wide"), ("j", "wide"), ("ˈei", "wide"),
    ("ə", "mid"), ("ˈər", "mid"), ("ɛ", "mid"), ("ʌ", "mid"), ("ɜː", "mid"),
    ("t", "consonant"), ("ts.h", "consonant"), ("tɕh", "consonant"), ("s", "consonant"), ("ŋ", "consonant"),
    ("k", "consonant"), ("χ", "consonant"), ("l", "consonant"), ("ɹ", "consonant"),
    ("", "rest"), ("ˈ", "rest"),
])
def test_viseme_of(phoneme, viseme):
    assert sample.viseme_of(phoneme) == viseme


def test_bilabials_close_the_mouth_and_open_vowels_open_it():
    spans = [("p", 0.40, 0.60), ("a", 0.80, 1.12), ("m", 1.32, 1.52), ("ˈa", 1.72, 2.04), ("b", 2.24, 2.44),
             ("i", 2.64, 2.84)]
    motion, sliders = sample.motion_track(silent_timeline(3.2, spans))
    mo = mouth(motion)
    closed = np.concatenate([frames_within(a, b, len(mo)) for p, a, b in spans if p in ("p", "m", "b")])
    opened = np.concatenate([frames_within(a + 0.08, b - 0.08, len(mo)) for p, a, b in spans if "a" in p])
    assert len(closed) >= 12 and len(opened) >= 4
    assert mo[closed].max() < mo[opened].min()
    # the lips really meet on b/p/m: the closure is not smoothed away
    np.testing.assert_allclose(sliders["aaa"][closed], sample.VISEMES["closed"]["aaa"])
    np.testing.assert_allclose(mo[closed], sample.VISEMES["closed"]["aaa"] * 0.0011, atol=1e-7)
    assert mo[opened].min() > 0.8 * sample.VISEMES["open"]["aaa"] * 0.0011
    wide = frames_within(2.68, 2.80, len(mo))
    assert (sliders["eee"][wide] > 6).all() and (sliders["eee"][closed] < 1).all()
    quiet = frames_within(0.0, 0.18, len(mo))  # (anticipation starts 5 frames ahead)
    np.testing.assert_allclose(sliders["aaa"][quiet], 0.0, atol=1e-6)  # silence is rest


def test_a_phoneme_shorter_than_a_frame_still_shows():
    _, sliders = sample.motion_track(silent_timeline(1.0, [("p", 0.505, 0.515)]))
    assert sliders["aaa"].min() == sample.VISEMES["closed"]["aaa"]
    assert np.argmin(sliders["aaa"]) == 12  # the frame whose span holds the phoneme (0.48-0.52 s)


def test_sliders_to_exp_uses_the_documented_directions():
    exp = sample.sliders_to_exp({"aaa": np.array([0.0, 10.0]), "smile": np.array([1.0, 0.0])}, 2).reshape(2, 21, 3)
    np.testing.assert_allclose(exp[1, 19], [0, 0.01, 0.001], atol=1e-9)
    np.testing.assert_allclose(exp[1, 17], [0, -0.001, 0], atol=1e-9)
    np.testing.assert_allclose(exp[0, 14], [0, -0.02, 0], atol=1e-9)
    np.testing.assert_allclose(exp[0, 17], [0, 0.0065, 0.003], atol=1e-9)
    assert np.count_nonzero(exp[1]) == 3


# ------------------------------------------------------------------------------------------------------ emotions
def test_emotion_holds_over_its_line_only():
    segs = [{"id": "h", "text": "", "emotion": "happy", "language": "en", "start_s": 1.0, "end_s": 2.0},
            {"id": "s", "text": "", "emotion": "sad", "language": "en", "start_s": 3.0, "end_s": 4.0}]
    neutral = [dict(s, emotion="neutral") for s in segs]
    motion, sliders = sample.motion_track(silent_timeline(5.0, segments=segs), seed=3)
    base, base_sliders = sample.motion_track(silent_timeline(5.0, segments=neutral), seed=3)
    n = len(motion)
    happy, sad = frames_within(1.0, 2.0, n), frames_within(3.0, 4.0, n)
    away = np.concatenate([frames_within(0, 0.7, n), frames_within(2.3, 2.7, n), frames_within(4.3, 5.0, n)])
    np.testing.assert_allclose(sliders["smile"][happy], 0.9, atol=1e-6)
    np.testing.assert_allclose(sliders["smile"][sad], -0.3, atol=1e-6)
    np.testing.assert_allclose(sliders["brow"][happy], 4.0, atol=1e-6)
    np.testing.assert_allclose(sliders["smile"][away], 0.0, atol=1e-7)
    ramp = frames_within(2.0, 2.3, n)
    assert np.all(np.diff(sliders["smile"][ramp]) < 0) and 0 < sliders["smile"][ramp].min() < 0.9  # eased out
    # head pose: "sad" tilts the head down 4 degrees over its line; the sway and blinks are the same
    dpose = motion[:, 63:66] - base[:, 63:66]
    np.testing.assert_allclose(dpose[sad], [[4.0, 0, 0]] * len(sad), atol=1e-5)
    np.testing.assert_allclose(dpose[away], 0.0, atol=1e-5)
    np.testing.assert_array_equal(sliders["blink"], base_sliders["blink"])


def test_motion_track_is_deterministic_per_seed(timeline):
    a, sa = sample.motion_track(timeline, seed=0)
    b, _ = sample.motion_track(timeline, seed=0)
    c, sc = sample.motion_track(timeline, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(sa["blink"], sc["blink"])  # other blinks and sway
    np.testing.assert_array_equal(sa["aaa"], sc["aaa"])  # same speech
    blinks = np.flatnonzero(sa["blink"] < -10)
    assert len(blinks) >= 1 and sa["blink"].min() >= -20.0001


# ------------------------------------------------------------------------------------------------------ timeline
def test_timeline_lays_lines_out_with_pauses(timeline):
    segs = timeline.segments
    assert segs[0]["start_s"] == pytest.approx(sample.LEAD_IN_S)
    for a, b in zip(segs, segs[1:]):
        assert b["start_s"] - a["end_s"] == pytest.approx(sample.GAP_S, abs=2e-4)
    assert len(timeline.audio) / layout.SAMPLE_RATE == pytest.approx(segs[-1]["end_s"] + sample.GAP_S, abs=2e-4)
    starts = [p["start_s"] for p in timeline.phonemes]
    assert starts == sorted(starts) and segs[0]["start_s"] <= starts[0]
    assert timeline.phonemes[-1]["end_s"] <= segs[-1]["end_s"] + 1e-3


def test_spread_keeps_every_emotion():
    rows = [{"id": f"l{i}", "emotion": "neutral"} for i in range(20)]
    rows[13]["emotion"], rows[17]["emotion"] = "happy", "angry"
    got = sample._spread(rows, 4)
    assert len(got) == 4 and {"happy", "angry"} <= {r["emotion"] for r in got}
    assert [r["id"] for r in got] == sorted((r["id"] for r in got), key=lambda s: int(s[1:]))  # script order


def test_no_lines_is_one_sentence(tmp_path):
    (tmp_path / "index.json").write_text(json.dumps({"lines": []}))
    with pytest.raises(TalkingHeadError, match="index.json: no synthesised lines") as e:
        sample.build_timeline(tmp_path)
    assert "\n" not in str(e.value)
