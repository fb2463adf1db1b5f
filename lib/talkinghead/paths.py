"""Where things are written: one workspace folder holding `inputs/`, `data/`, `avatar/` and `out/` (see
docs/architecture.md).

The workspace is `$TALKINGHEAD_WORKSPACE`, else `./talkinghead-workspace` in the current folder. Nothing here is
built from `__file__`: the package is installed, and the user's files live where the user works. Every notebook
applies its `WORKSPACE` parameter with `use_workspace`, so notebooks opened in separate runtimes (Colab) share one
folder, such as a Google Drive folder.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import TalkingHeadError

WORKSPACE_ENV = "TALKINGHEAD_WORKSPACE"
DEFAULT_WORKSPACE = "talkinghead-workspace"
DRIVE_ROOT = "/content/drive"   # where Colab mounts Google Drive
INPUT_KINDS = ("portrait", "recording")


def workspace(path: str | os.PathLike | None = None, create: bool = True) -> Path:
    """The workspace root (argument, else `$TALKINGHEAD_WORKSPACE`, else `./talkinghead-workspace`)."""
    root = Path(path or os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE).expanduser().resolve()
    if create:
        root.mkdir(parents=True, exist_ok=True)
    return root


def corpus_dir(root: str | os.PathLike | None = None) -> Path:
    """`data/corpus/`: script.md, index.json, audio/*.wav (notebook 01)."""
    return workspace(root) / "data" / "corpus"


def data_dir(root: str | os.PathLike | None = None) -> Path:
    """`data/`: the sample recording and dataset.npz (notebooks 03, 04)."""
    return workspace(root) / "data"


def avatar_dir(root: str | os.PathLike | None = None) -> Path:
    """`avatar/`: the avatar bundle (notebooks 02, 04, 05)."""
    return workspace(root) / "avatar"


def out_dir(root: str | os.PathLike | None = None) -> Path:
    """`out/`: rendered videos (notebook 06)."""
    return workspace(root) / "out"


def inputs_dir(root: str | os.PathLike | None = None) -> Path:
    """`inputs/`: your own files, uploaded or recorded in a notebook: `portrait.<ext>` (02), `recording.<ext>` (03)."""
    return workspace(root) / "inputs"


def find_input(kind: str, root: str | os.PathLike | None = None) -> Path | None:
    """Your `inputs/portrait.*` or `inputs/recording.*` (`kind`), the newest if there are several, else None."""
    if kind not in INPUT_KINDS:
        raise ValueError(f"unknown input kind {kind!r}: use one of {', '.join(INPUT_KINDS)}")
    folder = workspace(root, create=False) / "inputs"
    found = [p for p in folder.glob(f"{kind}.*") if p.is_file() and not p.name.startswith(".")] \
        if folder.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def use_workspace(path: str | os.PathLike | None = None) -> Path:
    """Make `path` the workspace of this process (every notebook's `WORKSPACE` parameter goes through this).

    `None` keeps `$TALKINGHEAD_WORKSPACE`, else `./talkinghead-workspace`. A path under `/content/drive` is a Google
    Drive folder: in Colab, Drive is mounted first (it asks for permission once per runtime), so notebooks run in
    separate runtimes share their inputs and outputs. Sets `$TALKINGHEAD_WORKSPACE` (stages and the command line
    read it) and returns the folder, created if missing."""
    if path is not None and _on_drive(path):
        _mount_drive(Path(path))
    root = workspace(path)
    os.environ[WORKSPACE_ENV] = str(root)
    return root


def _on_drive(path) -> bool:
    p = Path(path).expanduser()
    return p.is_absolute() and (p == Path(DRIVE_ROOT) or Path(DRIVE_ROOT) in p.parents)


def _mount_drive(path: Path) -> None:
    """Mount Google Drive at DRIVE_ROOT in Colab (once); outside Colab a Drive path must already exist."""
    mounted = (Path(DRIVE_ROOT) / "MyDrive").is_dir()
    if mounted:
        return
    if "google.colab" not in sys.modules:
        raise TalkingHeadError(f"{path}: a Google Drive folder is mounted only in Colab; outside Colab set WORKSPACE "
                               "to a local folder (or None for ./talkinghead-workspace).")
    from google.colab import drive

    drive.mount(DRIVE_ROOT)
