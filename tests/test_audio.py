"""Audio loading and the log-mel features: resampling, frame alignment, streaming == offline."""
from __future__ import annotations

import numpy as np
import pytest

from talkinghead import audio as A

P = A.FeatureParams()
FLOOR = np.log(P.log_floor)


def sine(f=440.0, sr=16000, seconds=1.0, amp=0.5):
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * f * t)).astype(np.float32)


def mel_bin_of(freq: float) -> int:
    import librosa
    centres = librosa.mel_frequencies(P.n_mels + 2, fmin=P.fmin, fmax=P.fmax)[1:-1]
    return int(np.argmin(np.abs(centres - freq)))


def test_params_defaults_and_round_trip():
    assert P.frames_per_video_frame == 4 and P.samples_per_video_frame == 640 and P.left_pad == 240
    d = P.to_dict()
    assert A.FeatureParams.from_dict({**d, "frames_per_video_frame": 4}) == P
    with pytest.raises(ValueError):
        A.FeatureParams(fps=30)  # 16000 / 30 is not a whole number of hops
    with pytest.raises(ValueError):
        A.FeatureParams(hop_length=150)


@pytest.mark.parametrize("layout", ["n2", "2n"])
def test_resample_44k_stereo_int16(layout):
    x = sine(sr=44100, seconds=1.3)
    st = np.stack([x, x], axis=1)
    pcm = (st * 32767).astype(np.int16)
    y = A.load_audio(pcm if layout == "n2" else pcm.T, sr=16000, orig_sr=44100)
    assert y.dtype == np.float32 and y.ndim == 1
    assert len(y) == round(len(x) * 16000 / 44100)
    assert abs(np.sqrt(np.mean(y[1000:-1000] ** 2)) - 0.5 / np.sqrt(2)) < 0.01  # channels averaged, not summed
    mel = A.logmel(y)
    assert np.bincount(mel.argmax(1)).argmax() == mel_bin_of(440)


def test_resample_8k_float_mono():
    x = sine(sr=8000, seconds=0.77).astype(np.float64)
    y = A.load_audio(x, sr=16000, orig_sr=8000)
    assert y.dtype == np.float32 and len(y) == round(len(x) * 2)
    assert np.abs(y).max() <= 1.0
    assert np.bincount(A.logmel(y).argmax(1)).argmax() == mel_bin_of(440)


def test_load_audio_from_file(tmp_path):
    import soundfile as sf
    x = sine(sr=22050, seconds=0.5)
    sf.write(tmp_path / "a.wav", np.stack([x, 0 * x], 1), 22050)
    y = A.load_audio(tmp_path / "a.wav")
    assert len(y) == round(len(x) * 16000 / 22050)
    assert abs(np.abs(y[500:-500]).max() - 0.25) < 0.01  # (left + silent right) / 2


def test_empty_input():
    assert A.load_audio(np.zeros(0, np.int16), orig_sr=44100).shape == (0,)
    assert A.load_audio(np.zeros((0, 2), np.float32), orig_sr=8000).shape == (0,)
    assert A.logmel(np.zeros(0)).shape == (0, 80)
    assert A.features_for_frames(np.zeros(0)).shape == (0, 4, 80)
    f = A.features_for_frames(np.zeros(0), n_frames=3)
    assert f.shape == (3, 4, 80) and np.all(f == np.float32(FLOOR))
    s = A.StreamingFeatures()
    assert s.push(np.zeros(0)).shape == (0, 4, 80) and s.flush().shape == (0, 4, 80)


def test_silence_is_the_floor():
    f = A.features_for_frames(np.zeros(16000, np.float32))
    assert f.shape == (25, 4, 80) and f.dtype == np.float32
    assert np.all(f == np.float32(FLOOR))
    assert A.silence_value() == pytest.approx(FLOOR)


@pytest.mark.parametrize("n_samples", [16000, 16001, 16639, 10 * 640 + 1, 300])
def test_frame_count_for_any_duration(n_samples):
    x = np.random.default_rng(0).normal(0, 0.1, n_samples).astype(np.float32)
    assert A.logmel(x).shape == (n_samples // 160, 80)
    f = A.features_for_frames(x)
    assert f.shape == (-(-n_samples // 640), 4, 80)
    # an explicit frame count: longer audio is trimmed (a prefix), shorter is padded with silence
    short = A.features_for_frames(x, n_frames=1)
    np.testing.assert_array_equal(short, f[:1])
    long = A.features_for_frames(x, n_frames=len(f) + 3)
    assert long.shape == (len(f) + 3, 4, 80)
    np.testing.assert_array_equal(long[:len(f)], f)
    assert np.all(long[len(f) + 1:] == np.float32(FLOOR))  # entire frames after the audio are silence


def test_alignment_mel_frame_ends_at_its_hop():
    """Mel frame j covers samples [(j+1)*hop - win, (j+1)*hop): a click at sample s first shows in frame s // hop."""
    x = np.zeros(3200, np.float32)
    s = 1234
    x[s] = 1.0
    mel = A.logmel(x)
    touched = np.flatnonzero(np.any(mel > FLOOR + 1e-3, axis=1))
    first, last = s // 160, (s + P.win_length - P.hop_length) // 160
    assert touched.min() == first and touched.max() <= last
    # video frame k owns mel frames 4k..4k+3, so the click belongs to video frame s // 640
    f = A.features_for_frames(x)
    assert np.flatnonzero(np.any(f > FLOOR + 1e-3, axis=(1, 2)))[0] == s // 640


def test_causal_future_does_not_change_past():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.1, 8000).astype(np.float32)
    y = x.copy()
    y[3200:] = rng.normal(0, 0.3, 4800)
    np.testing.assert_array_equal(A.features_for_frames(x)[:5], A.features_for_frames(y)[:5])


def _chunks(x, sizes):
    i, k = 0, 0
    while i < len(x):
        n = sizes[k % len(sizes)]
        yield x[i:i + n]
        i += n
        k += 1


@pytest.mark.parametrize("sizes", [[1], [333], [16000], [640], [7, 1000, 1, 640, 2500, 13]],
                         ids=["1", "333", "1s", "640", "mixed"])
def test_streaming_equals_offline(sizes):
    rng = np.random.default_rng(2)
    n = 4000 if sizes == [1] else 40123
    x = (0.3 * rng.normal(size=n) + sine(seconds=n / 16000)).astype(np.float32)
    offline = A.features_for_frames(x)
    s = A.StreamingFeatures()
    got = [s.push(c) for c in _chunks(x, sizes)]
    got.append(s.flush())
    stream = np.concatenate(got)
    assert stream.shape == offline.shape
    np.testing.assert_allclose(stream, offline, atol=1e-5, rtol=0)


def test_streaming_reports_frames_as_they_complete_and_resets():
    x = sine(seconds=0.1)  # 1600 samples = 2.5 video frames
    s = A.StreamingFeatures()
    assert len(s.push(x[:639])) == 0
    assert len(s.push(x[639:640])) == 1
    assert len(s.push(x[640:])) == 1
    assert s.frames_out == 2
    last = s.flush()
    assert len(last) == 1 and s.frames_out == 0
    s.push(x[:700])
    s.reset()
    np.testing.assert_allclose(np.concatenate([s.push(x), s.flush()]), A.features_for_frames(x), atol=1e-5)


def test_feature_stats_and_normalise():
    rng = np.random.default_rng(3)
    f = rng.normal(2.0, 3.0, (200, 4, 80)).astype(np.float32)
    mean, std = A.feature_stats(f)
    assert mean.shape == (80,) and std.shape == (80,) and mean.dtype == np.float32
    m2, s2 = A.feature_stats([f[:50], f[50:]])
    np.testing.assert_allclose(m2, mean, rtol=1e-5)
    z = A.normalise(f, mean, std)
    np.testing.assert_allclose(z.reshape(-1, 80).mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(z.reshape(-1, 80).std(0), 1, atol=1e-3)
    _, s_sil = A.feature_stats(A.features_for_frames(np.zeros(6400)))
    assert np.all(s_sil > 0)  # silence: std floored, so normalising never divides by zero
