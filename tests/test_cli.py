"""The command line: every stage has --help, bad input is one sentence with exit status 2, setup runs offline."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from talkinghead import cli


@pytest.fixture(autouse=True)
def _restore_environment(monkeypatch):
    """cli.main writes --profile/--workspace into os.environ (for the stages it calls); undo that after each test."""
    import os

    for var in ("TALKINGHEAD_PROFILE", "TALKINGHEAD_WORKSPACE", "TALKINGHEAD_WEIGHTS_DIR"):
        if var in os.environ:
            monkeypatch.setenv(var, os.environ[var])
        else:
            monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_stage_has_help_naming_its_outputs(command, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--profile" in out and "--workspace" in out
    assert cli.COMMANDS[command][0].split(":")[0] in out


def test_top_level_help_lists_the_course(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    for command in cli.COMMANDS:
        assert command in out


def test_bad_portrait_is_one_sentence_and_exit_2(tmp_path):
    bad = tmp_path / "not_a_photo.jpg"
    bad.write_bytes(b"this is not a jpeg")
    r = subprocess.run([sys.executable, "-m", "talkinghead", "bake", str(bad), "--profile", "sample",
                        "--workspace", str(tmp_path / "ws")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "not_a_photo.jpg" in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "ws" / "avatar").exists(), "nothing is written for a bad input"


def test_no_face_is_one_sentence(tmp_path, monkeypatch, capsys):
    import cv2

    grey = tmp_path / "wall.png"
    cv2.imwrite(str(grey), np.full((240, 320, 3), 128, np.uint8))
    code = cli.main(["bake", str(grey), "--profile", "sample", "--workspace", str(tmp_path / "ws")])
    err = capsys.readouterr().err
    assert code == 2 and "wall.png" in err and "no face" in err


def test_setup_on_the_sample_profile_reports_the_networks(tmp_path, capsys):
    assert cli.main(["setup", "--profile", "sample", "--workspace", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "LivePortrait (sample) loaded" in out and "spade_generator" in out and "cpu_cores" in out


def test_corpus_without_tts_writes_the_script(tmp_path, capsys):
    assert cli.main(["corpus", "--no-tts", "--profile", "sample", "--workspace", str(tmp_path)]) == 0
    script = (tmp_path / "data" / "corpus" / "script.md").read_text()
    assert "zh-" in script or "你" in script
    assert "lines" in capsys.readouterr().out
