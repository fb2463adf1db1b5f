"""The avatar bundle format alone: file names, the manifest, load / verify / add_files (numpy, OpenCV, stdlib only).

A bundle is one folder that a phone, a browser or the live engine consumes. Baking writes it (`talkinghead.bake`,
notebook 02), training adds `audio2motion.pt` (04), export adds the ONNX models (05), the live engine reads it (06):

    manifest.json       format, format_version, profile, source hash, crop matrices, fps, audio feature params,
                        motion layout, `files` {name: {sha256, bytes}} and (after export) the `models` section
    source.npz          SOURCE_ARRAYS: feature_3d (1,C,D,64,64), kp (21,3) canonical x_c, exp (21,3), pose (3,)
                        degrees (pitch, yaw, roll), t (3,), scale (1,), x_s (21,3) posed source keypoints, lip_open ()
                        mouth-open proxy of exp, M_o2c / M_c2o (3,3) crop matrices, mask_crop (512,512) float32
    portrait.png        the (EXIF-upright, RGB) portrait the frames are pasted into
    crop.png            the 512x512 face crop
    paste_mask.png      the soft paste-back mask in original-image coordinates (uint8 grey, 255 = face)
    audio2motion.pt     the trained Audio2Motion checkpoint (04)
    renderer*.onnx      motion -> face crop (RENDERER_FILES: fp32, fp16, int8 variants) (05)
    paste.onnx          face crop -> the whole portrait frame (05)
    audio2motion.onnx   one streaming Audio2Motion step (05)
    idle.npy            the idle-motion loop the runtime adds in "idle_from_recording" mode (05)

The bundle is a closed world: every path the manifest names (a `files` key, every `file` in `models`, the renderer
variants and the idle loop included) must be a plain file name inside the folder (no `/`, `\\`, `..`, drive or
absolute path), listed in `files` with its sha256, and not a symbolic link. `read_manifest` checks the names and the
types before anything is opened, `verify_bundle` the hashes, and models are opened only through `Bundle.file`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import paths
from .errors import BundleError, TalkingHeadError
from .fileio import load_json, load_npz, recover, save_json, sha256_file

FORMAT = "talkinghead-avatar"
FORMAT_VERSION = 1

MANIFEST_FILE = "manifest.json"
SOURCE_FILE = "source.npz"
PORTRAIT_FILE = "portrait.png"
CROP_FILE = "crop.png"
MASK_FILE = "paste_mask.png"
BAKED_FILES = (SOURCE_FILE, PORTRAIT_FILE, CROP_FILE, MASK_FILE)  # hashed in manifest.json by every bake
SOURCE_ARRAYS = ("feature_3d", "kp", "exp", "pose", "t", "scale", "x_s", "lip_open", "M_o2c", "M_c2o", "mask_crop")
CHECKPOINT_FILE = "audio2motion.pt"
RENDERER_FILES = {"fp32": "renderer.onnx", "fp16": "renderer.fp16.onnx", "int8": "renderer.int8.onnx"}
PASTE_FILE = "paste.onnx"
A2M_FILE = "audio2motion.onnx"
IDLE_FILE = "idle.npy"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REBAKE = "bake the portrait again"
_REEXPORT = "export the bundle again (notebooks/05_export.ipynb or `python -m talkinghead export`)"


# ------------------------------------------------------------------------------------------------------ names
def is_plain_name(name) -> bool:
    """True for a file name that stays inside its folder: a non-empty str without separators, `..`, drive or NUL."""
    return (isinstance(name, str) and name not in ("", ".", "..") and not any(c in name for c in "/\\:\0")
            and name.strip() == name)


def model_files(manifest: dict) -> list[tuple[str, object]]:
    """Every file the `models` section names, as (where, name): any `file` key at any depth, and a string `idle` or
    `background` (the pocket frame graph's rest frame)."""
    out: list[tuple[str, object]] = []

    def walk(node, where: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                here = f"{where}.{k}"
                if k == "file" or (k in ("idle", "background") and isinstance(v, str)):
                    out.append((here, v))
                else:
                    walk(v, here)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    walk(manifest.get("models"), "models")
    return out


# ------------------------------------------------------------------------------------------------------ manifest
def read_manifest(path: str | os.PathLike) -> dict:
    """Read `path/manifest.json` and check its format, version, types and closed world (nothing is opened yet)."""
    path = Path(path)
    recover(path)  # an export cut short between its renames is finished first (`fileio.file_set`)
    mf = path / MANIFEST_FILE
    if not mf.is_file():
        raise BundleError(f"{path}: not an avatar bundle (no manifest.json); bake one with notebook 02 or "
                          "`python -m talkinghead bake PORTRAIT`.")
    try:
        manifest = load_json(mf, "avatar manifest")
    except TalkingHeadError as e:
        raise BundleError(str(e)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{mf}: not a talkinghead avatar manifest; {_REBAKE}.")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise BundleError(f"{mf}: bundle format version {version}, this talkinghead reads version {FORMAT_VERSION}; "
                          f"{_REBAKE} with this version.")
    if not isinstance(manifest.get("files"), dict):
        raise BundleError(f"{mf}: lists no files (incomplete or edited manifest); {_REBAKE}.")
    unlisted = [f for f in BAKED_FILES if f not in manifest["files"]]
    if unlisted:
        raise BundleError(f"{mf}: does not list {', '.join(unlisted)} (incomplete or edited manifest); {_REBAKE}.")
    check_manifest(mf, manifest)
    return manifest


def check_manifest(mf: Path, manifest: dict) -> None:
    """The closed world and the types: `files` maps plain names to {sha256, bytes}; every model file is listed."""
    for key, ok, want in (("profile", isinstance(manifest.get("profile"), str), "a profile name"),
                          ("fps", type(manifest.get("fps")) is int and manifest["fps"] > 0, "a positive integer")):
        if not ok:
            raise BundleError(f"{mf}: {key} should be {want}, not {_describe(manifest.get(key))}; {_REBAKE}.")
    for name, entry in manifest["files"].items():
        if not is_plain_name(name):
            raise BundleError(f"{mf}: lists {name!r}, which is not a plain file name inside the bundle (no folders, "
                              f"'..' or absolute paths); {_REBAKE}.")
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and _SHA256.match(entry["sha256"])
                and isinstance(entry.get("bytes", 0), int)):
            raise BundleError(f"{mf}: the entry of {name!r} in files should be {{\"sha256\": 64 hex digits, "
                              f"\"bytes\": an integer}}, not {_describe(entry)}; {_REBAKE}.")
    models = manifest.get("models")
    if models is not None and not isinstance(models, dict):
        raise BundleError(f"{mf}: the models section should be an object, not {_describe(models)}; {_REEXPORT}.")
    for where, name in model_files(manifest):
        if not isinstance(name, str):
            raise BundleError(f"{mf}: {where} should be a file name, not {_describe(name)}; {_REEXPORT}.")
        if not is_plain_name(name):
            raise BundleError(f"{mf}: {where} names {name!r}, which is not a plain file name inside the bundle (no "
                              f"folders, '..' or absolute paths); {_REEXPORT}.")
        if name not in manifest["files"]:
            raise BundleError(f"{mf}: {where} names {name!r}, which is not listed with its sha256 in the manifest's "
                              f"files; {_REEXPORT}.")


def _describe(value) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}".replace(". ", ".")


def file_entry(path: Path) -> dict:
    """A `files` entry: {"sha256": hex digest, "bytes": size}."""
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def add_files(bundle_dir: str | os.PathLike, files, **sections) -> dict:
    """Register files already written inside the bundle (hash them into manifest.json) and merge `sections` into it.

    The names must be plain file names; the merged manifest must keep the closed world (every model file listed)."""
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    for f in files:
        name = str(f)
        if not is_plain_name(name):
            raise BundleError(f"{bundle_dir / MANIFEST_FILE}: cannot register {name!r}, which is not a plain file "
                              "name inside the bundle; write the file into the bundle folder itself.")
        checked_file(bundle_dir, name)
        manifest["files"][name] = file_entry(bundle_dir / name)
    manifest.update(sections)
    check_manifest(bundle_dir / MANIFEST_FILE, manifest)
    save_json(bundle_dir / MANIFEST_FILE, manifest)
    return manifest


# ------------------------------------------------------------------------------------------------------ verify
def checked_file(path: Path, name: str) -> Path:
    """`path/name` after checking it is a plain name of a regular file in the folder (not a symbolic link)."""
    f = path / name
    if not is_plain_name(name):
        raise BundleError(f"{path / MANIFEST_FILE}: {name!r} is not a plain file name inside the bundle; "
                          f"{_REBAKE}.")
    if f.is_symlink():
        raise BundleError(f"{f}: a symbolic link, but a bundle holds only its own files; copy the real file into "
                          "the bundle or re-run the step that writes it.")
    if not f.is_file():
        raise BundleError(f"{f}: listed in the bundle's manifest but missing; re-run the step that writes it.")
    return f


def verify_bundle(path: str | os.PathLike, manifest: dict | None = None) -> None:
    """Check that every file listed in the manifest is a plain, regular file in the folder matching its sha256."""
    path = Path(path)
    manifest = manifest or read_manifest(path)
    for name, entry in manifest["files"].items():
        f = checked_file(path, name)
        if sha256_file(f) != entry["sha256"]:
            raise BundleError(f"{f}: does not match its sha256 in manifest.json (changed or corrupt); "
                              "re-run the step that writes it.")


# ------------------------------------------------------------------------------------------------------ load
@dataclass
class Bundle:
    """A loaded avatar bundle: `source` arrays (see module doc), `portrait` (H,W,3) uint8, `crop` (512,512,3) uint8,
    `mask` (H,W) float32 in [0,1] (from paste_mask.png), and the `manifest` dict."""

    path: Path
    manifest: dict
    source: dict = field(repr=False)
    portrait: np.ndarray = field(repr=False)
    crop: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)

    @property
    def profile(self) -> str:
        return self.manifest["profile"]

    @property
    def fps(self) -> int:
        return int(self.manifest["fps"])

    @property
    def models(self) -> dict:
        """The manifest's `models` section ({} before export)."""
        return self.manifest.get("models") or {}

    def file(self, name: str) -> Path:
        """The path of a file the manifest lists (the only way to open a model): plain name, listed, not a link."""
        if name not in self.manifest["files"]:
            raise BundleError(f"{self.path / MANIFEST_FILE}: {name!r} is not listed with its sha256 in the "
                              f"manifest's files; {_REEXPORT}.")
        return checked_file(self.path, name)


def load_bundle(path: str | os.PathLike | None = None, verify: bool = True) -> Bundle:
    """Load and check an avatar bundle (default: the workspace's `avatar/`).

    Always checks the format version, the types and the closed world; with `verify` also every file's sha256.
    Any problem is one BundleError sentence.
    """
    path = Path(path) if path else paths.avatar_dir()
    manifest = read_manifest(path)
    if verify:
        verify_bundle(path, manifest)
    for name in BAKED_FILES:
        checked_file(path, name)
    try:
        src = load_npz(path / SOURCE_FILE, "avatar source tensors")
    except TalkingHeadError as e:
        raise BundleError(str(e)) from None
    return Bundle(path, manifest, src, read_png(path / PORTRAIT_FILE), read_png(path / CROP_FILE),
                  read_png(path / MASK_FILE, grey=True).astype(np.float32) / 255.0)


def read_png(path: Path, grey: bool = False) -> np.ndarray:
    """A bundle image as RGB uint8 (H, W, 3), or grey (H, W) with `grey`."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    if img is None:
        raise BundleError(f"{path}: missing or unreadable; {_REBAKE}.")
    return img if grey else np.ascontiguousarray(img[..., ::-1])
