"""fileio (atomic writes, versioned npz/JSON), profiles, paths, hub errors, the motion layout."""
from __future__ import annotations

import numpy as np
import pytest

from talkinghead import errors, fileio, hub, layout, paths, profiles


def test_atomic_path_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "a.json"
    fileio.save_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with fileio.atomic_path(target) as tmp:
            tmp.write_text("half a fi")
            raise RuntimeError("interrupted")
    assert fileio.load_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"], "no temporary file is left behind"


def test_atomic_dir_replaces_only_on_success(tmp_path):
    target = tmp_path / "bundle"
    with fileio.atomic_dir(target) as d:
        (d / "x.txt").write_text("1")
    with pytest.raises(ValueError):
        with fileio.atomic_dir(target) as d:
            (d / "x.txt").write_text("2")
            raise ValueError
    assert (target / "x.txt").read_text() == "1"
    with fileio.atomic_dir(target) as d:
        (d / "y.txt").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["y.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_npz_is_byte_identical_and_corruption_names_the_file(tmp_path):
    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array([1, 2], np.int16)}
    p1, p2 = fileio.save_npz(tmp_path / "1.npz", arrays), fileio.save_npz(tmp_path / "2.npz", arrays)
    assert p1.read_bytes() == p2.read_bytes()
    assert fileio.sha256_file(p1) == fileio.sha256_file(p2)
    back = fileio.load_npz(p1)
    np.testing.assert_array_equal(back["a"], arrays["a"])
    p1.write_bytes(p1.read_bytes()[: len(p1.read_bytes()) // 2])
    with pytest.raises(errors.TalkingHeadError, match=r"1\.npz.*corrupt or truncated"):
        fileio.load_npz(p1)
    with pytest.raises(errors.TalkingHeadError, match="does not exist"):
        fileio.load_npz(tmp_path / "missing.npz")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(errors.TalkingHeadError, match=r"bad\.json.*not valid JSON"):
        fileio.load_json(tmp_path / "bad.json")


def test_profiles(monkeypatch):
    monkeypatch.setenv("TALKINGHEAD_PROFILE", "sample")
    assert profiles.get_profile().is_sample
    assert profiles.get_profile("full").name == "full"
    with pytest.raises(ValueError, match="unknown profile 'tiny'"):
        profiles.get_profile("tiny")


def test_workspace_follows_the_environment(workspace):
    assert paths.avatar_dir() == workspace.resolve() / "avatar"
    assert paths.corpus_dir().parent == paths.data_dir()


def test_local_weights_folder_missing_file_is_one_clear_sentence(tmp_path):
    with pytest.raises(errors.WeightsError) as e:
        hub.hub_file(hub.LIVEPORTRAIT_FILES["warping_module"], tmp_path)
    msg = str(e.value)
    assert "warping_module.pth" in msg and "lay the folder out like the hub repo" in msg and "\n" not in msg


def test_layout_relative_then_apply_recovers_the_absolute_motion():
    rng = np.random.default_rng(0)
    n = 5
    exp, pose = rng.normal(0, 0.02, (n, 63)), rng.normal(0, 10, (n, 3))
    t, scale = rng.normal(0, 0.05, (n, 3)), rng.uniform(0.8, 1.2, (n, 1))
    m = layout.relative(exp, pose, t, scale, ref=2)
    assert m.shape == (n, layout.MOTION_DIM) and m.dtype == np.float32
    np.testing.assert_allclose(m[2], 0, atol=1e-7)
    src = {"exp": exp[2].reshape(21, 3), "pose": pose[2], "t": t[2], "scale": scale[2]}
    d = layout.apply_to_source(m, src)
    np.testing.assert_allclose(d["exp"].reshape(n, 63), exp, atol=1e-6)
    np.testing.assert_allclose(d["pose"], pose, atol=1e-4)
    np.testing.assert_allclose(d["t"], t[:, :2], atol=1e-6)
    np.testing.assert_allclose(d["scale"], scale, rtol=1e-5)
    assert len(layout.NAMES) == layout.MOTION_DIM


def test_layout_works_on_torch_and_mouth_open_follows_keypoint_19():
    import torch

    m = layout.empty(2)
    m[1, 3 * 19 + 1] = 0.01  # open: kp19.y up
    np.testing.assert_allclose(layout.mouth_open(m), [0, 0.01])
    src = {"exp": torch.zeros(21, 3), "pose": torch.zeros(3), "t": torch.zeros(3), "scale": torch.ones(1)}
    d = layout.apply_to_source(torch.from_numpy(m), src)
    assert d["exp"].shape == (2, 21, 3) and torch.allclose(d["scale"], torch.ones(2, 1))


def test_npz_bytes_do_not_depend_on_the_clock(tmp_path, monkeypatch):
    import time as _time

    arrays = {"x": np.ones((2, 3), np.float32)}
    a = fileio.save_npz(tmp_path / "a.npz", arrays).read_bytes()
    real = _time.time
    monkeypatch.setattr(_time, "time", lambda: real() + 86400 * 3)
    monkeypatch.setattr(_time, "localtime", lambda *a: _time.struct_time((2031, 1, 1, 0, 0, 0, 0, 1, 0)))
    b = fileio.save_npz(tmp_path / "b.npz", arrays).read_bytes()
    assert a == b
    with np.load(tmp_path / "b.npz") as z:
        np.testing.assert_array_equal(z["x"], arrays["x"])


def test_atomic_files_get_ordinary_permissions(tmp_path):
    import stat

    path = fileio.save_json(tmp_path / "p.json", {})
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o666 & ~_current_umask(), oct(mode)


def _current_umask():
    import os
    m = os.umask(0)
    os.umask(m)
    return m


def test_every_module_is_reachable_from_the_package():
    """`talkinghead.<stage>` works for every stage module (notebooks call e.g. talkinghead.pipeline.ensure_trained)."""
    import importlib
    import pathlib

    import talkinghead

    pkg = pathlib.Path(talkinghead.__file__).parent
    names = {p.stem for p in pkg.glob("*.py") if not p.stem.startswith("_")}
    names |= {p.name for p in pkg.iterdir() if p.is_dir() and any(p.glob("*.py"))}  # subpackages: a2m/, live/, ...
    assert names == talkinghead._SUBMODULES
    for name in names:
        assert getattr(talkinghead, name) is importlib.import_module(f"talkinghead.{name}")
