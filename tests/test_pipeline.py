"""pipeline.training_dataset: the extracted dataset, except on the sample profile with the sample recording, where
the recording's true motion is what there is to learn."""
from __future__ import annotations

import numpy as np

from talkinghead import dataset, layout, paths, pipeline


def _write(path, video):
    n = 60
    dataset.save_dataset(path, layout.empty(n), np.zeros((n, 4, 80), np.float32), np.ones(n, bool),
                         np.zeros(n, np.int32), np.zeros(n, np.int16), np.arange(n) / 25,
                         {"fps": 25, "feature_params": dataset.default_feature_params(), "segments": [{"id": "l1"}],
                          "reference_frame": 0, "source": {"video": video}, "profile": "sample"})


def test_sample_profile_trains_on_the_sample_truth(workspace, monkeypatch):
    _write(paths.data_dir() / "dataset.npz", "sample_recording.mp4")
    _write(paths.data_dir() / "sample_truth.npz", "sample_recording.mp4")
    assert pipeline.training_dataset("sample", verbose=False).name == "sample_truth.npz"
    assert pipeline.training_dataset("full", verbose=False).name == "dataset.npz"


def test_your_own_recording_is_always_the_extracted_dataset(workspace):
    _write(paths.data_dir() / "dataset.npz", "me.mp4")
    _write(paths.data_dir() / "sample_truth.npz", "sample_recording.mp4")
    assert pipeline.training_dataset("sample", verbose=False).name == "dataset.npz"
