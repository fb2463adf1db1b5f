"""The torch modules that become ONNX graphs (notebooks/05_export.ipynb): the baked renderer, the paste-back step and
one streaming Audio2Motion step, each a CPU float32 copy in eval mode (the caller's networks are untouched)."""
from __future__ import annotations

import copy

import numpy as np

from .. import layout
from ..crop import paste_grid


def export_networks(lp):
    """A CPU float32 copy of the networks the renderer uses, G's spectral norm folded (the shared `lp` is untouched)."""
    import torch

    from ..liveportrait.generator import fold_spectral_norm     # torch-bearing: imported where used (see __init__)

    nets = {name: copy.deepcopy(getattr(lp, name)).to("cpu", torch.float32).eval()
            for name in ("warping_module", "spade_generator", "stitching_retargeting_module")}
    fold_spectral_norm(nets["spade_generator"])
    out = copy.copy(lp)                     # a LivePortrait (or any object with the same attributes)
    for k, v in dict(nets, device=torch.device("cpu"), dtype=torch.float32).items():
        setattr(out, k, v)
    return out


def renderer_module(lp, bundle, paste: bool = False):
    """`render.BakedRenderer` on `export_networks(lp)`, in eval mode: exactly what renderer.onnx computes."""
    from ..render import BakedRenderer     # torch-bearing: imported where used (see __init__)

    return BakedRenderer(export_networks(lp), bundle, paste=paste).eval()


def paste_module(bundle):
    """forward(face (B, 3, CROP_SIZE, CROP_SIZE)) -> frame (B, 3, H, W): BakedRenderer's paste step with the bundle's
    grid, mask (paste_mask.png) and portrait as buffers."""
    import torch
    import torch.nn.functional as F

    class PasteStep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            h, w = bundle.portrait.shape[:2]
            grid = paste_grid(bundle.source["M_c2o"], (h, w), layout.CROP_SIZE)
            img = bundle.portrait.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
            for name, value in {"grid": grid, "mask": bundle.mask[None, None], "portrait": img}.items():
                self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(value, np.float32)))

        def forward(self, face):
            grid = self.grid.expand(face.shape[0], -1, -1, -1)
            warped = F.grid_sample(face, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            return torch.clamp(self.mask * warped + (1 - self.mask) * self.portrait, 0.0, 1.0)

    return PasteStep().eval()


def a2m_step_module(model):
    """forward(features, conv_state, gru_state, emotion) -> (motion, conv_state_out, gru_state_out), eval mode."""
    import torch

    class Step(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = copy.deepcopy(model).cpu().float().eval()

        def forward(self, features, conv_state, gru_state, emotion):
            y, (c, g) = self.model.step(features, (conv_state, gru_state), emotion)
            return y, c, g

    return Step().eval()
