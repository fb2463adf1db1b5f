"""The adversarial pass (issue 15): nothing lost, nothing half-written, one sentence and the right exit code.

Each test feeds the command line or a writer something hostile or unlucky (a file where a folder belongs, a folder
of the user's files, a rename that fails at the k-th step, a killed run, a full disk, odd media, bad flags) and
checks three things: the exit code (2 for bad input, 130 for Ctrl-C, never 0 on failure), the message (one line,
no traceback, naming the real cause) and that the good files that were there before are intact.
"""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from talkinghead import cli, fileio
from talkinghead.dataset import load_dataset, write_synthetic


@pytest.fixture(autouse=True)
def _restore_environment(monkeypatch):
    """cli.main writes --profile/--workspace into os.environ; undo that after each test."""
    for var in ("TALKINGHEAD_PROFILE", "TALKINGHEAD_WORKSPACE", "TALKINGHEAD_WEIGHTS_DIR"):
        if var in os.environ:
            monkeypatch.setenv(var, os.environ[var])
        else:
            monkeypatch.delenv(var, raising=False)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `python -m talkinghead ARGV` run in-process."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse's own usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_sentence(err: str) -> str:
    """The single non-empty stderr line (asserts there is exactly one and no traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    return lines[0]


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative name -> bytes), hidden ones included."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# =========================================================================================== multi-file commits
def _datasets(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_synthetic(a / "dataset.npz", n_lines=6, seed=1)
    write_synthetic(b / "dataset.npz", n_lines=7, seed=2)
    return {name: tree(d) for name, d in (("old", a), ("new", b))}


def test_dataset_pair_is_old_or_new_whole_whichever_rename_fails(tmp_path, monkeypatch):
    """dataset.npz + dataset.json are one unit: a failure at the k-th rename, for every k, leaves a pair that loads."""
    sets = _datasets(tmp_path)
    real = os.replace
    k, outcomes = 0, []
    while True:
        k += 1
        d = tmp_path / f"ws{k}"
        write_synthetic(d / "dataset.npz", n_lines=6, seed=1)
        calls = []

        def failing(src, dst, _k=k, _calls=calls):
            _calls.append(dst)
            if len(_calls) == _k:
                raise OSError(errno.EIO, "injected failure")
            return real(src, dst)

        monkeypatch.setattr(os, "replace", failing)
        try:
            write_synthetic(d / "dataset.npz", n_lines=7, seed=2)
            failed = False
        except OSError:
            failed = True
        monkeypatch.setattr(os, "replace", real)
        ds = load_dataset(d / "dataset.npz", min_valid_s=0)          # finishes a commit that was cut short
        now = tree(d)
        assert now in (sets["old"], sets["new"]), f"rename {k}: neither the old nor the new pair"
        assert len(ds) == len(load_dataset(tmp_path / ("b" if now == sets["new"] else "a") / "dataset.npz",
                                           min_valid_s=0))
        outcomes.append("new" if now == sets["new"] else "old")
        if not failed:
            break
    assert k >= 4 and "old" in outcomes and outcomes.count("new") >= 2, outcomes


KILL_SCRIPT = textwrap.dedent("""
    import os, sys
    from talkinghead.dataset import write_synthetic
    k, n, real = int(sys.argv[2]), [0], os.replace
    def dying(src, dst):
        n[0] += 1
        if n[0] == k:
            os._exit(9)            # killed: no finally, no cleanup
        return real(src, dst)
    os.replace = dying
    write_synthetic(sys.argv[1], n_lines=7, seed=2)
""")


def test_a_run_killed_at_any_rename_leaves_old_or_new_and_no_part_files(tmp_path):
    sets = _datasets(tmp_path)
    for k in (1, 2, 3, 4):
        d = tmp_path / f"ws{k}"
        write_synthetic(d / "dataset.npz", n_lines=6, seed=1)
        r = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(d / "dataset.npz"), str(k)], timeout=120)
        assert r.returncode == 9
        load_dataset(d / "dataset.npz", min_valid_s=0)
        fileio.clean_stale(d)                                    # what the next writer does first
        assert tree(d) in (sets["old"], sets["new"]), f"killed at rename {k}"
        assert not [p for p in d.iterdir() if p.name.startswith(".")], "hidden leftovers of the killed run"


def test_stale_parts_of_dead_runs_are_cleaned_but_not_a_live_runs(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    (tmp_path / f".avatar.{dead_pid}-0123abcd.part").mkdir()
    (tmp_path / f".avatar.{dead_pid}-0123abcd.part" / "source.npz").write_bytes(b"x")
    (tmp_path / f".dataset.npz.{dead_pid}-89abcdef.part.npz").write_bytes(b"x")
    live = tmp_path / f".dataset.npz.{os.getpid()}-deadbeef.part.npz"
    live.write_bytes(b"being written")
    mine = tmp_path / "notes.part"
    mine.write_bytes(b"the user's")
    fileio.save_json(tmp_path / "x.json", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "notes.part", "x.json"])


def test_killed_between_the_two_renames_of_a_folder_swap_restores_the_old_folder(tmp_path):
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout)
    old = tmp_path / f".avatar.{dead}-0123abcd.old"
    old.mkdir()
    (old / "manifest.json").write_text("{}")
    (tmp_path / f".avatar.{dead}-4567abcd.part").mkdir()
    fileio.clean_stale(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["avatar"]
    assert (tmp_path / "avatar" / "manifest.json").read_text() == "{}"


def test_a_hostile_journal_renames_nothing_outside_the_folder(tmp_path):
    outside = tmp_path / "victim.txt"
    outside.write_text("keep me")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / ".x.1-0123abcd.part").write_text("evil")
    fileio.save_json(bundle / fileio.JOURNAL, {"rename": [[".x.1-0123abcd.part", "../victim.txt"]],
                                               "remove": ["../victim.txt"]})
    assert fileio.recover(bundle) == []
    assert outside.read_text() == "keep me" and not (bundle / fileio.JOURNAL).exists()


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_bundle_folders_and_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        with fileio.atomic_dir(tmp_path / "avatar") as d:
            fileio.save_json(d / "manifest.json", {})
        with fileio.file_set(tmp_path / "avatar") as fs:
            fs.path("idle.npy").write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "avatar").stat().st_mode & 0o777 == 0o777 & ~umask
    for name in ("manifest.json", "idle.npy"):
        assert (tmp_path / "avatar" / name).stat().st_mode & 0o777 == 0o666 & ~umask
