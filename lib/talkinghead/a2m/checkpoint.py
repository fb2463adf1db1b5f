"""Audio2Motion checkpoints: `audio2motion.pt` (plain dicts and tensors, loadable with weights_only=True) and
`audio2motion.metrics.json` beside it, written by notebooks/04_training.ipynb and read by export and the CLI."""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import layout
from ..dataset import Dataset, params_dict, params_mismatch
from ..errors import BundleError, DatasetError
from ..fileio import file_set, save_json
from .idle import MODES, IdleMotion
from .model import A2MConfig, Audio2Motion

CHECKPOINT_NAME = "audio2motion.pt"
METRICS_NAME = "audio2motion.metrics.json"
CHECKPOINT_FORMAT = 1


def save_checkpoint(path, model: Audio2Motion, config: A2MConfig, feature_params: Any, metrics: dict,
                    mode: str = "audio_only", idle: IdleMotion | None = None, extra: dict | None = None) -> Path:
    """Write `path` (a .pt of plain dicts/tensors, loadable with weights_only=True) and `<stem>.metrics.json` beside it.

    Both as one unit (`fileio.file_set`). `mode` (MODES) says how idle motion is added at runtime; `idle` is
    stored for "idle_from_recording".
    """
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
    with file_set(path.parent) as fs:  # the checkpoint and its metrics: one unit
        torch.save(ckpt, fs.path(path.name))
        save_json(fs.path(metrics_path(path).name), metrics)
    return path


def metrics_path(path) -> Path:
    """`audio2motion.pt` -> `audio2motion.metrics.json`."""
    path = Path(path)
    return path.with_name(path.stem + ".metrics.json")


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode), its config and feature parameters, metrics, idle mode and motion."""
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
        with warnings.catch_warnings():  # torch's note on a foreign pickle protocol: the sentence below says it all
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise BundleError(f"{path}: the Audio2Motion checkpoint is corrupt or truncated ({type(e).__name__}); "
                          "delete it and train again (notebooks/04_training.ipynb).") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != "talkinghead.audio2motion" \
            or ckpt.get("format_version") != CHECKPOINT_FORMAT:
        got = ckpt.get("format_version") if isinstance(ckpt, dict) else None
        raise BundleError(f"{path}: not an Audio2Motion checkpoint of format version {CHECKPOINT_FORMAT} (found "
                          f"{got!r}); train it again with this talkinghead (notebooks/04_training.ipynb).")
    try:
        config = A2MConfig.from_dict(ckpt["config"])
        model = Audio2Motion(config)
        model.load_state_dict(ckpt["state_dict"])
        idle = IdleMotion.from_dict(ckpt["idle"]) if ckpt.get("idle") else None
        out = Checkpoint(model.eval(), config, dict(ckpt["feature_params"]), dict(ckpt["metrics"]), ckpt["mode"],
                         idle, path)
    except Exception as e:  # wrong shapes or keys, missing or mistyped fields: an edited or foreign file
        raise BundleError(f"{path}: the Audio2Motion checkpoint does not fit the model it describes "
                          f"({type(e).__name__}: {_first_line(e)}); delete it and train again "
                          "(notebooks/04_training.ipynb).") from None
    if expect_params is not None:
        diff = params_mismatch(expect_params, out.feature_params)
        if diff:
            raise DatasetError(f"{path}: the model was trained on audio features with other parameters than the ones "
                               f"given ({diff}); extract features with the model's FeatureParams or train again.")
    return out


def _first_line(e: Exception, limit: int = 120) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return text if len(text) <= limit else text[:limit - 3] + "..."
