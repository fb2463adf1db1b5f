"""The command line's checks, run before any stage starts: every flag and input path, each failure one sentence.

`check_args` raises `UsageError` (exit status 2) for a missing input file, a folder where a file belongs (or the
reverse), an unknown profile in `$TALKINGHEAD_PROFILE`, a frame rate the audio features cannot use, empty text, an
out-of-range number. `tidy_workspace` removes what killed runs left behind. `cli_spelling` rewrites the Python
spelling in the package's messages (`profile='sample'`) into the flags a command-line user types (`--profile
sample`); `os_sentence` turns an OSError into one sentence.
"""
from __future__ import annotations

import errno
import math
import os
import re
from pathlib import Path

from .audio import FeatureParams
from .errors import TalkingHeadError
from .fileio import clean_stale
from .paths import WORKSPACE_ENV, workspace
from .profiles import PROFILE_ENV, PROFILES

VARIANTS = ("fp32", "fp16", "int8")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")
PATH_ARGS = ("portrait", "video", "audio", "dataset", "bundle", "out", "workspace", "weights_dir")


class UsageError(TalkingHeadError):
    """A flag or input path of the command line is wrong (one sentence naming the flag and the remedy)."""


def check_args(args) -> None:
    """Check the common flags, then the subcommand's own (`_CHECKS`); raises UsageError. Paths given as `~/...`
    (quoted, so the shell left them) are expanded in `args`."""
    for name in PATH_ARGS:
        value = getattr(args, name, None)
        if isinstance(value, str) and value.startswith("~"):
            setattr(args, name, os.path.expanduser(value))
    _check_profile(args)
    _check_folder("--workspace", getattr(args, "workspace", None) or os.environ.get(WORKSPACE_ENV), create=True)
    if getattr(args, "weights_dir", None):
        _check_folder("--weights-dir", args.weights_dir, create=False)
    for name in ("epochs", "min_count", "limit", "lines", "frames", "held_out", "steps"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} {value}: must be at least 1 ({flag} 0 would do nothing and could replace good "
                             "results with empty ones).")
    port = getattr(args, "port", None)
    if port is not None and not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: not a TCP port; use 1024-65535 (or 0 for any free port).")
    _check_bundle_flag(args)
    _check_input_file("--dataset", getattr(args, "dataset", None), "dataset")
    check = _CHECKS.get(getattr(args, "command", None))
    if check:
        check(args)


def _check_profile(args) -> None:
    if getattr(args, "profile", None):
        return
    env = os.environ.get(PROFILE_ENV)
    if env and env not in PROFILES:
        raise UsageError(f"{PROFILE_ENV}={env!r} is not a profile; set it to {' or '.join(PROFILES)}, or pass "
                         f"--profile {' / --profile '.join(PROFILES)}.")


def _check_folder(flag: str, value, create: bool) -> None:
    """`value` must be a folder, or (with `create`) a path whose first existing parent is a folder."""
    if not value:
        return
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {value}: is a file, not a folder; pass a folder"
                         + (" (it is created when missing)." if create else "."))
    if not path.exists():
        if not create:
            raise UsageError(f"{flag} {value}: no such folder; check the path.")
        blocker = next((p for p in path.absolute().parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise UsageError(f"{flag} {value}: {blocker} is a file, so the folder cannot be made there; choose "
                             "another path.")


def _check_input_file(flag: str, value, what: str) -> None:
    if value is None:
        return
    path = Path(value).expanduser()
    if not path.exists():
        raise UsageError(f"{value}: no such {what} file; check the path ({flag}).")
    if not path.is_file():
        raise UsageError(f"{value}: is a folder, not a {what} file; pass the file itself ({flag}).")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{value}: cannot be read (permission denied); fix its permissions or copy it elsewhere.")


def _check_bundle_flag(args) -> None:
    """`--bundle` (or serve's BUNDLE) must be a folder with a manifest.json."""
    value = getattr(args, "bundle", None)
    if value is None:
        return
    _check_folder("--bundle", value, create=False)
    if not (Path(value).expanduser() / "manifest.json").is_file():
        raise UsageError(f"--bundle {value}: not an avatar bundle (no manifest.json); bake one with "
                         "`python -m talkinghead bake PORTRAIT --out FOLDER`.")


def check_fps(fps: float) -> None:
    """A frame rate the audio features can follow: positive, finite, a whole number of 10 ms hops per frame."""
    ok = isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0 and float(fps).is_integer()
    if ok:
        try:
            FeatureParams(fps=int(fps))
        except ValueError:
            ok = False
    if not ok:
        p = FeatureParams()
        good = [f for f in (10, 20, 25, 40, 50) if p.sample_rate % f == 0 and (p.sample_rate // f) % p.hop_length == 0]
        hop_ms = 1000 * p.hop_length // p.sample_rate
        raise UsageError(f"--fps {fps:g}: the audio features need a whole number of {hop_ms} ms hops per video frame, "
                         f"so use {', '.join(map(str, good[:-1]))} or {good[-1]} (25 is the course's rate; the video "
                         "itself may run at any rate).")


def _bake(args) -> None:
    _check_input_file("PORTRAIT", args.portrait, "portrait")
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out}: is a file, not a folder; choose a folder for the avatar bundle.")


def _extract(args) -> None:
    _check_input_file("VIDEO", args.video, "video")
    check_fps(args.fps)
    if args.out is not None and Path(args.out).is_dir():
        raise UsageError(f"--out {args.out}: is a folder; name the dataset file, such as {Path(args.out) / 'dataset.npz'}.")


def _export(args) -> None:
    asked = [v.strip() for v in str(args.variants).split(",")]
    bad = [v for v in asked if v not in VARIANTS]
    if bad or not asked:
        raise UsageError(f"--variants {args.variants}: {bad[0] if bad else 'nothing'} is not a renderer variant; "
                         f"give a comma-separated subset of {','.join(VARIANTS)}.")


def _speak(args) -> None:
    _check_input_file("AUDIO", args.audio, "audio")
    _check_text(args.text)
    if args.variant not in ("auto", "default", *VARIANTS, "pocket"):
        raise UsageError(f"--variant {args.variant}: not a renderer variant; use auto, default, "
                         f"{', '.join(VARIANTS)} or pocket.")
    check_video_out("--out", args.out)


def _check_text(text) -> None:
    if text is not None and not text.strip():
        raise UsageError("--text is empty: give the sentence to speak (Chinese or English), or an audio file.")


def check_video_out(flag: str, value) -> None:
    """An output video path: not a folder, its parent not a file, a suffix ffmpeg writes (.mp4, .mov, .mkv)."""
    if value is None:
        return
    path = Path(value).expanduser()
    if path.is_dir():
        raise UsageError(f"{flag} {value}: is a folder; name the video file, such as {path / 'speak.mp4'}.")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UsageError(f"{flag} {value}: name a video file ending in {', '.join(VIDEO_SUFFIXES)}.")
    blocker = next((p for p in path.absolute().parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise UsageError(f"{flag} {value}: {blocker} is a file, so the video cannot be written there; choose "
                         "another path.")


def _corpus(args) -> None:
    try:
        rates = [float(x) for x in str(args.rates).split(",")]
    except ValueError:
        rates = []
    if not rates or not all(math.isfinite(r) and 0.25 <= r <= 4 for r in rates):
        raise UsageError(f"--rates {args.rates}: give comma-separated speaking rates between 0.25 and 4, such as 0.9,1.0,1.1.")


def _demo(args) -> None:
    _check_text(args.text)


_CHECKS = {"bake": _bake, "extract": _extract, "export": _export, "speak": _speak,
           "corpus": _corpus, "demo": _demo}


def tidy_workspace() -> list[str]:
    """Remove what killed runs left in the workspace's folders (hidden `.part` files and folders of dead processes,
    a commit cut short is finished: `fileio.clean_stale`); never fails a command. Returns what was tidied."""
    done = []
    root = workspace(create=False)
    for folder in (root, root / "data", root / "avatar", root / "out"):
        try:
            done += [str(folder / n) for n in clean_stale(folder)]
        except (OSError, TalkingHeadError):
            pass
    return done


# ------------------------------------------------------------------------------------------------------ messages
_PY_ARG = re.compile(r"\b([a-z][a-z_]*)=('([^']*)'|\"([^\"]*)\"|True|-?\d+(?:\.\d+)?)")


def cli_spelling(message: str, parser=None) -> str:
    """`profile='sample'` -> `--profile sample`, `force=True` -> `--force`, for every keyword that is a flag of the
    command line (read from `parser`, else the common ones)."""
    flags = _flags(parser)

    def swap(m: re.Match) -> str:
        flag = flags.get(m.group(1))
        if flag is None:
            return m.group(0)
        value = m.group(3) if m.group(3) is not None else m.group(4) if m.group(4) is not None else m.group(2)
        return flag if value == "True" else f"{flag} {value}"

    return _PY_ARG.sub(swap, message)


def _flags(parser) -> dict[str, str]:
    out = {"profile": "--profile", "weights_dir": "--weights-dir", "workspace": "--workspace", "force": "--force",
           "pick": "--pick", "detector": "--detector", "variant": "--variant", "variants": "--variants"}
    if parser is None:
        return out
    import argparse

    stack = [parser]
    while stack:
        p = stack.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
            for opt in action.option_strings:
                if opt.startswith("--") and action.dest not in ("help",):
                    out.setdefault(action.dest, opt)
    return out


def os_sentence(e: OSError) -> str:
    """One sentence for an OSError that reached the command line: the file and the cause, not a traceback."""
    where = e.filename if e.filename is not None else "a file"
    if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return f"{where}: no space left on the disk; free some space or choose another folder (--workspace / --out)."
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{where}: permission denied; fix its permissions or choose another folder (--workspace / --out)."
    if e.errno == errno.ENOENT:
        return f"{where}: no such file or folder; check the path."
    if e.errno == errno.EISDIR:
        return f"{where}: is a folder where a file is needed; pass a file path."
    if e.errno == errno.ENOTDIR:
        return f"{where}: a part of this path is a file, not a folder; check the path."
    reason = e.strerror or type(e).__name__
    return f"{where}: {reason[:1].lower() + reason[1:]} ({type(e).__name__}); check the path and try again."
