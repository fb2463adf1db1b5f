"""Safe file writing and versioned npz/JSON.

Nothing is ever half-written: every writer here goes to a temporary name in the target folder and is renamed
into place (`os.replace` is atomic on one filesystem), so an interrupted run leaves the old file or none.
We store arrays as `.npz` and metadata as JSON, each with a `format_version`, never pickles.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import TalkingHeadError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it to `path`, on error delete it.

    `suffix` defaults to `path`'s own suffix, so writers that look at the extension (ffmpeg, np.savez) work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + (suffix if suffix is not None else path.suffix),
                               dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the permissions open() would
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path` (an old folder is removed only then)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically write `data` to `path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def save_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write `obj` as indented, key-sorted UTF-8 JSON (stable bytes for the same content)."""
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=_json_default)
    return write_bytes(path, (text + "\n").encode("utf-8"))


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
