"""Parity of the exported fp32 graphs with PyTorch (tests and notebooks/05_export.ipynb).

The sample profile's seeded G amplifies float rounding (an InstanceNorm over a channel with a spread of 2e-3): PyTorch
in float32 differs from PyTorch in float64, and even from itself at another batch size, by up to ~7e-4 on a few
pixels. So the renderer's parity is judged against a float64 PyTorch run: onnxruntime must be no further from it than
PyTorch float32 is (and the mean error must be tiny); everything before G (keypoints, W) and Audio2Motion must agree
within `PARITY_ATOL`.
"""
from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np

from .. import layout
from ..bundle import A2M_FILE, PASTE_FILE, RENDERER_FILES, load_bundle
from ..live.runtime import BundleRuntime
from ..paths import avatar_dir
from .graph import export_graph, session
from .modules import renderer_module
from .motions import random_motions
from .stage import load_a2m_checkpoint, load_lp

PARITY_ATOL = 1e-4  # default: fp32 onnxruntime vs PyTorch, every output element (issue #6)


def parity(bundle_dir=None, lp=None, motions=None, checkpoint=None, features=None, chunk: int = 3,
           atol: float = PARITY_ATOL) -> dict:
    """The parity checks (tests and notebook 05) of the exported fp32 graphs against PyTorch:

    renderer   max/mean |onnx - torch float32| on `motions`: max must be < `atol`; both runs' distance from a float64
               PyTorch run (`onnx_vs_fp64`, `torch_vs_fp64`) are reported to show how much is plain float32 rounding
    pre_g      the same for keypoints -> W (everything before G): must be < `atol`
    paste      paste.onnx(renderer.onnx(m)) vs BakedRenderer(paste=True)(m)
    a2m        audio2motion.onnx streamed over an utterance by the live runtime's own step (`stream_onnx`, chunks
               of `chunk`, warm-up dropped, silence flush) vs the offline PyTorch model (`forward`)
    Returns a dict of floats; `ok` says whether every check passed.
    """
    bundle_dir = Path(bundle_dir) if bundle_dir else avatar_dir()
    motions = random_motions(3, 7) if motions is None else np.asarray(motions, np.float32)
    out = _renderer_parity(bundle_dir, lp, motions)
    if (bundle_dir / A2M_FILE).exists():
        out["a2m"] = _a2m_parity(bundle_dir, checkpoint, features, chunk)
    ok = all(out[k]["max_abs_err"] < atol for k in ("renderer", "pre_g", "paste", "a2m") if k in out)
    out["ok"] = bool(ok)
    return out


def _renderer_parity(bundle_dir: Path, lp, motions: np.ndarray) -> dict:
    """{renderer, pre_g[, paste]}: renderer.onnx (and paste.onnx when present) against PyTorch on `motions`."""
    import torch

    bundle = load_bundle(bundle_dir, verify=False)
    lp = load_lp(bundle, lp)
    module = renderer_module(lp, bundle)
    out = {}
    with torch.no_grad():
        m = torch.from_numpy(motions)
        t32 = module(m).numpy()
        t64 = copy.deepcopy(module).double()(m.double()).numpy()
        onnx_face = session(bundle_dir / RENDERER_FILES["fp32"]).run(None, {"motion": motions})[0]
        out["renderer"] = {"max_abs_err": float(np.abs(onnx_face - t32).max()),
                           "mean_abs_err": float(np.abs(onnx_face - t32).mean()),
                           "onnx_vs_fp64": float(np.abs(onnx_face - t64).max()),
                           "torch_vs_fp64": float(np.abs(t32 - t64).max())}
        out["pre_g"] = _pre_g_parity(module, motions)
        if (bundle_dir / PASTE_FILE).exists():
            frame = session(bundle_dir / PASTE_FILE).run(None, {"face": onnx_face})[0]
            ref = renderer_module(lp, bundle, paste=True)(m).numpy()
            out["paste"] = {"max_abs_err": float(np.abs(frame - ref).max()),
                            "mean_abs_err": float(np.abs(frame - ref).mean()), "shape": list(frame.shape)}
    return out


def _pre_g_parity(module, motions) -> dict:
    """Export keypoints -> W alone and compare with PyTorch (shows where any renderer difference comes from)."""
    import torch

    class PreG(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.r = module

        def forward(self, motion):
            x_d = self.r.keypoints(motion)
            b = x_d.shape[0]
            return self.r.warping_module(self.r.feature_3d.expand(b, -1, -1, -1, -1), kp_driving=x_d,
                                         kp_source=self.r.x_s.expand(b, -1, -1))["out"]

    p = PreG().eval()
    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / "pre_g.onnx"
        export_graph(p, (torch.zeros(1, layout.MOTION_DIM),), path, ["motion"], ["warped"],
                     {"motion": {0: "b"}, "warped": {0: "b"}})
        got = session(path).run(None, {"motion": motions})[0]
    with torch.no_grad():
        ref = p(torch.from_numpy(motions)).numpy()
    return {"max_abs_err": float(np.abs(got - ref).max()), "scale": float(np.abs(ref).max())}


def stream_onnx(runtime, features: np.ndarray, emotion: int | None = None, chunk: int = 1) -> np.ndarray:
    """Run audio2motion.onnx over a whole utterance (N, 4, 80) the way the live engine does -> motion (N, 69).

    `runtime`: a `live.BundleRuntime` (or a bundle folder to open one on). Its own streaming step
    (`BundleRuntime.a2m_step`: plain numpy + onnxruntime, no torch) is fed chunks of `chunk` frames with the state
    fed back; the first `lookahead_frames` outputs (warm-up) are dropped and `lookahead_frames` frames of the
    manifest's silence flush the end.
    """
    if not isinstance(runtime, BundleRuntime):
        runtime = BundleRuntime(runtime, variant="default", verify=False)   # no renderer measured: a2m only
    L = runtime.lookahead
    feats = np.concatenate([np.asarray(features, np.float32), runtime.silence_features(L)])
    state, eid, outs = runtime.a2m_init_state(), runtime.emotion_id(emotion), []
    for s in range(0, len(feats), chunk):
        y, state = runtime.a2m_step(feats[s:s + chunk], state, eid)
        outs.append(y)
    return np.concatenate(outs)[L:]


def _a2m_parity(bundle_dir: Path, checkpoint, features, chunk) -> dict:
    """audio2motion.onnx streamed by the live runtime (`stream_onnx`) vs the offline PyTorch model, without and
    with an emotion label."""
    import torch

    ckpt = load_a2m_checkpoint(bundle_dir, checkpoint)
    c = ckpt.config
    if features is None:
        rng = np.random.default_rng(3)
        features = (ckpt.model.feat_mean.numpy() + ckpt.model.feat_std.numpy()
                    * rng.normal(0, 1, (37, c.mel_per_frame, c.n_mels))).astype(np.float32)
    runtime = BundleRuntime(bundle_dir, variant="default", verify=False)     # a2m only: no renderer measured
    res = {}
    for emo in (None, 1):
        got = stream_onnx(runtime, features, emo, chunk)
        with torch.no_grad():
            e = None if emo is None else torch.tensor([emo])
            ref = ckpt.model.eval()(torch.from_numpy(features)[None], e)[0].numpy()
        res["no_label" if emo is None else f"emotion_{emo}"] = float(np.abs(got - ref).max())
    return {"max_abs_err": max(res.values()), **res, "frames": int(len(features)), "chunk": int(chunk)}
