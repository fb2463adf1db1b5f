"""Safe file writing and versioned npz/JSON.

Nothing is ever half-written: every writer here goes to a temporary name in the target folder and is renamed
into place (`os.replace` is atomic on one filesystem), so an interrupted run leaves the old file or none.
Files that belong together (a bundle's models and its manifest, dataset.npz and dataset.json) are replaced as one
unit with `file_set` (staged names, a journal as the commit point, `recover` to finish a commit cut short); a folder
as a whole with `atomic_dir`. Temporary names carry the writer's process id, and the next run removes those of dead
runs (`clean_stale`). New files and folders get the umask's permissions; a full disk is one sentence naming the folder.
We store arrays as `.npz` and metadata as JSON, each with a `format_version`, never pickles.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import TalkingHeadError


class DiskFullError(TalkingHeadError):
    """The disk filled up while writing (ENOSPC): nothing was replaced; the sentence names the folder."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it to `path`, on error delete it.

    `suffix` defaults to `path`'s own suffix, so writers that look at the extension (ffmpeg, np.savez) work.
    A full disk raises `DiskFullError` naming the folder. Stale temporary files of killed runs are removed first.
    """
    path = Path(path)
    make_dir(path.parent)
    clean_stale(path.parent)
    tmp = _new_part(path.parent, path.name, suffix if suffix is not None else path.suffix)
    try:
        with disk_errors(path.parent, access=False):
            yield tmp
            os.chmod(tmp, 0o666 & ~_umask())  # a new file gets the permissions open() would give
            os.replace(tmp, path)
    finally:
        _remove(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_dir(path: str | os.PathLike) -> Path:
    """mkdir -p with the umask's permissions; a file in the way is one sentence, not a FileExistsError."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                raise TalkingHeadError(f"{p}: is a file, but a folder is needed here; move it or choose another "
                                       "folder.")
            break
    with disk_errors(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def disk_errors(folder: str | os.PathLike, access: bool = True) -> Iterator[None]:
    """Turn a full disk (ENOSPC, EDQUOT) while writing, or (`access`) a folder we may not write, into one sentence
    naming the folder."""
    try:
        yield
    except OSError as e:
        if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
            raise DiskFullError(f"{folder}: no space left on the disk while writing here; free some space or "
                                "choose a folder on another disk (--workspace / --out). Nothing was replaced.") from None
        if access and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise TalkingHeadError(f"{folder}: cannot write here ({os.strerror(e.errno).lower()}); fix the folder's "
                                   "permissions or choose another folder (--workspace / --out).") from None
        raise


# ------------------------------------------------------------------------------------------------------ temp names
# Every temporary name is hidden and carries the writer's process id: `.NAME.PID-TOKEN.part[SUFFIX]` (a file or a
# folder being written) and `.NAME.PID-TOKEN.old` (a folder being replaced). A later run removes those whose process
# is gone (`clean_stale`), so a killed run leaves nothing behind for long.
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.(?P<kind>part|old)(\.[^.]*)?$")


def is_scratch(name: str) -> bool:
    """True for the names this module writes while working (temporary parts, old folders, journal, lock)."""
    return bool(_TEMP.match(name)) or name in (JOURNAL, LOCK)


def _new_part(folder: Path, name: str, suffix: str = "", directory: bool = False) -> Path:
    """Create (exclusively) a hidden temporary file or folder for `name` in `folder`; returns its path."""
    while True:
        p = folder / f".{name}.{os.getpid()}-{secrets.token_hex(4)}.part{suffix}"
        try:
            with disk_errors(folder):
                if directory:
                    p.mkdir()
                else:
                    os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return p
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows: assume it lives
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def clean_stale(folder: str | os.PathLike) -> list[str]:
    """Finish or undo what killed runs left in `folder`; returns the names removed or restored.

    First a pending commit is completed (`recover`) and a dead run's lock removed. Then `.NAME.PID-TOKEN.part*` of dead processes are removed,
    and `.NAME.PID-TOKEN.old` folders are moved back to NAME when NAME is missing (the run died between the two
    renames of `atomic_dir`), else removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    done = recover(folder)
    owner = _lock_owner(folder / LOCK)
    if owner is not None and not _pid_alive(owner):
        _remove(folder / LOCK)
        done.append(LOCK)
    for entry in sorted(folder.iterdir()):
        m = _TEMP.match(entry.name)
        if not m or _pid_alive(int(m["pid"])):
            continue
        target = folder / m["name"]
        if m["kind"] == "old" and not target.exists() and not target.is_symlink():
            os.replace(entry, target)
        else:
            _remove(entry)
        done.append(entry.name)
    return done


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path` (an old folder is removed only then).

    The folder gets the umask's permissions. Killed between its two renames, the next run puts the old folder back.
    """
    path = Path(path)
    make_dir(path.parent)
    clean_stale(path.parent)
    tmp = _new_part(path.parent, path.name, directory=True)
    os.chmod(tmp, 0o777 & ~_umask())  # a new folder gets the permissions mkdir would give
    try:
        with disk_errors(path.parent, access=False):
            yield tmp
        old = None
        with folder_lock(path.parent):  # two runs swapping the same folder take turns
            if path.exists():
                old = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.old"
                os.replace(path, old)
            os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------------------------ file sets
JOURNAL = ".talkinghead-commit.json"
LOCK = ".talkinghead.lock"


class FileSet:
    """Several files of one folder replaced as one unit: each new file is staged under a temporary name, then
    `commit` writes a journal (the commit point), renames the staged files in the order they were staged and
    removes what `remove` named, then deletes the journal. A run killed before the journal leaves the old set (its
    staged files are stale and removed later); killed after it, `recover` (called by the next writer and by the
    loaders) finishes the renames, giving the new set. Stage the file that describes the others (manifest.json,
    dataset.json) last. Use it through `file_set`.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = make_dir(folder)
        clean_stale(self.folder)
        self.staged: dict[str, Path] = {}
        self.removed: list[str] = []

    def path(self, name: str, suffix: str | None = None) -> Path:
        """The staged (temporary) path to write the new `name` to; `suffix` defaults to name's own."""
        _check_name(name)
        if name not in self.staged:
            self.staged[name] = _new_part(self.folder, name, suffix if suffix is not None else Path(name).suffix)
        return self.staged[name]

    def remove(self, name: str) -> None:
        """Delete `name` at commit (e.g. a variant the new set no longer has)."""
        _check_name(name)
        self.removed.append(name)

    def commit(self) -> None:
        with disk_errors(self.folder), folder_lock(self.folder):
            for tmp in self.staged.values():
                os.chmod(tmp, 0o666 & ~_umask())
            plan = {"rename": [[t.name, n] for n, t in self.staged.items()], "remove": self.removed}
            try:
                save_json(self.folder / JOURNAL, plan)  # the commit point
            except BaseException:
                self.discard()
                raise
            _apply(self.folder, plan)  # interrupted from here on, `recover` finishes it

    def discard(self) -> None:
        for tmp in self.staged.values():
            _remove(tmp)


@contextlib.contextmanager
def file_set(folder: str | os.PathLike) -> Iterator[FileSet]:
    """`with file_set(folder) as fs: write fs.path("a.npz"), fs.path("a.json")` -> both replaced as one unit."""
    fs = FileSet(folder)
    try:
        yield fs
    except BaseException:
        fs.discard()
        raise
    fs.commit()


def _check_name(name: str) -> None:
    if not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in "/\\\0"):
        raise ValueError(f"{name!r}: a file set holds plain file names only")


def _apply(folder: Path, plan: dict) -> None:
    """Carry out a journal: rename the staged files that are still there, remove the removed, drop the journal."""
    for tmp, name in plan["rename"]:
        if (folder / tmp).exists():
            os.replace(folder / tmp, folder / name)
    for name in plan["remove"]:
        _remove(folder / name)
    (folder / JOURNAL).unlink()


def recover(folder: str | os.PathLike) -> list[str]:
    """Finish a commit a killed run left in `folder` (see `FileSet`); returns the names it put in place.

    A journal that is not a plain file listing plain names (edited, a link, or from a hostile folder) is ignored and
    removed; a folder we may not write (a read-only copy) is left as it is, for the loader to report.
    """
    folder = Path(folder)
    journal = folder / JOURNAL
    if not journal.is_file() or journal.is_symlink():
        if journal.is_symlink():
            with contextlib.suppress(OSError):
                journal.unlink()
        return []
    try:
        with folder_lock(folder):
            return _recover_locked(folder, journal)
    except OSError:
        return []


def _recover_locked(folder: Path, journal: Path) -> list[str]:
    if not journal.is_file():
        return []
    try:
        plan = json.loads(journal.read_text(encoding="utf-8")) if journal.stat().st_size < 1 << 20 else None
        ok = _plan_ok(plan)
    except (OSError, ValueError):
        ok = False
    if not ok:
        journal.unlink()
        return []
    _apply(folder, plan)
    return [name for _, name in plan["rename"]]


def _plan_ok(plan) -> bool:
    def plain(n):
        return isinstance(n, str) and n not in ("", ".", "..") and not any(c in n for c in "/\\\0:")

    return (isinstance(plan, dict) and isinstance(plan.get("rename"), list) and isinstance(plan.get("remove"), list)
            and all(isinstance(p, list) and len(p) == 2 and all(map(plain, p)) and _TEMP.match(p[0])
                    for p in plan["rename"])
            and all(map(plain, plan["remove"])))


@contextlib.contextmanager
def folder_lock(folder: Path, wait_s: float = 10.0) -> Iterator[None]:
    """Hold `folder/.talkinghead.lock` (created exclusively, holding our pid) while a commit renames files."""
    lock = folder / LOCK
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            break
        except FileExistsError:
            pid = _lock_owner(lock)
            if (pid is not None and not _pid_alive(pid)) or (pid is None and _age_s(lock) > 30):
                _remove(lock)  # its owner was killed: take over
                continue
            if time.monotonic() > deadline:
                raise TalkingHeadError(f"{folder}: another talkinghead run (process {pid}) is writing here; wait for "
                                       f"it to finish (or delete {lock.name} if no run is left).") from None
            time.sleep(0.05)
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        _remove(lock)


def _age_s(p: Path) -> float:
    try:
        return time.time() - p.stat().st_mtime
    except OSError:
        return 0.0


def _lock_owner(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip() or "0") or None
    except (OSError, ValueError):
        return None


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically write `data` to `path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def save_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write `obj` as indented, key-sorted UTF-8 JSON (stable bytes for the same content)."""
    return write_bytes(path, (json_text(obj) + "\n").encode("utf-8"))


def json_text(obj: Any) -> str:
    """`obj` as the indented, key-sorted JSON text `save_json` writes (numpy values and paths as plain values)."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=_json_default)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load_json(path: str | os.PathLike, what: str = "file") -> Any:
    """Read JSON; a missing or corrupt file raises one clear sentence naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TalkingHeadError(f"{path}: the {what} does not exist; run the step that writes it first.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TalkingHeadError(f"{path}: the {what} is not valid JSON ({e.msg if hasattr(e, 'msg') else e}); "
                               "delete it and run the step that writes it again.") from None


def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], compress: bool = False) -> Path:
    """Atomically write arrays to `.npz`, readable by `np.load`.

    Unlike `np.savez` (which stamps each entry with the current time), entries carry a fixed timestamp and keep the
    given order, so identical arrays give byte-identical files: baking twice gives the same sha256.
    """
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with atomic_path(path, suffix=".npz") as tmp:
        with zipfile.ZipFile(tmp, "w", compression=method) as zf:
            for name, value in arrays.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(np.asarray(value)), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = method
                info.external_attr = 0o644 << 16
                zf.writestr(info, buf.getvalue())
    return Path(path)


def load_npz(path: str | os.PathLike, what: str = "file") -> dict[str, np.ndarray]:
    """Read every array of an `.npz` (no pickles); a missing or corrupt file raises one clear sentence."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise TalkingHeadError(f"{path}: the {what} does not exist; run the step that writes it first.") from None
    except Exception as e:  # zipfile.BadZipFile, ValueError, EOFError, OSError
        raise TalkingHeadError(f"{path}: the {what} is corrupt or truncated ({type(e).__name__}); "
                               "delete it and run the step that writes it again.") from None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
