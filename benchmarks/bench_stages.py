"""How long the demo's stages take on the `sample` profile, and what one rendered frame costs (README: How fast).

    python benchmarks/bench_stages.py                  # a fresh temporary workspace, every stage from nothing
    nice -n 10 python benchmarks/bench_stages.py --frames 20 --json out.json

Runs `python -m talkinghead demo`'s stages one by one through `talkinghead.pipeline` in a fresh workspace (corpus and
TTS, sample recording, bake, extract, train, export, speak of a fixed sentence) and prints the seconds of each; then
the milliseconds per rendered frame of the sample renderer in onnxruntime (renderer.onnx alone, renderer + paste) and
in PyTorch (`render.BakedRenderer`, one frame, with paste), medians after a warm-up. It prints the machine (cores, CPU
model, torch threads) and the load average before and after: on a shared machine the figures are as slow as its load
makes them, so read them with it. This is a script, not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

SENTENCE = "你好，我是你的数字分身。Hello, I am your talking avatar."


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else `platform.processor()`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load() -> str:
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg()) + " (1/5/15 min)"
    except OSError:
        return "unknown"


def median_ms(fn, frames: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(frames):
        t0 = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def stages(sentence: str) -> dict:
    """Seconds of each stage of the demo, in its order, in the current workspace (every stage made from nothing)."""
    from talkinghead import paths, pipeline
    from talkinghead.live import speak

    steps = [("corpus and TTS (01)", lambda: pipeline.ensure_corpus(verbose=False)),
             ("sample recording (03)", lambda: pipeline.ensure_sample_recording("sample", verbose=False)),
             ("bake (02)", lambda: pipeline.ensure_bundle(profile="sample", verbose=False)),
             ("extract (03)", lambda: pipeline.ensure_dataset(profile="sample", verbose=False)),
             ("train (04)", lambda: pipeline.ensure_trained("sample", verbose=False)),
             ("export (05)", lambda: pipeline.ensure_exported("sample", verbose=False)),
             ("speak (06)", lambda: speak(paths.avatar_dir(), sentence, paths.out_dir() / "bench.mp4",
                                          variant="fp32", progress=False))]
    made = {"corpus and TTS (01)": paths.corpus_dir() / "index.json",
            "sample recording (03)": paths.data_dir() / "sample_recording.mp4",
            "bake (02)": paths.avatar_dir() / "manifest.json", "extract (03)": paths.data_dir() / "dataset.npz",
            "train (04)": paths.avatar_dir() / "audio2motion.pt"}
    out = {}
    for name, step in steps:
        if name in made and made[name].is_file():
            print(f"  {name:<24}     kept (already in the workspace)", flush=True)
            continue
        t0 = time.perf_counter()
        r = step()
        out[name] = round(time.perf_counter() - t0, 2)
        extra = f" ({r.audio_s:.2f} s of audio, {r.report.rendered} frames)" if hasattr(r, "report") else ""
        print(f"  {name:<24} {out[name]:8.1f} s{extra}", flush=True)
    return out


def frame_costs(bundle_dir: Path, frames: int) -> dict:
    """ms per frame (batch 1): onnxruntime renderer alone and renderer + paste (fp32), PyTorch renderer + paste."""
    import numpy as np

    from talkinghead import layout
    from talkinghead.bundle import load_bundle
    from talkinghead.live import BundleRuntime

    m = np.zeros((1, layout.MOTION_DIM), np.float32)
    rt = BundleRuntime(bundle_dir, variant="fp32")
    ort_renderer = median_ms(lambda: rt.sessions["renderer"].run(None, {"motion": m}), frames)
    ort_frame = median_ms(lambda: rt.render(m), frames)
    out = {"onnxruntime renderer.onnx (fp32)": ort_renderer, "onnxruntime renderer + paste (fp32)": ort_frame}
    import torch

    from talkinghead.liveportrait import load_liveportrait
    from talkinghead.render import BakedRenderer

    bundle = load_bundle(bundle_dir)
    r = BakedRenderer(load_liveportrait(profile="sample", device="cpu"), bundle).eval()
    with torch.inference_mode():
        x = torch.zeros(1, layout.MOTION_DIM)
        out[f"PyTorch renderer + paste ({torch.get_num_threads()} threads)"] = median_ms(lambda: r(x), frames)
    out = {k: round(v, 1) for k, v in out.items()}
    for k, v in out.items():
        print(f"  {k:<40} {v:8.1f} ms/frame")
    h, w = rt.height, rt.width
    print(f"  (portrait {w}x{h}: paste works at the portrait's size; the renderer at {layout.CROP_SIZE}x"
          f"{layout.CROP_SIZE})")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=20, help="timed frames per renderer measurement (median)")
    ap.add_argument("--text", default=SENTENCE, help="the sentence the speak stage says")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--workspace", default=None, help="workspace to use (default: a fresh temporary one); stages "
                    "whose outputs are already there are kept and shown as such")
    args = ap.parse_args(argv)
    os.environ["TALKINGHEAD_PROFILE"] = "sample"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    ws = args.workspace or tempfile.mkdtemp(prefix="th-bench-stages-")
    os.environ["TALKINGHEAD_WORKSPACE"] = ws
    machine = {"cores": os.cpu_count(), "cpu": cpu_model(), "torch_threads": torch.get_num_threads(),
               "python": platform.python_version(), "torch": torch.__version__,
               "niceness": os.nice(0), "load_before": load()}
    print(f"machine: {machine['cores']} cores, {machine['cpu']}; torch {machine['torch']} ({machine['torch_threads']} "
          f"threads); nice {machine['niceness']}")
    print(f"load average before: {machine['load_before']}")
    print(f"workspace: {ws}\nstages (sample profile, from nothing):", flush=True)
    t0 = time.perf_counter()
    secs = stages(args.text)
    total = time.perf_counter() - t0
    print(f"  {'all stages':<24} {total:8.1f} s\nms per rendered frame (batch 1, median of {args.frames}):")
    from talkinghead import paths
    costs = frame_costs(paths.avatar_dir(), args.frames)
    machine["load_after"] = load()
    print(f"load average after: {machine['load_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "stages_s": secs, "total_s": round(total, 1),
                                               "ms_per_frame": costs}, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
