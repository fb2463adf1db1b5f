"""Rendering from motion: avatar bundle + motion (N, 69) -> frames (notebooks 02-06; export traces the same module).

    motion --layout.apply_to_source--> exp_d, pose_d, t_d, scale_d --keypoint transform--> x_d
           --stitching S(x_s, x_d)--> x_d' --W(f_s; x_s -> x_d')--> warped features --G--> face crop
           --resize to the 512 crop--> paste back into the portrait with the baked soft mask --> frame

`BakedRenderer` holds the bundle's tensors (f_s, x_c, source exp/pose/t/scale, x_s, the paste grid, mask and portrait)
as buffers, so `forward(motion)` is a pure function of the motion vector: this is exactly what `talkinghead.export`
writes to `renderer.onnx`, and what the live engine runs.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import layout, pixels
from .progress import Estimate
from .crop import CROP_SIZE, paste_grid

# Closing the source's lips: LivePortrait's "aaa" direction (docs/facts.md) moves kp19.y by +0.001 and kp17.y by -0.0001
# per slider unit, i.e. the mouth-open proxy (layout.mouth_open) by 0.0011 per unit.
MOUTH_OPEN_PER_UNIT = 0.0011


def _aaa_direction() -> np.ndarray:
    """The "aaa" (open mouth) direction in exp (63,), per slider unit (docs/facts.md)."""
    d = np.zeros((21, 3), np.float32)
    d[19, 1], d[19, 2], d[17, 1] = 0.001, 0.0001, -0.0001
    return d.reshape(63)


class BakedRenderer(nn.Module):
    """forward(motion (B, 69)) -> face crops (B, 3, 512, 512) in [0, 1], or full frames (B, 3, H, W) with `paste`.

    `close_lips` (float, default 0): subtract this fraction of the source's own mouth opening along the "aaa"
    direction, so a portrait photographed mid-word starts from closed lips (the bundle stores `lip_open`).
    """

    def __init__(self, lp, bundle, paste: bool = True, stitching: bool = True, close_lips: float = 0.0):
        super().__init__()
        self.warping_module, self.spade_generator = lp.warping_module, lp.spade_generator
        self.stitching = lp.stitching_retargeting_module if stitching else None
        self.paste = paste
        ref = next(self.warping_module.parameters())      # the buffers live where the networks are
        src, device, dtype = bundle.source, ref.device, ref.dtype
        exp = src["exp"].reshape(63) - close_lips * float(np.ravel(src["lip_open"])[0]) / MOUTH_OPEN_PER_UNIT * _aaa_direction()
        for name, value in {"feature_3d": src["feature_3d"], "kp": src["kp"].reshape(21, 3), "exp": exp.reshape(21, 3),
                            "pose": src["pose"], "t": src["t"], "scale": src["scale"],
                            "x_s": src["x_s"].reshape(1, 21, 3)}.items():
            self.register_buffer(name, torch.as_tensor(np.asarray(value, np.float32)).to(device, dtype),
                                 persistent=False)
        if paste:
            h, w = bundle.portrait.shape[:2]
            grid = paste_grid(src["M_c2o"], (h, w), CROP_SIZE)
            img = bundle.portrait.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
            for name, value in {"grid": grid, "mask": bundle.mask[None, None], "portrait": img}.items():
                self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(value)).to(device, dtype),
                                     persistent=False)

    def keypoints(self, motion: torch.Tensor) -> torch.Tensor:
        """Driving keypoints (B, 21, 3) for motion (B, 69), stitched to the source when stitching is on."""
        from .liveportrait.keypoints import transform_keypoints_degrees

        d = layout.apply_to_source(motion, {"exp": self.exp, "pose": self.pose, "t": self.t, "scale": self.scale})
        x_d = transform_keypoints_degrees(self.kp, d["pose"], d["exp"], d["scale"], d["t"])
        if self.stitching is not None:
            x_d = self.stitching.stitch(self.x_s.expand(x_d.shape[0], -1, -1), x_d)
        return x_d

    def decode(self, x_d: torch.Tensor) -> torch.Tensor:
        """Driving keypoints (B, 21, 3) -> face crops (B, 3, 512, 512) in [0, 1]: W warps the source volume, G paints."""
        b = x_d.shape[0]
        warped = self.warping_module(self.feature_3d.expand(b, -1, -1, -1, -1), kp_driving=x_d,
                                     kp_source=self.x_s.expand(b, -1, -1))["out"]
        img = self.spade_generator(warped)
        if img.shape[-1] != CROP_SIZE:  # the sample profile paints 128x128
            img = F.interpolate(img, size=(CROP_SIZE, CROP_SIZE), mode="bilinear", align_corners=False)
        return img

    def face(self, motion: torch.Tensor) -> torch.Tensor:
        """Face crops (B, 3, 512, 512) in [0, 1]."""
        return self.decode(self.keypoints(motion))

    def paste_back(self, img: torch.Tensor) -> torch.Tensor:
        """Face crops (B, 3, 512, 512) -> full frames (B, 3, H, W): warped into the portrait through the soft mask."""
        grid = self.grid.expand(img.shape[0], -1, -1, -1)
        warped = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return torch.clamp(self.mask * warped + (1 - self.mask) * self.portrait, 0.0, 1.0)

    def forward(self, motion: torch.Tensor) -> torch.Tensor:
        img = self.face(motion)
        return self.paste_back(img) if self.paste else img


def to_uint8_tensor(frames: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8 RGB (rounded), on the frames' device."""
    return (frames.float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8 RGB (rounded), numpy on the host: `pixels.to_uint8`, the one
    conversion the ONNX runtime uses too, on the CPU copy (`to_uint8_tensor` rounds alike on the device)."""
    return pixels.to_uint8(frames.detach().float().cpu().numpy())


class FrameRenderer:
    """Motion (B, 69) -> uint8 frames (B, H, W, 3) on the host, through a `BakedRenderer` on its networks' device.

    The device's precision (`device.autocast`: W and G under autocast float16 on CUDA, keypoints, stitching and the
    paste in float32; plain float32 elsewhere), `batch_size` frames per forward pass (default by device:
    `device.render_batch_size`), and `compile` ("auto": on CUDA only; True; False): `torch.compile` of the whole
    step, motion in, uint8 out. Its warm-up (~30 s per batch shape) is announced through `log`; if compiling fails,
    the failure is said once and rendering goes on eagerly (`status` says which runs). Compiled, a short last batch
    is padded to `batch_size`, so only two shapes (1 and batch_size) ever compile. `autocast`: None follows
    `device.uses_autocast`; False renders in the networks' own dtype (the float32 reference of benchmarks).
    """

    def __init__(self, renderer: BakedRenderer, compile="auto", batch_size: int | None = None, log=print,
                 autocast: bool | None = None):
        from .device import render_batch_size, uses_autocast

        p = next(renderer.parameters())
        self.renderer, self.device, self.dtype = renderer.eval(), p.device, p.dtype
        self.autocast = uses_autocast(self.device, self.dtype) if autocast is None else \
            bool(autocast) and self.device.type == "cuda"
        self.batch_size = int(batch_size or render_batch_size(self.device))
        self.compile = compile is True or (compile == "auto" and self.device.type == "cuda")
        self.status = "compiled (torch.compile)" if self.compile else "eager"
        self.log = log or (lambda *_: None)
        self._compiled, self._shapes = None, set()

    def step(self, motion: torch.Tensor) -> torch.Tensor:
        """One eager pass: motion (B, 69) on the device -> uint8 (B, H, W, 3) on the device."""
        r = self.renderer
        x_d = r.keypoints(motion)                          # float32: keypoints and stitching stay exact
        if self.autocast:                                  # (plain code: torch.compile traces it whole)
            with torch.autocast("cuda", dtype=torch.float16):
                img = r.decode(x_d)
        else:
            img = r.decode(x_d)
        img = img.to(self.dtype)
        return to_uint8_tensor(r.paste_back(img) if r.paste else img)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if not self.compile:
            return self.step(x)
        if self._compiled is None:
            self.renderer = _fold_for_compile(self.renderer)
            self._compiled = torch.compile(self.step, dynamic=False)
        if tuple(x.shape) in self._shapes:
            return self._compiled(x)
        from .device import COMPILE_WARMUP_S

        self.log(f"compiling the renderer for {self.device} at batch {x.shape[0]} with torch.compile: about "
                 f"{COMPILE_WARMUP_S} s, once per session and batch size ...")
        t0 = time.perf_counter()
        try:
            out = self._compiled(x)
        except Exception as e:  # noqa: BLE001 - inductor/triton failures vary; eager always works
            why = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:160]}"
            self.compile, self.status = False, f"eager (torch.compile failed: {why})"
            self.log(f"torch.compile failed ({why}); rendering eagerly instead (slower, same picture).")
            return self.step(x)
        self._shapes.add(tuple(x.shape))
        self.log(f"compiled in {time.perf_counter() - t0:.0f} s")
        return out

    def frames(self, motion) -> np.ndarray:
        """Motion (N, 69) (numpy or tensor) -> uint8 (N, H, W, 3) numpy, in batches of `batch_size`."""
        m = torch.as_tensor(np.asarray(motion, np.float32).reshape(-1, layout.MOTION_DIM))
        outs = []
        with torch.no_grad():
            for i in range(0, len(m), self.batch_size):
                chunk = m[i:i + self.batch_size]
                n = len(chunk)
                if self.compile and 1 < n < self.batch_size:
                    chunk = torch.cat([chunk, chunk.new_zeros(self.batch_size - n, chunk.shape[1])])
                x = chunk.to(self.device, self.dtype, non_blocking=True)
                outs.append(self._run(x)[:n].cpu().numpy())
        if not outs:
            r = self.renderer
            return np.zeros((0, *(r.portrait.shape[-2:] if r.paste else (CROP_SIZE, CROP_SIZE)), 3), np.uint8)
        return outs[0] if len(outs) == 1 else np.concatenate(outs)


def _fold_for_compile(renderer: BakedRenderer) -> BakedRenderer:
    """The renderer with G's spectral norms folded into plain weights (`generator.fold_spectral_norm`), for
    torch.compile: the same numbers in eval mode, no weight hook to trace. The caller's G is left untouched (a copy
    of it is folded, and a shallow copy of the renderer holds it)."""
    import copy

    from torch.nn.utils.spectral_norm import SpectralNorm

    from .liveportrait.generator import fold_spectral_norm

    g = renderer.spade_generator
    if not any(isinstance(h, SpectralNorm) for m in g.modules() for h in m._forward_pre_hooks.values()):
        return renderer
    out = copy.copy(renderer)
    out._modules = dict(renderer._modules)
    out.spade_generator = fold_spectral_norm(copy.deepcopy(g))
    return out


def iter_frames(bundle, motion: np.ndarray, lp=None, paste: bool = True, batch_size: int | None = None,
                progress: bool = True, close_lips: float = 0.0, renderer: BakedRenderer | None = None,
                device="auto", compile="auto"):
    """Render motion (N, 69) through the bundle, yielding RGB uint8 frames (H, W, 3) (or 512 crops without `paste`).

    Batched for speed (`batch_size`: default by device, `device.render_batch_size`); a progress bar counts frames.
    `lp` defaults to the networks of the bundle's profile loaded on `device` ("auto": CUDA, MPS, else CPU; see
    `talkinghead.device`); given networks (or a `renderer`) render where they are. On CUDA: autocast float16 and
    torch.compile (`compile`), see `FrameRenderer`.
    """
    from tqdm.auto import tqdm

    if renderer is None:
        if lp is None:
            from .liveportrait import load_liveportrait
            lp = load_liveportrait(profile=bundle.profile, device=device)
        renderer = BakedRenderer(lp, bundle, paste=paste, close_lips=close_lips).eval()
    fr = FrameRenderer(renderer, compile=compile, batch_size=batch_size, log=tqdm.write)
    motion = np.asarray(motion, np.float32).reshape(-1, layout.MOTION_DIM)
    est = Estimate("render", len(motion), "frame", enabled=progress)
    with tqdm(total=len(motion), desc="render", unit="frame", disable=not progress) as bar:
        for i in range(0, len(motion), fr.batch_size):
            out = fr.frames(motion[i:i + fr.batch_size])
            bar.update(len(out))
            if i == 0:
                est.restart()             # the first batch pays for warm-up (and compiling on CUDA): timed after it
            elif i == fr.batch_size:
                est.update(len(out))
            yield from out


def render(bundle, motion: np.ndarray, **kw) -> np.ndarray:
    """All frames at once: (N, H, W, 3) uint8. Prefer `iter_frames` for long motion (memory)."""
    frames = list(iter_frames(bundle, motion, **kw))
    shape = bundle.portrait.shape if kw.get("paste", True) else (CROP_SIZE, CROP_SIZE, 3)
    return np.stack(frames) if frames else np.zeros((0, *shape), np.uint8)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio of two images (or batches) in dB; inf when equal (uint8 frames: peak 255)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak ** 2 / mse)
