"""The export stage (notebooks/05_export.ipynb, `python -m talkinghead export`): renderer.onnx and its variants,
paste.onnx and audio2motion.onnx (+ idle.npy) written into the avatar bundle and registered in its manifest, the
variant table, and one motion through every variant."""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from .. import layout
from ..bundle import A2M_FILE, IDLE_FILE, MANIFEST_FILE, PASTE_FILE, RENDERER_FILES, add_files, load_bundle
from ..errors import BundleError
from ..fileio import atomic_path, load_json
from ..paths import avatar_dir
from .graph import OPSET, export_graph, op_types, session
from .measure import evaluate_variant, latencies
from .modules import a2m_step_module, paste_module, renderer_module
from .motions import motions_for, random_motions
from .variants import INT8_MIN_PSNR_DB, make_fp16, make_int8

VARIANTS = ("fp32", "fp16", "int8")
VARIANT_USE = {"fp32": "reference", "fp16": "GPU (CPU speed depends on the CPU)", "int8": "CPU"}


def load_lp(bundle, lp=None):
    """`lp` when given, else the LivePortrait networks of the bundle's profile (`liveportrait.load_liveportrait`)."""
    if lp is not None:
        return lp
    from ..liveportrait import load_liveportrait     # torch-bearing: imported where used (see __init__)

    return load_liveportrait(profile=bundle.profile)


def export_renderer(bundle_dir=None, lp=None, variants=VARIANTS, calibration=None, evaluation=None,
                    latency_frames: int = 10, progress: bool = True, register: bool = True,
                    int8_min_psnr_db: float = INT8_MIN_PSNR_DB) -> dict:
    """Write renderer.onnx (+ fp16 / int8 variants) into the bundle; returns the manifest's `renderer` entry.

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

    t0 = time.perf_counter()
    export_graph(module, (torch.zeros(1, layout.MOTION_DIM),), bundle_dir / RENDERER_FILES["fp32"], ["motion"],
                 ["face"], {"motion": {0: "batch"}, "face": {0: "batch"}})
    say(f"renderer.onnx exported in {time.perf_counter() - t0:.1f} s")
    with torch.no_grad():
        reference = module(torch.from_numpy(evaluation)).numpy()
    out = {v: _make_variant(bundle_dir, v, calibration, evaluation, reference, int8_min_psnr_db, say)
           for v in variants}
    lat = latencies({v: bundle_dir / RENDERER_FILES[v] for v in out}, {"motion": evaluation[:1]}, latency_frames)
    for v in out:
        out[v]["latency_ms"] = lat[v]
    crop = layout.CROP_SIZE
    entry = {"input": "motion", "output": "face", "variants": out, "default": "fp32",
             "shape": {"motion": ["B", layout.MOTION_DIM], "face": ["B", 3, crop, crop]}}
    if register:
        _register(bundle_dir, [RENDERER_FILES[v] for v in out], renderer=entry)
    return entry


def _make_variant(bundle_dir: Path, v: str, calibration, evaluation, reference, int8_min_psnr_db: float, say) -> dict:
    """Make variant `v` from renderer.onnx (fp32 is already written) and measure it: its manifest entry."""
    fp32, path = bundle_dir / RENDERER_FILES["fp32"], bundle_dir / RENDERER_FILES[v]
    t0 = time.perf_counter()
    if v == "fp16":
        info = make_fp16(fp32, path)
    elif v == "int8":
        info = make_int8(fp32, path, calibration, evaluation, min_psnr_db=int8_min_psnr_db)
    else:
        info = {"float_ops": op_types(path)}
    if v != "fp32":
        say(f"{path.name} made in {time.perf_counter() - t0:.1f} s")
    return dict(file=path.name, use=VARIANT_USE[v], **evaluate_variant(path, evaluation, reference), **info)


def export_paste(bundle_dir=None) -> dict:
    """Write paste.onnx into the bundle; returns the manifest's `paste` entry."""
    import torch

    bundle_dir = Path(bundle_dir) if bundle_dir else avatar_dir()
    bundle = load_bundle(bundle_dir, verify=False)
    h, w = bundle.portrait.shape[:2]
    crop = layout.CROP_SIZE
    export_graph(paste_module(bundle), (torch.zeros(1, 3, crop, crop),), bundle_dir / PASTE_FILE, ["face"], ["frame"],
                 {"face": {0: "batch"}, "frame": {0: "batch"}})
    entry = {"file": PASTE_FILE, "input": "face", "output": "frame", "height": int(h), "width": int(w)}
    _register(bundle_dir, [PASTE_FILE], paste=entry)
    return entry


def load_a2m_checkpoint(bundle_dir: Path, checkpoint=None):
    """`checkpoint` when it is a loaded `a2m.Checkpoint`, else the one at that path (default: the bundle's
    audio2motion.pt), via `a2m.load_checkpoint` (one BundleError sentence when it is missing or unreadable)."""
    from ..a2m import CHECKPOINT_NAME, Checkpoint, load_checkpoint   # torch-bearing: imported where used

    if isinstance(checkpoint, Checkpoint):
        return checkpoint
    return load_checkpoint(checkpoint or Path(bundle_dir) / CHECKPOINT_NAME)


def export_audio2motion(bundle_dir=None, checkpoint=None) -> dict:
    """Write audio2motion.onnx (one streaming step) and idle.npy (if any) into the bundle; returns its manifest entry.

    `checkpoint`: a path or a loaded `a2m.Checkpoint` (default: the bundle's audio2motion.pt).
    """
    import torch

    bundle_dir = Path(bundle_dir) if bundle_dir else avatar_dir()
    ckpt = load_a2m_checkpoint(bundle_dir, checkpoint)
    model, c = ckpt.model, ckpt.config
    conv_shape, gru_shape = [1, c.conv_kernel - 1, c.hidden], [c.layers, 1, c.hidden]
    args = (torch.zeros(1, 2, c.mel_per_frame, c.n_mels), torch.zeros(*conv_shape), torch.zeros(*gru_shape),
            torch.full((1,), c.n_emotions, dtype=torch.long))
    export_graph(a2m_step_module(model), args, bundle_dir / A2M_FILE,
                 ["features", "conv_state", "gru_state", "emotion"], ["motion", "conv_state_out", "gru_state_out"],
                 {"features": {1: "chunk"}, "motion": {1: "chunk"}})
    silence = model.silence.detach().cpu().numpy()
    files = [A2M_FILE]
    entry = {"file": A2M_FILE, "lookahead_frames": int(c.lookahead_frames), "conv_state_shape": conv_shape,
             "gru_state_shape": gru_shape, "n_emotions": int(c.n_emotions), "no_emotion_id": int(c.n_emotions),
             "emotions": list(layout.EMOTIONS[:c.n_emotions]),
             "silence": float(silence.flat[0]) if np.all(silence == silence.flat[0]) else silence.tolist(),
             "feature_shape": [c.mel_per_frame, c.n_mels], "feature_params": dict(ckpt.feature_params),
             "fps": float(c.fps), "mode": ckpt.mode, "idle": None,
             "inputs": ["features", "conv_state", "gru_state", "emotion"],
             "outputs": ["motion", "conv_state_out", "gru_state_out"]}
    if ckpt.idle is not None:
        with atomic_path(bundle_dir / IDLE_FILE, suffix=".npy") as tmp:
            np.save(tmp, np.ascontiguousarray(ckpt.idle.loop, np.float32))
        entry["idle"] = {"file": IDLE_FILE, "dims": ckpt.idle.dims.tolist(), "fps": float(ckpt.idle.fps),
                         "frames": int(len(ckpt.idle.loop)),
                         "what": "loopable offsets (frames, len(dims)) added to motion[:, dims], played cyclically"}
        files.append(IDLE_FILE)
    _register(bundle_dir, files, audio2motion=entry)
    return entry


def _register(bundle_dir: Path, files, **entries) -> dict:
    """Hash `files` into manifest.json and merge `entries` into its `models` section."""
    models = dict(load_json(bundle_dir / MANIFEST_FILE, "avatar manifest").get("models") or {})
    models.update(entries, opset=OPSET)
    return add_files(bundle_dir, files, models=models)


def export_bundle(bundle_dir=None, dataset_path=None, variants=VARIANTS, progress: bool = True, lp=None,
                  checkpoint=None, n_calibration: int = 16, n_eval: int = 4, latency_frames: int = 10,
                  int8_min_psnr_db: float = INT8_MIN_PSNR_DB) -> dict:
    """Export everything (renderer variants, paste, audio2motion) into the bundle and record it in manifest.json.

    Calibration motions come from the dataset's valid frames, held-out evaluation motions from other corpus lines;
    without a dataset, small random motions around zero (`random_motions`). `int8_min_psnr_db`: see
    `export_renderer`. Returns a report: the manifest's `models` section, the motions' provenance, the files written
    and their sizes.
    """
    bundle_dir = Path(bundle_dir) if bundle_dir else avatar_dir()
    say = print if progress else (lambda *a, **k: None)
    cal, ev, how = motions_for(dataset_path, n_calibration, n_eval)
    say(f"motions: {how}")
    t0 = time.perf_counter()
    export_renderer(bundle_dir, lp=lp, variants=variants, calibration=cal, evaluation=ev,
                    latency_frames=latency_frames, progress=progress, int8_min_psnr_db=int8_min_psnr_db)
    export_paste(bundle_dir)
    say("paste.onnx exported")
    a2m = None
    try:
        a2m = export_audio2motion(bundle_dir, checkpoint)
        say("audio2motion.onnx exported")
    except BundleError as e:
        say(f"audio2motion.onnx NOT exported: {e}")
    manifest = load_json(bundle_dir / MANIFEST_FILE)
    models = manifest["models"]
    files = [v["file"] for v in models["renderer"]["variants"].values()] + [PASTE_FILE]
    if a2m:
        files += [A2M_FILE] + ([IDLE_FILE] if a2m.get("idle") else [])
    return {"bundle": str(bundle_dir), "models": models, "motions": how, "seconds": time.perf_counter() - t0,
            "files": {f: manifest["files"][f]["bytes"] for f in files}, "profile": manifest.get("profile")}


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
