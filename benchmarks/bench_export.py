"""Benchmark the exported renderer (renderer.onnx and its variants) per frame, on CPU and (when present) CUDA.

    python benchmarks/bench_export.py --profile full --frames 3 --variants fp32,fp16
    python benchmarks/bench_export.py --profile sample --frames 20 --variants fp32,fp16,int8

Builds W, G and S of the chosen profile with random (default-initialised) weights -- no weights files needed, timing
does not depend on the values -- and a fake baked source (a random feature volume of the profile's shape, random
source keypoints), exports the renderer with `talkinghead.export` to a temporary folder, and reports for each variant:
file size, per-frame latency (batch 1, median after warm-up), throughput (batch 4), the FLOPs of one frame (Conv,
MatMul and friends counted by torch's FlopCounterMode on the PyTorch module; GridSample, norms and pointwise ops are
not counted) and the share of this machine's measured fp32 peak (a large numpy matmul) that it reaches.
This is a script, not a test: at the full profile one frame costs seconds on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))


def fake_bundle(profile: str, seed: int = 0):
    """A stand-in for a baked bundle: source arrays of the profile's shapes (random), no portrait needed (paste=False)."""
    from talkinghead.liveportrait.config import image_sizes, network_config

    w = network_config(profile, "warping_module")
    c, d = w["reshape_channel"], w["max_features"] // w["reshape_channel"]
    hw = image_sizes(profile)[0] // 4                     # F downsamples its input 4x: 64 (full), 16 (sample)
    rng = np.random.default_rng(seed)
    kp = rng.uniform(-0.5, 0.5, (21, 3)).astype(np.float32)
    src = {"feature_3d": rng.normal(0, 1, (1, c, d, hw, hw)).astype(np.float32), "kp": kp,
           "exp": rng.normal(0, 0.01, (21, 3)).astype(np.float32), "pose": np.zeros(3, np.float32),
           "t": np.zeros(3, np.float32), "scale": np.full(1, 1.5, np.float32), "x_s": 1.5 * kp,
           "lip_open": np.zeros(1, np.float32)}
    return SimpleNamespace(source=src, profile=profile)


def fake_lp(profile: str):
    import torch

    from talkinghead.liveportrait.loader import build_network

    torch.manual_seed(0)
    nets = {n: build_network(n, profile).eval().requires_grad_(False)
            for n in ("warping_module", "spade_generator", "stitching_retargeting_module")}
    return SimpleNamespace(**nets, profile=profile, dtype=torch.float32, device=torch.device("cpu"))


def peak_gflops(n: int = 2048, reps: int = 5) -> float:
    """fp32 GFLOP/s of a large numpy matmul (BLAS, all cores): this machine's practical peak."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = a.copy()
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def _timed(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def flops_per_frame(module) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        module(torch.zeros(1, 69))
    return float(fc.get_total_flops())


def time_session(sess, batch: int, frames: int, warmup: int = 1) -> float:
    """Median seconds per run."""
    x = {"motion": (np.random.default_rng(1).normal(0, 0.01, (batch, 69))).astype(np.float32)}
    for _ in range(warmup):
        sess.run(None, x)
    return float(np.median([_timed(lambda: sess.run(None, x)) for _ in range(frames)]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", choices=("full", "sample"), default="full")
    ap.add_argument("--frames", type=int, default=3, help="timed runs per measurement (median)")
    ap.add_argument("--variants", default="fp32,fp16", help="comma list of fp32,fp16,int8 (int8 at full size is slow)")
    ap.add_argument("--batch", type=int, default=4, help="batch for the throughput measurement (0: skip)")
    ap.add_argument("--keep", default=None, help="folder to keep the exported files in (default: a temp folder)")
    args = ap.parse_args(argv)

    import onnxruntime as ort
    import torch

    from talkinghead import export

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    variants = ["fp32"] + [v for v in variants if v != "fp32"]
    print(f"profile {args.profile}; torch {torch.__version__}, onnxruntime {ort.__version__}; "
          f"{os.cpu_count()} CPU threads; providers {ort.get_available_providers()}")
    peak = peak_gflops()
    print(f"measured fp32 peak (numpy 2048^3 matmul): {peak:.0f} GFLOP/s")
    lp, bundle = fake_lp(args.profile), fake_bundle(args.profile)
    module = export.renderer_module(lp, bundle)
    flops = flops_per_frame(module)
    print(f"FLOPs per frame (conv/matmul, FlopCounterMode): {flops / 1e9:.1f} GFLOP")
    with torch.no_grad():
        module(torch.zeros(1, 69))
        t_torch = np.median([_timed(lambda: module(torch.zeros(1, 69))) for _ in range(max(1, args.frames))])
    print(f"PyTorch eager fp32, batch 1: {t_torch * 1000:.0f} ms/frame")

    out_dir = Path(args.keep or tempfile.mkdtemp(prefix="th-bench-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32 = out_dir / export.RENDERER_FILES["fp32"]
    t0 = time.perf_counter()
    export.export_graph(module, (torch.zeros(1, 69),), fp32, ["motion"], ["face"],
                        {"motion": {0: "batch"}, "face": {0: "batch"}})
    print(f"exported renderer.onnx in {time.perf_counter() - t0:.0f} s")
    paths = {"fp32": fp32}
    for v in variants[1:]:
        if v == "fp16":
            paths[v] = out_dir / export.RENDERER_FILES[v]
            export.make_fp16(fp32, paths[v])
        elif v == "int8":
            paths[v] = out_dir / export.RENDERER_FILES[v]
            cal = export.random_motions(4, 1)
            info = export.make_int8(fp32, paths[v], cal, cal[:1], sensitivity=args.profile == "sample")
            print(f"int8: kept float {info['kept_float']}")
    providers = [["CPUExecutionProvider"]]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        providers.append(["CUDAExecutionProvider", "CPUExecutionProvider"])
    rows = []
    feeds = {"motion": np.random.default_rng(1).normal(0, 0.01, (1, 69)).astype(np.float32)}
    for prov in providers:
        order = ["fp32"] + [v for v in variants if v != "fp32"]
        lats = export.latencies({v: paths[v] for v in order}, feeds, args.frames, warmup=1, providers=prov)
        for v in order:
            sess = export.session(paths[v], providers=prov)
            lat = lats[v] / 1000
            thr = args.batch / time_session(sess, args.batch, max(1, args.frames // 2)) if args.batch else float("nan")
            rows.append((v, prov[0].replace("ExecutionProvider", ""), paths[v].stat().st_size / 1e6, lat * 1000, thr,
                         flops / lat / 1e9))
    print()
    print(f"{'variant':8} {'provider':8} {'MB':>8} {'ms/frame':>10} {'frames/s':>9} {'GFLOP/s':>8} {'% of peak':>9}")
    for v, p, mb, ms, thr, gf in rows:
        share = f"{100 * gf / peak:.0f}%" if p == "CPU" else "-"
        print(f"{v:8} {p:8} {mb:8.1f} {ms:10.1f} {thr:9.2f} {gf:8.1f} {share:>9}")
    print("\n(GFLOP/s of every variant counts the same fp32-equivalent FLOPs; % of peak is against the fp32 matmul peak.)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
