"""Per-frame cost of the five LivePortrait networks in PyTorch: latency, FLOPs, and the share of this machine's peak.

    python benchmarks/bench_networks.py                  # full (released) sizes, random weights, CPU
    python benchmarks/bench_networks.py --profile sample --repeats 5
    python benchmarks/bench_networks.py --device cuda --dtype float16

The peak is measured in the same run (a large matmul in the same dtype on the same device), so the ratio
"achieved / peak" is comparable across machines. Random weights: timing does not depend on the values.
Reference (FACTS.md, 2 vCPU AVX2): F 64 GFLOP / 0.56 s, M 11.6 GFLOP / 0.15 s, W 342 GFLOP / 2.4 s, G 891 GFLOP / ~6.9 s.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from talkinghead.liveportrait.config import image_sizes
from talkinghead.liveportrait.generator import fold_spectral_norm
from talkinghead.liveportrait.loader import build_network


def measure_peak(device: torch.device, dtype: torch.dtype, n: int = 2048, repeats: int = 3) -> float:
    """Best GFLOP/s of an n x n matmul."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def network_calls(profile: str, device, dtype) -> dict:
    """name -> (module, input tuple) at the profile's sizes, batch 1."""
    size, _ = image_sizes(profile)
    nets = {name: build_network(name, profile).to(device, dtype).eval() for name in
            ("appearance_feature_extractor", "motion_extractor", "warping_module", "spade_generator")}
    fold_spectral_norm(nets["spade_generator"])
    img = torch.rand(1, 3, size, size, device=device, dtype=dtype)
    with torch.inference_mode():
        f_s = nets["appearance_feature_extractor"](img)
        kp = torch.randn(1, 21, 3, device=device, dtype=dtype) * 0.3
        warped = nets["warping_module"](f_s, kp_driving=kp, kp_source=kp)["out"]
    return {"F appearance": (nets["appearance_feature_extractor"], (img,)),
            "M motion": (nets["motion_extractor"], (img,)),
            "W warping": (lambda f, k: nets["warping_module"](f, kp_driving=k, kp_source=k)["out"], (f_s, kp)),
            "G generator": (nets["spade_generator"], (warped,))}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", choices=["full", "sample"], default="full")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per network after one warm-up (best is kept)")
    args = ap.parse_args(argv)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    torch.manual_seed(0)
    peak = measure_peak(device, dtype)
    print(f"profile {args.profile}, {device} {args.dtype}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; measured matmul peak {peak:.0f} GFLOP/s")
    print(f"{'network':14s} {'GFLOP':>9s} {'ms/frame':>10s} {'GFLOP/s':>9s} {'of peak':>8s}")
    total_flop = total_s = 0.0
    for name, (fn, inputs) in network_calls(args.profile, device, dtype).items():
        with torch.inference_mode():
            with FlopCounterMode(display=False) as counter:
                fn(*inputs)
            flop = counter.get_total_flops()
            best = float("inf")
            for _ in range(args.repeats + 1):
                _sync(device)
                t0 = time.perf_counter()
                fn(*inputs)
                _sync(device)
                best = min(best, time.perf_counter() - t0)
        total_flop, total_s = total_flop + flop, total_s + best
        print(f"{name:14s} {flop / 1e9:9.2f} {best * 1e3:10.1f} {flop / best / 1e9:9.1f} {flop / best / 1e9 / peak:8.1%}")
    print(f"{'all four':14s} {total_flop / 1e9:9.2f} {total_s * 1e3:10.1f} {total_flop / total_s / 1e9:9.1f} "
          f"{total_flop / total_s / 1e9 / peak:8.1%}")
    print(f"real time needs 40 ms per frame at 25 fps: this is {total_s / 0.04:.1f}x that (W + G render every frame; "
          "F once per portrait; M only while extracting)")


if __name__ == "__main__":
    main()
