"""Audio2Motion: a small streaming network from speech features to LivePortrait motion (notebooks/04_training.ipynb).

Input per video frame: the 4 x 80 log-mel frames of `talkinghead.audio` (4 mel frames of 10 ms per 40 ms video frame)
and an optional emotion label (`layout.EMOTIONS`). Output per video frame: the 69-float relative motion of
`talkinghead.layout` (exp 21x3, pitch/yaw/roll degrees, t, log_scale): the layout is the contract, nothing else.

The network, per frame k (all causal):

    mels (4, 80) --normalise--> 320 ++ emotion embedding --encoder MLP--> h_k (hidden)
    h_k += GELU(causal conv over h_{k-K+1..k})           (a ring buffer of the last K-1 encoder outputs)
    GRU layers                                            (the recurrent state)
    head --> normalised motion --> * motion_std + motion_mean

Lookahead. Speech is heard a little before the face moves, so the motion of frame k may use features up to k + L
(L = `lookahead_frames`, 80 ms = 2 frames by default). It is implemented as an output *delay*: the network itself is
strictly causal, and its output at step j is the motion of frame j - L. Offline (`forward`) appends L frames of
silence after the utterance and drops the first L outputs; streaming (`step`) emits, for each chunk of C new feature
frames, the motion of the C frames that end L frames earlier -- the first L outputs of a stream are warm-up (frames
before the utterance) and are dropped; at the end, L frames of silence flush the last L frames (`stream` does both).
Because the two paths run the very same causal computation, streamed output equals offline output (to float
rounding, ~1e-7).

The streaming state is a tuple of two fixed-shape tensors, `(conv_buffer (B, K-1, hidden), gru_state (layers, B,
hidden))`, and `step` has no data-dependent Python control flow and takes no Python ints from shapes, so it
exports to ONNX as one graph with a dynamic chunk length (notebooks/05_export.ipynb; checked: opset 20, chunks 1/4/7,
max diff ~2e-6 against PyTorch). Call `.eval()` on the wrapper you export: the TorchScript exporter of torch 2.13
keeps the module's mode, and a wrapper left in training mode exports the Dropout layers as active.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import layout
from .dataset import Dataset, load_dataset, mel_shape, params_dict, params_mismatch
from .errors import BundleError, DatasetError

CHECKPOINT_NAME = "audio2motion.pt"
METRICS_NAME = "audio2motion.metrics.json"
CHECKPOINT_FORMAT = 1
MODES = ("audio_only", "idle_from_recording")


# ======================================================================================================================
# the model

@dataclass
class A2MConfig:
    """Sizes of Audio2Motion. The defaults give ~0.7 M parameters and well under 1 ms per frame on one CPU core."""
    n_mels: int = 80               # mel bins per mel frame
    mel_per_frame: int = 4         # mel frames per video frame
    hidden: int = 192              # width of the encoder, the conv and the GRU
    layers: int = 2                # GRU layers
    conv_kernel: int = 3           # causal conv over this many video frames (>= 2)
    lookahead_frames: int = 2      # L: round(80 ms * 25 fps); the output delay, see the module docstring
    emotion_dim: int = 16          # emotion embedding size (0 = ignore emotion)
    n_emotions: int = len(layout.EMOTIONS)
    dropout: float = 0.1
    motion_dim: int = layout.MOTION_DIM
    fps: float = 25.0

    @classmethod
    def for_features(cls, feature_params: Any = None, lookahead_ms: float = 80.0, **kw) -> "A2MConfig":
        """A config matching feature parameters (a FeatureParams or its dict), lookahead given in milliseconds."""
        per, n_mels = mel_shape(feature_params)
        fps = float(params_dict(feature_params).get("fps", 25))
        return cls(n_mels=n_mels, mel_per_frame=per, fps=fps,
                   lookahead_frames=int(round(lookahead_ms / 1000 * fps)), **kw)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "A2MConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


State = tuple  # (conv_buffer (B, K-1, hidden), gru_state (layers, B, hidden))


class Audio2Motion(nn.Module):
    """features (B, N, 4, 80) [+ emotion] -> motion (B, N, 69); offline `forward`, streaming `step`/`stream`."""

    def __init__(self, config: A2MConfig = A2MConfig()):
        super().__init__()
        c = self.config = config
        if c.conv_kernel < 2:
            raise ValueError("conv_kernel must be at least 2 (the streaming state holds conv_kernel - 1 frames)")
        # normalisation, set from the training data by `fit_normaliser` and saved with the weights
        self.register_buffer("feat_mean", torch.zeros(c.n_mels))
        self.register_buffer("feat_std", torch.ones(c.n_mels))
        self.register_buffer("silence", torch.full((c.mel_per_frame, c.n_mels), -11.5129))  # log(1e-5)
        self.register_buffer("motion_mean", torch.zeros(c.motion_dim))
        self.register_buffer("motion_std", torch.ones(c.motion_dim))
        # layers
        self.emotion = nn.Embedding(c.n_emotions + 1, max(c.emotion_dim, 1))   # the last id means "no label"
        n_in = c.mel_per_frame * c.n_mels + c.emotion_dim
        self.encoder = nn.Sequential(nn.Linear(n_in, c.hidden), nn.GELU(), nn.Dropout(c.dropout),
                                     nn.Linear(c.hidden, c.hidden), nn.GELU())
        self.conv = nn.Conv1d(c.hidden, c.hidden, c.conv_kernel)
        self.gru = nn.GRU(c.hidden, c.hidden, c.layers, batch_first=True, dropout=c.dropout if c.layers > 1 else 0.0)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden, c.motion_dim)
        nn.init.zeros_(self.head.weight)      # start at the mean motion: the baseline, then improve on it
        nn.init.zeros_(self.head.bias)

    # ------------------------------------------------------------------------------------------------ normalisation
    @torch.no_grad()
    def fit_normaliser(self, features: np.ndarray, motion: np.ndarray, silence: float | None = None) -> None:
        """Store per-mel-bin feature stats (features (N, 4, 80)) and per-dim motion stats (motion (N, 69), valid frames).

        `silence`: the feature value of digital silence (`audio.silence_value`), used to pad after an utterance.
        """
        f = torch.as_tensor(np.asarray(features, np.float32)).reshape(-1, self.config.n_mels)
        m = torch.as_tensor(np.asarray(motion, np.float32))
        self.feat_mean.copy_(f.mean(0))
        self.feat_std.copy_(f.std(0).clamp_min(1e-3))
        self.motion_mean.copy_(m.mean(0))
        self.motion_std.copy_(m.std(0).clamp_min(1e-5))
        if silence is not None:
            self.silence.fill_(float(silence))

    # ------------------------------------------------------------------------------------------------ the network
    def init_state(self, batch: int = 1, device=None) -> State:
        """The streaming state before the first frame: zeros, (conv_buffer (B, K-1, H), gru_state (layers, B, H))."""
        c, dev = self.config, device or self.head.weight.device
        return (torch.zeros(batch, c.conv_kernel - 1, c.hidden, device=dev),
                torch.zeros(c.layers, batch, c.hidden, device=dev))

    def _emotion_ids(self, emotion, features: torch.Tensor) -> torch.Tensor:
        """None | (B,) | (B, T) label ids -> (B, T) long, T = features.shape[1]; None means "no label" (id n_emotions).

        Written with shape-following ops only (no Python ints from shapes), so a traced `step` keeps C dynamic.
        """
        like = features[:, :, 0, 0]
        if emotion is None:
            return torch.full_like(like, self.config.n_emotions, dtype=torch.long)
        e = torch.as_tensor(emotion, device=features.device).long()
        return e.reshape(-1, 1).expand_as(like) if e.dim() <= 1 else e

    def _causal(self, features: torch.Tensor, emotion: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """The strictly causal core: features (B, T, 4, 80), emotion ids (B, T) -> (motion at steps (B, T, 69), state)."""
        c = self.config
        x = (features - self.feat_mean) / self.feat_std                        # (B, T, 4, 80)
        x = x.flatten(2)                                                       # (B, T, 320)
        if c.emotion_dim > 0:
            x = torch.cat([x, self.emotion(emotion)], dim=-1)
        h = self.encoder(x)                                                    # (B, T, H)
        conv_buf, gru_state = state
        z = torch.cat([conv_buf, h], dim=1)                                    # (B, K-1+T, H)
        h = h + F.gelu(self.conv(z.transpose(1, 2)).transpose(1, 2))          # (B, T, H), causal
        out, gru_state = self.gru(self.drop(h), gru_state)                     # (B, T, H)
        y = self.head(self.drop(out)) * self.motion_std + self.motion_mean     # (B, T, 69)
        return y, (z[:, -(c.conv_kernel - 1):], gru_state)                     # keep the last K-1 encoder outputs

    def forward(self, features: torch.Tensor, emotion=None, pad_end: bool = True) -> torch.Tensor:
        """Offline: features (B, N, 4, 80), emotion None | (B,) | (B, N) ids -> motion (B, N, 69).

        The last frames see L frames of silence after the utterance (`pad_end=True`). With `pad_end=False` the
        caller supplies that future itself: the last L of the N feature frames are only lookahead and the output
        has N - L frames (training crops inside a recording use this).
        """
        B, N = features.shape[:2]
        L = self.config.lookahead_frames
        emo = self._emotion_ids(emotion, features)
        if pad_end and L > 0:
            features = torch.cat([features, self.silence.expand(B, L, *self.silence.shape)], dim=1)
            emo = torch.cat([emo, emo[:, -1:].expand(B, L)], dim=1)
        y, _ = self._causal(features, emo, self.init_state(B, features.device))
        return y[:, L:]

    def step(self, features: torch.Tensor, state: State, emotion=None) -> tuple[torch.Tensor, State]:
        """Streaming: C new feature frames (B, C, 4, 80) -> motion (B, C, 69) of the C frames ending L frames ago.

        Call with `init_state(B)` first; the first L outputs of a stream are warm-up (drop them); after the last chunk
        feed L frames of `self.silence` to get the last L frames. `stream` does exactly this.
        """
        return self._causal(features, self._emotion_ids(emotion, features), state)

    @torch.no_grad()
    def stream(self, features: torch.Tensor, emotion=None, chunk: int = 1) -> torch.Tensor:
        """Run `step` over a whole utterance (B, N, 4, 80) in chunks of `chunk` frames -> (B, N, 69), equal to `forward`."""
        B, N = features.shape[:2]
        L = self.config.lookahead_frames
        emo = self._emotion_ids(emotion, features)
        feats = torch.cat([features, self.silence.expand(B, L, *self.silence.shape)], dim=1)
        emo = torch.cat([emo, emo[:, -1:].expand(B, L)], dim=1)
        state, outs = self.init_state(B, features.device), []
        for s in range(0, N + L, chunk):
            y, state = self.step(feats[:, s:s + chunk], state, emo[:, s:s + chunk])
            outs.append(y)
        return torch.cat(outs, dim=1)[:, L:]

    # ------------------------------------------------------------------------------------------------ size and speed
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def describe(self, frames: int = 200, threads: int | None = 1, verbose: bool = True) -> dict:
        """Print and return the parameter count and the CPU cost of streaming one frame at a time (`step`, chunk 1).

        Measured on a CPU copy with `threads` torch threads (1: what one core of a phone or browser worker gives).
        Each weight is used once per frame, so multiply-accumulates per frame ~= parameters.
        """
        model = copy.deepcopy(self).cpu().eval()
        old = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            x = model.silence.expand(1, frames, *model.silence.shape).clone()
            x += torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
            state = model.init_state(1, "cpu")
            for k in range(10):                                  # warm up
                _, state = model.step(x[:, k:k + 1], state)
            t0 = time.perf_counter()
            for k in range(frames):
                _, state = model.step(x[:, k:k + 1], state)
            ms = (time.perf_counter() - t0) / frames * 1000
        finally:
            torch.set_num_threads(old)
        c = self.config
        info = dict(params=self.n_params(), per_frame_ms=ms, frame_budget_ms=1000 / c.fps, threads=threads or old,
                    lookahead_ms=1000 * c.lookahead_frames / c.fps)
        if verbose:
            print(f"Audio2Motion: {info['params']:,} parameters; {ms:.3f} ms per frame on CPU ({info['threads']} "
                  f"thread(s), streaming one frame at a time; a frame lasts {info['frame_budget_ms']:.0f} ms); "
                  f"lookahead {info['lookahead_ms']:.0f} ms")
        return info


# ======================================================================================================================
# idle motion: what audio cannot explain (blinks, head sway), replayed from the recording

IDLE_DIMS = np.concatenate([np.array([3 * k + a for k in layout.EYE_KP for a in range(3)]),
                            np.arange(layout.POSE.start, layout.MOTION_DIM)])   # eye keypoints, pose, t, log_scale


@dataclass
class IdleMotion:
    """A loopable track of idle motion offsets (M, len(dims)) on `dims` of the motion vector, at `fps`.

    Built by `from_dataset`: the longest run of valid frames of the recording, on the eye-keypoint, pose, t and
    log_scale dims; with a model, the residual it cannot explain (truth - prediction), otherwise the track minus its
    median. The loop point is chosen where the track best matches its own beginning, and the seam is a raised-cosine
    cross-fade of `crossfade` frames, so replay has no jump.
    """
    track: np.ndarray
    dims: np.ndarray = field(default_factory=lambda: IDLE_DIMS.copy())
    fps: float = 25.0
    crossfade: int = 12
    loop: np.ndarray = field(init=False, repr=False)
    cut: int = field(init=False)

    def __post_init__(self):
        self.track = np.asarray(self.track, np.float32)
        self.dims = np.asarray(self.dims, np.int64)
        self.loop, self.cut = _make_loop(self.track, self.crossfade)

    @classmethod
    def from_dataset(cls, dataset: Dataset, model: Audio2Motion | None = None, crossfade_s: float = 0.5,
                     dims: np.ndarray = IDLE_DIMS) -> "IdleMotion":
        s, e = _longest_valid_run(dataset.valid)
        fade = max(1, int(round(crossfade_s * dataset.fps)))
        if e - s < 4 * fade:
            raise DatasetError(f"{dataset.name()}: the longest stretch of frames with a face is {e - s} frames, too "
                               f"short to loop idle motion (needs {4 * fade}); record a longer take or use "
                               "mode='audio_only'.")
        truth = dataset.motion[s:e]
        if model is not None:
            pred = predict(model, dataset.features[s:e], dataset.emotion[s:e])
            track = truth[:, dims] - pred[:, dims]
        else:
            track = truth[:, dims] - np.median(truth[:, dims], axis=0)
        return cls(track, np.asarray(dims), dataset.fps, fade)

    def sample(self, n_frames: int, seed: int = 0) -> np.ndarray:
        """`n_frames` of idle offsets as full motion vectors (n_frames, 69) (zero outside `dims`), from a seeded start."""
        start = int(np.random.default_rng(seed).integers(len(self.loop)))
        out = np.zeros((n_frames, layout.MOTION_DIM), np.float32)
        out[:, self.dims] = self.loop[(start + np.arange(n_frames)) % len(self.loop)]
        return out

    def to_dict(self) -> dict:
        """Plain tensors and numbers, for the checkpoint (loadable with weights_only=True)."""
        return dict(track=torch.from_numpy(self.track), dims=torch.from_numpy(self.dims), fps=float(self.fps),
                    crossfade=int(self.crossfade))

    @classmethod
    def from_dict(cls, d: dict) -> "IdleMotion":
        return cls(np.asarray(d["track"]), np.asarray(d["dims"]), float(d["fps"]), int(d["crossfade"]))


def _longest_valid_run(valid: np.ndarray) -> tuple[int, int]:
    """(start, end) of the longest run of True in `valid` (end exclusive)."""
    v = np.concatenate([[0], np.asarray(valid, np.int8), [0]])
    edges = np.flatnonzero(np.diff(v))
    starts, ends = edges[::2], edges[1::2]
    if len(starts) == 0:
        return 0, 0
    i = int(np.argmax(ends - starts))
    return int(starts[i]), int(ends[i])


def _make_loop(track: np.ndarray, fade: int) -> tuple[np.ndarray, int]:
    """A track (M, D) -> (loop (cut, D), cut). loop[:fade] fades from track[cut:cut+fade] into track[:fade].

    Played periodically, loop[cut-1] = track[cut-1] is followed by loop[0] ~= track[cut]: a natural step of the
    track. The cut (searched in the second half) is the one whose seam and cross-fade have the smallest largest
    frame-to-frame step, measured per dim in units of the track's own largest step (<= 1: no visible jump).
    """
    M = len(track)
    w = (0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade))[:, None]    # 0 -> 1, raised cosine
    step = np.abs(np.diff(track, axis=0)).max(0) + 1e-12                         # the track's own largest steps
    best, cut = np.inf, M - fade
    for c in range(max(fade + 1, M // 2), M - fade + 1):
        blend = (1 - w) * track[c:c + fade] + w * track[:fade]
        seam = np.concatenate([track[c - 1:c], blend, track[fade:fade + 1]])
        cost = float((np.abs(np.diff(seam, axis=0)) / step).max())              # worst step, in units of the largest
        if cost < best:
            best, cut = cost, c
    loop = track[:cut].copy()
    loop[:fade] = (1 - w) * track[cut:cut + fade] + w * track[:fade]
    return loop.astype(np.float32), cut


def combine(pred, idle, mode: str):
    """Add idle motion to an audio-driven prediction (..., N, 69) according to `mode` (numpy or torch).

    mode "audio_only": the prediction as it is (idle motion regresses to the mean: a still head, no blinks).
    mode "idle_from_recording": plus `idle` -- an IdleMotion (a seed-0 sample of the right length is taken) or
    offsets (N, 69) from `IdleMotion.sample`.
    """
    if mode not in MODES:
        raise ValueError(f"unknown idle mode {mode!r}: use one of {', '.join(MODES)}")
    if mode == "audio_only":
        return pred
    if idle is None:
        raise ValueError("mode 'idle_from_recording' needs idle motion: IdleMotion.from_dataset(dataset)")
    if isinstance(idle, IdleMotion):
        idle = idle.sample(pred.shape[-2])
    if isinstance(pred, torch.Tensor):
        idle = torch.as_tensor(idle, dtype=pred.dtype, device=pred.device)
    return pred + idle


# ======================================================================================================================
# data: split by corpus line, crops for training

def split_lines(dataset: Dataset, holdout: float = 0.2, seed: int = 0) -> dict:
    """Split the corpus lines (never frames) into {'train': [ids], 'val': [ids]}, seeded; at least one line each."""
    ids = dataset.line_ids
    if len(ids) < 2:
        raise DatasetError(f"{dataset.name()}: the dataset has {len(ids)} corpus line(s) with valid frames; training "
                           "needs at least 2 (one to learn from, one to check on): record more lines.")
    order = np.random.default_rng(seed).permutation(len(ids))
    n_val = min(len(ids) - 1, max(1, int(round(holdout * len(ids)))))
    val = sorted(ids[i] for i in order[:n_val])
    return {"train": [i for i in ids if i not in val], "val": val}


def _spans(dataset: Dataset, line_ids) -> list[tuple[int, int]]:
    """(start, end) frame ranges of every take of the given corpus lines."""
    return [sp for i in line_ids for sp in dataset.line_spans(i)]


def _padded_features(dataset: Dataset, silence: float, L: int) -> np.ndarray:
    """The dataset's features with L frames of silence appended (so every frame has its lookahead)."""
    pad = np.full((L,) + dataset.features.shape[1:], silence, np.float32)
    return np.concatenate([dataset.features, pad])


def _crops(dataset: Dataset, spans, feats: np.ndarray, length: int, n: int, L: int, rng: np.random.Generator):
    """n random crops of `length` frames inside the lines `spans` -> arrays features (n, length+L, 4, 80),
    emotion (n, length+L), motion (n, length, 69), mask (n, length) (valid frames inside the line)."""
    lens = np.array([e - s for s, e in spans], float)
    pick = rng.choice(len(spans), size=n, p=lens / lens.sum())
    fx = np.empty((n, length + L) + feats.shape[1:], np.float32)
    ex = np.zeros((n, length + L), np.int64)
    my = np.zeros((n, length, layout.MOTION_DIM), np.float32)
    mk = np.zeros((n, length), np.float32)
    for j, i in enumerate(pick):
        s, e = spans[i]
        a = int(rng.integers(s, max(s, e - length) + 1))
        m = min(length, e - a)
        fx[j] = feats[a:a + length + L] if a + length + L <= len(feats) else np.concatenate(
            [feats[a:], np.repeat(feats[-1:], a + length + L - len(feats), 0)])
        ex[j, :] = dataset.emotion[min(a, len(dataset) - 1)]
        my[j, :m] = dataset.motion[a:a + m]
        mk[j, :m] = dataset.valid[a:a + m]
    return fx, ex, my, mk


# ======================================================================================================================
# training

@dataclass
class TrainConfig:
    """Optimisation settings (notebook 04 explains each)."""
    epochs: int = 60
    batch: int = 16
    crop_frames: int = 64          # 2.56 s windows cut from lines
    crops_per_epoch: int = 0       # 0: about twice the training frames / crop_frames
    lr: float = 2e-3
    weight_decay: float = 1e-2
    mouth_weight: float = 4.0      # extra weight of layout.MOUTH_INDICES in the loss
    velocity_weight: float = 1.0   # weight of the frame-to-frame difference term
    emotion_dropout: float = 0.2   # share of crops trained without their emotion label (so "no label" works)
    patience: int = 10             # early stopping: epochs without held-out improvement
    holdout: float = 0.2           # share of lines held out
    clip: float = 1.0
    threads: int | None = 1        # torch CPU threads while training (a small GRU runs fastest, and reproducibly, on 1)


@dataclass
class TrainResult:
    model: Audio2Motion
    history: dict
    split: dict
    metrics: dict
    config: A2MConfig
    train_config: TrainConfig
    feature_params: dict
    seconds: float = 0.0
    best_epoch: int = 0
    mode: str = "audio_only"
    idle: IdleMotion | None = None
    paths: dict = field(default_factory=dict)


def loss_terms(model: Audio2Motion, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
               tc: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(position loss, velocity loss) in per-dim std units; mask (B, T) marks valid frames, mouth dims weigh more."""
    w = torch.ones(pred.shape[-1], device=pred.device)
    w[torch.as_tensor(layout.MOUTH_INDICES, device=pred.device)] += tc.mouth_weight
    w = w / w.mean()
    d = (pred - target) / model.motion_std
    pos = ((d ** 2) * w).mean(-1)
    pos = (pos * mask).sum() / mask.sum().clamp_min(1)
    vmask = mask[:, 1:] * mask[:, :-1]
    vel = (((d[:, 1:] - d[:, :-1]) ** 2) * w).mean(-1)
    vel = (vel * vmask).sum() / vmask.sum().clamp_min(1)
    return pos, vel


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def train(dataset: Dataset, config: A2MConfig | None = None, epochs: int | None = None, seed: int = 0,
          device: str = "auto", progress: bool = True, train_config: TrainConfig | None = None,
          split: dict | None = None) -> TrainResult:
    """Train Audio2Motion on `dataset`; early-stops on held-out lines and restores the best weights.

    Split by corpus line (`split_lines`), AdamW, loss = weighted MSE + velocity MSE (`loss_terms`), crops of lines.
    Seeded: on CPU two runs with the same seed give identical weights. Uses CUDA when `device='auto'` finds it.
    Returns a TrainResult with held-out `metrics` (`evaluate`) and `history` (per-epoch losses).
    """
    from tqdm.auto import tqdm

    tc = copy.deepcopy(train_config) if train_config is not None else TrainConfig()
    if epochs is not None:
        tc.epochs = int(epochs)
    fp = dataset.feature_params
    config = config or A2MConfig.for_features(fp)
    per, n_mels = mel_shape(fp)
    if (config.mel_per_frame, config.n_mels) != (per, n_mels):
        raise DatasetError(f"{dataset.name()}: the dataset has {per} x {n_mels} mel features per frame but the model "
                           f"config expects {config.mel_per_frame} x {config.n_mels}; use A2MConfig.for_features("
                           "dataset.feature_params).")
    dev = _resolve_device(device)
    split = split or split_lines(dataset, tc.holdout, seed)
    overlap = set(split["train"]) & set(split["val"])
    assert not overlap, f"lines in both train and held-out sets: {sorted(overlap)}"
    train_spans = _spans(dataset, split["train"])
    train_frames = np.concatenate([np.arange(s, e) for s, e in train_spans])
    train_frames = train_frames[dataset.valid[train_frames]]

    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    threads = torch.get_num_threads()
    if tc.threads and dev.type == "cpu":
        torch.set_num_threads(tc.threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    t_start = time.perf_counter()
    try:
        model = Audio2Motion(config)
        model.fit_normaliser(dataset.features[train_frames], dataset.motion[train_frames], _silence_value(fp))
        model.to(dev)
        L = config.lookahead_frames
        feats = _padded_features(dataset, float(model.silence[0, 0]), L)
        opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        n_crops = tc.crops_per_epoch or max(tc.batch, int(2 * len(train_frames) / tc.crop_frames))
        history = {k: [] for k in ("epoch", "train_loss", "val_loss", "val_mse", "lr")}
        best, best_state, best_epoch, bad = math.inf, None, 0, 0
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, tc.epochs), eta_min=tc.lr * 0.05)
        bar = tqdm(range(tc.epochs), desc="Audio2Motion", disable=not progress)
        for epoch in bar:
            model.train()
            fx, ex, my, mk = _crops(dataset, train_spans, feats, tc.crop_frames, n_crops, L, rng)
            drop = rng.random(n_crops) < tc.emotion_dropout
            ex[drop] = config.n_emotions
            losses = []
            for b in range(0, n_crops, tc.batch):
                sl = slice(b, b + tc.batch)
                f, e, y, m = (torch.from_numpy(a[sl]).to(dev) for a in (fx, ex, my, mk))
                pred = model(f, e, pad_end=False)
                pos, vel = loss_terms(model, pred, y, m, tc)
                loss = pos + tc.velocity_weight * vel
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), tc.clip)
                opt.step()
                losses.append(loss.item())
            sched.step()
            val = _val_loss(model, dataset, split["val"], feats, tc)
            history["epoch"].append(epoch + 1)
            history["train_loss"].append(float(np.mean(losses)))
            history["val_loss"].append(val["loss"])
            history["val_mse"].append(val["mse_norm"])
            history["lr"].append(opt.param_groups[0]["lr"])
            bar.set_postfix(train=f"{history['train_loss'][-1]:.3f}", val=f"{val['loss']:.3f}")
            if val["loss"] < best - 1e-6:
                best, best_epoch, bad = val["loss"], epoch + 1, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
                if bad >= tc.patience:
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        seconds = time.perf_counter() - t_start
        metrics = evaluate(model, dataset, split["val"])
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)
    metrics.update(best_epoch=best_epoch, epochs_run=len(history["epoch"]), train_seconds=seconds,
                   train_lines=len(split["train"]), val_lines=len(split["val"]), seed=seed, device=str(dev))
    return TrainResult(model, history, split, metrics, config, tc, dict(fp), seconds, best_epoch)


def _silence_value(feature_params: dict) -> float:
    """log(log_floor) of the feature parameters: the value `talkinghead.audio` gives digital silence."""
    return float(np.log(float(feature_params.get("log_floor", 1e-5))))


@torch.no_grad()
def _val_loss(model: Audio2Motion, dataset: Dataset, line_ids, feats: np.ndarray, tc: TrainConfig) -> dict:
    """Held-out loss over whole lines (each run from a fresh state, with its real lookahead)."""
    model.eval()
    L = model.config.lookahead_frames
    spans = _spans(dataset, line_ids)
    T = max(e - s for s, e in spans)
    dev = model.head.weight.device
    fx = np.stack([np.concatenate([feats[s:e + L], np.repeat(feats[-1:], T - (e - s), 0)]) for s, e in spans])
    ex = np.stack([np.full(T + L, dataset.emotion[s]) for s, e in spans])
    y = np.zeros((len(spans), T, layout.MOTION_DIM), np.float32)
    m = np.zeros((len(spans), T), np.float32)
    for j, (s, e) in enumerate(spans):
        y[j, :e - s], m[j, :e - s] = dataset.motion[s:e], dataset.valid[s:e]
    f, e_, yt, mt = (torch.from_numpy(a).to(dev) for a in (fx, ex.astype(np.int64), y, m))
    pred = model(f, e_, pad_end=False)
    pos, vel = loss_terms(model, pred, yt, mt, tc)
    d = ((pred - yt) / model.motion_std) ** 2
    mse = float((d.mean(-1) * mt).sum() / mt.sum())
    return {"loss": float(pos + tc.velocity_weight * vel), "mse_norm": mse}


# ======================================================================================================================
# prediction and metrics

@torch.no_grad()
def predict(model: Audio2Motion, features: np.ndarray, emotion=None) -> np.ndarray:
    """One utterance: features (N, 4, 80) [emotion None | int | (N,) ids] -> motion (N, 69) numpy (offline forward)."""
    model.eval()
    dev = model.head.weight.device
    f = torch.as_tensor(np.asarray(features, np.float32), device=dev)[None]
    e = None if emotion is None else torch.as_tensor(np.asarray(emotion), device=dev).long().reshape(1, -1)
    return model(f, e)[0].cpu().numpy()


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; 0.0 when either side is constant (e.g. the mean baseline)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 1e-20 else 0.0


GENERIC_SOURCE_SEED = 20240704


def reference_source(dataset: Dataset) -> dict:
    """Keypoints the motion is applied to for keypoint distances: the dataset's `reference_keypoints` (x_c (21, 3),
    exp (21, 3), pose degrees (3,), t (3,), scale (1,)) when the extraction stored them, else a generic face-sized
    cloud (seeded, neutral pose, scale 1.5 as LivePortrait's typical)."""
    ref = dataset.meta.get("reference_keypoints")
    if ref:
        return {k: np.asarray(ref[k], np.float32).reshape(s) for k, s in
                (("x_c", (21, 3)), ("exp", (21, 3)), ("pose", (3,)), ("t", (-1,)), ("scale", (1,)))}
    rng = np.random.default_rng(GENERIC_SOURCE_SEED)
    return {"x_c": rng.uniform(-0.4, 0.4, (21, 3)).astype(np.float32), "exp": np.zeros((21, 3), np.float32),
            "pose": np.zeros(3, np.float32), "t": np.zeros(3, np.float32), "scale": np.full(1, 1.5, np.float32)}


def keypoints(motion: np.ndarray, source: dict) -> np.ndarray:
    """Relative motion (N, 69) -> driving keypoints (N, 21, 3) via x_d = s * (x_c @ R(pose) + exp) + t."""
    from .liveportrait.keypoints import transform_keypoints_degrees

    d = layout.apply_to_source(torch.as_tensor(np.asarray(motion, np.float32)),
                               {k: torch.as_tensor(v) for k, v in source.items()})
    x_c = torch.as_tensor(source["x_c"]).expand(len(motion), 21, 3)
    return transform_keypoints_degrees(x_c, d["pose"], d["exp"], d["scale"], d["t"]).numpy()


def _metrics(pred: np.ndarray, true: np.ndarray, std: np.ndarray, source: dict) -> dict:
    mo = layout.MOUTH_INDICES
    lips = list(layout.LIP_KP)
    kp_p, kp_t = keypoints(pred, source), keypoints(true, source)
    same_pose = true.copy()                       # the prediction's expression on the true head pose/t/scale
    same_pose[:, layout.EXP] = pred[:, layout.EXP]
    kp_e = keypoints(same_pose, source)
    return {
        "mse_norm": float(np.mean(((pred - true) / std) ** 2)),            # all 69 dims in per-dim std units
        "mse_exp": float(np.mean((pred[:, layout.EXP] - true[:, layout.EXP]) ** 2)),
        "mse_mouth": float(np.mean((pred[:, mo] - true[:, mo]) ** 2)),
        "mse_pose_deg2": float(np.mean((pred[:, layout.POSE] - true[:, layout.POSE]) ** 2)),
        "mouth_open_r": pearson(layout.mouth_open(pred), layout.mouth_open(true)),
        "mouth_kp_dist": float(np.linalg.norm(kp_p[:, lips] - kp_t[:, lips], axis=-1).mean()),
        "mouth_kp_dist_expr": float(np.linalg.norm(kp_e[:, lips] - kp_t[:, lips], axis=-1).mean()),
    }


def evaluate(model: Audio2Motion, dataset: Dataset, lines) -> dict:
    """Held-out metrics of the model beside a baseline that always predicts the mean training motion.

    Each line is predicted offline on its own (its real features, silence after it, as at inference; the model's
    audio-only output). Over the valid frames of `lines`:
      mse_norm       MSE over all 69 dims, each in units of its training std (1.0 ~ knowing nothing)
      mse_exp        MSE of the 63 expression offsets (canonical keypoint units^2)
      mse_mouth      MSE of the lip keypoints' offsets (`layout.MOUTH_INDICES`)
      mse_pose_deg2  MSE of pitch/yaw/roll (degrees^2): mostly idle sway, which audio cannot explain
      mouth_open_r   Pearson r of `layout.mouth_open`, prediction vs truth (0 for a constant prediction)
      mouth_kp_dist  mean distance of the lip keypoints after the full keypoint transform (`reference_source`);
                     includes head-pose errors, i.e. idle sway the audio cannot explain
      mouth_kp_dist_expr  the same with the true pose/t/scale on both sides: the expression's share alone
    Returns {"model": {...}, "baseline": {...}, "frames": n, "lines": [...]} (JSON-able).
    """
    preds, trues = [], []
    for s, e in _spans(dataset, lines):
        p = predict(model, dataset.features[s:e], dataset.emotion[s:e])
        v = dataset.valid[s:e]
        preds.append(p[v])
        trues.append(dataset.motion[s:e][v])
    pred, true = np.concatenate(preds), np.concatenate(trues)
    mean = model.motion_mean.cpu().numpy()
    std = model.motion_std.cpu().numpy()
    src = reference_source(dataset)
    base = np.repeat(mean[None], len(true), 0)
    return {"model": _metrics(pred, true, std, src), "baseline": _metrics(base, true, std, src),
            "frames": int(len(true)), "lines": list(lines),
            "keypoint_source": "dataset reference_keypoints" if dataset.meta.get("reference_keypoints")
            else "generic keypoint cloud"}


def metrics_table(metrics: dict) -> str:
    """A markdown table: metric | model | mean baseline | model/baseline."""
    rows = ["| metric | model | mean baseline | ratio |", "| --- | ---: | ---: | ---: |"]
    for k, v in metrics["model"].items():
        b = metrics["baseline"][k]
        ratio = f"{v / b:.2f}" if k != "mouth_open_r" and abs(b) > 0 else ""
        rows.append(f"| {k} | {v:.4g} | {b:.4g} | {ratio} |")
    return "\n".join(rows)


# ======================================================================================================================
# checkpoints

def save_checkpoint(path, model: Audio2Motion, config: A2MConfig, feature_params: Any, metrics: dict,
                    mode: str = "audio_only", idle: IdleMotion | None = None, extra: dict | None = None) -> Path:
    """Write `path` (a .pt of plain dicts/tensors, loadable with weights_only=True) and `<stem>.metrics.json` beside it.

    Both atomic. `mode` (MODES) says how idle motion is added at runtime; `idle` is stored for "idle_from_recording".
    """
    from .fileio import atomic_path, save_json

    if mode not in MODES:
        raise ValueError(f"unknown idle mode {mode!r}: use one of {', '.join(MODES)}")
    path = Path(path)
    metrics = dict(metrics, mode=mode)
    ckpt = {
        "format_version": CHECKPOINT_FORMAT, "kind": "talkinghead.audio2motion",
        "config": config.to_dict(), "feature_params": params_dict(feature_params),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "metrics": json.loads(json.dumps(metrics)), "mode": mode,
        "idle": idle.to_dict() if idle is not None else None,
        "motion_layout": {"dim": layout.MOTION_DIM, "names": list(layout.NAMES)},
        "extra": json.loads(json.dumps(extra or {})),
    }
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    save_json(metrics_path(path), metrics)
    return path


def metrics_path(path) -> Path:
    """`audio2motion.pt` -> `audio2motion.metrics.json`."""
    path = Path(path)
    return path.with_name(path.stem + ".metrics.json")


@dataclass
class Checkpoint:
    model: Audio2Motion
    config: A2MConfig
    feature_params: dict
    metrics: dict
    mode: str
    idle: IdleMotion | None
    path: Path

    def check_dataset(self, dataset: Dataset) -> None:
        """Raise DatasetError when `dataset`'s feature parameters differ from the model's."""
        diff = params_mismatch(dataset.feature_params, self.feature_params)
        if diff:
            raise DatasetError(f"{dataset.name()}: the dataset's audio features were made with other parameters than "
                               f"the model {self.path.name} expects ({diff}); extract the dataset again with the "
                               "model's FeatureParams or train a new model on it.")


def load_checkpoint(path, map_location="cpu", expect_params: Any = None) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint` (weights_only=True); one clear sentence when it cannot.

    `expect_params`: the feature parameters the caller will feed (e.g. a dataset's); a mismatch is a DatasetError.
    """
    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path}: the Audio2Motion checkpoint does not exist; train it with "
                          "notebooks/04_training.ipynb (or talkinghead.a2m.run_training).")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise BundleError(f"{path}: the Audio2Motion checkpoint is corrupt or truncated ({type(e).__name__}); "
                          "delete it and train again (notebooks/04_training.ipynb).") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != "talkinghead.audio2motion" \
            or ckpt.get("format_version") != CHECKPOINT_FORMAT:
        got = ckpt.get("format_version") if isinstance(ckpt, dict) else None
        raise BundleError(f"{path}: not an Audio2Motion checkpoint of format version {CHECKPOINT_FORMAT} (found "
                          f"{got!r}); train it again with this talkinghead (notebooks/04_training.ipynb).")
    config = A2MConfig.from_dict(ckpt["config"])
    model = Audio2Motion(config)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    idle = IdleMotion.from_dict(ckpt["idle"]) if ckpt.get("idle") else None
    out = Checkpoint(model, config, dict(ckpt["feature_params"]), dict(ckpt["metrics"]), ckpt["mode"], idle, path)
    if expect_params is not None:
        diff = params_mismatch(expect_params, out.feature_params)
        if diff:
            raise DatasetError(f"{path}: the model was trained on audio features with other parameters than the ones "
                               f"given ({diff}); extract features with the model's FeatureParams or train again.")
    return out


# ======================================================================================================================
# the whole stage, as notebook 04 and the command line run it

def run_training(dataset_path, bundle_dir, config: A2MConfig | None = None, epochs: int | None = None, seed: int = 0,
                 mode: str = "idle_from_recording", device: str = "auto", progress: bool = True,
                 train_config: TrainConfig | None = None, expect_params: Any = None,
                 verbose: bool = True) -> TrainResult:
    """Load `dataset.npz` (checked against the current `talkinghead.audio.FeatureParams` unless `expect_params` is
    given), train, evaluate on held-out lines, and write `audio2motion.pt` + `audio2motion.metrics.json` into
    `bundle_dir`. `mode` (MODES) is how idle motion is added at runtime; it is recorded in both files."""
    if mode not in MODES:
        raise ValueError(f"unknown idle mode {mode!r}: use one of {', '.join(MODES)}")
    dataset = load_dataset(dataset_path, expect_params=expect_params if expect_params is not None else params_dict(None))
    result = train(dataset, config, epochs=epochs, seed=seed, device=device, progress=progress,
                   train_config=train_config)
    idle = IdleMotion.from_dataset(dataset, result.model) if mode == "idle_from_recording" else None
    info = result.model.describe(verbose=verbose)
    result.metrics.update(mode=mode, params=info["params"], per_frame_ms=info["per_frame_ms"],
                          split=result.split, dataset=str(Path(dataset_path).name))
    result.mode, result.idle = mode, idle
    ckpt = save_checkpoint(Path(bundle_dir) / CHECKPOINT_NAME, result.model, result.config, result.feature_params,
                           result.metrics, mode, idle, extra={"train_config": dataclasses.asdict(result.train_config)})
    result.paths = {"checkpoint": ckpt, "metrics": metrics_path(ckpt)}
    if verbose:
        print(f"trained in {result.seconds:.1f} s (best epoch {result.best_epoch}); idle mode: {mode}")
        print(metrics_table(result.metrics))
    return result


# ======================================================================================================================
# plots

def plot_history(history: dict):
    """Training and held-out loss per epoch (log scale), best epoch marked. Returns a matplotlib Figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(history["epoch"], history["train_loss"], label="train (crops)")
    ax.plot(history["epoch"], history["val_loss"], label="held-out lines")
    if history["val_loss"]:
        i = int(np.argmin(history["val_loss"]))
        ax.axvline(history["epoch"][i], color="grey", ls=":", label=f"best epoch {history['epoch'][i]}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (std units)")
    ax.legend()
    ax.set_title("Audio2Motion training")
    fig.tight_layout()
    return fig


def plot_mouth(pred: np.ndarray, true: np.ndarray, fps: float = 25.0, baseline: np.ndarray | None = None,
               title: str = "mouth opening"):
    """Mouth-opening proxy (`layout.mouth_open`) over time: prediction vs truth (motion arrays (N, 69)). A Figure."""
    import matplotlib.pyplot as plt

    t = np.arange(len(true)) / fps
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(t, layout.mouth_open(true), label="true", color="k", lw=1.5)
    ax.plot(t, layout.mouth_open(pred), label=f"predicted (r = {pearson(layout.mouth_open(pred), layout.mouth_open(true)):.2f})")
    if baseline is not None:
        ax.plot(t, layout.mouth_open(baseline), label="mean baseline", ls="--", color="grey")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("kp19.y - kp17.y")
    ax.set_title(title)
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


# ======================================================================================================================
# notebook 04: one held-out line, side by side

SAMPLE_EPOCHS = 30     # the sample profile's default: seconds on two CPU cores (early stopping usually ends it sooner)


def default_epochs(profile=None) -> int:
    """Epochs notebook 04 trains for when its EPOCHS is None: SAMPLE_EPOCHS on the sample profile, else
    `TrainConfig().epochs` (the full profile trains longer, with early stopping on held-out lines)."""
    from .profiles import get_profile

    return SAMPLE_EPOCHS if get_profile(profile).is_sample else TrainConfig().epochs


def line_example(model: Audio2Motion, dataset: Dataset, line_id: str, mode: str = "audio_only",
                 idle: IdleMotion | None = None, seed: int = 0) -> dict:
    """One corpus line (its first take) predicted offline, for plots and renders. Returns a dict:
    line, text, start/end (frames in the recording), fps, valid (N,), and motion arrays (N, 69): `true` (the
    recording), `pred` (the model's audio-only output), `runtime` (`pred` with idle motion added as `mode` says,
    seeded: what the avatar would do) and `baseline` (the mean training motion, every frame)."""
    s, e = dataset.line_spans(line_id)[0]
    pred = predict(model, dataset.features[s:e], dataset.emotion[s:e])
    runtime = combine(pred, idle.sample(e - s, seed) if mode != "audio_only" and idle is not None else idle, mode)
    seg = next((g for g in dataset.segments if str(g.get("id")) == line_id), {})
    return {"line": line_id, "text": seg.get("text", ""), "start": s, "end": e, "fps": dataset.fps,
            "valid": dataset.valid[s:e].copy(), "true": dataset.motion[s:e].copy(), "pred": pred,
            "runtime": np.asarray(runtime, np.float32),
            "baseline": np.repeat(model.motion_mean.cpu().numpy()[None], e - s, 0)}


def pick_frames(motion: np.ndarray, k: int = 4, valid: np.ndarray | None = None) -> np.ndarray:
    """`k` frame indices of `motion` (N, 69) that span its mouth opening, from most closed to most open (quantiles
    of `layout.mouth_open` over the valid frames), returned in time order and without repeats."""
    idx = np.arange(len(motion)) if valid is None else np.flatnonzero(valid)
    if len(idx) == 0:
        return idx
    order = idx[np.argsort(layout.mouth_open(motion[idx]), kind="stable")]
    picks = order[np.round(np.linspace(0, len(order) - 1, min(k, len(order)))).astype(int)]
    return np.unique(picks)


def render_comparison(bundle, rows: dict, frames, lp=None, paste: bool = False, fps: float = 25.0):
    """Render the same `frames` of several motion tracks through the avatar: rows {label: motion (N, 69)} ->
    (images, titles), one row per label, ready for `talkinghead.notebook.show_images(images, titles, cols=len(frames))`.

    `paste=False` shows the 512x512 face crop (the mouth is large); `paste=True` the whole portrait."""
    from .liveportrait import load_liveportrait
    from .render import BakedRenderer, render

    frames = np.asarray(frames, int)
    lp = lp or load_liveportrait(profile=bundle.profile)
    renderer = BakedRenderer(lp, bundle, paste=paste).eval()
    images, titles = [], []
    for label, motion in rows.items():
        m = np.asarray(motion, np.float32)[frames]
        images.extend(render(bundle, m, renderer=renderer, progress=False))
        titles.extend(f"{label}, {k / fps:.2f} s (open {o:+.4f})" for k, o in zip(frames, layout.mouth_open(m)))
    return images, titles


def plot_idle(idle: IdleMotion | None, mode: str, seconds: float = 10.0, seed: int = 0):
    """What the idle mode adds: head pitch/yaw/roll offsets (degrees) and the eye keypoints' mean y offset over
    `seconds` of the looped track (a flat line for "audio_only"). Returns a matplotlib Figure."""
    import matplotlib.pyplot as plt

    fps = idle.fps if idle is not None else 25.0
    n = int(round(seconds * fps))
    off = idle.sample(n, seed) if (idle is not None and mode != "audio_only") else np.zeros((n, layout.MOTION_DIM))
    t = np.arange(n) / fps
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 2.8))
    for i, name in enumerate(("pitch", "yaw", "roll")):
        a.plot(t, off[:, layout.POSE.start + i], lw=1, label=name)
    a.set_ylabel("degrees")
    a.legend(fontsize=8, loc="upper right")
    eyes = layout.unpack(off)["exp"][:, list(layout.EYE_KP), 1].mean(-1)
    b.plot(t, eyes, lw=1, color="C3")
    b.set_ylabel("eye keypoints, mean y offset")
    for ax in (a, b):
        ax.set_xlabel("time (s)")
    loop = f", loop {len(idle.loop) / fps:.1f} s" if idle is not None and mode != "audio_only" else ""
    fig.suptitle(f"idle motion added at runtime: mode '{mode}'{loop}", fontsize=10)
    fig.tight_layout()
    return fig
