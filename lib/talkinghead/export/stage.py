"""The export stage (notebooks/05_export.ipynb, `python -m talkinghead export`): renderer.onnx and its variants,
paste.onnx and audio2motion.onnx (+ idle.npy) written into the avatar bundle and registered in its manifest, the
variant table, and one motion through every variant.

The files of one export and the manifest that lists them are committed as one unit (`fileio.file_set`): a run
killed or failing at any point leaves the bundle as it was, or wholly exported (never a manifest whose hashes do not
match its files). A re-export leaves exactly the renderer variants it made."""
from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import numpy as np

from .. import features_onnx, layout
from ..audio import FeatureParams
from ..bundle import (A2M_FILE, IDLE_FILE, MANIFEST_FILE, PASTE_FILE, RENDERER_FILES, check_manifest, file_entry,
                      load_bundle, read_manifest)
from ..fileio import FileSet, file_set, load_json, save_json
from ..live import choice
from ..paths import avatar_dir
from .graph import OPSET, export_graph, op_types, session
from .measure import evaluate_variant, latencies
from .modules import a2m_step_module, paste_module, renderer_module
from .motions import motions_for, random_motions
from .variants import INT8_MIN_PSNR_DB, make_fp16, make_int8

VARIANTS = ("fp32", "fp16", "int8")
VARIANT_USE = {"fp32": "reference", "fp16": "GPU (CPU speed depends on the CPU)",
               "int8": "smallest file (CPU speed depends on the CPU's int8 support: see latency_ms)"}


def load_lp(bundle, lp=None):
    """`lp` when given, else the LivePortrait networks of the bundle's profile (`liveportrait.load_liveportrait`)."""
    if lp is not None:
        return lp
    from ..liveportrait import load_liveportrait     # torch-bearing: imported where used (see __init__)

    return load_liveportrait(profile=bundle.profile)


def export_renderer(bundle_dir=None, lp=None, variants=VARIANTS, calibration=None, evaluation=None,
                    latency_frames: int = 10, progress: bool = True, register: bool = True,
                    int8_min_psnr_db: float = INT8_MIN_PSNR_DB, fs: FileSet | None = None) -> dict:
    """Write renderer.onnx (+ fp16 / int8 variants) into the bundle; returns the manifest's `renderer` entry.

    `fs`: stage the files into this file set (committed by the caller) instead of committing them here.

    `calibration`: motions (N, 69) for int8 calibration; `evaluation`: held-out motions (M, 69) on which every
    variant's max/mean error and PSNR against the PyTorch output are measured (defaults: `random_motions`).
    `int8_min_psnr_db`: an int8 block whose quantization alone brings the face below this PSNR stays float.
    """
    import torch

    variants = tuple(variants)
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown renderer variant(s) {sorted(unknown)}: use {', '.join(VARIANTS)}")
    if "fp32" not in variants:
        variants = ("fp32",) + variants      # the others are made from it
    bundle_dir = Path(bundle_dir) if bundle_dir else avatar_dir()
    bundle = load_bundle(bundle_dir, verify=False)
    calibration = random_motions(16, 1) if calibration is None else np.asarray(calibration, np.float32)
    evaluation = random_motions(4, 2) if evaluation is None else np.asarray(evaluation, np.float32)
    module = renderer_module(load_lp(bundle, lp), bundle)
    say = print if progress else (lambda *a, **k: None)

    with _unit(bundle_dir, fs) as fs:
        t0 = time.perf_counter()
        say("exporting renderer.onnx (warping, generator and stitching, the portrait's features inside) ...")
        export_graph(module, (torch.zeros(1, layout.MOTION_DIM),), fs.path(RENDERER_FILES["fp32"]), ["motion"],
                     ["face"], {"motion": {0: "batch"}, "face": {0: "batch"}})
        say(f"renderer.onnx exported in {time.perf_counter() - t0:.1f} s")
        with torch.no_grad():
            reference = module(torch.from_numpy(evaluation)).numpy()
        out = {v: _make_variant(fs, v, calibration, evaluation, reference, int8_min_psnr_db, say, progress)
               for v in variants}
        lat = latencies({v: fs.path(RENDERER_FILES[v]) for v in out}, {"motion": evaluation[:1]}, latency_frames,
                        progress=progress)
        for v in out:
            out[v]["latency_ms"] = lat[v]
        crop = layout.CROP_SIZE
        entry = {"input": "motion", "output": "face", "variants": {**out, **kept_variants(bundle)},
                 **default_variant(out),
                 "shape": {"motion": ["B", layout.MOTION_DIM], "face": ["B", 3, crop, crop]}}
        if register:
            stale = [f for v, f in RENDERER_FILES.items() if v not in out]
            stage_manifest(bundle_dir, fs, drop=stale, renderer=entry)
    return entry


def kept_variants(bundle) -> dict:
    """Renderer variants this exporter does not make (the pocket student of notebook 07) that the manifest lists with
    a hashed file: a re-export keeps them, since they were distilled from the same portrait and networks."""
    old = ((bundle.manifest.get("models") or {}).get("renderer") or {}).get("variants") or {}
    return {v: e for v, e in old.items() if v not in VARIANTS and isinstance(e, dict)
            and e.get("file") in bundle.manifest["files"]}


def default_variant(variants: dict) -> dict:
    """{"default": the fastest variant measured here (`latency_ms`) among those whose quality passes
    (`live.choice.quality`), "default_why": why}: the manifest's choice, never assumed from a variant's label."""
    ok = choice.passing(variants)
    best = min(ok, key=lambda v: variants[v]["latency_ms"])
    ms = ", ".join(f"{v} {variants[v]['latency_ms']:.1f}" for v in ok if v != best)
    failed = [v for v in variants if v not in ok]
    why = (f"fastest measured at export ({variants[best]['latency_ms']:.1f} ms per frame" + (f"; {ms} ms" if ms else "")
           + ") among the variants whose quality passes" + (f" (not {', '.join(failed)})" if failed else ""))
    return {"default": best, "default_why": why}


def _make_variant(fs: FileSet, v: str, calibration, evaluation, reference, int8_min_psnr_db: float, say,
                  progress: bool = False) -> dict:
    """Make variant `v` from renderer.onnx (fp32 is already staged) and measure it: its manifest entry."""
    fp32, path = fs.path(RENDERER_FILES["fp32"]), fs.path(RENDERER_FILES[v])
    t0 = time.perf_counter()
    if v != "fp32":
        say(f"making {RENDERER_FILES[v]} ...")
    if v == "fp16":
        info = make_fp16(fp32, path)
    elif v == "int8":
        info = make_int8(fp32, path, calibration, evaluation, min_psnr_db=int8_min_psnr_db, progress=progress)
    else:
        info = {"float_ops": op_types(path)}
    if v != "fp32":
        say(f"{RENDERER_FILES[v]} made in {time.perf_counter() - t0:.1f} s")
    return dict(file=RENDERER_FILES[v], use=VARIANT_USE[v], **evaluate_variant(path, evaluation, reference), **info)


def export_paste(bundle_dir=None, register: bool = True, fs: FileSet | None = None) -> dict:
    """Write paste.onnx into the bundle; returns the manifest's `paste` entry (`fs`: see `export_renderer`)."""
    import torch

    bundle_dir = Path(bundle_dir) if bundle_dir else avatar_dir()
    bundle = load_bundle(bundle_dir, verify=False)
    h, w = bundle.portrait.shape[:2]
    crop = layout.CROP_SIZE
    with _unit(bundle_dir, fs) as fs:
        export_graph(paste_module(bundle), (torch.zeros(1, 3, crop, crop),), fs.path(PASTE_FILE), ["face"],
                     ["frame"], {"face": {0: "batch"}, "frame": {0: "batch"}})
        entry = {"file": PASTE_FILE, "input": "face", "output": "frame", "height": int(h), "width": int(w)}
        if register:
            stage_manifest(bundle_dir, fs, paste=entry)
    return entry


def export_features_graph(fs: FileSet, feature_params: dict) -> dict:
    """Stage features.onnx (the log-mel front end the model was trained on, as an ONNX graph shared by the live
    engine and the browser page) in `fs`; returns its manifest entry (`models.features`)."""
    params = FeatureParams.from_dict(feature_params)
    features_onnx.write_model(fs.path(features_onnx.FEATURES_FILE), params)
    return features_onnx.manifest_entry(params)


def load_a2m_checkpoint(bundle_dir: Path, checkpoint=None):
    """`checkpoint` when it is a loaded `a2m.Checkpoint`, else the one at that path (default: the bundle's
    audio2motion.pt), via `a2m.load_checkpoint` (one BundleError sentence when it is missing or unreadable)."""
    from ..a2m import CHECKPOINT_NAME, Checkpoint, load_checkpoint   # torch-bearing: imported where used

    if isinstance(checkpoint, Checkpoint):
        return checkpoint
    return load_checkpoint(checkpoint or Path(bundle_dir) / CHECKPOINT_NAME)


def export_audio2motion(bundle_dir=None, checkpoint=None, register: bool = True, fs: FileSet | None = None) -> dict:
    """Write audio2motion.onnx (one streaming step) and idle.npy (if any) into the bundle; returns its manifest entry.

    `checkpoint`: a path or a loaded `a2m.Checkpoint` (default: the bundle's audio2motion.pt). `fs`: see
    `export_renderer`.
    """
    import torch

    bundle_dir = Path(bundle_dir) if bundle_dir else avatar_dir()
    ckpt = load_a2m_checkpoint(bundle_dir, checkpoint)
    model, c = ckpt.model, ckpt.config
    conv_shape, gru_shape = [1, c.conv_kernel - 1, c.hidden], [c.layers, 1, c.hidden]
    args = (torch.zeros(1, 2, c.mel_per_frame, c.n_mels), torch.zeros(*conv_shape), torch.zeros(*gru_shape),
            torch.full((1,), c.n_emotions, dtype=torch.long))
    with _unit(bundle_dir, fs) as fs:
        export_graph(a2m_step_module(model), args, fs.path(A2M_FILE),
                     ["features", "conv_state", "gru_state", "emotion"], ["motion", "conv_state_out", "gru_state_out"],
                     {"features": {1: "chunk"}, "motion": {1: "chunk"}})
        entry = _a2m_entry(ckpt, conv_shape, gru_shape)
        if ckpt.idle is not None:
            np.save(fs.path(IDLE_FILE), np.ascontiguousarray(ckpt.idle.loop, np.float32))
            entry["idle"] = {"file": IDLE_FILE, "dims": ckpt.idle.dims.tolist(), "fps": float(ckpt.idle.fps),
                             "frames": int(len(ckpt.idle.loop)),
                             "what": "loopable offsets (frames, len(dims)) added to motion[:, dims], played cyclically"}
        if register:
            stage_manifest(bundle_dir, fs, drop=[] if ckpt.idle is not None else [IDLE_FILE], audio2motion=entry)
    return entry


def _a2m_entry(ckpt, conv_shape, gru_shape) -> dict:
    """The manifest's `audio2motion` entry of a checkpoint (its `idle` filled in by the caller)."""
    c = ckpt.config
    silence = ckpt.model.silence.detach().cpu().numpy()
    return {"file": A2M_FILE, "lookahead_frames": int(c.lookahead_frames), "conv_state_shape": conv_shape,
             "gru_state_shape": gru_shape, "n_emotions": int(c.n_emotions), "no_emotion_id": int(c.n_emotions),
             "emotions": list(layout.EMOTIONS[:c.n_emotions]),
             "silence": float(silence.flat[0]) if np.all(silence == silence.flat[0]) else silence.tolist(),
             "feature_shape": [c.mel_per_frame, c.n_mels], "feature_params": dict(ckpt.feature_params),
             "fps": float(c.fps), "mode": ckpt.mode, "idle": None,
            "inputs": ["features", "conv_state", "gru_state", "emotion"],
            "outputs": ["motion", "conv_state_out", "gru_state_out"]}


@contextlib.contextmanager
def _unit(bundle_dir: Path, fs: FileSet | None):
    """The caller's file set, else a new one for the bundle that commits when the block ends without error."""
    if fs is not None:
        yield fs
        return
    with file_set(bundle_dir) as own:
        yield own


def stage_manifest(bundle_dir: Path, fs: FileSet, drop=(), **entries) -> dict:
    """Stage (last) the manifest listing every file staged in `fs` with its sha256, without the `drop`ped files
    (removed at commit), with `entries` merged into its `models` section; returns it."""
    manifest = read_manifest(bundle_dir)
    files = {name: staged for name, staged in fs.staged.items() if name != MANIFEST_FILE}
    for name in drop:
        if name not in files:
            manifest["files"].pop(name, None)
            if (bundle_dir / name).exists():
                fs.remove(name)
    for name, staged in files.items():
        manifest["files"][name] = file_entry(staged)
    models = dict(manifest.get("models") or {})
    models.update(entries, opset=OPSET)
    manifest["models"] = models
    check_manifest(bundle_dir / MANIFEST_FILE, manifest)
    save_json(fs.path(MANIFEST_FILE), manifest)
    return manifest


def export_bundle(bundle_dir=None, dataset_path=None, variants=VARIANTS, progress: bool = True, lp=None,
                  checkpoint=None, n_calibration: int = 16, n_eval: int = 4, latency_frames: int = 10,
                  int8_min_psnr_db: float = INT8_MIN_PSNR_DB) -> dict:
    """Export everything (renderer variants, paste, audio2motion, features) into the bundle and record it in manifest.json.

    Calibration motions come from the dataset's valid frames, held-out evaluation motions from other corpus lines;
    without a dataset, small random motions around zero (`random_motions`). `int8_min_psnr_db`: see
    `export_renderer`. Returns a report: the manifest's `models` section, the motions' provenance, the files written
    and their sizes.
    """
    bundle_dir = Path(bundle_dir) if bundle_dir else avatar_dir()
    say = print if progress else (lambda *a, **k: None)
    ckpt = _checkpoint_or_none(bundle_dir, checkpoint, say)   # a corrupt one fails here, before any work
    cal, ev, how = motions_for(dataset_path, n_calibration, n_eval)
    say(f"motions: {how}")
    t0 = time.perf_counter()
    with file_set(bundle_dir) as fs:                          # every file and the manifest: one unit
        entries = {"renderer": export_renderer(bundle_dir, lp=lp, variants=variants, calibration=cal, evaluation=ev,
                                               latency_frames=latency_frames, progress=progress, register=False,
                                               int8_min_psnr_db=int8_min_psnr_db, fs=fs)}
        entries["paste"] = export_paste(bundle_dir, register=False, fs=fs)
        say("paste.onnx exported")
        drop = [f for v, f in RENDERER_FILES.items() if v not in entries["renderer"]["variants"]]
        if ckpt is not None:
            entries["audio2motion"] = a2m = export_audio2motion(bundle_dir, ckpt, register=False, fs=fs)
            drop += [] if a2m.get("idle") else [IDLE_FILE]
            entries["features"] = export_features_graph(fs, a2m["feature_params"])
            say("audio2motion.onnx and features.onnx exported")
        stage_manifest(bundle_dir, fs, drop=drop, **entries)
    a2m = entries.get("audio2motion")
    manifest = load_json(bundle_dir / MANIFEST_FILE)
    models = manifest["models"]
    files = [v["file"] for v in models["renderer"]["variants"].values()] + [PASTE_FILE]
    if a2m:
        files += [A2M_FILE, features_onnx.FEATURES_FILE] + ([IDLE_FILE] if a2m.get("idle") else [])
    return {"bundle": str(bundle_dir), "models": models, "motions": how, "seconds": time.perf_counter() - t0,
            "files": {f: manifest["files"][f]["bytes"] for f in files}, "profile": manifest.get("profile")}


def _checkpoint_or_none(bundle_dir: Path, checkpoint, say):
    """The loaded Audio2Motion checkpoint; None (said) when the bundle has none yet; a BundleError when it is
    unreadable, corrupt or does not fit the model (export then stops, leaving the bundle as it was)."""
    from ..a2m import CHECKPOINT_NAME   # torch-bearing: imported where used

    if checkpoint is None and not (bundle_dir / CHECKPOINT_NAME).is_file():
        say(f"no {CHECKPOINT_NAME} in the bundle yet: audio2motion.onnx is not exported (train first, notebook 04)")
        return None
    return load_a2m_checkpoint(bundle_dir, checkpoint)


def variant_table(report: dict) -> str:
    """A plain-text table of the renderer variants (size, error vs PyTorch, PSNR, CPU latency, use)."""
    models = report.get("models", report)
    rows = [("variant", "file", "MB", "max err", "mean err", "PSNR dB", "CPU ms/frame", "for")]
    variants = models["renderer"]["variants"]
    for v in sorted(variants, key=lambda k: VARIANTS.index(k) if k in VARIANTS else 99):
        d = variants[v]
        rows.append((v, d["file"], f"{d['bytes'] / 1e6:.2f}", f"{d['max_abs_err']:.2e}", f"{d['mean_abs_err']:.2e}",
                     f"{d['psnr_db']:.1f}" if math.isfinite(d["psnr_db"]) else "inf", f"{d['latency_ms']:.1f}",
                     d.get("use", "")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_variants(bundle_dir, motion, variants=None) -> dict:
    """One motion (69,) through each exported renderer variant -> {variant: face (512, 512, 3) float in [0, 1]}."""
    bundle_dir = Path(bundle_dir)
    entry = load_json(bundle_dir / MANIFEST_FILE)["models"]["renderer"]["variants"]
    m = np.asarray(motion, np.float32).reshape(1, layout.MOTION_DIM)
    return {v: session(bundle_dir / d["file"]).run(None, {"motion": m})[0][0].transpose(1, 2, 0)
            for v, d in entry.items() if variants is None or v in variants}
