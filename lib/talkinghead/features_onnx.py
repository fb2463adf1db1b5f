"""The log-mel front end as an ONNX graph (`features.onnx` in the avatar bundle), so Python, the live engine and the
browser page compute the features the model was trained on with one implementation (notebooks/06_live_preview.ipynb).

The graph reproduces `talkinghead.audio` (see its module docstring for the alignment rule):

    audio float32 (1, S)  with S = context + C * 640, context = n_fft - hop_length (352 samples)
      -> float64 -> STFT (opset 17: frame_length n_fft 512, hop 160, window = [zeros(n_fft - win), hann(400)])
      -> |.| (1, 4C, 257) -> MatMul with librosa's mel filterbank (257, 80), a constant -> max(., log_floor) -> log
      -> float32 features (C, 4, 80): video frame c owns mel frames 4c .. 4c + 3

Why the window sits at the *end* of the 512-sample frame: `audio.logmel` takes `rfft(x[j] * hann, n=512)`, the 400
windowed samples followed by 112 zeros. The same 400 samples preceded by 112 zeros are a circular shift of that frame,
whose DFT has the same magnitude, and then STFT frame j ends exactly where mel frame j ends (at sample (j + 1) * hop):
no look-ahead, and the graph needs only `context` samples of the past before each video frame.

Whole file: `audio` = [zeros(context), samples, zeros up to a multiple of 640]. Streaming: keep the last `context`
samples of everything pushed so far and prepend them to each new block of whole video frames (the first block gets
zeros). The arithmetic runs in float64 inside the graph (the Python front end does too), so the result equals
`talkinghead.audio` to float32 rounding; `tests/test_features_onnx.py` measures it on speech.

MelWeightMatrix (ONNX) follows the HTK-style mel scale, not librosa's default (Slaney): the filterbank is a constant.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import onnxrt
from .audio import FeatureParams

FEATURES_FILE = "features.onnx"
OPSET = 17          # STFT appeared in opset 17
INPUT, OUTPUT = "audio", "features"


def context_samples(params: FeatureParams = FeatureParams()) -> int:
    """Samples of the past the graph needs before each block of video frames: n_fft - hop_length (352)."""
    return params.n_fft - params.hop_length


def filterbank(params: FeatureParams = FeatureParams()) -> tuple[np.ndarray, np.ndarray]:
    """(periodic Hann window (win_length,), librosa's mel filterbank transposed (n_fft//2+1, n_mels)), float64: the
    constants of `talkinghead.audio.logmel` (tests/test_features_onnx.py checks the graph against it)."""
    import librosa

    window = np.hanning(params.win_length + 1)[:-1]
    fb = librosa.filters.mel(sr=params.sample_rate, n_fft=params.n_fft, n_mels=params.n_mels, fmin=params.fmin,
                             fmax=params.fmax)
    return window, np.ascontiguousarray(fb.T, np.float64)


def build_model(params: FeatureParams = FeatureParams()):
    """The front end as an `onnx.ModelProto`: audio (1, context + C*640) float32 -> features (C, 4, n_mels) float32."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    window, fbt = filterbank(params)
    win = np.concatenate([np.zeros(params.n_fft - params.win_length), window]).astype(np.float64)
    consts = {
        "axis2": np.array([2], np.int64), "hop": np.array(params.hop_length, np.int64),
        "window": win, "n_fft": np.array(params.n_fft, np.int64), "axis_last": np.array([-1], np.int64),
        "mel_fb": np.ascontiguousarray(fbt, np.float64), "floor": np.array(params.log_floor, np.float64),
        "out_shape": np.array([-1, params.frames_per_video_frame, params.n_mels], np.int64),
    }
    nodes = [
        helper.make_node("Cast", [INPUT], ["x64"], to=TensorProto.DOUBLE),
        helper.make_node("Unsqueeze", ["x64", "axis2"], ["signal"]),                 # (1, S, 1)
        helper.make_node("STFT", ["signal", "hop", "window", "n_fft"], ["spec"], onesided=1),   # (1, F, 257, 2)
        helper.make_node("Mul", ["spec", "spec"], ["sq"]),
        helper.make_node("ReduceSum", ["sq", "axis_last"], ["power"], keepdims=0),    # (1, F, 257)
        helper.make_node("Sqrt", ["power"], ["mag"]),
        helper.make_node("MatMul", ["mag", "mel_fb"], ["mel"]),                      # (1, F, n_mels)
        helper.make_node("Max", ["mel", "floor"], ["mel_floored"]),
        helper.make_node("Log", ["mel_floored"], ["logmel"]),
        helper.make_node("Reshape", ["logmel", "out_shape"], ["logmel_frames"]),     # (C, 4, n_mels)
        helper.make_node("Cast", ["logmel_frames"], [OUTPUT], to=TensorProto.FLOAT),
    ]
    graph = helper.make_graph(
        nodes, "talkinghead_logmel",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [1, "samples"])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT,
                                       ["frames", params.frames_per_video_frame, params.n_mels])],
        [numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="talkinghead")
    model.ir_version = 8                          # readable by onnxruntime >= 1.14 and onnxruntime-web
    meta = {"feature_params": params.to_dict(), "context_samples": context_samples(params)}
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=str(v))
    onnx.checker.check_model(model, full_check=True)
    return model


def manifest_entry(params: FeatureParams = FeatureParams()) -> dict:
    """The bundle manifest's `models.features` entry."""
    return {"file": FEATURES_FILE, "input": INPUT, "output": OUTPUT, "opset": OPSET,
            "context_samples": context_samples(params), "samples_per_frame": params.samples_per_video_frame,
            "feature_shape": [params.frames_per_video_frame, params.n_mels], "feature_params": params.to_dict(),
            "what": "audio (1, context_samples + C * samples_per_frame) float32 at sample_rate -> features "
                    "(C, 4, n_mels): the log-mel of talkinghead.audio; prepend the last context_samples samples "
                    "(zeros at the start of a stream)"}


def write_model(path: str | os.PathLike, params: FeatureParams = FeatureParams()) -> Path:
    """Write features.onnx to `path` atomically."""
    from .fileio import atomic_path

    path = Path(path)
    model = build_model(params)
    with atomic_path(path, suffix=".onnx") as tmp:
        Path(tmp).write_bytes(model.SerializeToString())
    return path


def _register(bundle_dir: Path, entry: dict) -> dict:
    """Hash features.onnx into manifest.json and add `entry` as `models.features` (other models kept)."""
    from .bundle import add_files
    from .fileio import load_json

    models = dict(load_json(bundle_dir / "manifest.json", "avatar manifest").get("models") or {})
    models["features"] = entry
    return add_files(bundle_dir, [FEATURES_FILE], models=models)


def export_features(bundle_dir=None, params: FeatureParams | None = None) -> dict:
    """Write `features.onnx` into the avatar bundle and register it (`models.features`); returns that entry.

    `params`: the audio feature parameters (default: the Audio2Motion model's, else the manifest's `audio_features`).
    """
    from .fileio import load_json
    from .paths import avatar_dir

    bundle_dir = Path(bundle_dir) if bundle_dir else avatar_dir()
    if params is None:
        manifest = load_json(bundle_dir / "manifest.json", "avatar manifest")
        a2m = (manifest.get("models") or {}).get("audio2motion") or {}
        params = FeatureParams.from_dict(a2m.get("feature_params") or manifest.get("audio_features") or {})
    write_model(bundle_dir / FEATURES_FILE, params)
    entry = manifest_entry(params)
    _register(bundle_dir, entry)
    return entry


# ------------------------------------------------------------------------------------------------------ running it
class OnnxFeatures:
    """Run features.onnx from Python: whole files (`features_for_frames`) or streaming (`push`/`flush`), with the
    same contract as `audio.features_for_frames` and `audio.StreamingFeatures`.

    `model`: a features.onnx path, or None to build the graph in memory for `params`.
    """

    def __init__(self, model=None, params: FeatureParams = FeatureParams(), session=None):
        self.params = params
        self.context = context_samples(params)
        if session is None:
            src = model if model is not None else build_model(params).SerializeToString()
            session = onnxrt.session(src, threads=1)
        self.session = session      # shareable: the runtime opens features.onnx once and streams with many of these
        self.reset()

    def run(self, padded: np.ndarray) -> np.ndarray:
        """audio (context + C*640,) -> features (C, 4, n_mels) float32 (C = 0 gives an empty array)."""
        x = np.asarray(padded, np.float32).reshape(1, -1)
        spf = self.params.samples_per_video_frame
        c = (x.shape[1] - self.context) // spf
        if c <= 0:
            return np.zeros((0, self.params.frames_per_video_frame, self.params.n_mels), np.float32)
        return self.session.run(None, {INPUT: x[:, :self.context + c * spf]})[0]

    def features_for_frames(self, samples, n_frames: int | None = None) -> np.ndarray:
        """As `audio.features_for_frames`: samples (n,) -> (n_frames, 4, n_mels)."""
        x = np.asarray(samples, np.float32).reshape(-1)
        spf = self.params.samples_per_video_frame
        n_frames = -(-len(x) // spf) if n_frames is None else int(n_frames)
        x = x[:n_frames * spf]
        return self.run(np.concatenate([np.zeros(self.context, np.float32), x,
                                        np.zeros(n_frames * spf - len(x), np.float32)]))

    def reset(self) -> None:
        self._buf = np.zeros(self.context, np.float32)

    def push(self, samples) -> np.ndarray:
        """As `StreamingFeatures.push`: any number of samples -> features of the video frames they completed."""
        self._buf = np.concatenate([self._buf, np.asarray(samples, np.float32).reshape(-1)])
        out = self.run(self._buf)
        self._buf = self._buf[len(out) * self.params.samples_per_video_frame:]
        return out

    def flush(self) -> np.ndarray:
        """As `StreamingFeatures.flush`: the last partial video frame padded with zeros (0 or 1 frames), then reset."""
        pending = len(self._buf) - self.context
        out = self.push(np.zeros(self.params.samples_per_video_frame - pending, np.float32)) if pending else \
            np.zeros((0, self.params.frames_per_video_frame, self.params.n_mels), np.float32)
        self.reset()
        return out
