"""features.onnx (talkinghead.features_onnx): the log-mel front end as an ONNX graph gives the numbers of
`talkinghead.audio` on real speech, whole-file and streamed in any chunks, and registers itself in a bundle.

Tolerance: 1e-5 on every feature (natural-log units; values span about -11.5 .. 3). The graph computes in float64
like the Python front end, so in practice the two agree to float32 rounding (measured: identical).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from talkinghead import audio, features_onnx as fo  # noqa: E402
from talkinghead.fileio import sha256_file  # noqa: E402

TOL = 1e-5


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """About 4 s of espeak-ng speech (English then Mandarin) at 16 kHz, with a quiet lead-in and a trailing part frame."""
    tts = pytest.importorskip("talkinghead.tts")
    try:
        s = tts.get_backend("espeak").synthesize("Hello, this is a test of the features graph.", "en")
        z = tts.get_backend("espeak").synthesize("你好，欢迎来到我的频道。", "zh")
    except Exception as e:                         # noqa: BLE001 - the optional TTS extra is missing
        pytest.skip(f"espeak-ng is not available ({e}); pip install -e '.[tts]'")
    x = np.concatenate([np.zeros(1000, np.float32), tts.to_mono_16k(s.samples, s.sample_rate),
                        tts.to_mono_16k(z.samples, z.sample_rate)])
    return x[: len(x) - len(x) % 640 + 333].astype(np.float32)      # end mid-frame: the flush path counts


@pytest.fixture(scope="module")
def runner() -> fo.OnnxFeatures:
    return fo.OnnxFeatures()


def test_whole_file_equals_python_front_end(speech, runner):
    ref = audio.features_for_frames(speech)
    got = runner.features_for_frames(speech)
    assert got.shape == ref.shape == (-(-len(speech) // 640), 4, 80)
    assert np.abs(got - ref).max() <= TOL
    assert ref.std() > 1.0 and (ref.max(axis=(1, 2)) > -3).mean() > 0.5     # real speech, not silence
    # shorter and longer than the audio, as features_for_frames pads or trims
    for n in (7, len(ref) + 3):
        np.testing.assert_allclose(runner.features_for_frames(speech, n), audio.features_for_frames(speech, n_frames=n),
                                   atol=TOL, rtol=0)


@pytest.mark.parametrize("chunks", ["frame", "random", "tiny"])
def test_streaming_equals_python_streaming(speech, runner, chunks):
    rng = np.random.default_rng(5)
    py = audio.StreamingFeatures()
    runner.reset()
    i, got, ref = 0, [], []
    while i < len(speech):
        n = {"frame": 640, "random": int(rng.integers(1, 4000)), "tiny": 37}[chunks]
        got.append(runner.push(speech[i:i + n]))
        ref.append(py.push(speech[i:i + n]))
        assert len(got[-1]) == len(ref[-1])                # frames complete at the same moment
        i += n
    got.append(runner.flush())
    ref.append(py.flush())
    got, ref = np.concatenate(got), np.concatenate(ref)
    assert got.shape == ref.shape == (-(-len(speech) // 640), 4, 80)
    assert np.abs(got - ref).max() <= TOL


def test_silence_and_short_blocks(runner):
    sil = runner.features_for_frames(np.zeros(1280, np.float32))
    np.testing.assert_allclose(sil, audio.silence_value(), atol=1e-6)
    assert runner.run(np.zeros(fo.context_samples() + 639, np.float32)).shape == (0, 4, 80)   # no whole frame yet
    assert fo.context_samples() == 512 - 160


def test_other_params_follow_the_manifest():
    p = audio.FeatureParams(n_mels=40, fmin=0.0, fmax=8000.0, n_fft=1024)
    x = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    got = fo.OnnxFeatures(params=p).features_for_frames(x)
    assert got.shape == (25, 4, 40)
    assert np.abs(got - audio.features_for_frames(x, p)).max() <= TOL


def test_export_registers_in_the_manifest(tmp_path, speech):
    from talkinghead import bake

    path = bake.bake(bake.sample_portrait(), tmp_path / "avatar")            # sample profile (tests/conftest.py)
    before = json.loads((path / "manifest.json").read_text())
    entry = fo.export_features(path)
    m = json.loads((path / "manifest.json").read_text())
    assert m["models"]["features"] == entry
    assert m["files"]["features.onnx"]["sha256"] == sha256_file(path / "features.onnx")
    assert {k: v for k, v in m["files"].items() if k != "features.onnx"} == before["files"]
    assert entry["context_samples"] == 352 and entry["samples_per_frame"] == 640
    assert entry["feature_params"] == audio.FeatureParams().to_dict()
    bake.load_bundle(path)                                                    # still a valid, verified bundle
    got = fo.OnnxFeatures(path / "features.onnx").features_for_frames(speech[:16000])
    assert np.abs(got - audio.features_for_frames(speech[:16000])).max() <= TOL
