"""talkinghead.bundle: the avatar bundle is a closed world (issue 15), read without torch.

Every name the manifest gives (a `files` key, every `file` of the `models` section, variants and idle included) must
be a plain file name inside the folder, listed with its sha256 and not a symbolic link, checked before anything is
opened; a manifest with entries of the wrong type is one BundleError sentence naming the file. The bundles here are
built by hand (small arrays and PNGs), so these tests need neither torch nor a bake.
"""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from talkinghead import bundle
from talkinghead.errors import BundleError
from talkinghead.fileio import save_json, save_npz, sha256_file


def one_sentence(err: Exception) -> str:
    msg = str(err)
    assert "\n" not in msg and msg.endswith(".") and msg.count(". ") == 0, msg
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__), "a traceback leaks"
    return msg


@pytest.fixture
def bdir(tmp_path):
    """A minimal bundle: source arrays, three PNGs, two model files registered in `models`."""
    d = tmp_path / "avatar"
    d.mkdir()
    rng = np.random.default_rng(0)
    save_npz(d / bundle.SOURCE_FILE, {k: rng.normal(size=(3,)).astype(np.float32) for k in bundle.SOURCE_ARRAYS})
    img = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    cv2.imwrite(str(d / bundle.PORTRAIT_FILE), img)
    cv2.imwrite(str(d / bundle.CROP_FILE), img[:40])
    cv2.imwrite(str(d / bundle.MASK_FILE), img[..., 0])
    for name in (bundle.PASTE_FILE, bundle.RENDERER_FILES["fp32"], bundle.IDLE_FILE):
        (d / name).write_bytes(name.encode() * 10)
    manifest = {"format": bundle.FORMAT, "format_version": bundle.FORMAT_VERSION, "profile": "sample", "fps": 25,
                "files": {f: bundle.file_entry(d / f) for f in bundle.BAKED_FILES}}
    save_json(d / bundle.MANIFEST_FILE, manifest)
    models = {"renderer": {"variants": {"fp32": {"file": "renderer.onnx"}}, "default": "fp32"},
              "paste": {"file": "paste.onnx"}, "audio2motion": {"idle": {"file": "idle.npy", "dims": [0]}},
              "opset": 20}
    bundle.add_files(d, ["paste.onnx", "renderer.onnx", "idle.npy"], models=models)
    return d


def edit(d, change) -> None:
    mf = d / bundle.MANIFEST_FILE
    m = json.loads(mf.read_text())
    change(m)
    mf.write_text(json.dumps(m))


def refused(d, verify=True) -> str:
    with pytest.raises(BundleError) as e:
        bundle.load_bundle(d, verify=verify)
    return one_sentence(e.value)


# ------------------------------------------------------------------------------------------------------ sound bundle
def test_a_sound_bundle_loads_and_opens_its_models_by_name(bdir):
    b = bundle.load_bundle(bdir)
    assert b.portrait.shape == (48, 40, 3) and b.mask.shape == (48, 40) and 0 <= b.mask.min() <= b.mask.max() <= 1
    assert set(b.source) == set(bundle.SOURCE_ARRAYS)
    assert b.file("paste.onnx") == bdir / "paste.onnx"
    assert sorted(n for _, n in bundle.model_files(b.manifest)) == ["idle.npy", "paste.onnx", "renderer.onnx"]
    with pytest.raises(BundleError, match="'other.onnx' is not listed"):
        b.file("other.onnx")


@pytest.mark.parametrize("name", ["a", "renderer.fp16.onnx", "x y.npy"])
def test_plain_names(name):
    assert bundle.is_plain_name(name)


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "a\\b", "/etc/passwd", "C:x", " x", "x\0", 3, None])
def test_not_plain_names(name):
    assert not bundle.is_plain_name(name)


# ------------------------------------------------------------------------------------------------------ hostile paths
@pytest.mark.parametrize("name", ["../../x", "/tmp/outside.onnx", "sub/paste.onnx", "..\\x"])
def test_files_entry_outside_the_bundle_is_refused_even_with_a_matching_hash(bdir, tmp_path, name):
    outside = tmp_path / "x"
    outside.write_bytes(b"outside")
    edit(bdir, lambda m: m["files"].__setitem__(name, bundle.file_entry(outside)))
    for verify in (True, False):
        msg = refused(bdir, verify)
        assert repr(name) in msg and "plain file name" in msg and str(bdir / "manifest.json") in msg


@pytest.mark.parametrize("where", ["paste", "variant", "idle"])
@pytest.mark.parametrize("name", ["../../x.onnx", "/abs/x.onnx"])
def test_model_path_outside_the_bundle_is_refused(bdir, tmp_path, where, name):
    def change(m):
        models = m["models"]
        target = {"paste": models["paste"], "variant": models["renderer"]["variants"]["fp32"],
                  "idle": models["audio2motion"]["idle"]}[where]
        target["file"] = name
        m["files"][name] = m["files"]["paste.onnx"]        # even "listed" with a matching hash
    edit(bdir, change)
    msg = refused(bdir, verify=False)
    assert repr(name) in msg and "plain file name" in msg


@pytest.mark.parametrize("where", ["paste", "variant", "idle", "idle-string"])
def test_unhashed_model_is_refused(bdir, where):
    (bdir / "extra.onnx").write_bytes(b"not listed")

    def change(m):
        models = m["models"]
        if where == "idle-string":
            models["audio2motion"]["idle"] = "extra.onnx"
            return
        target = {"paste": models["paste"], "variant": models["renderer"]["variants"]["fp32"],
                  "idle": models["audio2motion"]["idle"]}[where]
        target["file"] = "extra.onnx"
    edit(bdir, change)
    for verify in (True, False):
        msg = refused(bdir, verify)
        assert "'extra.onnx'" in msg and "not listed with its sha256" in msg and "export" in msg


def test_symlink_pointing_outside_is_refused(bdir, tmp_path):
    outside = tmp_path / "outside.onnx"
    outside.write_bytes((bdir / "paste.onnx").read_bytes())      # same bytes: the hash alone would pass
    (bdir / "paste.onnx").unlink()
    os.symlink(outside, bdir / "paste.onnx")
    assert sha256_file(bdir / "paste.onnx") == json.loads((bdir / "manifest.json").read_text())["files"]["paste.onnx"][
        "sha256"]
    msg = refused(bdir)
    assert str(bdir / "paste.onnx") in msg and "symbolic link" in msg
    b = bundle.load_bundle(bdir, verify=False)                    # the loader without hashing: models still checked
    with pytest.raises(BundleError, match="symbolic link"):
        b.file("paste.onnx")


def test_symlinked_baked_file_is_refused_without_verify(bdir, tmp_path):
    outside = tmp_path / "p.png"
    outside.write_bytes((bdir / "portrait.png").read_bytes())
    (bdir / "portrait.png").unlink()
    os.symlink(outside, bdir / "portrait.png")
    for verify in (True, False):
        assert "portrait.png" in refused(bdir, verify) and "symbolic link" in refused(bdir, verify)


# ------------------------------------------------------------------------------------------------------ wrong types
@pytest.mark.parametrize("change,names", [
    (lambda m: m["files"].__setitem__("source.npz", "abc"), "'source.npz'"),
    (lambda m: m["files"].__setitem__("source.npz", {"sha256": 5}), "'source.npz'"),
    (lambda m: m["files"]["portrait.png"].__setitem__("bytes", "12"), "'portrait.png'"),
    (lambda m: m.__setitem__("models", ["renderer.onnx"]), "models section"),
    (lambda m: m["models"]["paste"].__setitem__("file", ["paste.onnx"]), "models.paste.file"),
    (lambda m: m["models"]["renderer"]["variants"]["fp32"].__setitem__("file", 7), "models.renderer.variants.fp32.file"),
    (lambda m: m.__setitem__("format_version", True), "format version"),
    (lambda m: m.__setitem__("fps", "25"), "fps should be"),
    (lambda m: m.pop("profile"), "profile should be"),
], ids=["entry-str", "sha-int", "bytes-str", "models-list", "file-list", "file-int", "version-bool", "fps-str",
        "no-profile"])
def test_wrong_types_are_one_sentence_naming_the_manifest(bdir, change, names):
    edit(bdir, change)
    msg = refused(bdir, verify=False)
    assert str(bdir / "manifest.json") in msg and names in msg


# ------------------------------------------------------------------------------------------------------ add_files
def test_add_files_keeps_the_closed_world(bdir):
    before = (bdir / "manifest.json").read_bytes()
    with pytest.raises(BundleError, match=r"'\.\./x'"):
        bundle.add_files(bdir, ["../x"])
    (bdir / "new.onnx").write_bytes(b"new")
    with pytest.raises(BundleError, match="'unlisted.onnx'"):
        bundle.add_files(bdir, ["new.onnx"], models={"paste": {"file": "unlisted.onnx"}})
    assert (bdir / "manifest.json").read_bytes() == before                 # nothing half-registered
    m = bundle.add_files(bdir, ["new.onnx"], models={"paste": {"file": "new.onnx"}})
    assert m["files"]["new.onnx"]["sha256"] == sha256_file(bdir / "new.onnx")
    assert bundle.load_bundle(bdir).file("new.onnx").read_bytes() == b"new"
