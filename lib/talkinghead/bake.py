"""Baking: one portrait -> the avatar bundle, the folder a phone or browser app consumes (notebook 02_baking).

    portrait --detect--> 5 points --released crop--> 512 crop --resize--> 256 (sample: 64) --F--> feature volume f_s
                                                                             --M--> x_c, pose, exp, scale, t -> x_s

Bundle files (every one listed with its sha256 in `manifest.json`; nothing refers to paths outside the folder):

    manifest.json    format version, profile, source hash, crop matrices, fps, audio feature params, motion layout
    source.npz       feature_3d (1,C,D,64,64), kp (21,3) canonical x_c, exp (21,3), pose (3,) degrees (pitch, yaw,
                     roll), t (3,), scale (1,), x_s (21,3) posed source keypoints, lip_open () mouth-open proxy of exp,
                     M_o2c / M_c2o (3,3) crop matrices, mask_crop (512,512) float32
    portrait.png     the (EXIF-upright, RGB) portrait the frames are pasted into
    crop.png         the 512x512 face crop
    paste_mask.png   the soft paste-back mask in original-image coordinates (uint8 grey, 255 = face)

Later stages add `audio2motion.pt` (04) and `*.onnx` (05) with `add_files`. Writes are atomic: a bake goes to a
temporary folder that replaces the bundle only when complete, so an interrupted bake never leaves a bundle that loads.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from . import crop as cropping
from . import layout
from .errors import BundleError, MediaError, TalkingHeadError
from .fileio import atomic_dir, load_json, load_npz, save_json, save_npz, sha256_file, write_bytes

FORMAT = "talkinghead-avatar"
FORMAT_VERSION = 1
FPS = 25
BAKED_FILES = ("source.npz", "portrait.png", "crop.png", "paste_mask.png")  # hashed in manifest.json
SOURCE_ARRAYS = ("feature_3d", "kp", "exp", "pose", "t", "scale", "x_s", "lip_open", "M_o2c", "M_c2o", "mask_crop")


# ------------------------------------------------------------------------------------------------------ input
def load_portrait(path: str | os.PathLike) -> np.ndarray:
    """Read a portrait as RGB uint8 (H, W, 3): any size, RGB/RGBA/grey/palette, EXIF orientation applied.

    Transparent pixels are composited onto white (an RGBA cut-out otherwise turns black).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA")
                white = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(white, im)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except FileNotFoundError:
        raise MediaError(f"{path}: no such portrait file; check the path.") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise MediaError(f"{path}: not a readable image ({type(e).__name__}); use a JPEG or PNG photo.") from None


def sample_portrait() -> np.ndarray:
    """The offline sample portrait: scikit-image's bundled public-domain astronaut photo (Eileen Collins), 512x512 RGB."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


# ------------------------------------------------------------------------------------------------------ bake
def network_input_size(lp) -> int:
    """The crop size F and M take for this profile (256 released, 64 sample; `liveportrait.config.IMAGE_SIZES`)."""
    from .liveportrait.config import image_sizes

    return image_sizes(lp.profile)[0]


def source_info(lp, crop_small: np.ndarray) -> dict[str, np.ndarray]:
    """Run F and M on the network-size RGB uint8 crop -> feature_3d and the source keypoint info (numpy, float32)."""
    import torch

    from .liveportrait.keypoints import pose_degrees, transform_keypoints_degrees

    x = torch.from_numpy(cropping.to_network_tensor(crop_small, crop_small.shape[0])).to(lp.device, lp.dtype)
    with torch.inference_mode():
        feature_3d = lp.appearance_feature_extractor(x)
        info = lp.motion_extractor(x)
        pose = pose_degrees(info)                                    # (1, 3)
        kp, exp = info["kp"].reshape(1, 21, 3), info["exp"].reshape(1, 21, 3)
        x_s = transform_keypoints_degrees(kp, pose, exp, info["scale"], info["t"])
    out = {"feature_3d": feature_3d, "kp": kp[0], "exp": exp[0], "pose": pose[0], "t": info["t"][0],
           "scale": info["scale"][0], "x_s": x_s[0]}
    out = {k: v.float().cpu().numpy() for k, v in out.items()}
    out["lip_open"] = np.asarray(layout.mouth_open(np.concatenate([out["exp"].reshape(63), np.zeros(6, np.float32)])), np.float32).reshape(1)
    return out


def bake(portrait, out_dir: str | os.PathLike | None = None, profile=None, weights_dir=None, pick: str = "single",
         lp=None, detector: str = "auto", name: str | None = None) -> Path:
    """Bake a portrait (a path, or an RGB uint8 array) into an avatar bundle folder; returns the folder.

    `pick="largest"` chooses the biggest of several faces (else several faces is an error). `lp`: already-loaded
    networks (else loaded for `profile`). The bundle goes to `out_dir` (default: the workspace's `avatar/`).
    """
    from .face import crop_face, detect_face
    from .liveportrait import load_liveportrait
    from .paths import avatar_dir
    from .profiles import get_profile

    if isinstance(portrait, (str, os.PathLike)):
        name = name or Path(portrait).name
        image = load_portrait(portrait)
    else:
        image, name = np.ascontiguousarray(portrait, dtype=np.uint8), name or "portrait.png"
    lp = lp or load_liveportrait(weights_dir, profile=get_profile(profile).name)
    face = detect_face(image, pick=pick, name=name, detector=detector, weights_dir=weights_dir)
    crop = crop_face(image, face)
    net_in = cropping.resize_for_network(crop.img_crop, network_input_size(lp))
    src = source_info(lp, net_in)
    mask_crop = cropping.make_paste_mask()[..., 0]
    mask_ori = cropping.mask_to_original(mask_crop, crop.M_c2o, image.shape[:2])[..., 0]
    src.update(M_o2c=crop.M_o2c.astype(np.float32), M_c2o=crop.M_c2o.astype(np.float32), mask_crop=mask_crop)

    out_dir = Path(out_dir) if out_dir else avatar_dir()
    with atomic_dir(out_dir) as tmp:
        save_npz(tmp / "source.npz", {k: src[k] for k in SOURCE_ARRAYS})
        _write_png(tmp / "portrait.png", image)
        _write_png(tmp / "crop.png", crop.img_crop)
        _write_png(tmp / "paste_mask.png", np.round(mask_ori * 255).astype(np.uint8))
        manifest = _manifest(lp, image, name, face, crop)
        manifest["files"] = {f: _file_entry(tmp / f) for f in BAKED_FILES}
        save_json(tmp / "manifest.json", manifest)
    return out_dir


def _manifest(lp, image, name, face, crop) -> dict:
    from . import __version__
    from .audio import FeatureParams

    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "created_by": f"talkinghead {__version__}",
        "profile": lp.profile,
        "source": {"name": name, "sha256": _array_sha(image), "height": image.shape[0], "width": image.shape[1],
                   "face_box": face.box, "points5": face.points5},
        "crop": {"dsize": cropping.CROP_SIZE, "network_size": network_input_size(lp), "scale": cropping.CROP_SCALE,
                 "vx_ratio": cropping.CROP_VX_RATIO, "vy_ratio": cropping.CROP_VY_RATIO,
                 "M_o2c": crop.M_o2c, "M_c2o": crop.M_c2o},
        "fps": FPS,
        "audio_features": FeatureParams().to_dict(),
        "motion_layout": {"dim": layout.MOTION_DIM, "names": layout.NAMES, "module": "talkinghead.layout"},
        "networks": lp.config,
    }


def _array_sha(a: np.ndarray) -> str:
    import hashlib
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _write_png(path: Path, rgb: np.ndarray) -> None:
    img = rgb if rgb.ndim == 2 else rgb[..., ::-1]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img))
    if not ok:
        raise MediaError(f"{path}: could not encode PNG.")
    write_bytes(path, buf.tobytes())


def _file_entry(path: Path) -> dict:
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def add_files(bundle_dir: str | os.PathLike, files, **sections) -> dict:
    """Register files already written inside the bundle (hash them into manifest.json) and merge `sections` into it."""
    bundle_dir = Path(bundle_dir)
    manifest = load_json(bundle_dir / "manifest.json", "avatar manifest")
    for f in files:
        manifest["files"][str(f)] = _file_entry(bundle_dir / f)
    manifest.update(sections)
    save_json(bundle_dir / "manifest.json", manifest)
    return manifest


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


def load_bundle(path: str | os.PathLike | None = None, verify: bool = True) -> Bundle:
    """Load and check an avatar bundle (default: the workspace's `avatar/`).

    Checks the format version and (with `verify`) every file's sha256; any problem is one BundleError sentence.
    """
    from .paths import avatar_dir

    path = Path(path) if path else avatar_dir()
    manifest = _read_manifest(path)
    if verify:
        verify_bundle(path, manifest)
    try:
        src = load_npz(path / "source.npz", "avatar source tensors")
    except TalkingHeadError as e:
        raise BundleError(str(e)) from None
    return Bundle(path, manifest, src, _read_png(path / "portrait.png"), _read_png(path / "crop.png"),
                  _read_png(path / "paste_mask.png", grey=True).astype(np.float32) / 255.0)


def _read_manifest(path: Path) -> dict:
    mf = path / "manifest.json"
    if not mf.is_file():
        raise BundleError(f"{path}: not an avatar bundle (no manifest.json); bake one with notebook 02 or "
                          "`python -m talkinghead bake PORTRAIT`.")
    try:
        manifest = load_json(mf, "avatar manifest")
    except TalkingHeadError as e:
        raise BundleError(str(e)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{mf}: not a talkinghead avatar manifest; bake the portrait again.")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(f"{mf}: bundle format version {version}, this talkinghead reads version {FORMAT_VERSION}; "
                          "bake the portrait again with this version.")
    if not isinstance(manifest.get("files"), dict):
        raise BundleError(f"{mf}: lists no files (incomplete or edited manifest); bake the portrait again.")
    return manifest


def verify_bundle(path: str | os.PathLike, manifest: dict | None = None) -> None:
    """Check that every file listed in the manifest exists and matches its sha256."""
    path = Path(path)
    manifest = manifest or _read_manifest(path)
    unlisted = [f for f in BAKED_FILES if f not in manifest["files"]]
    if unlisted:
        raise BundleError(f"{path / 'manifest.json'}: does not list {', '.join(unlisted)} (incomplete or edited "
                          "manifest); bake the portrait again.")
    for name, entry in manifest["files"].items():
        f = path / name
        if not f.is_file():
            raise BundleError(f"{f}: listed in the bundle's manifest but missing; re-run the step that writes it.")
        if sha256_file(f) != entry["sha256"]:
            raise BundleError(f"{f}: does not match its sha256 in manifest.json (changed or corrupt); "
                              "re-run the step that writes it.")


def _read_png(path: Path, grey: bool = False) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    if img is None:
        raise BundleError(f"{path}: missing or unreadable; bake the portrait again.")
    return img if grey else np.ascontiguousarray(img[..., ::-1])
