"""Your own portrait and recording in the notebooks: upload them, save and check them, and say whose inputs a notebook
uses (notebooks 02 and 03; every notebook prints `describe()` after `paths.use_workspace(WORKSPACE)`).

Your files live in the workspace's `inputs/` folder (`inputs/portrait.<ext>`, `inputs/recording.<ext>`), so a notebook
opened later, in another runtime, finds them when the workspace is a Google Drive folder. The rule every notebook and
`talkinghead.pipeline.ensure_*` follow: what is yours is never replaced by the sample; the sample portrait and the
sample recording are used only where the workspace holds nothing of yours.

    upload(kind)                 an upload cell: Colab's file dialog, else an ipywidgets FileUpload, else nothing
    choose_portrait(...)         the portrait notebook 02 bakes           choose_recording(...)  the video 03 extracts
    save_input / save_recording  bytes (or base64, a data URL) -> inputs/, checked; check_recording: sound and length
    describe()                   one line per input: "portrait: yours (avatar/ baked from me.jpg)" or the sample's
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import sys
from pathlib import Path

import numpy as np

from . import bake, paths, pipeline, video
from .bundle import PORTRAIT_FILE
from .errors import MediaError, TalkingHeadError
from .fileio import atomic_path, load_json
from .layout import SAMPLE_RATE

SAMPLE_PORTRAIT_NAME = "astronaut.png"          # the name the sample portrait is baked under (`pipeline.ensure_bundle`)
SAMPLE_RECORDING_NAME = "sample_recording.mp4"  # the sample recording (`pipeline.ensure_sample_recording`)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".m4v", ".avi", ".3gp")
SUFFIXES = {"portrait": IMAGE_SUFFIXES, "recording": VIDEO_SUFFIXES}
MIN_RECORDING_S = 20.0   # below this Audio2Motion sees too few lines to learn from (the whole script takes ~3 min)
SILENT_PEAK = 1e-3       # a sound track whose loudest sample stays below this (-60 dBFS) is a muted microphone


@dataclasses.dataclass(frozen=True)
class Found:
    """One input of the course and whose it is. `owner`: "yours" or "sample"; `path`: the file to read (None: the
    sample, made on demand); `name`: the name it is baked or extracted under; `detail`: where it was found."""
    kind: str
    owner: str
    path: Path | None
    detail: str
    name: str | None = None

    @property
    def yours(self) -> bool:
        return self.owner == "yours"

    def __str__(self) -> str:
        who = "yours" if self.yours else {"portrait": "the sample astronaut",
                                          "recording": "the sample recording"}.get(self.kind, "the sample's")
        return f"{self.kind}: {who} ({self.detail})"

    def image(self) -> np.ndarray:
        """The portrait as RGB uint8 (H, W, 3): your file, or the sample astronaut (notebook 02)."""
        return bake.load_portrait(self.path) if self.path is not None else bake.sample_portrait()


# ------------------------------------------------------------------------------------------------ what is there
def _rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(paths.workspace(create=False)))
    except ValueError:
        return str(p)


def sample_portrait_sha() -> str:
    """sha256 of the sample portrait's pixels, as a bundle's manifest records its source (`source.sha256`)."""
    return hashlib.sha256(np.ascontiguousarray(bake.sample_portrait()).tobytes()).hexdigest()


def bundle_source() -> dict | None:
    """The workspace bundle's `source` (name, sha256, size) with `yours` added, or None without a bundle."""
    mf = paths.avatar_dir() / "manifest.json"
    if not mf.is_file():
        return None
    src = dict(load_json(mf, "avatar manifest").get("source") or {})
    src["yours"] = src.get("sha256") != sample_portrait_sha()
    return src


def dataset_source() -> dict | None:
    """The workspace dataset's `source` (the video's name and sha256) with `yours` added, or None without one."""
    sidecar = paths.data_dir() / "dataset.json"
    if not (paths.data_dir() / "dataset.npz").is_file() or not sidecar.is_file():
        return None
    src = dict(load_json(sidecar, "dataset sidecar").get("source") or {})
    src["yours"] = src.get("video") != SAMPLE_RECORDING_NAME
    return src


def portrait_status() -> Found:
    """Whose portrait the workspace's avatar is (or will be) baked from."""
    src, waiting = bundle_source(), paths.find_input("portrait")
    if src is not None and src["yours"]:
        return Found("portrait", "yours", paths.avatar_dir() / PORTRAIT_FILE, f"avatar/ baked from {src.get('name')}",
                     src.get("name"))
    if src is not None:
        more = f"; yours is waiting in {_rel(waiting)}: notebook 02 bakes it" if waiting else ""
        return Found("portrait", "sample", None, f"avatar/ baked from {src.get('name')}{more}", SAMPLE_PORTRAIT_NAME)
    if waiting:
        return Found("portrait", "yours", waiting, f"{_rel(waiting)}, not baked yet: notebook 02 bakes it", waiting.name)
    return Found("portrait", "sample", None, "not baked yet; upload yours in notebook 02", SAMPLE_PORTRAIT_NAME)


def recording_status() -> Found:
    """Whose recording the workspace's dataset is (or will be) extracted from."""
    src, waiting = dataset_source(), paths.find_input("recording")
    if src is not None and src["yours"]:
        return Found("recording", "yours", waiting, f"data/dataset.npz extracted from {src.get('video')}", src.get("video"))
    if src is not None:
        more = f"; yours is waiting in {_rel(waiting)}: notebook 03 extracts it" if waiting else ""
        return Found("recording", "sample", None, f"data/dataset.npz extracted from {src.get('video')}{more}",
                     SAMPLE_RECORDING_NAME)
    if waiting:
        return Found("recording", "yours", waiting, f"{_rel(waiting)}, not extracted yet: notebook 03 extracts it",
                     waiting.name)
    return Found("recording", "sample", None, "not extracted yet; upload or record yours in notebook 03",
                 SAMPLE_RECORDING_NAME)


def model_status() -> str:
    """Whether the bundle holds a trained Audio2Motion (04) and the ONNX models (05), and whether the training is
    older than the dataset (then notebook 04 should run again)."""
    bundle, dataset = paths.avatar_dir(), paths.data_dir() / "dataset.npz"
    ckpt = bundle / "audio2motion.pt"
    if not ckpt.is_file():
        return "Audio2Motion: not trained yet (notebook 04)"
    text = "Audio2Motion: trained (avatar/audio2motion.pt)"
    if dataset.is_file() and dataset.stat().st_mtime > ckpt.stat().st_mtime:
        text += ", but before data/dataset.npz was last extracted: run notebook 04 again"
    mf = bundle / "manifest.json"
    exported = mf.is_file() and bool(load_json(mf, "avatar manifest").get("models"))
    if exported and ckpt.stat().st_mtime > mf.stat().st_mtime:
        return text + "; ONNX exported before that training: run notebook 05 again"
    return text + ("; ONNX exported (notebook 05)" if exported else "; not exported to ONNX yet (notebook 05)")


def describe(show: bool = True) -> list[str]:
    """Print (with `show`) and return which inputs the workspace holds: yours or the sample's (every notebook)."""
    lines = [f"workspace: {paths.workspace()}", str(portrait_status()), str(recording_status()), model_status()]
    if show:
        print("\n".join(lines))
    return lines


def replaces_only_the_sample(choice: Found) -> bool:
    """True when baking `choice` (your portrait) over the workspace's bundle replaces only the sample avatar: notebook
    02 passes it as `bake.bake`'s `force`, so your photo replaces the sample's bundle and its stale models, while a
    bundle of yours is never replaced without you asking (`force=True`)."""
    src = bundle_source()
    return choice.yours and src is not None and not src["yours"]


# ------------------------------------------------------------------------------------------------ saving, checking
def check_recording(path, min_s: float = MIN_RECORDING_S, name: str | None = None) -> video.VideoInfo:
    """A recording notebook 03 can learn from: a video stream, a sound track that is not silent, at least `min_s`
    seconds. Raises MediaError with one sentence naming the file (`name`, default the path). Returns its `VideoInfo`."""
    path = Path(path)
    label = name or str(path)
    try:
        info = video.probe(path)
        samples = video.read_audio(path, SAMPLE_RATE)[0] if info.has_audio else np.zeros(0, np.float32)
    except MediaError as e:
        raise MediaError(str(e).replace(str(path), label)) from None
    if not info.has_audio:
        raise MediaError(f"{label}: has no sound; record again with the microphone allowed (the avatar learns from "
                         "what you say).")
    if samples.size == 0 or float(np.abs(samples).max()) < SILENT_PEAK:
        raise MediaError(f"{label}: its sound track is silent (a muted or blocked microphone); record again with the "
                         "microphone on.")
    if info.duration_s < min_s:
        raise MediaError(f"{label}: only {info.duration_s:.1f} s long, but at least {min_s:g} s of speech is needed "
                         "(the whole script takes about 3 minutes); record more lines.")
    return info


def check_portrait(path, name: str | None = None) -> np.ndarray:
    """A portrait file that loads as an image (`bake.load_portrait`); MediaError names `name`. Returns the image."""
    try:
        return bake.load_portrait(path)
    except TalkingHeadError as e:
        raise MediaError(str(e).replace(str(path), name or str(path))) from None


def save_input(kind: str, name: str, data: bytes, min_s: float = MIN_RECORDING_S) -> Path:
    """Save your uploaded or recorded file as `inputs/<kind><suffix of name>` in the workspace, checked first
    (`check_portrait` / `check_recording`): a file that fails the check is not kept and the one saved before stays.
    Earlier `inputs/<kind>.*` files with another suffix are removed. Returns the saved path (notebooks 02, 03)."""
    suffix = Path(name).suffix.lower()
    if kind not in SUFFIXES:
        raise ValueError(f"unknown input kind {kind!r}: use one of {', '.join(SUFFIXES)}")
    if suffix not in SUFFIXES[kind]:
        raise MediaError(f"{name}: not a {kind} file this course reads; use one of {', '.join(SUFFIXES[kind])}.")
    if not data:
        raise MediaError(f"{name}: the file is empty; upload or record it again.")
    dest = paths.inputs_dir() / f"{kind}{suffix}"
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
        if kind == "portrait":
            check_portrait(tmp, name)
        else:
            check_recording(tmp, min_s, name)
    for old in paths.inputs_dir().glob(f"{kind}.*"):
        if old != dest and old.suffix.lower() in SUFFIXES[kind]:
            old.unlink()
    return dest


def decode_recording(data) -> tuple[bytes, str]:
    """A browser recording as (bytes, suffix): bytes, base64 text or a data URL (`data:video/webm;codecs=vp8,opus;
    base64,...`: the type may hold commas)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data), ".webm"
    text = str(data).strip()
    head, mark, body = text.partition(";base64,")
    if not (text.startswith("data:") and mark):
        head, body = "", text
    mime = head[5:].split(";")[0].lower()
    suffix = ".mp4" if "mp4" in mime else ".mkv" if "matroska" in mime else ".webm"
    try:
        return base64.b64decode(body, validate=True), suffix
    except (binascii.Error, ValueError):
        raise MediaError("the recording did not arrive whole (its base64 text is damaged); record it again.") from None


def save_recording(data, min_s: float = MIN_RECORDING_S) -> Path:
    """A browser recording (bytes, base64 text or a data URL) -> `inputs/recording.<ext>`, checked (notebook 03)."""
    raw, suffix = decode_recording(data)
    return save_input("recording", f"recording{suffix}", raw, min_s)


# ------------------------------------------------------------------------------------------------ upload cells
def in_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


@dataclasses.dataclass
class Upload:
    """What an upload cell received: Colab's files (name -> bytes) or an ipywidgets FileUpload read when `files()` is
    called (so a file picked after the cell ran still counts), or nothing (scripts, tests)."""
    kind: str
    widget: object = None
    received: dict | None = None

    def files(self) -> list[tuple[str, bytes]]:
        """(name, bytes) of each received file, in order."""
        if self.received:
            return [(n, bytes(b)) for n, b in self.received.items()]
        value = getattr(self.widget, "value", None) or ()
        if isinstance(value, dict):   # ipywidgets 7: {name: {"content": bytes, "metadata": {...}}}
            return [(n, bytes(v["content"])) for n, v in value.items()]
        return [(v["name"], bytes(v["content"])) for v in value]   # ipywidgets 8: ({"name", "content"}, ...)

    def save(self) -> Path | None:
        """Save the last received file as your input (`save_input`); None when nothing was uploaded."""
        got = self.files()
        return save_input(self.kind, *got[-1]) if got else None


def upload(kind: str, ask: bool | None = None) -> Upload:
    """An upload cell for your `kind` ("portrait" in notebook 02, "recording" in 03).

    In Colab, the file dialog (`google.colab.files.upload`) when `ask` (default: only when the workspace holds no
    `kind` of yours; "Cancel upload" skips it). In Jupyter, an ipywidgets FileUpload is shown and read by the next
    cell (nothing waits: pick a file, then run the next cell). Elsewhere nothing happens."""
    if kind not in SUFFIXES:
        raise ValueError(f"unknown input kind {kind!r}: use one of {', '.join(SUFFIXES)}")
    mine = (portrait_status() if kind == "portrait" else recording_status()).yours
    if in_colab():
        if not (ask if ask is not None else not mine):
            print(f"your {kind} is already in the workspace; upload(…, ask=True) replaces it")
            return Upload(kind)
        from google.colab import files

        print(f"choose your {kind} ({', '.join(SUFFIXES[kind])}), or Cancel upload to keep "
              f"{'yours' if mine else 'the sample'}")
        try:
            return Upload(kind, received=files.upload())
        except Exception as e:   # Colab raises when the dialog is cancelled
            print(f"no upload ({type(e).__name__})")
            return Upload(kind)
    if _ipython() is None:
        return Upload(kind)
    import ipywidgets as widgets
    from IPython.display import display

    w = widgets.FileUpload(accept=",".join(SUFFIXES[kind]), multiple=False, description=f"your {kind}")
    display(w)
    print(f"pick your {kind}, then run the next cell (nothing picked: the parameter or what the workspace holds)")
    return Upload(kind, widget=w)


# ------------------------------------------------------------------------------------------------ choosing
def _given(path, kind: str, param: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise MediaError(f"{p}: no such file; check {param}'s path, or set {param} = None and upload your {kind}.")
    return p


def _uploaded_or_given(kind: str, param: str, value, uploaded: Upload | None) -> Found | None:
    """The first two choices of `choose_portrait` / `choose_recording`: a file uploaded in this run (saved to
    `inputs/`), then the notebook parameter `param` (= `value`); None when neither is there."""
    saved = uploaded.save() if uploaded is not None else None
    if saved:
        return Found(kind, "yours", saved, f"uploaded, saved as {_rel(saved)}", uploaded.files()[-1][0])
    if value:
        p = _given(value, kind, param)
        return Found(kind, "yours", p, f"{param} = {value}", p.name)
    return None


def choose_portrait(portrait=None, uploaded: Upload | None = None) -> Found:
    """The portrait notebook 02 bakes, in this order: a file uploaded in this run (saved to `inputs/`), the
    `PORTRAIT` parameter, your `inputs/portrait.*`, the photo your bundle was baked from, and only without any of
    them the sample astronaut. Never the sample over yours."""
    given = _uploaded_or_given("portrait", "PORTRAIT", portrait, uploaded)
    if given:
        return given
    status = portrait_status()
    if status.yours and status.path is not None and status.path.is_file():
        return status
    waiting = paths.find_input("portrait")
    if waiting:
        return Found("portrait", "yours", waiting, _rel(waiting), waiting.name)
    return Found("portrait", "sample", None, "scikit-image's public-domain astronaut", SAMPLE_PORTRAIT_NAME)


def choose_recording(recording=None, uploaded: Upload | None = None, profile=None) -> Found:
    """The recording notebook 03 extracts, in this order: a file uploaded in this run, the `VIDEO` parameter, your
    `inputs/recording.*` (uploaded or recorded earlier), and only without any of them the sample recording (made on
    demand). A dataset extracted from your recording whose video is not in the workspace is never replaced by the
    sample's: that is one sentence saying how to extract yours again."""
    given = _uploaded_or_given("recording", "VIDEO", recording, uploaded)
    if given:
        return given
    waiting = paths.find_input("recording")
    if waiting:
        return Found("recording", "yours", waiting, _rel(waiting), waiting.name)
    src = dataset_source()
    if src is not None and src["yours"]:
        raise TalkingHeadError(f"{paths.data_dir() / 'dataset.npz'}: holds the motion of your recording "
                               f"{src.get('video')}, which is not in this workspace, so it is not replaced by the "
                               "sample's; set VIDEO to your video (or upload it above) to extract it again, or go on "
                               "to notebook 04, which uses the dataset as it is.")
    return Found("recording", "sample", pipeline.ensure_sample_recording(profile), "rendered from the corpus "
                 "(notebook 01)", SAMPLE_RECORDING_NAME)
