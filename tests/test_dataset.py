"""dataset.npz + dataset.json: round trip, the procedural dataset, and every refusal (one sentence naming the file)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from talkinghead import layout
from talkinghead.dataset import (ARRAYS, FORMAT_VERSION, load_dataset, params_dict, save_dataset, sidecar_path,
                                 synthetic_dataset, write_synthetic)
from talkinghead.errors import DatasetError


@pytest.fixture(scope="module")
def synth():
    return synthetic_dataset(n_lines=6, seed=1)


def _save(ds, path, **over):
    arrays = {k: getattr(ds, k) for k in ARRAYS}
    arrays.update(over)
    return save_dataset(path, **arrays, meta=ds.meta)


def _raw_write(path, ds, meta=None, **over):
    """Write npz + sidecar directly, bypassing save_dataset's checks (to make broken files)."""
    arrays = {k: getattr(ds, k) for k in ARRAYS}
    arrays.update(over)
    np.savez(path, **arrays)
    sidecar_path(path).write_text(json.dumps(meta if meta is not None else ds.meta))
    return path


def test_synthetic_dataset_shapes_and_scale(synth):
    n = len(synth)
    assert synth.motion.shape == (n, 69) and synth.motion.dtype == np.float32
    assert synth.features.shape == (n, 4, 80) and synth.features.dtype == np.float32
    assert synth.valid.dtype == bool and (~synth.valid).sum() > 0          # a face dropout is present
    assert synth.segment.min() == -1 and synth.segment.max() == 5
    assert len(synth.line_ids) == 6
    exp = np.abs(synth.motion[:, layout.EXP])
    assert 0.01 < exp.max() < 0.08                                          # looks like LivePortrait exp offsets
    mo = layout.mouth_open(synth.motion)
    # features lead the motion by one frame: low-band energy at k matches the mouth at k + 1 best
    low = synth.features[:, :, :20].mean((1, 2))
    assert np.corrcoef(low[:-1], mo[1:])[0, 1] > np.corrcoef(low, mo)[0, 1] > 0.3
    # the same seed gives the same data
    assert np.array_equal(synthetic_dataset(n_lines=6, seed=1).features, synth.features)


def test_round_trip(tmp_path, synth):
    path = _save(synth, tmp_path / "dataset.npz")
    assert sidecar_path(path).exists()
    ds = load_dataset(path, expect_params=params_dict(None))
    for k in ARRAYS:
        assert np.array_equal(getattr(ds, k), getattr(synth, k)), k
    assert ds.meta["format_version"] == FORMAT_VERSION and ds.meta["n_frames"] == len(synth)
    assert ds.segments[0]["id"] == "L000" and ds.fps == 25.0
    assert not list(tmp_path.glob(".*part*"))                               # no temporary files left behind


def _refused(path, match, **kw):
    with pytest.raises(DatasetError) as e:
        load_dataset(path, **kw)
    msg = str(e.value)
    assert str(path) in msg and match in msg, msg
    assert "\n" not in msg
    return msg


def test_refuses_wrong_feature_params(tmp_path, synth):
    path = _save(synth, tmp_path / "dataset.npz")
    other = dict(params_dict(None), hop_length=320)
    msg = _refused(path, "other parameters", expect_params=other)
    assert "hop_length" in msg


def test_refuses_too_few_frames(tmp_path, synth):
    valid = synth.valid.copy()
    valid[40:] = False                                                      # 1.6 s of faces
    path = _save(synth, tmp_path / "dataset.npz", valid=valid)
    _refused(path, "only")


def test_refuses_no_valid_frames(tmp_path, synth):
    path = _save(synth, tmp_path / "dataset.npz", valid=np.zeros(len(synth), bool))
    _refused(path, "no valid frames")


def test_refuses_truncated_npz(tmp_path, synth):
    path = _save(synth, tmp_path / "dataset.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _refused(path, "corrupt or truncated")


def test_refuses_nans(tmp_path, synth):
    motion = synth.motion.copy()
    motion[np.flatnonzero(synth.valid)[5], 3] = np.nan
    path = _raw_write(tmp_path / "dataset.npz", synth, motion=motion)
    _refused(path, "NaN")
    with pytest.raises(DatasetError, match="NaN"):                          # and the writer refuses too
        _save(synth, tmp_path / "other.npz", motion=motion)


def test_refuses_other_format_version(tmp_path, synth):
    path = _raw_write(tmp_path / "dataset.npz", synth, meta=dict(synth.meta, format_version=FORMAT_VERSION + 1))
    _refused(path, "format version")


def test_refuses_length_mismatch_and_missing_sidecar(tmp_path, synth):
    path = _raw_write(tmp_path / "dataset.npz", synth, emotion=synth.emotion[:-3])
    _refused(path, "different lengths")
    sidecar_path(path).unlink()
    _refused(path, "sidecar")
    _refused(tmp_path / "nothing.npz", "does not exist")


def test_write_synthetic(tmp_path):
    path = write_synthetic(tmp_path / "d" / "dataset.npz", n_lines=4, seed=3)
    assert len(load_dataset(path).line_ids) == 4


def test_repeated_takes_are_one_line(synth):
    import copy

    ds = copy.copy(synth)
    segs = [dict(s) for s in synth.segments]
    segs[3]["id"] = segs[1]["id"]                                           # line L001 recorded twice
    ds.meta = dict(synth.meta, segments=segs)
    assert len(ds.line_ids) == 5 and ds.line_ids.count("L001") == 1
    spans = ds.line_spans("L001")
    assert len(spans) == 2 and spans[0][1] <= spans[1][0]
    assert len(ds.line_frames("L001")) == sum(e - s for s, e in spans)
