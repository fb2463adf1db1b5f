"""The pocket student: motion (B, 69) -> face crop (B, 3, 512, 512), the renderer's contract at ~1/1000 of its cost
(notebooks/07_pocket_renderer.ipynb).

An avatar is one portrait that never changes, so the student does not have to know faces: it only has to know how
*this* face moves. It starts from the teacher's own render of zero motion (the `reference`, a constant inside the
graph) and predicts, from the motion vector, how to move and repaint it:

    motion --normalise--> MLP (GELU) --> (C0, 8, 8) --[3x3 conv to 4C, ReLU, pixel shuffle x2] x stages-->
        --1x1 head--> (6, S, S) fields, S = 32-128
        flow  (2)  = max_flow * tanh(.)       where each pixel of the region fetches its colour from (normalised units)
        paint (3)  = sigmoid(mask) * residual the colour the warp cannot explain (teeth, shading), gated by a mask
           --MLP--> K coefficients x K basis images (3, Sb, Sb): "blend shapes" of the region, a linear residual
                    initialised from the principal components of the teacher's frames (`init_basis`)
    fields, blend --bilinear--> the region's size at the warp resolution W (`warp_size`; paint + blend resized as
                                one when Sb = S)
    region = grid_sample(reference_W, identity + flow) + paint + blend      (2-D, bilinear, border)
    face   = reference + bilinear x(512/W)(region - reference_W's region), clamped to [0, 1]
             (the change is zero outside the region: only the region is resized; the same as resizing face_W, the
             reference_W with the region replaced, and adding the detail reference - bilinear(reference_W))

The stages are built for onnxruntime-web (wasm), where the page runs them: a pixel shuffle (ONNX DepthToSpace)
after a conv at the low resolution replaces the x2 bilinear resize before a conv at the high one (the same FLOPs, no
resize), and ReLU is fused into the Conv where GELU (erf) was an op of its own. Configurations saved before these
options (`PocketConfig.from_dict`: GELU, bilinear, 3x3 head) load and render as they did.

Warping at W < 512 and adding back the reference's own fine detail (a constant) is the speed knob: onnxruntime's
GridSample is the costliest op of the graph (~10 ns per sampled value on this CPU), so warping 256x256 instead of
512x512 saves most of the time, and the detail layer keeps the still parts of the face as sharp as the teacher's.
The sample teacher paints 128x128 and resizes, so W = 128 loses nothing there.

The region (`roi`, pixels of the 512 crop) is where the teacher's frames ever change on the training motions
(`distill.moving_region`): outside it the face is the reference, untouched, and nothing is computed there. The last
conv starts at zero, so an untrained student *is* the static reference and training only adds what moves.

Cost is counted by `flops.count_onnx` on the exported graph (convolutions, matmuls, grid sampling, resizing and the
pointwise ops) and stays far below the issue's budget of 2 GFLOP per frame.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import layout

CROP = layout.CROP_SIZE
N_FIELDS = 6            # flow x, flow y, residual r, g, b, mask logit


ACTIVATIONS = ("gelu", "relu", "leaky_relu")     # relu / leaky_relu: onnxruntime fuses them into the Conv
UPSAMPLES = ("bilinear", "shuffle")
LEAKY_SLOPE = 0.1
LEGACY = {"activation": "gelu", "upsample": "bilinear", "head_kernel": 3}   # a saved config without these keys


@dataclass
class PocketConfig:
    """Sizes of the student. `channels`: output channels of each x2 upsampling stage, from the `grid` x `grid` seed,
    so the fields are `grid * 2 ** len(channels)` pixels square. `roi`: (y0, x0, height, width) of the painted region
    in the 512 crop (None: the whole crop). `activation` of the conv stages: "gelu", "relu" or "leaky_relu" (slope
    `LEAKY_SLOPE`; the MLP keeps GELU: a few thousand values, and ReLU there cost the sample student 0.2 dB).
    `upsample`: how a stage doubles the resolution: "bilinear" (x2 bilinear, then the 3x3 conv at the new size) or
    "shuffle" (the 3x3 conv at the old size to 4x the channels, then a pixel shuffle: ONNX DepthToSpace; the same
    FLOPs, no resize, and a superset of what bilinear + conv can express). `head_kernel`: the last conv's size."""
    hidden: int = 256
    grid: int = 8
    seed_channels: int = 32
    channels: tuple = (32, 24, 16, 16)
    max_flow: float = 0.25
    warp_size: int = 512
    basis: int = 16
    basis_size: int = 128
    roi: tuple | None = None
    activation: str = "relu"
    upsample: str = "shuffle"
    head_kernel: int = 1

    def __post_init__(self):
        if self.activation not in ACTIVATIONS or self.upsample not in UPSAMPLES or self.head_kernel not in (1, 3, 5):
            raise ValueError(f"PocketConfig: activation must be one of {ACTIVATIONS} (got {self.activation!r}), "
                             f"upsample one of {UPSAMPLES} (got {self.upsample!r}) and head_kernel 1, 3 or 5 (got "
                             f"{self.head_kernel!r}).")

    @property
    def field_size(self) -> int:
        return self.grid * 2 ** len(self.channels)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["roi"] = None if self.roi is None else [int(v) for v in self.roi]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PocketConfig":
        """The config of `to_dict`; one saved before `activation` / `upsample` existed gets their `LEGACY` values."""
        d = dict(LEGACY, **d)
        d["channels"] = tuple(d.get("channels", cls.channels))
        d["roi"] = None if d.get("roi") is None else tuple(int(v) for v in d["roi"])
        return cls(**d)


def activation(name: str) -> nn.Module:
    """The module of a `PocketConfig.activation` name."""
    return {"gelu": nn.GELU(), "relu": nn.ReLU(), "leaky_relu": nn.LeakyReLU(LEAKY_SLOPE)}[name]


# The sizes per profile. The released teacher paints 512x512 faces: fields of 128 px, wider channels. The sample one
# paints 128x128 noise whose change with motion is smooth at a coarser scale: fields of 32 px train in seconds on a CPU.
# ReLU and pixel-shuffle stages, a 1x1 head (issue 14): in onnxruntime-web (wasm) the first architecture's erf GELUs,
# x2 resizes and 3x3 head at 128 px cost as much as its convolutions; the sample student distils as well as before.
# The last full stage has 8 channels at 128 px: 32 values per 64-px cell from the 24 of its input, as many as before
# the shuffle had to interpolate. `benchmarks/bench_pocket.py --compare` measures both.
CONFIGS = {"sample": PocketConfig(hidden=128, seed_channels=16, channels=(16, 8), warp_size=128),
           "full": PocketConfig(hidden=384, seed_channels=48, channels=(48, 32, 24, 8), warp_size=256)}

# The sizes of the first release (issue 12), with the architecture of then (`LEGACY`): what `benchmarks/bench_pocket.py
# --compare` measures today's against.
CONFIGS_V1 = {"sample": PocketConfig(hidden=128, seed_channels=16, channels=(16, 8), warp_size=128, **LEGACY),
              "full": PocketConfig(hidden=384, seed_channels=48, channels=(48, 32, 24, 16), warp_size=256, **LEGACY)}

# Normalisation floors per motion group (a dimension that never moves in the training motions must not blow up).
STD_FLOOR = {"exp": 1e-3, "pose": 0.5, "t": 1e-3, "log_scale": 1e-3}


def motion_stats(motions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean (69,), std (69,)) of training motions, the std floored per group (`STD_FLOOR`)."""
    m = np.asarray(motions, np.float64).reshape(-1, layout.MOTION_DIM)
    std = m.std(0)
    for name, sl in (("exp", layout.EXP), ("pose", layout.POSE), ("t", layout.T), ("log_scale", layout.LOG_SCALE)):
        std[sl] = np.maximum(std[sl], STD_FLOOR[name])
    return m.mean(0).astype(np.float32), std.astype(np.float32)


def base_grid(roi: tuple, size: int = CROP) -> torch.Tensor:
    """The identity sampling grid (1, h, w, 2) of the region `roi` = (y0, x0, h, w) of a `size` crop, in grid_sample's
    normalised coordinates (align_corners=False; x first)."""
    y0, x0, h, w = roi
    xs = (2 * (x0 + np.arange(w) + 0.5) / size - 1).astype(np.float32)
    ys = (2 * (y0 + np.arange(h) + 0.5) / size - 1).astype(np.float32)
    g = np.stack(np.meshgrid(xs, ys), -1)[None]
    return torch.from_numpy(np.ascontiguousarray(g))


def scaled_roi(roi: tuple | None, size: int) -> tuple:
    """The region in a `size` crop (the 512 region scaled, rounded to whole pixels)."""
    y0, x0, h, w = roi if roi is not None else (0, 0, CROP, CROP)
    s = size / CROP
    return int(round(y0 * s)), int(round(x0 * s)), max(1, int(round(h * s))), max(1, int(round(w * s)))


def upsampled_region(delta: torch.Tensor, roi: tuple, w: int, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """The region's change `delta` (B, 3, h, w') at `roi` of a `w` crop, bilinearly upsampled to a `size` crop
    (`size` a multiple of `w`) over the region and one pixel around it (inside the crop) only -> (that block
    (B, 3, H', W'), its (top, left) in the `size` crop). The change is zero outside the region, so this equals the
    whole crop's resize on the block, up to float rounding, and the whole resize is zero outside it."""
    y0, x0, h, wd = roi
    s = size // w
    p = (int(x0 > 0), int(x0 + wd < w), int(y0 > 0), int(y0 + h < w))      # left, right, top, bottom
    d = F.pad(delta, p)
    if s > 1:
        d = F.interpolate(d, size=(d.shape[-2] * s, d.shape[-1] * s), mode="bilinear", align_corners=False)
    return d, ((y0 - p[2]) * s, (x0 - p[0]) * s)


def upsampled_change(delta: torch.Tensor, roi: tuple, w: int, size: int) -> torch.Tensor:
    """The region's change `delta` (B, 3, h, w') at `roi` of a `w` crop -> the whole change (B, 3, size, size)
    (`upsampled_region`, padded with zeros): the final resize costs the region's area, not the crop's (paint =
    reference + this, as resize(face_W) + detail was)."""
    d, (top, left) = upsampled_region(delta, roi, w, size)
    return F.pad(d, (left, size - left - d.shape[-1], top, size - top - d.shape[-2]))


class PocketStudent(nn.Module):
    """forward(motion (B, 69) float32) -> face (B, 3, 512, 512) in [0, 1]; `paint(motion, reference, size)` renders at
    another crop size (training at the teacher frames' resolution). See the module docstring."""

    def __init__(self, reference: np.ndarray, mean: np.ndarray, std: np.ndarray, config: PocketConfig | None = None):
        super().__init__()
        self.config = c = config or PocketConfig()
        ref = torch.as_tensor(np.asarray(reference, np.float32)).reshape(1, 3, CROP, CROP)
        self.register_buffer("reference", ref.clone())
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float32)).reshape(layout.MOTION_DIM))
        self.register_buffer("std", torch.as_tensor(np.asarray(std, np.float32)).reshape(layout.MOTION_DIM))
        w = min(CROP, c.warp_size)
        ref_w = F.interpolate(ref, size=(w, w), mode="area") if w < CROP else ref.clone()
        self.register_buffer("reference_w", ref_w, persistent=False)
        self.register_buffer("detail", ref - F.interpolate(ref_w, size=(CROP, CROP), mode="bilinear",
                                                           align_corners=False), persistent=False)
        self.register_buffer("grid_w", base_grid(scaled_roi(c.roi, w), w), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(layout.MOTION_DIM, c.hidden), nn.GELU())
        self.seed = nn.Sequential(nn.Linear(c.hidden, c.seed_channels * c.grid * c.grid), nn.GELU())
        self.act = activation(c.activation)
        self.coef = nn.Linear(c.hidden, max(1, c.basis))
        self.basis = nn.Parameter(torch.zeros(max(1, c.basis), 3 * c.basis_size * c.basis_size))
        chans = (c.seed_channels,) + tuple(c.channels)
        k = 4 if c.upsample == "shuffle" else 1            # a shuffle stage convolves to 4 sub-pixels per channel
        self.stages = nn.ModuleList(nn.Conv2d(a, k * b, 3, padding=1) for a, b in zip(chans[:-1], chans[1:]))
        self.head = nn.Conv2d(chans[-1], N_FIELDS, c.head_kernel, padding=c.head_kernel // 2)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def _fields(self, motion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Motion (B, 69) -> (flow (B, 2, S, S), paint (B, 3, S, S), blend (B, 3, Sb, Sb)); see `fields`."""
        c = self.config
        z = self.mlp((motion - self.mean) / self.std)
        blend = (self.coef(z) @ self.basis).reshape(-1, 3, c.basis_size, c.basis_size)
        h = self.seed(z).reshape(-1, c.seed_channels, c.grid, c.grid)
        for conv in self.stages:
            if c.upsample == "shuffle":
                h = F.pixel_shuffle(self.act(conv(h)), 2)      # the activation before the shuffle: fused into Conv
            else:
                h = self.act(conv(F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)))
        out = self.head(h)
        return c.max_flow * torch.tanh(out[:, 0:2]), torch.sigmoid(out[:, 5:6]) * out[:, 2:5], blend

    def fields(self, motion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Motion (B, 69) -> ((B, 5, S, S): flow (2, normalised units) and paint (3) at the field resolution,
        (B, 3, Sb, Sb): the blend of the basis images)."""
        flow, paint, blend = self._fields(motion)
        return torch.cat([flow, paint], 1), blend

    def region(self, motion: torch.Tensor, ref_w: torch.Tensor, roi: tuple, grid: torch.Tensor) -> torch.Tensor:
        """The painted region (B, 3, h, w) at the warp resolution: `ref_w` (1, 3, W, W) warped by the predicted flow
        (`grid` = the region's identity grid (1, h, w, 2), `base_grid`), plus paint and blend; `roi` = (y0, x0, h, w)
        in the W crop (`scaled_roi`). Used by `paint` and by the frame graph (`pocket.frame`)."""
        h, wd = roi[2], roi[3]
        flow, paint, blend = self._fields(motion)
        if blend.shape[-2:] == paint.shape[-2:]:    # one resize for paint and blend: the same, up to float rounding
            paint, blend = paint + blend, None
        f = F.interpolate(torch.cat([flow, paint], 1), size=(h, wd), mode="bilinear", align_corners=False)
        grid = grid + f[:, 0:2].permute(0, 2, 3, 1)
        out = F.grid_sample(ref_w.expand(f.shape[0], -1, -1, -1), grid, mode="bilinear", padding_mode="border",
                            align_corners=False) + f[:, 2:5]
        return out if blend is None else out + F.interpolate(blend, size=(h, wd), mode="bilinear",
                                                             align_corners=False)

    def paint(self, motion: torch.Tensor, reference: torch.Tensor, size: int) -> torch.Tensor:
        """Render at a `size` x `size` crop from `reference` (1, 3, size, size) -> (B, 3, size, size) in [0, 1]."""
        w = min(size, self.config.warp_size)
        final = size == CROP
        ref_w = self.reference_w if final else reference if w == size else \
            F.interpolate(reference, size=(w, w), mode="area")
        y0, x0, h, wd = roi = scaled_roi(self.config.roi, w)
        face = self.region(motion, ref_w, roi, self.grid_w if final else base_grid(roi, w).to(motion.device))
        if (h, wd) != (w, w) and w < size and size % w == 0:
            return torch.clamp(reference + upsampled_change(face - ref_w[:, :, y0:y0 + h, x0:x0 + wd], roi, w, size),
                               0.0, 1.0)
        if (h, wd) != (w, w):
            delta = face - ref_w[:, :, y0:y0 + h, x0:x0 + wd]
            face = ref_w + F.pad(delta, (x0, w - x0 - wd, y0, w - y0 - h))
        if w < size:
            detail = self.detail if final else \
                reference - F.interpolate(ref_w, size=(size, size), mode="bilinear", align_corners=False)
            face = F.interpolate(face, size=(size, size), mode="bilinear", align_corners=False) + detail
        return torch.clamp(face, 0.0, 1.0)

    def forward(self, motion: torch.Tensor) -> torch.Tensor:
        return self.paint(motion, self.reference, CROP)

    @torch.no_grad()
    def init_basis(self, frames: np.ndarray, reference: torch.Tensor) -> None:
        """Set the basis images to the principal components of the teacher frames' change from the reference, in the
        region: frames uint8 (N, 3, s, s), reference (1, 3, s, s); the coefficients start at zero."""
        c = self.config
        w = min(frames.shape[-1], c.warp_size)
        frames = frames[np.linspace(0, len(frames) - 1, min(len(frames), 1024)).round().astype(int)]
        x = F.interpolate(torch.from_numpy(frames).float() / 255 - reference, size=(w, w), mode="area")
        y0, x0, h, wd = scaled_roi(c.roi, w)
        x = x[:, :, y0:y0 + h, x0:x0 + wd]
        x = F.interpolate(x, size=(c.basis_size, c.basis_size), mode="area").flatten(1)
        k = min(self.basis.shape[0], x.shape[0], x.shape[1])
        _, s, v = torch.linalg.svd(x - x.mean(0), full_matrices=False)
        self.basis.zero_()
        self.basis[:k] = (s[:k, None] * v[:k]) / max(1.0, x.shape[0] ** 0.5)
        self.coef.weight.zero_()
        self.coef.bias.zero_()

    def state(self) -> dict:
        """Everything needed to rebuild it (`from_state`): config, weights, reference, normalisation."""
        return {"config": self.config.to_dict(), "weights": {k: v.detach().cpu() for k, v in self.state_dict().items()}}

    @classmethod
    def from_state(cls, state: dict) -> "PocketStudent":
        w = state["weights"]
        m = cls(w["reference"].numpy(), w["mean"].numpy(), w["std"].numpy(), PocketConfig.from_dict(state["config"]))
        m.load_state_dict(w)
        return m.eval()


def n_parameters(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


__all__ = ["PocketConfig", "PocketStudent", "CONFIGS", "CONFIGS_V1", "LEGACY", "ACTIVATIONS", "UPSAMPLES", "activation",
           "motion_stats", "base_grid", "scaled_roi", "upsampled_region", "upsampled_change", "n_parameters"]
