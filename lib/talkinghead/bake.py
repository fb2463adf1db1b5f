"""Baking: one portrait -> the avatar bundle, the folder a phone or browser app consumes (notebook 02_baking).

    portrait --detect--> 5 points --released crop--> 512 crop --resize--> 256 (sample: 64) --F--> feature volume f_s
                                                                             --M--> x_c, pose, exp, scale, t -> x_s

Bake writes `manifest.json`, `source.npz`, `portrait.png`, `crop.png` and `paste_mask.png` (the format, every file
name and the loader live in `talkinghead.bundle`, re-exported here). Later stages add `audio2motion.pt` (04) and
`*.onnx` (05) with `add_files`. Writes are atomic: a bake goes to a
temporary folder that replaces the bundle only when complete, so an interrupted bake never leaves a bundle that loads.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np

from . import crop as cropping
from . import layout
from .bundle import (BAKED_FILES, CROP_FILE, FORMAT, FORMAT_VERSION, MANIFEST_FILE, MASK_FILE,  # noqa: F401
                     PORTRAIT_FILE, SOURCE_ARRAYS, SOURCE_FILE, Bundle, add_files, file_entry, load_bundle,
                     read_manifest, verify_bundle)
from .errors import MediaError, TalkingHeadError
from .fileio import atomic_dir, is_scratch, json_text, save_json, save_npz, write_bytes

FPS = layout.FPS


# ------------------------------------------------------------------------------------------------------ input
def load_portrait(path: str | os.PathLike) -> np.ndarray:
    """Read a portrait as RGB uint8 (H, W, 3): any size, RGB/RGBA/grey/palette, EXIF orientation applied.

    Transparent pixels are composited onto white (an RGBA cut-out otherwise turns black).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise MediaError(f"{path}: is a folder; pass the path of a portrait photo (JPEG or PNG).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # over PIL's limit: refused, not loaded
            with Image.open(path) as im:
                return _to_rgb(ImageOps.exif_transpose(im))
    except FileNotFoundError:
        raise MediaError(f"{path}: no such portrait file; check the path.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaError(f"{path}: the image is too large to open safely ({_size_of(path)}, over "
                         f"{Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels); scale it down to about 2000 pixels "
                         "on the long side.") from None
    except MemoryError:
        raise MediaError(f"{path}: the image does not fit in memory ({_size_of(path)}); scale it down to about "
                         "2000 pixels on the long side.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise MediaError(f"{path}: not a readable image ({type(e).__name__}); use a JPEG or PNG photo.") from None


def _to_rgb(im) -> np.ndarray:
    """A PIL image of any mode -> RGB uint8 (H, W, 3); transparency composited onto white."""
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _deep_grey_to_rgb(im)
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def _deep_grey_to_rgb(im) -> np.ndarray:
    """A 16-bit (or 32-bit int / float) greyscale image -> RGB uint8: 16-bit data scaled by 255/65535 (PIL's own
    convert would clip every value above 255 to white)."""
    a = np.asarray(im, dtype=np.float64)
    if im.mode == "F":
        top = 1.0 if a.size and np.nanmax(a) <= 1.0 else 255.0
    else:
        top = 65535.0 if a.size and a.max() > 255 or im.mode.startswith("I;16") else 255.0
    g = np.clip(np.rint(np.nan_to_num(a) * (255.0 / top)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(g[..., None], 3, axis=2))


def _size_of(path: Path) -> str:
    from PIL import Image

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # only the header is read, never the pixels
    try:
        with warnings.catch_warnings(), Image.open(path) as im:
            warnings.simplefilter("ignore")
            return f"{im.width}x{im.height} pixels"
    except Exception:
        return "too many pixels"
    finally:
        Image.MAX_IMAGE_PIXELS = limit


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
         lp=None, detector: str = "auto", name: str | None = None, force: bool = False, device="auto") -> Path:
    """Bake a portrait (a path, or an RGB uint8 array) into an avatar bundle folder; returns the folder.

    `pick="largest"` chooses the biggest of several faces (else several faces is an error). `lp`: already-loaded
    networks (else loaded for `profile` on `device`: see `talkinghead.device`). The bundle goes to `out_dir`
    (default: the workspace's `avatar/`). Nothing the package did not write is deleted: a non-empty folder that is
    not a bundle is refused, and re-baking keeps what is still valid (`rebake_plan`); later stages' outputs that the
    new portrait makes stale are replaced only with `force`.
    """
    from .face import crop_face, detect_face
    from .liveportrait import load_liveportrait
    from .paths import avatar_dir
    from .profiles import get_profile

    out_dir = Path(out_dir) if out_dir else avatar_dir()
    check_out_dir(out_dir)
    if isinstance(portrait, (str, os.PathLike)):
        name = name or Path(portrait).name
        image = load_portrait(portrait)
    else:
        image, name = np.ascontiguousarray(portrait, dtype=np.uint8), name or "portrait.png"
    prof = lp.profile if lp is not None else get_profile(profile).name
    rebake_plan(out_dir, _array_sha(image), prof, force)          # refuses before the slow part
    lp = lp or load_liveportrait(weights_dir, profile=prof, device=device)
    face = detect_face(image, pick=pick, name=name, detector=detector, weights_dir=weights_dir)
    crop = crop_face(image, face)
    net_in = cropping.resize_for_network(crop.img_crop, network_input_size(lp))
    src = source_info(lp, net_in)
    mask_crop = cropping.make_paste_mask()[..., 0]
    mask_ori = cropping.mask_to_original(mask_crop, crop.M_c2o, image.shape[:2])[..., 0]
    src.update(M_o2c=crop.M_o2c.astype(np.float32), M_c2o=crop.M_c2o.astype(np.float32), mask_crop=mask_crop)

    with atomic_dir(out_dir) as tmp:
        save_npz(tmp / SOURCE_FILE, {k: src[k] for k in SOURCE_ARRAYS})
        _write_png(tmp / PORTRAIT_FILE, image)
        _write_png(tmp / CROP_FILE, crop.img_crop)
        _write_png(tmp / MASK_FILE, np.round(mask_ori * 255).astype(np.uint8))
        manifest = _manifest(lp, image, name, face, crop)
        manifest["files"] = {f: file_entry(tmp / f) for f in BAKED_FILES}
        manifest = _carry_over(out_dir, tmp, manifest, force)
        save_json(tmp / MANIFEST_FILE, manifest)
    return out_dir


# ------------------------------------------------------------------------------------------------------ re-baking
TRAINED_FILES = ("audio2motion.pt", "audio2motion.metrics.json")  # notebook 04: valid for any portrait of a profile


def check_out_dir(out_dir: Path) -> None:
    """Refuse a bundle folder that would destroy what talkinghead did not write: a file, or a non-empty folder
    without a talkinghead manifest."""
    if not out_dir.exists() and not out_dir.is_symlink():
        return
    if not out_dir.is_dir():
        raise TalkingHeadError(f"{out_dir}: is a file, not a folder; choose a folder for the avatar bundle (--out).")
    if _old_manifest(out_dir) is None:
        mine = [e.name for e in sorted(out_dir.iterdir()) if not is_scratch(e.name)]
        if mine and MANIFEST_FILE in mine:
            raise TalkingHeadError(f"{out_dir}: its {MANIFEST_FILE} is damaged or not a talkinghead manifest, so its "
                                   f"{len(mine)} file(s) cannot be told from your own; move them away (or delete the "
                                   "folder if it is only an old bundle) and bake again.")
        if mine:
            raise TalkingHeadError(f"{out_dir}: holds {len(mine)} file(s) that are not an avatar bundle (such as "
                                   f"{mine[0]!r}), which baking would delete; bake into an empty or new folder "
                                   "(--out), or move them away first.")


def _old_manifest(out_dir: Path) -> dict | None:
    """The talkinghead manifest in `out_dir` (format checked only), else None."""
    from .fileio import load_json

    try:
        m = load_json(out_dir / MANIFEST_FILE, "avatar manifest")
    except TalkingHeadError:
        return None
    return m if isinstance(m, dict) and m.get("format") == FORMAT else None


def rebake_plan(out_dir: Path, source_sha: str, profile: str, force: bool) -> dict[str, list[str]]:
    """What re-baking `out_dir` keeps and drops: {"keep": names, "drop": names}.

    The same portrait on the same profile keeps everything (the bake is deterministic). Another portrait makes the
    exported models (renderer, paste: the portrait is inside them) stale; another profile also the trained model.
    Stale files are dropped only with `force`, else this refuses naming them. The user's own files are always kept.
    """
    old = _old_manifest(out_dir) if out_dir.is_dir() else None
    if old is None:
        return {"keep": [], "drop": []}
    same = (old.get("source") or {}).get("sha256") == source_sha and old.get("profile") == profile
    listed = old["files"] if isinstance(old.get("files"), dict) else {}
    exported = sorted(f for f in listed if f not in BAKED_FILES)
    trained = [f for f in TRAINED_FILES if (out_dir / f).is_file()]
    stale = [] if same else exported + (trained if old.get("profile") != profile else [])
    if stale and not force:
        other = "portrait" if old.get("profile") == profile else "profile"
        names = ", ".join(stale[:4]) + (", ..." if len(stale) > 4 else "")
        raise TalkingHeadError(f"{out_dir}: holds the avatar of another {other} with later stages' results ({names}), "
                               "which a new bake makes stale; pass force=True to replace them (then train and export "
                               "again), or bake into another folder (--out).")
    keep = [e.name for e in sorted(out_dir.iterdir())
            if e.name not in (*BAKED_FILES, MANIFEST_FILE) and e.name not in stale and not is_scratch(e.name)]
    return {"keep": keep, "drop": stale}


def _carry_over(out_dir: Path, tmp: Path, manifest: dict, force: bool) -> dict:
    """Put what re-baking keeps (`rebake_plan`) into the new bundle folder `tmp`; returns the manifest to write.

    The same portrait, crop and networks again (`same_avatar`): the old manifest's later sections (models, ...) and
    file entries are kept beside the new baked files' entries."""
    old = _old_manifest(out_dir) if out_dir.is_dir() else None
    if old is None:
        return manifest
    same = same_avatar(old, manifest)
    plan = rebake_plan(out_dir, manifest["source"]["sha256"] if same else "", manifest["profile"], force)
    for name in plan["keep"]:
        _link_or_copy(out_dir / name, tmp / name)
    if not same:
        return manifest
    merged = {**{k: v for k, v in old.items() if k not in manifest}, **manifest}
    merged["files"] = {**{f: e for f, e in old["files"].items() if f not in BAKED_FILES}, **manifest["files"]}
    return merged


def same_avatar(old: dict, new: dict) -> bool:
    """Two manifests of one avatar: the same portrait pixels, profile, networks and crop (the baked tensors then
    differ at most by float rounding, so the models exported from the old bundle still fit)."""
    try:
        return (old["source"]["sha256"] == new["source"]["sha256"] and old["profile"] == new["profile"]
                and old.get("networks") == _plain(new.get("networks"))
                and np.allclose(np.asarray(old["crop"]["M_o2c"], float), np.asarray(new["crop"]["M_o2c"], float),
                                atol=1e-6))
    except (KeyError, TypeError, ValueError):
        return False


def _plain(obj):
    """`obj` as it reads back from JSON (tuples -> lists, numpy -> Python)."""
    import json

    return json.loads(json_text(obj))


def _link_or_copy(src: Path, dst: Path) -> None:
    """A hard link (instant, no space) where the filesystem allows, else a copy; folders are copied."""
    import shutil

    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True)
        return
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


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
