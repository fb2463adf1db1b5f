"""Where things are written: one workspace folder holding `data/`, `avatar/` and `out/` (see docs/architecture.md).

The workspace is `$TALKINGHEAD_WORKSPACE`, else `./talkinghead-workspace` in the current folder. Nothing here is
built from `__file__`: the package is installed, and the user's files live where the user works.
"""
from __future__ import annotations

import os
from pathlib import Path

WORKSPACE_ENV = "TALKINGHEAD_WORKSPACE"


def workspace(path: str | os.PathLike | None = None, create: bool = True) -> Path:
    """The workspace root (argument, else `$TALKINGHEAD_WORKSPACE`, else `./talkinghead-workspace`)."""
    root = Path(path or os.environ.get(WORKSPACE_ENV) or "talkinghead-workspace").expanduser().resolve()
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
