"""Notebook 05 (notebooks/05_export.ipynb): the int8 report, one motion through PyTorch and through every exported
variant, a whole frame from the bundle alone (numpy + onnxruntime), Audio2Motion streamed from ONNX, the files.

Functions that need torch import it inside (`compare_variants`); the rest run on the exported bundle only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import export, layout, live
from ..bundle import load_bundle
from ..dataset import load_dataset
from ..fileio import load_json


def int8_report(report: dict) -> str:
    """Text: how much of the renderer int8 quantized, which blocks stayed float, and each block's PSNR when it alone
    is quantized (worst first); "" when the export made no int8 variant."""
    int8 = report["models"]["renderer"]["variants"].get("int8")
    if not int8:
        return ""
    lines = [f"int8: {int8['quantized_layers']} of {int8['eligible_layers']} Conv/MatMul/Gemm layers quantized; "
             f"kept in float: {', '.join(int8['kept_float']) or 'none'}",
             "PSNR (dB) of the face when each block alone is quantized:"]
    for block, p in sorted(int8["block_psnr_db"].items(), key=lambda kv: kv[1]):
        lines.append(f"  {p:6.1f}  {block}{'   -> kept float' if block in int8['kept_float'] else ''}")
    return "\n".join(lines)


def held_out_motion(dataset_path) -> np.ndarray:
    """One held-out motion (69,) of the dataset (`export.motions_for`'s first evaluation motion)."""
    return export.motions_for(dataset_path, 1, 1)[1][0]


def compare_variants(bundle_dir, motion) -> tuple[list[np.ndarray], list[str]]:
    """One motion (69,) through the PyTorch renderer and each exported variant, with each variant's difference to
    PyTorch amplified 10x: (faces (512, 512, 3) float in [0, 1], titles), for `notebook.show_images`."""
    import torch

    bundle = load_bundle(bundle_dir)
    with torch.no_grad():
        ref = export.renderer_module(export.load_lp(bundle), bundle)(torch.from_numpy(motion[None].astype(np.float32)))
    ref = ref[0].numpy().transpose(1, 2, 0)
    images, titles = [ref], ["PyTorch"]
    for v, face in export.render_variants(bundle_dir, motion).items():
        images += [face, np.clip(10 * np.abs(face - ref), 0, 1)]
        titles += [v, f"|{v} - PyTorch| x10"]
    return images, titles


def onnx_frame(bundle_dir, motion, variant: str = "fp32") -> np.ndarray:
    """A whole frame uint8 (H, W, 3) from the bundle alone, as an app computes it: `live.BundleRuntime` (numpy and
    onnxruntime, reading only manifest.json and the files it lists) runs renderer.onnx then paste.onnx."""
    return live.BundleRuntime(bundle_dir, variant=variant).render(np.asarray(motion, np.float32)[None])[0]


def a2m_summary(bundle_dir) -> dict:
    """The manifest's streaming facts of audio2motion.onnx: lookahead, state shapes, emotions, idle mode."""
    a = load_json(Path(bundle_dir) / "manifest.json", "avatar manifest")["models"]["audio2motion"]
    return {k: a.get(k) for k in ("lookahead_frames", "conv_state_shape", "gru_state_shape", "n_emotions",
                                  "no_emotion_id", "mode")}


def plot_stream(bundle_dir, dataset_path, frames: int = 100, chunk: int = 4):
    """audio2motion.onnx streamed the way an app runs it (`export.stream_onnx` on `live.BundleRuntime`), chunk by
    chunk over the first `frames` frames of the dataset: its mouth opening beside the recording's. Returns the figure."""
    import matplotlib.pyplot as plt

    ds = load_dataset(dataset_path, min_valid_s=0.0)
    runtime = live.BundleRuntime(bundle_dir, variant="default")      # audio2motion only: no renderer measured
    m = export.stream_onnx(runtime, ds.features[:frames], chunk=chunk)
    t = np.arange(len(m)) / runtime.fps
    fig, ax = plt.subplots(figsize=(8, 2.5))
    ax.plot(t, layout.mouth_open(m), label="audio2motion.onnx (streamed)")
    ax.plot(t, layout.mouth_open(ds.motion[:len(m)]), label="recording", alpha=0.6)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mouth opening")
    ax.legend()
    fig.tight_layout()
    return fig


def files_report(bundle_dir, report: dict) -> str:
    """Text: every file the export wrote with its size and sha256 from the manifest, the motions used, the time."""
    manifest = load_json(Path(bundle_dir) / "manifest.json", "avatar manifest")
    lines = [f"{f:22s} {manifest['files'][f]['bytes'] / 1e6:8.2f} MB  sha256 {manifest['files'][f]['sha256'][:12]}…"
             for f in sorted(report["files"])]
    lines += [f"motions used: {report['motions']}",
              f"export took {report['seconds']:.0f} s; opset {report['models']['opset']}"]
    return "\n".join(lines)
