"""Benchmark the pocket renderer against the full renderer, in one run on this machine (issue 12).

    python benchmarks/bench_pocket.py            # released sizes (random weights), the pocket student at its full size
    python benchmarks/bench_pocket.py --quick    # the sample profile, with a real (tiny) distillation: seconds
    python benchmarks/bench_pocket.py --compare  # the student's first architecture against today's (issue 14)

Both renderers run in onnxruntime on the CPU with `--threads` threads (2: the target machine), batch 1:

- FLOPs per frame: convolutions and matmuls by torch's FlopCounterMode for both (as benchmarks/bench_export.py counts
  the renderer), and every op of the pocket graph by `pocket.count_onnx` (grid sampling, resizing, pointwise too);
- latency per frame (median) of each renderer, and of the other stages: audio features, one Audio2Motion step
  (`audio2motion.onnx`, default size, untrained: the cost does not depend on the values), `paste.onnx`;
- frames per second end to end (audio in, pasted frame out): for the pocket renderer measured with the live engine
  over `--seconds` of speech-like audio (`mode="preview"`, batch 1), then in `mode="realtime"` (the clock: frames
  dropped, latency) to show picture and sound stay in sync; for the full renderer (seconds per frame) computed from
  its stage latencies;
- quality against the teacher on held-out motions: with `--quick`, the distilled student's held-out PSNR / SSIM and
  the two baselines (static reference, nearest training frame); at released sizes the weights are random, so the
  quality has to be measured with the released weights (python -m talkinghead distill, full profile, a GPU).

`--compare` measures only the pocket student, its first architecture (`pocket.student.CONFIGS_V1`: GELU, x2 bilinear
resizes between the stages) against today's (`pocket.CONFIGS`), in the same run: at released size (untrained) the
ms per frame in onnxruntime-web (wasm, one thread, Node.js: what the browser page runs; skipped without `node` or
the installed onnxruntime-web, `python -m talkinghead serve --install-web-runtime`) and in onnxruntime (1 and 2
threads), all runs interleaved, and the FLOPs; on the sample profile the held-out PSNR of each distilled from the
same teacher frames with the same seeds and steps (`--seeds`).

The full networks are built as benchmarks/bench_export.py builds them (`fake_lp`, `fake_bundle`: released sizes,
default-initialised weights, a random baked source); the paste step and the portrait come from the sample portrait
baked on the sample profile (the paste cost depends only on the portrait's size, printed).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.path.insert(0, str(HERE))


def _median_ms(f, frames: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        f()
    t = []
    for _ in range(max(1, frames)):
        t0 = time.perf_counter()
        f()
        t.append(1000 * (time.perf_counter() - t0))
    return float(statistics.median(t))


def _session(path, threads):
    from talkinghead.pocket.bundle_entry import session
    return session(path, threads)


def untrained_student(config=None):
    """The pocket student at its released size (`config`, default pocket.CONFIGS["full"]) with seeded random weights:
    its cost does not depend on the values (also the browser benchmark's pocket renderer)."""
    import torch

    from talkinghead import export, pocket

    rng = np.random.default_rng(0)
    mean, std = pocket.motion_stats(export.random_motions(64, 0))
    student = pocket.PocketStudent(rng.uniform(0, 1, (3, 512, 512)), mean, std,
                                   config or pocket.CONFIGS["full"]).eval()
    with torch.no_grad():
        for prm in student.head.parameters():
            prm.normal_(0, 0.05)
    return student


def make_bundle(root: Path, lp_sample):
    """The sample portrait baked (sample profile) + paste.onnx + an untrained default-size audio2motion.onnx."""
    import torch

    from talkinghead import a2m, bake, export
    from talkinghead.audio import FeatureParams

    path = bake.bake(bake.sample_portrait(), root / "avatar", lp=lp_sample)
    torch.manual_seed(0)
    model = a2m.Audio2Motion(a2m.A2MConfig()).eval()
    a2m.save_checkpoint(path / a2m.CHECKPOINT_NAME, model, model.config, FeatureParams(), {}, mode="audio_only")
    bake.add_files(path, [a2m.CHECKPOINT_NAME])
    export.export_paste(path)
    export.export_audio2motion(path)
    return path


def export_teacher(module, path: Path) -> Path:
    import torch

    from talkinghead import export

    write = getattr(export, "export_graph", None) or getattr(export, "_export")
    write(module, (torch.zeros(1, 69),), path, ["motion"], ["face"], {"motion": {0: "batch"}, "face": {0: "batch"}})
    return path


def make_int8(src: Path, dst: Path, calibration: np.ndarray) -> Path:
    """Static QDQ int8 of the pocket graph's Conv/Gemm/MatMul (per channel), GridSample and Resize kept float."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calibration[i:i + 1] for i in range(len(calibration)))

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"motion": x}

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv", "Gemm",
                    "MatMul"], per_channel=True, reduce_range=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, extra_options={"ActivationSymmetric": True})
    return dst


def speechy(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    env = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    x = env * (0.3 * np.sin(2 * np.pi * 180 * t) + 0.2 * np.sin(2 * np.pi * 900 * t)) + 0.02 * rng.normal(size=len(t))
    return x.astype(np.float32)


def stage_latencies(bundle: Path, threads: int, frames: int) -> dict:
    """ms per frame of the audio features, one audio2motion.onnx step and paste.onnx (batch 1)."""
    from talkinghead import live
    from talkinghead.audio import StreamingFeatures

    rt = live.BundleRuntime(bundle, variant="pocket-fp32", threads=threads, frame_graph=False)
    x = speechy(1.0)
    feats = StreamingFeatures(rt.feature_params)

    def features():
        feats.push(x[:640])

    state = rt.a2m_init_state()
    f1 = rt.silence_features(1)
    paste = rt.sessions["paste"]
    face = {"face": np.zeros((1, 3, 512, 512), np.float32)}
    return {"features": _median_ms(features, frames * 4), "a2m": _median_ms(lambda: rt.a2m_step(f1, state), frames * 4),
            "paste": _median_ms(lambda: paste.run(None, face), frames)}


def end_to_end(bundle: Path, variant: str, threads: int, seconds: float, frame_graph: bool = False) -> dict:
    """Audio in, pasted frames out, through the live engine: preview (batch 1, every frame) and realtime (the clock).
    `frame_graph`: render through the variant's frame graph (pocket_frame.onnx) instead of pocket.onnx + paste.onnx."""
    from talkinghead import live

    rt = live.BundleRuntime(bundle, variant=variant, threads=threads, frame_graph=frame_graph)
    x = speechy(seconds)
    pre = live.LiveEngine(rt, mode="preview", batch_size=1, verbose=False)
    n = sum(1 for _ in pre.frames(live.ArraySource(x, 16000, chunk=320)))
    p = pre.report
    real = live.LiveEngine(rt, mode="realtime", verbose=False)
    for _ in real.frames(live.ArraySource(x, 16000, chunk=320, realtime=True)):
        pass
    r = real.report
    return {"frames": n, "fps": p.achieved_fps, "realtime_fps": r.achieved_fps, "dropped": r.dropped, "late": r.late,
            "latency_p95_ms": r.latency_p95_ms, "delay_ms": r.delay_ms}


def register_pocket(bundle: Path, path: Path, name: str) -> None:
    """List a pocket graph in the bundle's manifest as renderer variant `name` (the benchmark's own bundle)."""
    import shutil

    from talkinghead.bake import add_files
    from talkinghead.fileio import load_json

    shutil.copy(path, bundle / path.name)
    manifest = load_json(bundle / "manifest.json")
    models = dict(manifest["models"])
    renderer = dict(models.get("renderer") or {"input": "motion", "output": "face", "default": name})
    renderer["variants"] = dict(renderer.get("variants") or {}, **{name: {"file": path.name}})
    models["renderer"] = renderer
    add_files(bundle, [path.name], models=models)


WASM_JS = r"""
// node time.mjs <ort.node.min.mjs URL> <threads> <rounds> a.onnx b.onnx ... -> JSON {file: median ms}, interleaved
import fs from 'fs';
const [url, threads, rounds, ...files] = process.argv.slice(2);
const ort = await import(url);
ort.env.wasm.numThreads = Number(threads);
ort.env.logLevel = 'error';
const runs = [];
for (const f of files) {
  const s = await ort.InferenceSession.create(fs.readFileSync(f), {executionProviders: ['wasm'],
                                                                    graphOptimizationLevel: 'all'});
  const feeds = {motion: new ort.Tensor('float32', new Float32Array(69).fill(0.01), [1, 69])};
  for (let i = 0; i < 3; i++) await s.run(feeds);
  runs.push([s, feeds, []]);
}
for (let r = 0; r < Number(rounds); r++)
  for (const [s, feeds, t] of runs) { const a = performance.now(); await s.run(feeds); t.push(performance.now() - a); }
const out = {};
files.forEach((f, i) => { const t = runs[i][2].sort((a, b) => a - b); out[f] = t[t.length >> 1]; });
console.log(JSON.stringify(out));
"""


def wasm_ms(paths, threads: int = 1, rounds: int = 21) -> dict | None:
    """Median ms per frame (batch 1) of each graph in onnxruntime-web's wasm backend under Node.js, the graphs run
    round-robin; None when `node` or the installed onnxruntime-web (`talkinghead.serve.find_ort_web`) is missing."""
    import json
    import shutil
    import subprocess

    from talkinghead import serve

    node, dist = shutil.which("node"), serve.find_ort_web()
    if node is None or dist is None or not (dist / "ort.node.min.mjs").is_file():
        return None
    with tempfile.TemporaryDirectory(prefix="th-wasm-") as td:
        js = Path(td) / "time.mjs"
        js.write_text(WASM_JS)
        r = subprocess.run([node, str(js), (dist / "ort.node.min.mjs").as_uri(), str(threads), str(rounds),
                            *map(str, paths)], capture_output=True, text=True, timeout=600)
    if r.returncode:
        raise RuntimeError(f"node failed: {r.stderr.strip()[-500:]}")
    times = json.loads(r.stdout.strip().splitlines()[-1])
    return {Path(k): v for k, v in times.items()}


def compare_quality(seeds: int, steps: int = 200) -> dict:
    """Held-out PSNR (dB, at the training size) of the first and today's sample-profile students, distilled from the
    same teacher frames (the sample portrait, a synthetic dataset) with the same seeds and steps: {name: [per seed]}."""
    from talkinghead import dataset, pocket
    from talkinghead.liveportrait import load_liveportrait

    lp = load_liveportrait(profile="sample")
    with tempfile.TemporaryDirectory(prefix="th-bench-pocket-") as td:
        bundle = make_bundle(Path(td), lp)
        b, ds, _ = pocket.resolve_inputs(bundle, dataset.synthetic_dataset(n_lines=6, seed=1), None,
                                         need_models=False, progress=False)
        cfg = pocket.DistillConfig(steps=steps, n_train=160, n_held=40, lr=4e-3)
        data = pocket.make_teacher_data(b, ds, None, cfg, lp=lp, progress=False)
    out = {}
    for name, pc in (("first", pocket.student.CONFIGS_V1["sample"]), ("today", pocket.CONFIGS["sample"])):
        out[name] = []
        for seed in range(seeds):
            student, _ = pocket.train_student(data, pocket.DistillConfig(steps=steps, lr=4e-3, seed=seed), pc,
                                              progress=False)
            ev = pocket.evaluate(student, data)
            out[name].append(ev["psnr_student"])
        out["static"], out["nearest"] = ev["psnr_static"], ev["psnr_nearest"]
    return out


def export_region(student, path: Path) -> Path:
    """The student as motion -> `PocketStudent.region` (B, 3, h, w) at the warp resolution, exported: the part the
    page's frame graph (pocket_frame.onnx) runs before its own paste, without pocket.onnx's final resize to 512."""
    import torch

    from talkinghead import export
    from talkinghead.pocket.student import scaled_roi

    class Region(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.s = student

        def forward(self, motion):
            s = self.s
            return s.region(motion, s.reference_w, scaled_roi(s.config.roi, min(512, s.config.warp_size)), s.grid_w)

    export.export_graph(Region().eval(), (torch.zeros(1, 69),), path, ["motion"], ["region"],
                        {"motion": {0: "batch"}, "region": {0: "batch"}})
    return path


def compare(args) -> int:
    """The first pocket architecture against today's (see the module docstring): a table."""
    from talkinghead import live, pocket

    out = Path(tempfile.mkdtemp(prefix="th-bench-pocket-"))
    rows, paths = {}, {}
    for name, cfg in (("first", pocket.student.CONFIGS_V1["full"]), ("today", pocket.CONFIGS["full"])):
        student = untrained_student(cfg)
        paths[name] = pocket.export_onnx(student, out / f"pocket-{len(paths)}.onnx")
        rows[name] = {"config": cfg, "gflop": pocket.count_onnx(paths[name])["total"] / 1e9,
                      "params": pocket.n_parameters(student),
                      "region": export_region(student, out / f"region-{len(paths)}.onnx")}
    load = os.getloadavg()
    wasm = wasm_ms(list(paths.values()) + [r["region"] for r in rows.values()], 1, args.frames or 21)
    x = {"motion": np.full((1, 69), 0.01, np.float32)}
    native = {t: live.choice.round_robin_ms({k: _session(p, t) for k, p in paths.items()}, x, args.frames or 21, 3)
              for t in (1, 2)}
    load = [max(a, b) for a, b in zip(load, os.getloadavg())]
    quality = compare_quality(args.seeds) if args.seeds else None
    print(f"released size (untrained), batch 1; load average during the timing {load[0]:.1f} "
          f"(5 min {load[1]:.1f}) on {os.cpu_count()} CPU threads")
    head = ("student", "wasm 1 thread ms (region only)", "onnxruntime 1 / 2 threads ms", "GFLOP", "k params",
            "sample held-out PSNR dB (mean; per seed)")
    table = [head]
    for k, p in paths.items():
        q = quality and quality[k]
        table.append((k, f"{wasm[p]:.1f} ({wasm[rows[k]['region']]:.1f})" if wasm else "n/a (no node/onnxruntime-web)",
                      f"{native[1][k]:.1f} / {native[2][k]:.1f}", f"{rows[k]['gflop']:.3f}",
                      f"{rows[k]['params'] / 1e3:.0f}",
                      f"{np.mean(q):.2f}; " + " ".join(f"{v:.2f}" for v in q) if q else "-"))
    w = [max(len(r[i]) for r in table) for i in range(len(head))]
    for i, r in enumerate(table):
        print("  ".join(c.ljust(x) for c, x in zip(r, w)).rstrip())
        if i == 0:
            print("  ".join("-" * x for x in w))
    if wasm:
        a, b = (wasm[p] for p in paths.values())
        ra, rb = (wasm[r["region"]] for r in rows.values())
        print(f"wasm: today's student takes {b / a:.2f}x the first one's time ({rb / ra:.2f}x for the region alone, "
              "what the page's frame graph runs before its paste), same run, interleaved")
    if quality:
        print(f"sample profile baselines: static reference {quality['static']:.2f} dB, nearest training frame "
              f"{quality['nearest']:.2f} dB; {len(quality['today'])} seeds, 200 steps, 160 training frames")
    for k, r in rows.items():
        c = r["config"]
        print(f"{k}: channels {c.channels}, {c.activation}, upsample {c.upsample}, head {c.head_kernel}x"
              f"{c.head_kernel}, fields {c.field_size} px, warp {c.warp_size} px")
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="sample profile with a tiny real distillation (seconds)")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime (and torch) threads (default 2)")
    ap.add_argument("--frames", type=int, default=None, help="timed runs per latency (default 20; full renderer 2)")
    ap.add_argument("--seconds", type=float, default=None, help="audio for the end-to-end run (default 8, quick 2)")
    ap.add_argument("--no-int8", action="store_true", help="skip the int8 pocket graph")
    ap.add_argument("--compare", action="store_true",
                    help="only the student: its first architecture against today's (wasm, onnxruntime, quality)")
    ap.add_argument("--seeds", type=int, default=4, help="with --compare: distillations per architecture (0: none)")
    args = ap.parse_args(argv)
    os.environ.setdefault("TALKINGHEAD_PROFILE", "sample")
    import onnxruntime as ort
    import torch

    torch.set_num_threads(args.threads)
    if args.compare:
        return compare(args)
    from bench_export import fake_bundle, fake_lp, peak_gflops

    from talkinghead import export, pocket
    from talkinghead.liveportrait import load_liveportrait

    profile = "sample" if args.quick else "full"
    frames = args.frames or (5 if args.quick else 20)
    seconds = args.seconds or (2.0 if args.quick else 8.0)
    print(f"bench_pocket: {profile} sizes; torch {torch.__version__}, onnxruntime {ort.__version__}; "
          f"{os.cpu_count()} CPU threads on the machine, {args.threads} used")
    t_start = time.perf_counter()
    peak = peak_gflops(1024 if args.quick else 2048)
    print(f"measured fp32 peak (numpy matmul, all cores): {peak:.0f} GFLOP/s")
    lp_sample = load_liveportrait(profile="sample")
    out = Path(tempfile.mkdtemp(prefix="th-bench-pocket-"))
    bundle = make_bundle(out, lp_sample)
    from talkinghead.bake import load_bundle

    b = load_bundle(bundle)
    print(f"portrait {b.portrait.shape[1]}x{b.portrait.shape[0]} (paste cost scales with its area)")

    # ------------------------------------------------------------------ the teacher and the student
    quality = None
    if args.quick:
        from talkinghead import dataset

        teacher_module = export.renderer_module(lp_sample, b)
        ds = dataset.synthetic_dataset(n_lines=6, seed=1)
        cfg = pocket.DistillConfig(steps=150, n_train=96, n_held=24, lr=4e-3)
        res = pocket.distill(bundle, ds, checkpoint=None, config=cfg, lp=lp_sample, export=False, progress=False)
        student, quality = res.student, res.evaluation
    else:
        teacher_module = export.renderer_module(fake_lp("full"), fake_bundle("full"))
        student = untrained_student()
    t0 = time.perf_counter()
    teacher_path = export_teacher(teacher_module, out / "renderer.onnx")
    print(f"renderer.onnx ({profile}) exported in {time.perf_counter() - t0:.0f} s")
    paths = {"pocket fp32": pocket.export_onnx(student, out / "pocket.onnx")}
    if not args.no_int8:
        paths["pocket int8"] = make_int8(paths["pocket fp32"], out / "pocket.int8.onnx", export.random_motions(32, 3))
    for name, p in paths.items():
        register_pocket(bundle, p, name.replace(" ", "-"))
    frame_path = bundle / pocket.FRAME_FILE
    pocket.export_frame(bundle, student, variant="pocket-fp32")       # the frame graph of the fp32 student

    # ------------------------------------------------------------------ cost
    flops_teacher = pocket.count_torch(teacher_module)
    flops_student = pocket.count_torch(student)
    onnx_flops = {k: pocket.count_onnx(p)["total"] for k, p in paths.items()}
    feeds = {"motion": (np.random.default_rng(1).normal(0, 0.01, (1, 69))).astype(np.float32)}
    ts = _session(teacher_path, args.threads)
    lat = {"full fp32": _median_ms(lambda: ts.run(None, feeds), 2 if not args.quick else frames, warmup=1)}
    for k, p in paths.items():
        s = _session(p, args.threads)
        lat[k] = _median_ms(lambda: s.run(None, feeds), frames, warmup=3)
    sf = _session(frame_path, args.threads)
    lat["pocket frame graph"] = _median_ms(lambda: sf.run(None, feeds), frames, warmup=3)
    ref = _session(paths["pocket fp32"], args.threads).run(None, feeds)[0]
    err8 = {k: float(np.abs(_session(p, args.threads).run(None, feeds)[0] - ref).max()) for k, p in paths.items()}
    stages = stage_latencies(bundle, args.threads, frames)
    other = stages["features"] + stages["a2m"] + stages["paste"]

    # ------------------------------------------------------------------ end to end
    # The runtime runs its sessions one after another; one thread per session is measured beside --threads and the
    # faster reported (with onnxruntime's spinning threads one was faster on 2 cores; talkinghead.onnxrt turns
    # spinning off, and then two win).
    e2e = {}
    for k in paths:
        runs = {t: end_to_end(bundle, k.replace(" ", "-"), t, seconds) for t in sorted({1, args.threads})}
        best = max(runs, key=lambda t: runs[t]["fps"])
        e2e[k] = dict(runs[best], threads=best, by_threads={t: r["fps"] for t, r in runs.items()})
    runs = {t: end_to_end(bundle, "pocket-fp32", t, seconds, frame_graph=True) for t in sorted({1, args.threads})}
    best = max(runs, key=lambda t: runs[t]["fps"])
    e2e["pocket frame graph"] = dict(runs[best], threads=best, by_threads={t: r["fps"] for t, r in runs.items()})
    print()
    print(f"stages per frame ({args.threads} threads): features {stages['features']:.2f} ms, audio2motion step "
          f"{stages['a2m']:.2f} ms, paste {stages['paste']:.2f} ms")
    rows = [("renderer", "GFLOP conv+mm", "GFLOP all ops", "MB", "ms/frame", "e2e fps (threads/session: fps)",
             "realtime: fps, dropped, p95 ms")]
    rows.append(("full fp32 (teacher)", f"{flops_teacher / 1e9:.1f}", "-", f"{teacher_path.stat().st_size / 1e6:.1f}",
                 f"{lat['full fp32']:.1f}", f"{1000 / (lat['full fp32'] + other):.2f} (from stages)", "-"))
    for k, p in paths.items():
        e = e2e[k]
        rows.append((k, f"{flops_student / 1e9:.3f}", f"{onnx_flops[k] / 1e9:.3f}", f"{p.stat().st_size / 1e6:.2f}",
                     f"{lat[k]:.2f}", f"{e['fps']:.1f} (" + ", ".join(f"{t}: {v:.1f}" for t, v in
                                                          e["by_threads"].items()) + ")",
                     f"{e['realtime_fps']:.1f}, {e['dropped']}/{e['frames']}, {e['latency_p95_ms']:.0f}"))
    e = e2e["pocket frame graph"]
    rows.append(("pocket frame graph", "-", f"{pocket.count_onnx(frame_path)['total'] / 1e9:.3f}",
                 f"{frame_path.stat().st_size / 1e6:.2f}", f"{lat['pocket frame graph']:.2f} (with paste)",
                 f"{e['fps']:.1f} (" + ", ".join(f"{t}: {v:.1f}" for t, v in e["by_threads"].items()) + ")",
                 f"{e['realtime_fps']:.1f}, {e['dropped']}/{e['frames']}, {e['latency_p95_ms']:.0f}"))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(x) for c, x in zip(r, w)).rstrip())
        if i == 0:
            print("  ".join("-" * x for x in w))
    print("pocket frame graph: pocket_frame.onnx paints only the box of the frame that can move, paste included, and "
          "returns bytes (talkinghead.pocket.frame); the rows above it add paste.onnx and the float-to-byte step")
    print(f"\ncompute ratio (conv+matmul): {flops_teacher / flops_student:.0f}x less; latency ratio: "
          f"{lat['full fp32'] / lat['pocket fp32']:.0f}x faster (pocket fp32 vs full fp32, same run)")
    if "pocket int8" in err8:
        print(f"int8 vs fp32 pocket graph: max |diff| {err8['pocket int8']:.3f} on one frame")
    print(f"end to end: {seconds:.0f} s of audio through live.LiveEngine (features, audio2motion.onnx, the renderer, "
          f"paste.onnx, uint8 frames), realtime run with the faster thread setting; realtime delay {e2e['pocket fp32']['delay_ms']:.0f} ms (the sound is "
          "played that late, so lips and sound stay in sync); target >= 25 fps with no dropped frames")
    if quality:
        q = quality
        print(f"\nheld-out quality vs the teacher ({q['frames']} frames of lines {', '.join(q['lines'])}): student "
              f"PSNR {q['psnr_student']:.2f} dB at {q['size']} px ({q['psnr_512']:.2f} dB, SSIM {q['ssim_512']:.4f} at "
              f"512), static reference {q['psnr_static']:.2f} dB, nearest training frame {q['psnr_nearest']:.2f} dB")
    else:
        print("\nquality vs the teacher: not measurable with random weights; distil with the released weights "
              "(python -m talkinghead distill --profile full, on a GPU) and read models.renderer.variants.pocket "
              "in manifest.json (psnr_db, ssim on held-out lines)")
    print(f"(peak {peak:.0f} GFLOP/s; full fp32 reaches {flops_teacher / lat['full fp32'] / 1e6:.0f} GFLOP/s, pocket "
          f"fp32 {onnx_flops['pocket fp32'] / lat['pocket fp32'] / 1e6:.0f} GFLOP/s counted over all ops); "
          f"total {time.perf_counter() - t_start:.0f} s")
    import shutil

    shutil.rmtree(out, ignore_errors=True)          # the released-size renderer.onnx alone is 400 MB
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
