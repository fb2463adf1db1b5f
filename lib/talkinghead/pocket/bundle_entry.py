"""pocket.onnx in the avatar bundle: export, parity, cost and its manifest entry (notebooks/07_pocket_renderer.ipynb).

    pocket.onnx    motion float32 (B, 69) -> face float32 (B, 3, 512, 512) in [0, 1]   (B dynamic)
                   the renderer's contract exactly, so `paste.onnx` takes its output and the live engine runs it as
                   a renderer variant: `live.BundleRuntime(bundle, variant="pocket")`, `live.speak(..., variant=
                   "pocket")`, `python -m talkinghead speak --variant pocket`. The reference face, the normalisation
                   and the identity grid are constants inside; ops: Gemm, Conv, Resize, GridSample (2-D), pointwise.

The manifest's `models.renderer.variants.pocket` holds the file name (its sha256 is in `files`), the held-out quality
against the teacher (PSNR / SSIM at 512, and the two baselines), the FLOPs per frame (`flops.count_onnx`), the CPU
latency (batch 1, `LATENCY_THREADS` onnxruntime threads), the parity with PyTorch and the student's configuration.
`export.variant_table` reads it like the other variants (its error columns are against the teacher there).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from .. import layout, onnxrt
from ..live import choice
from ..errors import BundleError
from ..fileio import atomic_path, load_json
from ..bundle import add_files, load_bundle
from . import frame
from .flops import count_onnx, count_torch
from .student import PocketStudent, n_parameters

POCKET_FILE = "pocket.onnx"
VARIANT = "pocket"
LATENCY_THREADS = 2
PARITY_ATOL = 1e-4


def export_onnx(student: PocketStudent, path, output: str = "face") -> Path:
    """Write the student (or another module of motion (B, 69), such as the frame graph, whose output is named
    `output`) as ONNX (TorchScript exporter at the package's opset, onnxruntime basic optimisation, `onnx.checker`,
    atomic write)."""
    import warnings

    import onnx
    import torch

    from .. import export

    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="th-pocket-") as td:
        raw, opt = Path(td) / "raw.onnx", Path(td) / "opt.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(student.eval(), (torch.zeros(1, layout.MOTION_DIM),), str(raw),
                              opset_version=export.OPSET, dynamo=False, input_names=["motion"],
                              output_names=[output], dynamic_axes={"motion": {0: "batch"}, output: {0: "batch"}},
                              do_constant_folding=True)
        export.simplify(raw, opt)
        model = onnx.load(str(opt))
        onnx.checker.check_model(model, full_check=True)
        with atomic_path(path, suffix=".onnx") as tmp:
            onnx.save(model, str(tmp))
    return path


def session(path, threads: int | None = LATENCY_THREADS):
    """A quiet CPU onnxruntime session with `threads` intra-op threads (`talkinghead.onnxrt.session`)."""
    return onnxrt.session(path, threads=threads)


def parity(student: PocketStudent, path, motions: np.ndarray) -> dict:
    """max / mean |onnx - torch| over `motions`, run as one batch and frame by frame (the face in [0, 1])."""
    import torch

    m = np.asarray(motions, np.float32).reshape(-1, layout.MOTION_DIM)
    s = session(path)
    with torch.no_grad():
        ref = student(torch.from_numpy(m)).numpy()
    batch = s.run(None, {"motion": m})[0]
    single = np.concatenate([s.run(None, {"motion": m[i:i + 1]})[0] for i in range(len(m))])
    d = np.abs(np.concatenate([batch, single]) - np.concatenate([ref, ref]))
    return {"max_abs_err": float(d.max()), "mean_abs_err": float(d.mean()), "frames": int(len(m)),
            "ok": bool(d.max() < PARITY_ATOL)}


def latency_ms(path, threads: int = LATENCY_THREADS, frames: int = 20, warmup: int = 3) -> float:
    """Median ms per frame (batch 1) in onnxruntime on the CPU with `threads` threads."""
    x = {"motion": np.zeros((1, layout.MOTION_DIM), np.float32)}
    return float(choice.round_robin_ms({"pocket": session(path, threads)}, x, frames, warmup)["pocket"])


def register(bundle_dir, entry: dict, variant: str = VARIANT, files=None) -> dict:
    """Hash `files` (default: the entry's file, pocket.onnx) into manifest.json and set
    `models.renderer.variants[variant]` to `entry`."""
    bundle_dir = Path(bundle_dir)
    manifest = load_json(bundle_dir / "manifest.json", "avatar manifest")
    models = dict(manifest.get("models") or {})
    if "renderer" not in models:
        raise BundleError(f"{bundle_dir / 'manifest.json'}: the avatar has no exported renderer yet; export it first "
                          "(notebooks/05_export.ipynb or `python -m talkinghead export`), then distil.")
    renderer = dict(models["renderer"])
    renderer["variants"] = dict(renderer.get("variants") or {}, **{variant: entry})
    models["renderer"] = renderer
    return add_files(bundle_dir, files or [entry["file"]], models=models)


def export_pocket(bundle_dir, student: PocketStudent, evaluation: dict, data=None, config=None,
                  latency_frames: int = 20) -> dict:
    """Write pocket.onnx into the bundle, measure it (parity, FLOPs, CPU latency) and register it; returns the entry."""
    bundle_dir = Path(bundle_dir)
    path = export_onnx(student, bundle_dir / POCKET_FILE)
    n = len(data.train) if data is not None else 0
    held = data.motions.motion[n:][:8] if data is not None else np.zeros((2, layout.MOTION_DIM), np.float32)
    par = parity(student, path, held)
    if not par["ok"]:
        raise BundleError(f"{path}: the exported student differs from PyTorch by {par['max_abs_err']:.1e} "
                          f"(more than {PARITY_ATOL}); please report this.")
    fl = count_onnx(path)
    e = evaluation
    entry = {"file": POCKET_FILE, "use": "CPU real time: a per-avatar student distilled from the renderer",
             "bytes": path.stat().st_size, "psnr_db": round(e["psnr_512"], 2), "ssim": round(e["ssim_512"], 4),
             "max_abs_err": par["max_abs_err"], "mean_abs_err": par["mean_abs_err"],
             "vs": "the teacher (the PyTorch renderer) on held-out corpus lines; max/mean_abs_err: onnx vs PyTorch",
             "held_out": {"frames": e["frames"], "lines": e["lines"], "size": e["size"],
                          "psnr_db_student": round(e["psnr_student"], 2), "psnr_db_static": round(e["psnr_static"], 2),
                          "psnr_db_nearest": round(e["psnr_nearest"], 2)},
             "gflop_per_frame": round(fl["total"] / 1e9, 4),
             "gflop_by_op": {k: round(v / 1e9, 4) for k, v in fl["by_op"].items()},
             "gflop_conv_matmul": round(count_torch(student) / 1e9, 4),
             "latency_ms": round(latency_ms(path, LATENCY_THREADS, latency_frames), 3),
             "cpu_threads": LATENCY_THREADS, "parameters": n_parameters(student),
             "config": student.config.to_dict(), "float_ops": sorted(_op_types(path))}
    if data is not None:
        entry["teacher"] = {"frames": int(n), "train_size": int(data.size), "device": data.device,
                            "seconds_per_frame": round(float(data.seconds_per_frame), 4),
                            "kinds": {k: list(v) for k, v in data.motions.counts().items()}}
    if config is not None:
        entry["training"] = {"steps": int(config.steps), "batch": int(config.batch), "lr": float(config.lr),
                             "seed": int(config.seed)}
    register(bundle_dir, entry)
    entry["frame"] = export_frame(bundle_dir, student)
    return entry


def export_frame(bundle_dir, student: PocketStudent, motions: np.ndarray | None = None, variant: str = VARIANT) -> dict:
    """Write pocket_frame.onnx and pocket_background.png (`pocket.frame`) into a bundle whose manifest lists the
    pocket variant, check them against pocket.onnx's arithmetic + paste on `motions` (default: 4 random ones, within
    `frame.MAX_GREY_DIFF` grey levels) and set `models.renderer.variants.pocket.frame`; returns that entry.
    `variant`: the variant's name in the manifest ("pocket"; benchmarks list others)."""
    import torch
    from PIL import Image

    from ..export import paste_module, random_motions
    from ..pixels import over_background, to_uint8

    bundle_dir = Path(bundle_dir)
    bundle = load_bundle(bundle_dir, verify=False)
    variants = ((bundle.models.get("renderer") or {}).get("variants") or {})
    if not isinstance(variants.get(variant), dict):
        raise BundleError(f"{bundle_dir / 'manifest.json'}: the bundle has no pocket renderer to make a frame graph "
                          "of; distil one first (notebooks/07_pocket_renderer.ipynb or `python -m talkinghead distill`).")
    module = frame.frame_module(student, bundle)
    path = export_onnx(module, bundle_dir / frame.FRAME_FILE, output="rgba")
    rest = frame.background(student, bundle)
    with atomic_path(bundle_dir / frame.BACKGROUND_FILE, suffix=".png") as tmp:
        Image.fromarray(rest).save(tmp, format="PNG")
    m = np.asarray(random_motions(4, 3) if motions is None else motions, np.float32).reshape(-1, layout.MOTION_DIM)
    rgba = session(path).run(None, {"motion": m})[0]
    with torch.no_grad():
        full = to_uint8(paste_module(bundle)(student(torch.from_numpy(m))).numpy())
    diff = int(np.abs(over_background(rest, module.box, rgba).astype(np.int16) - full).max())
    if diff > frame.MAX_GREY_DIFF or not (rgba[..., 3] == 255).all():
        raise BundleError(f"{path}: the frame graph differs from pocket.onnx + paste by {diff} grey levels (more "
                          f"than {frame.MAX_GREY_DIFF}); please report this.")
    _, _, h, w = module.box
    entry = {"file": frame.FRAME_FILE, "background": frame.BACKGROUND_FILE, "box": [int(v) for v in module.box],
             "input": "motion", "output": "rgba", "shape": {"rgba": ["B", int(h), int(w), 4]},
             "max_grey_diff": diff, "vs": "pocket.onnx + paste.onnx, rounded like talkinghead.pixels.to_uint8",
             "latency_ms": round(latency_ms(path, LATENCY_THREADS, frames=10, warmup=2), 3),
             "cpu_threads": LATENCY_THREADS}
    register(bundle_dir, dict(variants[variant], frame=entry), variant, [frame.FRAME_FILE, frame.BACKGROUND_FILE])
    return entry


def _op_types(path) -> set:
    import onnx

    return {n.op_type for n in onnx.load(str(path)).graph.node}


__all__ = ["export_pocket", "export_frame", "export_onnx", "parity", "latency_ms", "register", "session", "POCKET_FILE", "VARIANT"]
