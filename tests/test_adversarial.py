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

from test_cli import _restore_environment  # noqa: E402,F401  (autouse: cli.main writes the environment)


def _failing_at(k: int, real):
    """os.replace that fails (EIO) at its k-th call from now and renames as usual otherwise."""
    calls = []

    def failing(src, dst):
        calls.append(dst)
        if len(calls) == k:
            raise OSError(errno.EIO, "injected failure")
        return real(src, dst)

    return failing


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
        monkeypatch.setattr(os, "replace", _failing_at(k, real))
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
    (bundle / fileio.JOURNAL).symlink_to(outside)                 # a link: ignored, the target untouched
    assert fileio.recover(bundle) == [] and outside.read_text() == "keep me"
    if hasattr(os, "mkfifo"):
        os.mkfifo(bundle / fileio.JOURNAL) if not (bundle / fileio.JOURNAL).exists() else None
        assert fileio.recover(bundle) == []                       # a FIFO would block a reader forever


def test_concurrent_commits_into_one_folder_leave_one_whole_set(tmp_path):
    import threading

    def writer(tag: str) -> None:
        for i in range(8):
            with fileio.file_set(tmp_path) as fs:
                for name in ("a.txt", "b.txt", "c.txt"):
                    fs.path(name).write_text(f"{tag}{i}")

    threads = [threading.Thread(target=writer, args=(t,)) for t in "xyz"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    texts = {(tmp_path / n).read_text() for n in ("a.txt", "b.txt", "c.txt")}
    assert len(texts) == 1 and texts.pop()[1:] == "7"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt", "c.txt"]


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


# =========================================================================================== never delete the user's
@pytest.fixture(scope="module")
def baked(tmp_path_factory) -> Path:
    """One sample bundle of the astronaut, baked once for the module (copy it before changing anything)."""
    import stage_fixtures as sf
    from talkinghead import bake

    with sf.one_thread():
        return bake.bake(bake.sample_portrait(), tmp_path_factory.mktemp("baked") / "avatar", lp=sf.liveportrait(),
                         name="astronaut.png")


def _with_later_stages(bundle: Path) -> None:
    """Add what training and export leave in a bundle: a checkpoint + metrics, and a registered model file."""
    from talkinghead import bundle as bundle_format

    (bundle / "audio2motion.pt").write_bytes(b"trained weights")
    (bundle / "audio2motion.metrics.json").write_text('{"mouth_r": 0.8}')
    (bundle / "renderer.onnx").write_bytes(b"exported renderer")
    bundle_format.add_files(bundle, ["renderer.onnx"], models={"renderer": {"file": "renderer.onnx"}})


@pytest.mark.parametrize("manifest, words", [(None, "not an avatar bundle"),
                                              ('{"name": "my web app"}', "not a talkinghead manifest"),
                                              ('{"format": "talkinghead-av', "damaged")])
def test_bake_out_into_a_folder_of_the_users_files_is_refused(manifest, words, tmp_path, capsys):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"the user's photo")
    (out / "notes").mkdir()
    (out / "notes" / "todo.txt").write_text("keep")
    if manifest is not None:
        (out / "manifest.json").write_text(manifest)
    before = tree(out)
    code, _, err = run_cli(capsys, "bake", "--out", out, "--profile", "sample", "--workspace", tmp_path / "ws")
    line = one_sentence(err)
    assert code == 2 and str(out) in line and words in line
    assert tree(out) == before


def test_bake_out_naming_a_file_is_refused(tmp_path, capsys):
    out = tmp_path / "avatar.zip"
    out.write_bytes(b"zip")
    code, _, err = run_cli(capsys, "bake", "--out", out, "--profile", "sample", "--workspace", tmp_path / "ws")
    assert code == 2 and "is a file" in one_sentence(err) and out.read_bytes() == b"zip"


def test_rebaking_the_same_portrait_keeps_the_trained_and_exported_models(baked, tmp_path, capsys):
    import shutil

    from talkinghead.bundle import load_bundle

    ws = tmp_path / "ws"
    shutil.copytree(baked, ws / "avatar")
    _with_later_stages(ws / "avatar")
    (ws / "avatar" / "my_notes.txt").write_text("the user's")
    before = tree(ws / "avatar")
    code, out, err = run_cli(capsys, "bake", "--profile", "sample", "--workspace", ws)
    assert code == 0, err
    after = tree(ws / "avatar")
    later = ("audio2motion.pt", "audio2motion.metrics.json", "renderer.onnx", "my_notes.txt")
    assert set(after) == set(before) and all(after[f] == before[f] for f in later)
    b = load_bundle(ws / "avatar")                                   # verifies every hash
    assert b.models["renderer"]["file"] == "renderer.onnx" and "renderer.onnx" in b.manifest["files"]


def test_rebaking_another_portrait_refuses_without_force_and_keeps_what_is_valid_with_it(baked, tmp_path, capsys):
    import shutil

    from PIL import Image

    from talkinghead.bake import sample_portrait
    from talkinghead.bundle import load_bundle

    ws = tmp_path / "ws"
    shutil.copytree(baked, ws / "avatar")
    _with_later_stages(ws / "avatar")
    (ws / "avatar" / "my_notes.txt").write_text("the user's")
    other = tmp_path / "mirrored.png"
    Image.fromarray(np.ascontiguousarray(sample_portrait()[:, ::-1])).save(other)
    before = tree(ws / "avatar")

    code, _, err = run_cli(capsys, "bake", other, "--profile", "sample", "--workspace", ws)
    line = one_sentence(err)
    assert code == 2 and "--force" in line and "renderer.onnx" in line and "force=True" not in line
    assert tree(ws / "avatar") == before

    code, _, err = run_cli(capsys, "bake", other, "--force", "--profile", "sample", "--workspace", ws)
    assert code == 0, err
    b = load_bundle(ws / "avatar")
    assert b.manifest["source"]["name"] == "mirrored.png" and "models" not in b.manifest
    assert not (ws / "avatar" / "renderer.onnx").exists(), "the old portrait's renderer is stale"
    for kept in ("audio2motion.pt", "audio2motion.metrics.json", "my_notes.txt"):  # valid for any portrait
        assert (ws / "avatar" / kept).read_bytes() == before[kept]
    assert not [p for p in (ws).iterdir() if p.name.startswith(".")]


def test_speak_never_bakes_the_sample_over_an_avatar_folder_without_manifest(baked, tmp_path, capsys):
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(baked, ws / "avatar")
    _with_later_stages(ws / "avatar")
    (ws / "avatar" / "manifest.json").unlink()
    before = tree(ws / "avatar")
    code, _, err = run_cli(capsys, "speak", "--text", "hello", "--profile", "sample", "--workspace", ws)
    line = one_sentence(err)
    assert code == 2 and "manifest.json" in line and "avatar" in line
    assert tree(ws / "avatar") == before


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if sys.platform != "linux" or os.geteuid() != 0:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return r.returncode == 0


def test_a_full_disk_during_bake_is_one_sentence_and_keeps_the_old_bundle(baked, tmp_path, capsys, monkeypatch):
    """A tiny tmpfs that holds the old bundle but not a second one (where the machine allows mounting), else a
    write that fails with ENOSPC."""
    import shutil
    import zipfile

    from PIL import Image

    from talkinghead.bake import sample_portrait
    from talkinghead.bundle import load_bundle

    disk = tmp_path / "disk"
    size = sum(len(b) for b in tree(baked).values())
    mounted = _mount_tmpfs(disk, str(size + size // 3))
    try:
        if not mounted:
            def full(*a, **k):
                raise OSError(errno.ENOSPC, "No space left on device")
            monkeypatch.setattr(zipfile.ZipFile, "writestr", full)
        shutil.copytree(baked, disk / "avatar")
        before = tree(disk / "avatar")
        other = tmp_path / "mirrored.png"
        Image.fromarray(np.ascontiguousarray(sample_portrait()[:, ::-1])).save(other)
        code, _, err = run_cli(capsys, "bake", other, "--out", disk / "avatar", "--profile", "sample")
        line = one_sentence(err)
        assert code == 2 and "no space left" in line and str(disk) in line
        assert tree(disk / "avatar") == before and load_bundle(disk / "avatar")
        assert sorted(p.name for p in disk.iterdir()) == ["avatar"], "a .part folder was left on the full disk"
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=False)


# =========================================================================================== flags and inputs
@pytest.mark.parametrize("argv, words", [
    (["extract", "--fps", "30"], ["--fps 30", "25"]),
    (["extract", "--fps", "0"], ["--fps 0"]),
    (["extract", "--fps", "nan"], ["--fps nan"]),
    (["train", "--epochs", "0"], ["--epochs 0"]),
    (["speak", "--text", ""], ["--text is empty"]),
    (["speak", "--text", "  \t "], ["--text is empty"]),
    (["demo", "--text", " "], ["--text is empty"]),
    (["export", "--variants", "fp32,fp64"], ["fp64"]),
    (["speak", "--variant", "int4"], ["int4"]),
    (["bake", "--pick", "biggest"], ["--pick", "largest"]),
    (["corpus", "--rates", "1.0,fast"], ["--rates"]),
    (["bake", "no_such_photo.jpg"], ["no_such_photo.jpg", "no such portrait"]),
    (["extract", "no_such_take.mp4"], ["no_such_take.mp4", "no such video"]),
    (["setup", "--weights-dir", "no_such_folder"], ["--weights-dir no_such_folder", "no such folder"]),
    (["speak", "--text", "hi", "--out", "clip.avi"], ["clip.avi", ".mp4"]),
    (["speak", "--text", "hi", "--out", "no_extension"], ["no_extension", ".mp4"]),
    (["export", "--bundle", "no_such_bundle"], ["--bundle no_such_bundle"]),
    (["corpus", "--limit", "0"], ["--limit 0"]),
    (["distill", "--steps", "0"], ["--steps 0"]),
    (["distill", "--bundle", "no_such_bundle"], ["--bundle no_such_bundle"]),
    (["serve", "no_such_bundle"], ["no_such_bundle", "no such folder"]),
    (["serve", "--port", "70000"], ["--port 70000"]),
    (["train", "--dataset", "no_such.npz"], ["no_such.npz", "no such dataset"]),
])
def test_bad_flags_are_one_sentence_and_exit_2_before_anything_runs(argv, words, tmp_path, capsys):
    ws = tmp_path / "ws"
    code, out, err = run_cli(capsys, *argv, "--profile", "sample", "--workspace", ws)
    line = one_sentence(err)
    assert code == 2 and all(w in line for w in words), line
    assert "corrupt" not in line and not ws.exists(), "nothing may start for a bad flag"


def test_workspace_naming_a_file_is_one_sentence(tmp_path, capsys):
    f = tmp_path / "ws.txt"
    f.write_text("mine")
    for argv in (["bake"], ["extract"], ["setup"]):
        code, _, err = run_cli(capsys, *argv, "--profile", "sample", "--workspace", f)
        assert code == 2 and "is a file" in one_sentence(err) and f.read_text() == "mine"


def test_an_unknown_profile_in_the_environment_is_one_sentence(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TALKINGHEAD_PROFILE", "fulll")
    code, _, err = run_cli(capsys, "setup", "--workspace", tmp_path)
    line = one_sentence(err)
    assert code == 2 and "TALKINGHEAD_PROFILE" in line and "fulll" in line and "--profile sample" in line


def test_speak_out_naming_a_folder_is_refused_before_rendering(tmp_path, capsys, monkeypatch):
    import talkinghead.pipeline as pipeline

    monkeypatch.setattr(pipeline, "ensure_exported", lambda *a, **k: pytest.fail("rendering started"))
    (tmp_path / "videos").mkdir()
    code, _, err = run_cli(capsys, "speak", "--text", "hi", "--out", tmp_path / "videos", "--profile", "sample",
                           "--workspace", tmp_path / "ws")
    assert code == 2 and "is a folder" in one_sentence(err)


def test_full_profile_offline_fails_at_once_in_cli_spelling(tmp_path, capsys, monkeypatch):
    """No weights cached and no network: one sentence saying so, naming --profile sample, without a download try."""
    import socket

    import huggingface_hub
    from huggingface_hub import constants

    from talkinghead import hub

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "_PROBE", {})
    real = huggingface_hub.hf_hub_download

    def download(*a, local_files_only=False, **k):
        assert local_files_only, "a download was tried although the hub cannot be reached"
        return real(*a, local_files_only=True, cache_dir=str(tmp_path / "hf-cache"), **k)

    def no_network(*a, **k):
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(socket, "create_connection", no_network)
    code, out, err = run_cli(capsys, "setup", "--profile", "full", "--no-face-detector", "--workspace", tmp_path)
    line = one_sentence(err)
    assert code == 2 and "cannot be reached" in line and "--profile sample" in line and "profile='" not in line


def test_messages_use_the_flags_a_cli_user_types():
    parser = cli.build_parser()
    msg = cli.cli_spelling("several faces; use pick='largest' or profile='sample', or force=True; keep n=3", parser)
    assert msg == "several faces; use --pick largest or --profile sample, or --force; keep n=3"


def test_an_unexpected_error_is_one_sentence_with_exit_1(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "setup", (*cli.COMMANDS["setup"][:2], lambda args: {}["boom"]))
    monkeypatch.delenv("TALKINGHEAD_DEBUG", raising=False)
    code, _, err = run_cli(capsys, "setup", "--profile", "sample", "--workspace", tmp_path)
    line = one_sentence(err)
    assert code == 1 and "KeyError" in line and "TALKINGHEAD_DEBUG" in line


# =========================================================================================== odd media
def _png_header_only(path: Path, width: int, height: int) -> Path:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [20000, 10000])   # over twice PIL's limit (an error), over it (only a warning)
def test_a_decompression_bomb_png_is_one_sentence(side, tmp_path, capsys):
    import warnings

    png = _png_header_only(tmp_path / "huge.png", side, side)
    with warnings.catch_warnings():
        warnings.simplefilter("default")                      # as outside pytest: a warning would print a line
        code, _, err = run_cli(capsys, "bake", png, "--profile", "sample", "--workspace", tmp_path / "ws")
    line = one_sentence(err)
    assert code == 2 and "huge.png" in line and f"{side}x{side}" in line and "too large" in line
    assert not (tmp_path / "ws" / "avatar").exists()


def test_a_16_bit_greyscale_png_is_read_at_its_real_brightness(tmp_path):
    from PIL import Image

    from talkinghead.bake import load_portrait, sample_portrait

    grey8 = np.asarray(Image.fromarray(sample_portrait()).convert("L"))
    png = tmp_path / "grey16.png"
    Image.fromarray(grey8.astype(np.uint16) * 257).save(png)
    assert Image.open(png).mode.startswith("I")
    rgb = load_portrait(png)
    assert rgb.shape == (*grey8.shape, 3) and np.array_equal(rgb[..., 0], grey8) and np.array_equal(rgb[..., 2], grey8)


def test_a_file_named_with_a_colon_is_not_called_corrupt(tmp_path, monkeypatch):
    import stage_fixtures as sf

    from talkinghead import video

    sf.talking_video(tmp_path / "take:2.mp4", n=10, fps=25)
    monkeypatch.chdir(tmp_path)
    info = video.probe("take:2.mp4")
    assert info.width == 256 and info.has_audio
    assert len(video.read_audio("take:2.mp4")[0]) > 0
    assert len(list(video.iter_video_frames("take:2.mp4", fps=25, progress=False))) == 10
    out = video.write_video("out:1.mp4", [np.zeros((32, 32, 3), np.uint8)] * 3, fps=25, progress=False)
    assert video.probe(out).width == 32


def test_nan_audio_is_named_as_such_not_as_a_disk_problem(tmp_path):
    import soundfile

    from talkinghead.errors import MediaError
    from talkinghead import video

    x = np.sin(np.arange(16000) / 10).astype(np.float32)
    x[5000] = np.nan
    soundfile.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(MediaError) as e:
        video.load_audio(tmp_path / "nan.wav")
    assert "NaN" in str(e.value) and "nan.wav" in str(e.value) and "space" not in str(e.value)


CTRL_C_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from talkinghead import video
    signal.signal(signal.SIGINT, lambda *a: None)     # we decide what a Ctrl-C means (the engine keeps the frames)
    def frames():
        for k in range(20):
            if k == 10:
                os.killpg(os.getpgrp(), signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
            yield np.full((32, 32, 3), 10 * k, np.uint8)
    video.write_video(sys.argv[1], frames(), fps=25, progress=False)
    print(video.probe(sys.argv[1]).n_frames_estimate)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")
def test_a_ctrl_c_to_the_process_group_does_not_kill_the_encoder(tmp_path):
    r = subprocess.run([sys.executable, "-c", CTRL_C_SCRIPT, str(tmp_path / "so_far.mp4")], capture_output=True,
                       text=True, timeout=120, start_new_session=True)
    assert r.returncode == 0 and "space" not in r.stderr, r.stderr
    assert int(r.stdout.split()[-1]) == 20


# =========================================================================================== training and export
def _bundle_copy(baked: Path, tmp_path: Path) -> Path:
    import shutil

    dst = tmp_path / "ws" / "avatar"
    shutil.copytree(baked, dst)
    return dst


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/talkinghead-pwned",))


def _bad_checkpoints(tmp_path: Path) -> dict[str, bytes]:
    """Checkpoints export must refuse: truncated, a pickle that runs code, and one whose tensors have wrong shapes."""
    import io
    import pickle

    import torch

    from talkinghead.a2m import A2MConfig, Audio2Motion, save_checkpoint

    good = save_checkpoint(tmp_path / "good.pt", Audio2Motion(A2MConfig()), A2MConfig(), None, {})
    ckpt = torch.load(good, weights_only=True)
    name = next(k for k, v in ckpt["state_dict"].items() if v.ndim == 2)
    ckpt["state_dict"][name] = torch.zeros(3, 3)
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return {"truncated": good.read_bytes()[:1000], "malicious": pickle.dumps(_Evil()), "wrong_shapes": buf.getvalue()}


def test_export_with_a_bad_checkpoint_fails_with_exit_2_and_changes_nothing(baked, tmp_path, capsys):
    for kind, data in _bad_checkpoints(tmp_path).items():
        bundle = _bundle_copy(baked, tmp_path / kind)
        (bundle / "audio2motion.pt").write_bytes(data)
        before = tree(bundle)
        code, out, err = run_cli(capsys, "export", "--bundle", bundle, "--profile", "sample",
                                 "--workspace", tmp_path / kind / "ws")
        line = one_sentence(err)
        assert code == 2 and "audio2motion.pt" in line, (kind, line)
        assert tree(bundle) == before, kind
        assert not Path("/tmp/talkinghead-pwned").exists()


def test_train_with_zero_epochs_never_replaces_a_trained_model(baked, tmp_path):
    from talkinghead.a2m import run_training
    from talkinghead.errors import TalkingHeadError

    bundle = _bundle_copy(baked, tmp_path)
    (bundle / "audio2motion.pt").write_bytes(b"a trained model")
    with pytest.raises(TalkingHeadError, match="at least one epoch"):
        run_training(tmp_path / "no_dataset.npz", bundle, epochs=0, progress=False, verbose=False)
    assert (bundle / "audio2motion.pt").read_bytes() == b"a trained model"


def _stage_export(bundle: Path, variants=("fp32",), tag: bytes = b"v2") -> None:
    """What export commits, with stand-in bytes for the ONNX graphs: the files and the manifest as one unit."""
    from talkinghead.bundle import RENDERER_FILES
    from talkinghead.export.stage import stage_manifest

    with fileio.file_set(bundle) as fs:
        for v in variants:
            fs.path(RENDERER_FILES[v]).write_bytes(tag + v.encode())
        fs.path("paste.onnx").write_bytes(tag + b"paste")
        entry = {"variants": {v: {"file": RENDERER_FILES[v]} for v in variants}, "default": "fp32"}
        stage_manifest(bundle, fs, drop=[f for v, f in RENDERER_FILES.items() if v not in variants],
                       renderer=entry, paste={"file": "paste.onnx"})


def test_export_is_committed_as_one_unit_whichever_rename_fails(baked, tmp_path, monkeypatch):
    from talkinghead.bundle import load_bundle

    old_bundle = _bundle_copy(baked, tmp_path / "old")
    _stage_export(old_bundle, ("fp32", "int8"), b"v1")
    new_bundle = _bundle_copy(baked, tmp_path / "new")
    _stage_export(new_bundle, ("fp32", "int8"), b"v1")
    _stage_export(new_bundle, ("fp32",), b"v2")           # a re-export with one variant leaves exactly that one
    sets = {"old": tree(old_bundle), "new": tree(new_bundle)}
    assert "renderer.int8.onnx" not in sets["new"] and "renderer.int8.onnx" not in load_bundle(new_bundle).manifest["files"]
    real, seen, k = os.replace, [], 0
    while True:
        k += 1
        bundle = _bundle_copy(baked, tmp_path / f"k{k}")
        _stage_export(bundle, ("fp32", "int8"), b"v1")
        monkeypatch.setattr(os, "replace", _failing_at(k, real))
        try:
            _stage_export(bundle, ("fp32",), b"v2")
            failed = False
        except OSError:
            failed = True
        monkeypatch.setattr(os, "replace", real)
        load_bundle(bundle)                                   # finishes a cut-short commit, then checks every hash
        now = tree(bundle)
        assert now in (sets["old"], sets["new"]), f"rename {k}: neither the old nor the new export"
        seen.append("new" if now == sets["new"] else "old")
        if not failed:
            break
    assert k >= 5 and "old" in seen and seen.count("new") >= 3, seen


def test_ctrl_c_during_speak_exits_130_and_names_the_video_so_far(tmp_path, capsys, monkeypatch):
    from types import SimpleNamespace

    import talkinghead.live as live
    import talkinghead.pipeline as pipeline

    so_far = tmp_path / "out.mp4"

    def stopped_speak(bundle, what, out, variant="default", **kw):
        out.write_bytes(b"frames so far")
        report = SimpleNamespace(stopped=True, summary=lambda: "12 frames")
        return SimpleNamespace(path=out, report=report, summary=lambda: f"{out}: 12 frames")

    monkeypatch.setattr(live, "speak", stopped_speak)
    monkeypatch.setattr(pipeline, "ensure_exported", lambda *a, **k: tmp_path)
    code, out, err = run_cli(capsys, "speak", "--text", "hi", "--out", so_far, "--profile", "sample",
                             "--workspace", tmp_path / "ws")
    assert code == 130 and str(so_far) in one_sentence(err) and so_far.read_bytes() == b"frames so far"


def test_speak_api_refuses_an_out_folder_before_rendering(tmp_path):
    from talkinghead.errors import MediaError
    from talkinghead.live import speak

    (tmp_path / "out").mkdir()
    with pytest.raises(MediaError, match="is a folder"):
        speak(tmp_path / "no_bundle", "hello", tmp_path / "out")


def _bad_images(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    import io

    from PIL import Image

    from talkinghead.bake import sample_portrait

    buf = io.BytesIO()
    Image.fromarray(sample_portrait()).save(buf, format="PNG")
    out = {"empty.png": (b"", "not a readable image"), "truncated.png": (buf.getvalue()[:5000], "not a readable image"),
           "notes.png": (b"just some text\n" * 10, "not a readable image")}
    paths = {}
    for name, (data, words) in out.items():
        (tmp_path / name).write_bytes(data)
        paths[name] = (tmp_path / name, words)
    (tmp_path / "album.png").mkdir()
    paths["album.png"] = (tmp_path / "album.png", "is a folder")
    return paths


def test_broken_portraits_are_one_sentence_naming_the_file(tmp_path, capsys):
    for name, (path, words) in _bad_images(tmp_path).items():
        code, _, err = run_cli(capsys, "bake", path, "--profile", "sample", "--workspace", tmp_path / "ws")
        line = one_sentence(err)
        assert code == 2 and name in line and words in line, line
    assert not (tmp_path / "ws" / "avatar").exists()


def test_a_trained_workspace_rebuilds_no_sample_assets_and_says_nothing_untrue(baked, tmp_path, monkeypatch, capsys):
    """export/speak on a workspace whose model is trained: no dataset or sample recording is made (even when the
    dataset was deleted), and no 'training on the sample recording' line is printed."""
    import talkinghead.pipeline as pipeline

    monkeypatch.setenv("TALKINGHEAD_WORKSPACE", str(tmp_path / "ws"))
    bundle = _bundle_copy(baked, tmp_path)
    (bundle / "audio2motion.pt").write_bytes(b"trained")
    monkeypatch.setattr(pipeline, "ensure_dataset", lambda *a, **k: pytest.fail("the dataset was rebuilt"))
    assert pipeline.ensure_trained("sample") == bundle / "audio2motion.pt"
    assert "training" not in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "ws").iterdir()) == ["avatar"]


def test_any_command_tidies_what_killed_runs_left_in_the_workspace(tmp_path, capsys):
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout)
    ws = tmp_path / "ws"
    (ws / "data").mkdir(parents=True)
    (ws / f".avatar.{dead}-0123abcd.part").mkdir()
    (ws / "data" / f".dataset.npz.{dead}-89abcdef.part.npz").write_bytes(b"half")
    (ws / "data" / "mine.txt").write_text("the user's")
    code, _, err = run_cli(capsys, "corpus", "--no-tts", "--profile", "sample", "--workspace", ws)
    assert code == 0, err
    assert sorted(p.name for p in ws.iterdir()) == ["data"]
    assert sorted(p.name for p in (ws / "data").iterdir()) == ["corpus", "mine.txt"]
