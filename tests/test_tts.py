"""talkinghead.tts: espeak-ng offline synthesis, phoneme timings against the audio, audio checks, the index."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from talkinghead import corpus as c
from talkinghead import tts

pytest.importorskip("espeakng_loader", reason="espeak-ng backend not installed (pip install 'talkinghead[tts]')")

LINES = [
    c.Line("zh-t1", "爸爸妈妈，伯伯婆婆。", "zh", "labials"),
    c.Line("zh-t2", "穷人家的孩子也有远大的理想。", "zh", "palatals"),
    c.Line("zh-t3", "欸，我知道了。", "zh", "vowels", "neutral", "", ("ê4", "wo3", "zhi1", "dao4", "le5")),
    c.Line("en-t1", "Peter Piper picked a peck of pickled peppers.", "en", "labials"),
    c.Line("en-t2", "What? You won the prize?", "en", "emotion", "surprised"),
]


@pytest.fixture(scope="module")
def corpus_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    index = tts.synthesize_corpus(LINES, out, rates=(1.0, 1.25), progress=False)
    return out, index


# ---------------------------------------------------------------- the espeak backend
def test_espeak_gives_samples_and_ipa_phonemes():
    be = tts.get_backend("espeak")
    assert isinstance(be, tts.TTSBackend) and be.languages == ("zh", "en")
    syn = be.synthesize("中国", "zh")
    assert syn.sample_rate == 22050 and syn.samples.dtype == np.float32
    assert 0.3 < len(syn.samples) / syn.sample_rate < 2.0
    names = [p["phoneme"] for p in syn.phonemes]
    assert len(names) == 4 and names[2] == "k" and "uo" in names[3], names  # zh-ong k-uo
    assert [w["text"] for w in syn.words] == ["中", "国"]
    assert syn.words[1]["start_s"] == syn.phonemes[2]["start_s"]
    en = be.synthesize("she sells", "en")
    assert [p["phoneme"] for p in en.phonemes][:2] == ["ʃ", "iː"]
    fast = be.synthesize("she sells sea shells by the sea shore", "en", rate=1.5)
    slow = be.synthesize("she sells sea shells by the sea shore", "en", rate=1.0)
    assert len(fast.samples) < 0.8 * len(slow.samples)
    with pytest.raises(tts.TTSError, match="no voice for language 'fr'"):
        be.synthesize("bonjour", "fr")


def test_import_does_not_load_optional_backends():
    code = ("import sys, talkinghead, talkinghead.tts, talkinghead.corpus; "
            "bad = [m for m in ('espeakng_loader', 'soundfile', 'scipy.signal') if m in sys.modules]; "
            "assert not bad, bad; assert talkinghead.tts.EspeakBackend._lib is None")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------- the corpus audio
def test_one_wav_per_line_and_rate(corpus_out):
    out, index = corpus_out
    assert [r["id"] for r in index["lines"]] == [i for l in LINES for i in (l.id, l.id + "@1.25")]
    c.validate_index(index)
    assert c.load_index(out / "index.json")["lines"] == index["lines"]
    assert index["problems"] == [] and index["sample_rate"] == 16000 and index["backend"] == "espeak"
    for r in index["lines"]:
        info = sf.info(str(out / r["file"]))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
        assert r["duration_s"] == pytest.approx(info.frames / 16000, abs=1e-4)
        assert r["checks"] == {"ok": True, "problems": []}
        assert 0.4 * r["expected_s"] < r["duration_s"] < 3 * r["expected_s"]
    by_id = {r["id"]: r for r in index["lines"]}
    for l in LINES:
        assert by_id[l.id + "@1.25"]["duration_s"] < 0.9 * by_id[l.id]["duration_s"]
        assert by_id[l.id + "@1.25"]["rate"] == 1.25


def test_phoneme_timings_line_up_with_the_audio(corpus_out):
    out, index = corpus_out
    for r in index["lines"]:
        x, sr = tts.read_wav(out / r["file"])
        t = tts.load_phonemes(out / r["phonemes_file"])
        ph = t["phonemes"]
        assert t["sample_rate"] == 16000 and t["phoneme_set"] == "ipa" and len(ph) >= 4
        starts, ends = np.array([p["start_s"] for p in ph]), np.array([p["end_s"] for p in ph])
        assert np.all(ends > starts) and np.all(starts[1:] >= ends[:-1] - 1e-4) and ends[-1] <= t["duration_s"]
        onset, offset = tts.speech_bounds(x, sr)
        assert abs(starts[0] - onset) < 0.05, (r["id"], starts[0], onset)
        assert abs(ends[-1] - offset) < 0.05, (r["id"], ends[-1], offset)
        # nearly every clearly audible 5 ms frame lies inside some phoneme segment (silences lie between them)
        db = tts.frame_rms_db(x, sr, 0.005)
        centres = (np.flatnonzero(db > db.max() - 30) + 0.5) * 0.005
        inside = ((centres[:, None] >= starts[None] - 0.01) & (centres[:, None] <= ends[None] + 0.01)).any(1)
        assert inside.mean() > 0.95, (r["id"], inside.mean())


def test_word_view_carries_pinyin(corpus_out):
    out, index = corpus_out
    t = tts.load_phonemes(out / "audio" / "zh-t3.phonemes.json")
    words = t["words"]
    assert [w["text"] for w in words] == ["欸", "我", "知道了"]  # espeak's dictionary words
    assert [w["pinyin"] for w in words] == ["ê4", "wo3", "zhi1 dao4 le5"]
    assert all(w["end_s"] > w["start_s"] for w in words)


def test_output_is_deterministic(corpus_out, tmp_path):
    out, _ = corpus_out
    again = tmp_path / "again"
    tts.synthesize_corpus(LINES, again, rates=(1.0, 1.25), progress=False)
    assert (again / "index.json").read_bytes() == (out / "index.json").read_bytes()
    for l in LINES:
        for suffix in (".wav", ".phonemes.json"):
            assert (again / "audio" / (l.id + suffix)).read_bytes() == (out / "audio" / (l.id + suffix)).read_bytes()


# ---------------------------------------------------------------- audio checks on synthetic bad audio
SR = 16000


def _speechy(seconds, level_db=-20.0, seed=0):
    """Noise with a syllable-rate envelope: stands in for speech, RMS of the loud parts near `level_db`."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * np.arange(n) / SR)
    x = rng.standard_normal(n) * env
    return (x / np.sqrt(np.mean(x ** 2)) * 10 ** (level_db / 20)).astype(np.float32)


def test_check_audio_accepts_good_audio():
    assert tts.check_audio(_speechy(2.0), SR, expected_s=2.0) == []


@pytest.mark.parametrize("make,expected_s,match", [
    (lambda: _speechy(0.1), None, "too short (0.10 s"),
    (lambda: _speechy(0.5), 3.0, "too short for its text (0.50 s, expected about 3.0 s)"),
    (lambda: _speechy(31.0), None, "too long (31.0 s"),
    (lambda: _speechy(9.0), 2.0, "too long for its text (9.0 s"),
    (lambda: np.zeros(2 * SR, np.float32), None, "silent"),
    (lambda: np.concatenate([np.zeros(3 * SR, np.float32), _speechy(1.0)]), None, "mostly silence (75%"),
    (lambda: np.clip(_speechy(2.0, level_db=-3.0) * 4, -1, 1), None, "clipped"),
    (lambda: _speechy(2.0, level_db=-42.0), None, "too quiet (speech at -3"),
    (lambda: _speechy(2.0, level_db=-3.0), None, "too loud (speech at -3"),
    (lambda: np.full(SR, np.nan, np.float32), None, "contains NaN"),
])
def test_check_audio_finds_bad_audio(make, expected_s, match):
    problems = tts.check_audio(make(), SR, expected_s=expected_s)
    assert any(p.startswith(match) for p in problems), problems


class _FakeBackend:
    """Stands in for a plug-in backend: 44.1 kHz stereo, one silent line, one failing line."""
    name = "fake"
    languages = ("zh", "en")

    def synthesize(self, text, language, rate=1.0):
        if "silent" in text:
            return tts.Synthesis(np.zeros((44100, 2), np.float32), 44100)
        if "crash" in text:
            raise RuntimeError("model exploded")
        x = _speechy(1.5 / rate, seed=len(text))
        t = np.arange(len(x)) / SR
        y = np.interp(np.arange(int(len(x) * 44100 / SR)) / 44100, t, x)
        return tts.Synthesis(np.stack([y, y], 1), 44100, phonemes=[{"phoneme": "a", "start_s": 0.0, "end_s": 1.0}])


def test_bad_lines_are_reported_and_the_rest_continue(tmp_path, capsys):
    lines = [c.Line("en-a", "A good clear line of speech.", "en", "labials"),
             c.Line("en-b", "This one is silent today.", "en", "labials"),
             c.Line("en-c", "This one will crash the model.", "en", "labials"),
             c.Line("en-d", "Another good clear line.", "en", "labials")]
    index = tts.synthesize_corpus(lines, tmp_path, backend=_FakeBackend(), progress=False)
    assert [r["id"] for r in index["lines"]] == ["en-a", "en-b", "en-c", "en-d"]
    ok = {r["id"]: r["checks"]["ok"] for r in index["lines"]}
    assert ok == {"en-a": True, "en-b": False, "en-c": False, "en-d": True}
    assert [(p["id"], p["text"]) for p in index["problems"]] == [("en-b", lines[1].text), ("en-c", lines[2].text)]
    assert index["problems"][1]["problems"] == ["synthesis failed: RuntimeError: model exploded"]
    printed = capsys.readouterr().out
    assert "en-b «This one is silent today.»: silent" in printed and "en-c" in printed
    # the good lines were resampled from 44.1 kHz stereo to 16 kHz mono
    info = sf.info(str(tmp_path / "audio" / "en-a.wav"))
    assert (info.samplerate, info.channels) == (16000, 1) and info.frames == pytest.approx(1.5 * SR, abs=2)
    assert not (tmp_path / "audio" / "en-c.wav").exists()
    written = json.loads((tmp_path / "index.json").read_text(encoding="utf-8"))
    assert written["lines"][2]["file"] is None and written["format_version"] == c.INDEX_FORMAT_VERSION


def test_resampling_keeps_pitch_and_mixes_channels():
    sr = 48000
    t = np.arange(sr) / sr
    left, right = np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 1000 * t) * 0.5
    y = tts.to_mono_16k(np.stack([left, right], 1), sr)
    assert y.shape == (16000,) and y.dtype == np.float32
    spec = np.abs(np.fft.rfft(y))
    assert np.argmax(spec) == 1000  # 1 Hz bins over one second
    assert np.sqrt(np.mean(y[1000:-1000] ** 2)) == pytest.approx(0.75 / np.sqrt(2), rel=0.01)
    with pytest.raises(tts.MediaError, match="neither"):
        tts.to_mono_16k(np.zeros((2, 2, 2)), sr)


def test_backend_registry(monkeypatch):
    monkeypatch.setattr(tts, "_BACKENDS", dict(tts._BACKENDS))
    monkeypatch.setattr(tts, "_INSTANCES", dict(tts._INSTANCES))
    with pytest.raises(tts.TTSError, match="unknown TTS backend 'neural': use one of espeak"):
        tts.get_backend("neural")
    tts.register_backend("neural", _FakeBackend)
    assert tts.get_backend("neural") is tts.get_backend("neural") and "neural" in tts.backend_names()
    with pytest.raises(tts.TTSError, match="already registered"):
        tts.register_backend("neural", lambda: _FakeBackend())
    tts.register_backend("neural", lambda: _FakeBackend(), replace=True)
    assert isinstance(tts.get_backend("neural"), _FakeBackend)
