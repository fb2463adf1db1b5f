"""LivePortrait's own way of rendering beside ours, on the same random released-size weights, in one run.

    python benchmarks/bench_gpu.py                          # full (released) sizes on the GPU device="auto" finds
    python benchmarks/bench_gpu.py --profile sample --quick # the same code on the CPU in seconds (CI checks it runs)

Rows (median ms per frame over --repeats timed runs after warm-up; PSNR in dB against the strict float32 run (no
TF32) of the same path on the same motions, over the face (the paste mask's pixels, where both paths paint)):
  LivePortrait fp32       W then G, eager, batch 1, float32 (what its wrapper's `warp_decode` does without autocast)
  LivePortrait autocast   the same under torch.autocast(float16): its default on a GPU; the baseline of the ratio
  ours .half()            (CUDA only) the whole renderer cast to float16, eager: shown for its PSNR
  ours batch B            `render.FrameRenderer` end to end: motion in (host), keypoints + stitching, W, G, paste,
                          uint8 frame out (host); autocast float16 + torch.compile on CUDA, float32 eager elsewhere
The FLOPs of one frame (FlopCounterMode: conv and matmul) over a same-run matmul peak (float16 on CUDA, float32 on
the CPU) give the share of the peak reached. The ratio (LivePortrait autocast / ours batch 1) is printed last.
Random weights (BatchNorm statistics set from one random batch, spectral norms converged, as trained weights have):
timing does not depend on the values. Issue 11's targets: >= 2x at batch 1 with PSNR >= LivePortrait's, and >= 200
frames/s at the best batch on an H100/H200-class GPU.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))


def build_networks(profile: str, device, seed: int = 0):
    """W, G, S at the profile's sizes with seeded default-initialised weights, calibrated like trained ones."""
    import torch

    from talkinghead.liveportrait.loader import build_network, converge_spectral_norm

    torch.manual_seed(seed)
    with torch.device("cpu"):
        nets = {n: build_network(n, profile) for n in ("warping_module", "spade_generator",
                                                        "stitching_retargeting_module")}
    for n in nets.values():
        n.to(device)
    feature_3d, x_s = fake_source(profile, seed)[:2]
    with torch.no_grad():
        w = nets["warping_module"]
        norms = [m for m in w.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        w.train()
        f = torch.from_numpy(feature_3d).to(device).expand(2, -1, -1, -1, -1)
        kp = torch.from_numpy(x_s).to(device)[None].expand(2, -1, -1)
        w(f, kp_driving=kp + 0.02 * torch.randn_like(kp), kp_source=kp)
        w.eval()
        converge_spectral_norm(nets["spade_generator"])
    for n in nets.values():
        n.eval().requires_grad_(False)
    return SimpleNamespace(**nets, profile=profile, device=device, dtype=torch.float32)


def fake_source(profile: str, seed: int = 0):
    """A baked source of the profile's shapes: feature volume (1, C, D, H, W), x_s (21, 3), kp, exp."""
    from talkinghead.liveportrait.config import image_sizes, network_config

    w = network_config(profile, "warping_module")
    c, d = w["reshape_channel"], w["max_features"] // w["reshape_channel"]
    hw = image_sizes(profile)[0] // 4
    rng = np.random.default_rng(seed)
    kp = rng.uniform(-0.5, 0.5, (21, 3)).astype(np.float32)
    return rng.normal(0, 1, (1, c, d, hw, hw)).astype(np.float32), (1.5 * kp).astype(np.float32), kp


def fake_bundle(profile: str, seed: int = 0):
    """A stand-in for a baked bundle with a 512x512 portrait the face is pasted into (identity crop, soft mask)."""
    from talkinghead.crop import make_paste_mask
    from talkinghead.layout import CROP_SIZE

    feature_3d, x_s, kp = fake_source(profile, seed)
    src = {"feature_3d": feature_3d, "kp": kp, "exp": np.zeros((21, 3), np.float32), "pose": np.zeros(3, np.float32),
           "t": np.zeros(3, np.float32), "scale": np.full(1, 1.5, np.float32), "x_s": x_s,
           "lip_open": np.zeros(1, np.float32), "M_c2o": np.eye(3, dtype=np.float32)}
    portrait = np.random.default_rng(seed + 1).integers(0, 256, (CROP_SIZE, CROP_SIZE, 3), np.uint8)
    return SimpleNamespace(source=src, portrait=portrait, mask=make_paste_mask()[..., 0].astype(np.float32),
                           profile=profile)


def motions(n: int, seed: int = 1) -> np.ndarray:
    """n small random motions (expression, a few degrees of head pose)."""
    rng = np.random.default_rng(seed)
    m = np.zeros((n, 69), np.float32)
    m[:, :63] = rng.normal(0, 0.01, (n, 63))
    m[:, 63:66] = rng.normal(0, 5, (n, 3))
    return m


def timed(fn, sync, repeats: int, warmup: int = 1) -> float:
    """Median seconds of fn() over `repeats` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_peak(device, dtype, n: int) -> float:
    """Best FLOP/s of an n x n matmul on `device` in `dtype` (tensor cores on CUDA with float16)."""
    import torch

    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    sync = _sync(device)
    return 2 * n ** 3 / timed(lambda: a @ b, sync, 5, 2)


def _sync(device):
    import torch

    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


@contextlib.contextmanager
def strict_fp32():
    """True float32 on CUDA for the references (cuDNN convolutions default to TF32 there, ~1e-3 relative)."""
    import torch

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def lp_warp_decode(r, x_d, autocast: bool):
    """LivePortrait's `warp_decode`: W then G on precomputed driving keypoints, under autocast when asked."""
    import torch

    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=autocast):
        out = r.warping_module(r.feature_3d, kp_source=r.x_s, kp_driving=x_d)["out"]
        return r.spade_generator(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", choices=("full", "sample"), default="full")
    ap.add_argument("--device", default="auto", help="auto (default), cuda, cpu, mps")
    ap.add_argument("--quick", action="store_true", help="one timed run, batches 1 and 2: checks the script runs")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per row (default 20, quick 1)")
    ap.add_argument("--batches", default=None, help="batch sizes for ours (default 1,4,8,16,32; quick 1,2)")
    ap.add_argument("--no-compile", action="store_true", help="ours without torch.compile")
    args = ap.parse_args(argv)

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from talkinghead.device import precision_name, resolve_device
    from talkinghead.render import BakedRenderer, FrameRenderer, psnr, to_uint8

    dev, why = resolve_device(args.device)
    cuda = dev.type == "cuda"
    repeats = args.repeats or (1 if args.quick else 20)
    warmup = 1 if args.quick else 3
    batches = [int(b) for b in (args.batches or ("1,2" if args.quick else "1,4,8,16,32")).split(",")]
    sync = _sync(dev)
    print(f"profile {args.profile}; torch {torch.__version__}; device {dev} ({why}); "
          f"{torch.get_num_threads()} CPU threads; {repeats} timed runs per row")
    peak_dtype = torch.float16 if cuda else torch.float32
    peak = matmul_peak(dev, peak_dtype, 8192 if cuda else (1024 if args.quick else 2048))
    print(f"same-run matmul peak ({str(peak_dtype)[6:]}): {peak / 1e9:.0f} GFLOP/s")

    lp, bundle = build_networks(args.profile, dev), fake_bundle(args.profile)
    r = BakedRenderer(lp, bundle).eval()
    m_eval = motions(3 if args.quick else 8)
    m_t = torch.from_numpy(m_eval).to(dev)
    with torch.no_grad():
        x_d = r.keypoints(m_t)
        with FlopCounterMode(display=False) as fc:
            r(m_t[:1])
    flop = fc.get_total_flops()
    print(f"one frame: {flop / 1e9:.0f} GFLOP (conv and matmul); at the peak that is {flop / peak * 1e3:.2f} ms")

    rows = []   # (name, ms per frame, psnr dB or None)
    face = bundle.mask > 0          # the crop is pasted 1:1 (M_c2o = identity): the same pixels in crops and frames

    def face_psnr(a, b):
        return psnr(a[:, face], b[:, face])

    def lp_crops(autocast):
        return np.concatenate([to_uint8(lp_warp_decode(r, x_d[i:i + 1], autocast).float()) for i in range(len(x_d))])

    with strict_fp32():
        lp_ref = lp_crops(False)
    t_lp32 = timed(lambda: lp_warp_decode(r, x_d[:1], False), sync, repeats, warmup)
    rows.append(("LivePortrait fp32, W+G, batch 1", t_lp32 * 1e3, None))
    t_lpac = t_lp32
    if cuda:
        t_lpac = timed(lambda: lp_warp_decode(r, x_d[:1], True), sync, repeats, warmup)
        rows.append(("LivePortrait autocast fp16, W+G, batch 1", t_lpac * 1e3, face_psnr(lp_crops(True), lp_ref)))

    with strict_fp32():
        ref = FrameRenderer(r, compile=False, autocast=False, batch_size=len(m_eval), log=None).frames(m_eval)
    if cuda:
        half = FrameRenderer(copy.deepcopy(r).half(), compile=False, log=None)
        t_half = timed(lambda: half.frames(m_eval[:1]), sync, repeats, warmup)
        rows.append(("ours .half(), eager, end to end, batch 1", t_half * 1e3, face_psnr(half.frames(m_eval), ref)))
        del half

    ours = {}
    for b in batches:
        fr = FrameRenderer(r, compile=False if args.no_compile else "auto", batch_size=b, log=print)
        mb = motions(b, seed=2)
        t = timed(lambda: fr.frames(mb), sync, repeats, warmup) / b
        q = face_psnr(fr.frames(m_eval), ref)
        label = "autocast + compile" if fr.status.startswith("compiled") and fr.autocast else \
            ("autocast, eager" if fr.autocast else precision_name(dev, lp.dtype) + ", eager")
        ours[b] = (t, q)
        rows.append((f"ours {label}, end to end, batch {b}", t * 1e3, q))
        if fr.status.startswith("eager (") and not args.no_compile:
            print(f"note: {fr.status}")

    print(f"\n{'path':58s} {'ms/frame':>9s} {'frames/s':>9s} {'PSNR dB':>8s} {'of peak':>8s}")
    for name, ms, q in rows:
        qs = "ref" if q is None else ("inf" if q == float("inf") else f"{q:.1f}")
        print(f"{name:58s} {ms:9.2f} {1e3 / ms:9.1f} {qs:>8s} {flop / (ms / 1e3) / peak:8.1%}")
    best = min(ours, key=lambda b: ours[b][0])
    t1, q1 = ours[batches[0]]
    print(f"\nbest batch {best}: {ours[best][0] * 1e3:.2f} ms/frame = {1 / ours[best][0]:.0f} frames/s "
          f"(target on an H100/H200: >= 200 frames/s)")
    base = "LivePortrait autocast W+G" if cuda else "LivePortrait fp32 W+G (no GPU: no autocast)"
    print(f"ratio: {base} / ours end to end at batch {batches[0]} = {t_lpac / t1:.2f}x "
          f"(PSNR ours {q1:.1f} dB vs LivePortrait {rows[1][2] if cuda else float('inf'):.1f} dB; target >= 2x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
