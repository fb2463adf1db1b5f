"""Training Audio2Motion on a dataset, and the whole stage as notebook 04 and the command line run it
(notebooks/04_training.ipynb): crops of corpus lines, AdamW, weighted MSE + velocity loss, early stopping on held-out
lines, then `audio2motion.pt` + `audio2motion.metrics.json` in the bundle."""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .. import layout
from ..audio import FeatureParams, silence_value
from ..dataset import Dataset, dataset_warning, load_dataset, mel_shape, params_dict
from ..device import get_device
from ..errors import DatasetError, TalkingHeadError
from ..profiles import get_profile
from ..progress import Estimate
from .checkpoint import CHECKPOINT_NAME, metrics_path, save_checkpoint
from .data import crops, padded_features, spans, split_lines
from .evaluation import baseline_verdict, evaluate, metrics_table
from .idle import MODES, IdleMotion
from .model import A2MConfig, Audio2Motion

SAMPLE_EPOCHS = 30     # the sample profile's default: seconds on two CPU cores (early stopping usually ends it sooner)


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
    """What `train` returns (and `run_training`, which also fills `mode`, `idle` and `paths`)."""
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


def default_epochs(profile=None) -> int:
    """Epochs notebook 04 trains for when its EPOCHS is None: SAMPLE_EPOCHS on the sample profile, else
    `TrainConfig().epochs` (the full profile trains longer, with early stopping on held-out lines)."""
    return SAMPLE_EPOCHS if get_profile(profile).is_sample else TrainConfig().epochs


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
    """The package's one device rule (`talkinghead.device`): 'auto' = $TALKINGHEAD_DEVICE, else CUDA, MPS, CPU."""
    return get_device(device)


def _checked_config(dataset: Dataset, config: A2MConfig | None) -> A2MConfig:
    """`config` (default: one matching the dataset's features), checked against the dataset's mel shape."""
    fp = dataset.feature_params
    config = config or A2MConfig.for_features(fp)
    per, n_mels = mel_shape(fp)
    if (config.mel_per_frame, config.n_mels) != (per, n_mels):
        raise DatasetError(f"{dataset.name()}: the dataset has {per} x {n_mels} mel features per frame but the model "
                           f"config expects {config.mel_per_frame} x {config.n_mels}; use A2MConfig.for_features("
                           "dataset.feature_params).")
    return config


@contextlib.contextmanager
def _training_settings(tc: TrainConfig, dev: torch.device):
    """Deterministic algorithms and `tc.threads` CPU threads while training; both restored afterwards."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    threads = torch.get_num_threads()
    if tc.threads and dev.type == "cpu":
        torch.set_num_threads(tc.threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)


def train(dataset: Dataset, config: A2MConfig | None = None, epochs: int | None = None, seed: int = 0,
          device: str = "auto", progress: bool = True, train_config: TrainConfig | None = None,
          split: dict | None = None) -> TrainResult:
    """Train Audio2Motion on `dataset`; early-stops on held-out lines and restores the best weights.

    Split by corpus line (`split_lines`), AdamW, loss = weighted MSE + velocity MSE (`loss_terms`), crops of lines.
    Seeded: on CPU two runs with the same seed give identical weights. Uses the GPU that `device='auto'` finds
    (`talkinghead.device`).
    Returns a TrainResult with held-out `metrics` (`evaluate`) and `history` (per-epoch losses).
    """
    tc = copy.deepcopy(train_config) if train_config is not None else TrainConfig()
    if epochs is not None:
        tc.epochs = int(epochs)
    fp = dataset.feature_params
    config = _checked_config(dataset, config)
    dev = _resolve_device(device)
    split = split or split_lines(dataset, tc.holdout, seed)
    overlap = set(split["train"]) & set(split["val"])
    assert not overlap, f"lines in both train and held-out sets: {sorted(overlap)}"
    train_spans = spans(dataset, split["train"])
    train_frames = np.concatenate([np.arange(s, e) for s, e in train_spans])
    train_frames = train_frames[dataset.valid[train_frames]]
    silence = silence_value(FeatureParams(log_floor=float(fp.get("log_floor", FeatureParams.log_floor))))

    with _training_settings(tc, dev):
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        t_start = time.perf_counter()
        model = Audio2Motion(config)
        model.fit_normaliser(dataset.features[train_frames], dataset.motion[train_frames], silence)
        model.to(dev)
        history, best_epoch = _fit(model, dataset, split, train_spans, len(train_frames), tc, rng, progress)
        seconds = time.perf_counter() - t_start
        metrics = evaluate(model, dataset, split["val"])
    metrics.update(best_epoch=best_epoch, epochs_run=len(history["epoch"]), train_seconds=seconds,
                   train_lines=len(split["train"]), val_lines=len(split["val"]), seed=seed, device=str(dev))
    return TrainResult(model, history, split, metrics, config, tc, dict(fp), seconds, best_epoch)


def _fit(model: Audio2Motion, dataset: Dataset, split: dict, train_spans, n_train_frames: int, tc: TrainConfig,
         rng: np.random.Generator, progress: bool) -> tuple[dict, int]:
    """The epoch loop: fresh crops each epoch, held-out loss after it, early stopping, best weights restored.

    Returns (history {epoch, train_loss, val_loss, val_mse, lr: per-epoch lists}, best epoch (1-based, 0: none))."""
    from tqdm.auto import tqdm

    L, n_emotions = model.config.lookahead_frames, model.config.n_emotions
    feats = padded_features(dataset, float(model.silence[0, 0]), L)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    n_crops = tc.crops_per_epoch or max(tc.batch, int(2 * n_train_frames / tc.crop_frames))
    history = {k: [] for k in ("epoch", "train_loss", "val_loss", "val_mse", "lr")}
    best, best_state, best_epoch, bad = math.inf, None, 0, 0
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, tc.epochs), eta_min=tc.lr * 0.05)
    bar = tqdm(range(tc.epochs), desc="Audio2Motion", disable=not progress)
    est = Estimate("Audio2Motion training", tc.epochs, "epoch", note="at most; early stopping usually ends it sooner",
                   enabled=progress)
    for epoch in bar:
        if epoch == 1:
            est.update(1)
        fx, ex, my, mk = crops(dataset, train_spans, feats, tc.crop_frames, n_crops, L, rng)
        ex[rng.random(n_crops) < tc.emotion_dropout] = n_emotions       # trained without their label
        train_loss = _train_epoch(model, opt, (fx, ex, my, mk), tc)
        sched.step()
        val = _val_loss(model, dataset, split["val"], feats, tc)
        for k, v in (("epoch", epoch + 1), ("train_loss", train_loss), ("val_loss", val["loss"]),
                     ("val_mse", val["mse_norm"]), ("lr", opt.param_groups[0]["lr"])):
            history[k].append(v)
        bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val['loss']:.3f}")
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
    return history, best_epoch


def _train_epoch(model: Audio2Motion, opt, arrays, tc: TrainConfig) -> float:
    """One pass over this epoch's crops (features, emotion, motion, mask) in batches of `tc.batch`: mean loss."""
    model.train()
    dev = model.head.weight.device
    losses = []
    for b in range(0, len(arrays[0]), tc.batch):
        f, e, y, m = (torch.from_numpy(a[b:b + tc.batch]).to(dev) for a in arrays)
        pred = model(f, e, pad_end=False)
        pos, vel = loss_terms(model, pred, y, m, tc)
        loss = pos + tc.velocity_weight * vel
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), tc.clip)
        opt.step()
        losses.append(loss.item())
    return float(np.mean(losses))


@torch.no_grad()
def _val_loss(model: Audio2Motion, dataset: Dataset, line_ids, feats: np.ndarray, tc: TrainConfig) -> dict:
    """Held-out loss over whole lines (each run from a fresh state, with its real lookahead)."""
    model.eval()
    L = model.config.lookahead_frames
    ranges = spans(dataset, line_ids)
    T = max(e - s for s, e in ranges)
    dev = model.head.weight.device
    fx = np.stack([np.concatenate([feats[s:e + L], np.repeat(feats[-1:], T - (e - s), 0)]) for s, e in ranges])
    ex = np.stack([np.full(T + L, dataset.emotion[s]) for s, e in ranges])
    y = np.zeros((len(ranges), T, layout.MOTION_DIM), np.float32)
    m = np.zeros((len(ranges), T), np.float32)
    for j, (s, e) in enumerate(ranges):
        y[j, :e - s], m[j, :e - s] = dataset.motion[s:e], dataset.valid[s:e]
    f, e_, yt, mt = (torch.from_numpy(a).to(dev) for a in (fx, ex.astype(np.int64), y, m))
    pred = model(f, e_, pad_end=False)
    pos, vel = loss_terms(model, pred, yt, mt, tc)
    d = ((pred - yt) / model.motion_std) ** 2
    mse = float((d.mean(-1) * mt).sum() / mt.sum())
    return {"loss": float(pos + tc.velocity_weight * vel), "mse_norm": mse}


def run_training(dataset_path, bundle_dir, config: A2MConfig | None = None, epochs: int | None = None, seed: int = 0,
                 mode: str = "idle_from_recording", device: str = "auto", progress: bool = True,
                 train_config: TrainConfig | None = None, expect_params: Any = None,
                 verbose: bool = True) -> TrainResult:
    """Load `dataset.npz` (checked against the current `talkinghead.audio.FeatureParams` unless `expect_params` is
    given), train, evaluate on held-out lines, and write `audio2motion.pt` + `audio2motion.metrics.json` into
    `bundle_dir`. `mode` (MODES) is how idle motion is added at runtime; it is recorded in both files."""
    if mode not in MODES:
        raise ValueError(f"unknown idle mode {mode!r}: use one of {', '.join(MODES)}")
    if epochs is not None and epochs < 1:  # an untrained model must never replace a trained one
        raise TalkingHeadError(f"epochs={epochs}: train at least one epoch (nothing was written to {bundle_dir}).")
    dataset = load_dataset(dataset_path, expect_params=expect_params if expect_params is not None else params_dict(None))
    short = dataset_warning(dataset)
    if short and (verbose or progress):
        print(short, flush=True)
    result = train(dataset, config, epochs=epochs, seed=seed, device=device, progress=progress,
                   train_config=train_config)
    beats, verdict = baseline_verdict(result.metrics)
    idle = IdleMotion.from_dataset(dataset, result.model) if mode == "idle_from_recording" else None
    info = result.model.describe(verbose=verbose)
    result.metrics.update(mode=mode, params=info["params"], per_frame_ms=info["per_frame_ms"],
                          split=result.split, dataset=str(Path(dataset_path).name), beats_baseline=beats,
                          warnings=[w for w in (short, None if beats else verdict) if w])
    result.mode, result.idle = mode, idle
    ckpt = save_checkpoint(Path(bundle_dir) / CHECKPOINT_NAME, result.model, result.config, result.feature_params,
                           result.metrics, mode, idle, extra={"train_config": dataclasses.asdict(result.train_config)})
    result.paths = {"checkpoint": ckpt, "metrics": metrics_path(ckpt)}
    if verbose:
        print(f"trained in {result.seconds:.1f} s (best epoch {result.best_epoch}); idle mode: {mode}")
        print(metrics_table(result.metrics))
        print(verdict if beats else f"warning: {verdict}.")
    return result
