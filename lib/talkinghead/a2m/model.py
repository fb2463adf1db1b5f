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
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import layout
from ..dataset import mel_shape, params_dict


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
    fps: float = float(layout.FPS)

    @classmethod
    def for_features(cls, feature_params: Any = None, lookahead_ms: float = 80.0, **kw) -> "A2MConfig":
        """A config matching feature parameters (a FeatureParams or its dict), lookahead given in milliseconds."""
        per, n_mels = mel_shape(feature_params)
        fps = float(params_dict(feature_params).get("fps", layout.FPS))
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
