"""Audio2Motion: a small streaming network from speech features to LivePortrait motion (notebooks/04_training.ipynb).

    model       A2MConfig, Audio2Motion (offline `forward`, streaming `step`/`stream`; the lookahead and the
                streaming state are explained in its docstring)
    data        split_lines (by corpus line), spans, padded_features, crops (training windows)
    training    TrainConfig, train, TrainResult, loss_terms, run_training (the whole stage), default_epochs
    evaluation  predict, evaluate (held-out metrics beside a mean baseline), metrics_table, pearson, keypoints
    idle        IdleMotion (the loopable motion audio cannot explain), combine, MODES, IDLE_DIMS
    checkpoint  save_checkpoint, load_checkpoint, Checkpoint (audio2motion.pt + audio2motion.metrics.json)
    plots       plot_history, plot_mouth, plot_idle
    examples    line_example, pick_frames, render_comparison (notebook 04's side-by-side views)

Every public name is importable from `talkinghead.a2m` itself. Importing it imports torch.
"""
from __future__ import annotations

from .checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_NAME, METRICS_NAME, Checkpoint, load_checkpoint, metrics_path, \
    save_checkpoint
from .data import crops, padded_features, spans, split_lines
from .evaluation import GENERIC_SOURCE_SEED, baseline_verdict, evaluate, keypoints, metrics_table, pearson, predict, \
    reference_source
from .examples import line_example, pick_frames, render_comparison
from .idle import IDLE_DIMS, MODES, IdleMotion, combine
from .model import A2MConfig, Audio2Motion, State
from .plots import plot_history, plot_idle, plot_mouth
from .training import SAMPLE_EPOCHS, TrainConfig, TrainResult, default_epochs, loss_terms, run_training, train

__all__ = [
    "A2MConfig", "Audio2Motion", "State",
    "split_lines", "spans", "padded_features", "crops",
    "TrainConfig", "TrainResult", "SAMPLE_EPOCHS", "default_epochs", "loss_terms", "train", "run_training",
    "predict", "pearson", "reference_source", "keypoints", "evaluate", "metrics_table", "baseline_verdict",
    "GENERIC_SOURCE_SEED",
    "IDLE_DIMS", "MODES", "IdleMotion", "combine",
    "CHECKPOINT_NAME", "METRICS_NAME", "CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint", "Checkpoint",
    "metrics_path",
    "plot_history", "plot_mouth", "plot_idle", "line_example", "pick_frames", "render_comparison",
]
