"""Benchmark the avatar page (`python -m talkinghead serve`) in headless Chromium: frames per second and
audio-to-frame latency, for each renderer the bundle has that the page can use (the full renderer, and the pocket
renderer when `models.renderer.variants.pocket` exists, with its frame graph when it has one).

    python benchmarks/bench_browser.py                        # a sample-profile bundle built in a temporary folder,
                                                              # plus an untrained pocket renderer at released size
    python benchmarks/bench_browser.py --bundle talkinghead-workspace/avatar --seconds 8
    python benchmarks/bench_browser.py --workdir /tmp/bb --no-fp32   # keep the built bundle, reuse it next time

Rows: the pocket renderer through its frame graph (`frame`: pocket_frame.onnx -> the moving box as bytes over the
background), through pocket.onnx + paste.onnx (`onnx`) and pocket.onnx + the canvas paste (`canvas`); the same two
for the full renderer (fp32). For each row, two runs of the same espeak-ng sentence through the page's file input:
  live     the audio enters at its real-time pace; frames that would be late are dropped. Prints the frames shown
           per second (what a viewer sees; 25 is real time), the delay the page scheduled (sound played that late),
           and the latency from an audio sample arriving to its frame being ready (mean, p95).
  offline  every frame rendered as fast as possible: the page's render rate (frames/s).
then the page's time per frame in each stage (ms, live | offline): features.onnx and audio2motion (main thread),
the renderer call (the model in the wasm worker, and the hops to and from it), paste (paste.onnx or the canvas),
pixels (floats -> bytes, or wrapping the frame graph's bytes) and draw (putImageData). As a same-run reference,
onnxruntime (Python, CPU) runs the same graph(s) in this process.
Needs Debian's chromium, playwright (the dev extra) and onnxruntime-web (`serve --install-web-runtime`).
This is a script, not a test: on the full renderer a frame costs seconds in a browser on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
sys.path.insert(0, str(Path(__file__).resolve().parent))   # bench_pocket beside it

SENTENCE = "Hello, this is the avatar speaking in a web page, driven by its own voice."


def sample_bundle(folder: Path) -> Path:
    """Bake the sample portrait, a random small Audio2Motion with idle motion, export fp32 + features.onnx."""
    import torch

    from talkinghead import a2m, bake, features_onnx
    from talkinghead.audio import FeatureParams
    from talkinghead.export import export_bundle
    from talkinghead.liveportrait import load_liveportrait

    lp = load_liveportrait(profile="sample")
    path = bake.bake(bake.sample_portrait(), folder / "avatar", lp=lp)
    torch.manual_seed(0)
    model = a2m.Audio2Motion(a2m.A2MConfig(hidden=32)).eval()
    idle = a2m.IdleMotion(np.cumsum(np.random.default_rng(1).normal(0, 0.05, (90, len(a2m.IDLE_DIMS))), 0)
                          .astype(np.float32), a2m.IDLE_DIMS.copy(), 25.0, 12)
    a2m.save_checkpoint(path / a2m.CHECKPOINT_NAME, model, model.config, FeatureParams(), {},
                        mode="idle_from_recording", idle=idle)
    bake.add_files(path, [a2m.CHECKPOINT_NAME])
    export_bundle(path, None, variants=("fp32",), progress=False, lp=lp, n_eval=1, latency_frames=1)
    features_onnx.export_features(path)
    return path


def add_pocket(bundle: Path) -> None:
    """Register an untrained pocket renderer at its released size (pocket.CONFIGS["full"], random weights: the cost
    does not depend on the values) as the variant "pocket": bench_pocket.untrained_student, with its frame graph
    (`pocket.export_frame`) when this talkinghead has one."""
    from bench_pocket import untrained_student
    from talkinghead import pocket

    student = untrained_student()
    path = pocket.export_onnx(student, bundle / pocket.POCKET_FILE)
    pocket.register(bundle, {"file": pocket.POCKET_FILE, "use": "benchmark only: untrained, released size",
                             "bytes": path.stat().st_size})
    if hasattr(pocket, "export_frame"):
        pocket.export_frame(bundle, student)
    else:
        print("note: this talkinghead has no pocket.export_frame yet: no frame-graph rows")


def build_bundle(folder: Path, pocket: bool) -> Path:
    """The sample bundle (+ pocket) in `folder`, or the one already built there by an earlier run."""
    if (folder / "avatar" / "manifest.json").is_file():
        return folder / "avatar"
    bundle = sample_bundle(folder)
    if pocket:
        add_pocket(bundle)
    return bundle


def speech_wav(folder: Path, seconds: float) -> Path:
    import soundfile as sf

    from talkinghead import tts

    s = tts.get_backend("espeak").synthesize(SENTENCE, "en")
    x = tts.to_mono_16k(s.samples, s.sample_rate)[: int(seconds * 16000)]
    sf.write(folder / "speech.wav", x.astype(np.float32), 16000, subtype="FLOAT")
    return folder / "speech.wav"


def python_reference(bundle: Path, files: list, frames: int = 5) -> float:
    """Frames per second of the chain `files` (renderer + paste.onnx, or the frame graph) in onnxruntime (Python,
    CPU, default threads), batch 1."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sessions = [ort.InferenceSession(str(bundle / f), so, providers=["CPUExecutionProvider"]) for f in files]

    def run():
        x = np.zeros((1, 69), np.float32)
        for s in sessions:
            x = s.run(None, {s.get_inputs()[0].name: x})[0]

    run()
    t = time.perf_counter()
    for _ in range(frames):
        run()
    return frames / (time.perf_counter() - t)


def run_page(browser, url: str, wav: Path, query: str) -> dict:
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(url + query)
    page.wait_for_function("window.talkinghead && window.talkinghead.loaded === true", timeout=600_000)
    err = page.evaluate("talkinghead.error")
    if err:
        raise SystemExit(f"the page says: {err}")
    out = {"ep": page.evaluate("talkinghead.ep"), "threads": page.evaluate("talkinghead.threads"),
           "warmup": page.evaluate("talkinghead.warmup")}
    for mode in ("live", "offline"):
        n = page.evaluate("talkinghead.runs.length")
        page.select_option("#mode", mode)
        page.set_input_files("#file", str(wav))
        page.wait_for_function(f"talkinghead.runs.length > {n} || talkinghead.error", timeout=1_800_000)
        out[mode] = page.evaluate(f"talkinghead.runs[{n}]")
    ctx.close()
    return out


STAGES = ("features", "a2m", "model", "paste", "pixels", "draw")


def rows_for(variants: dict, fp32: bool) -> list:
    """(renderer, path, query, python reference files) for each row the bundle allows."""
    rows = []
    if "pocket" in variants:
        v = variants["pocket"]
        if v.get("frame"):
            rows.append(("pocket", "frame", "renderer=pocket", [v["frame"]["file"]]))
        for paste in ("onnx", "canvas"):
            rows.append(("pocket", paste, f"renderer=pocket&frame=0&paste={paste}", [v["file"], "paste.onnx"]))
    if fp32 and "fp32" in variants:
        for paste in ("onnx", "canvas"):
            rows.append(("fp32", paste, f"renderer=fp32&paste={paste}", [variants["fp32"]["file"], "paste.onnx"]))
    return rows


def print_table(rows: list) -> None:
    print(f"\n{'renderer':<9} {'path':<7} {'backend':<10} {'shown fps':>9} {'dropped':>8} {'delay ms':>9} "
          f"{'latency ms':>11} {'p95 ms':>7} {'render fps':>10} {'python fps':>10} {'page/python':>11}")
    for name, path, r, ref in rows:
        live, off = r["live"], r["offline"]
        print(f"{name:<9} {path:<7} {r['ep'] + ' x' + str(r['threads']):<10} {live['achieved_fps']:>9.1f} "
              f"{live['dropped']:>4}/{live['frames']:<3} {live['delay_ms']:>9.0f} {live['latency_mean_ms']:>11.0f} "
              f"{live['latency_p95_ms']:>7.0f} {off['render_fps']:>10.2f} {ref:>10.2f} {off['render_fps'] / ref:>11.2f}")
    print("\nwarm-up at load (renders of the rest frame until V8 has optimised the wasm, App.warmUp): " + ", ".join(
        f"{name} {path} {r['warmup']['renders']} renders, {r['warmup']['s']:.1f} s" for name, path, r, _ in rows))
    print(f"\nms per frame in the page, live | offline ({', '.join(STAGES)}; render = one whole render call)")
    print(f"{'renderer':<9} {'path':<7} " + " ".join(f"{k:>13}" for k in STAGES + ("render",)))
    for name, path, r, _ in rows:
        cells = []
        for k in STAGES + ("render",):
            a, b = (r[m]["stages_ms"].get(k, 0.0) for m in ("live", "offline"))
            cells.append(f"{a:>6.1f}|{b:<6.1f}")
        print(f"{name:<9} {path:<7} " + " ".join(cells))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=None, help="an exported bundle (default: build a sample one)")
    ap.add_argument("--workdir", default=None,
                    help="build the sample bundle in this folder, or reuse the one an earlier run built there")
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds of speech (default 5)")
    ap.add_argument("--ep", choices=["auto", "wasm", "webgpu"], default="auto", help="onnxruntime-web backend")
    ap.add_argument("--threads", type=int, default=None,
                    help="onnxruntime-web wasm threads for the renderer (default: the page's choice)")
    ap.add_argument("--no-pocket", action="store_true",
                    help="do not add an untrained released-size pocket renderer to the built sample bundle")
    ap.add_argument("--no-fp32", action="store_true", help="skip the full renderer's rows (the slow ones)")
    ap.add_argument("--only", default=None, help="only the rows of this path (frame, onnx or canvas)")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from talkinghead import serve

    chromium, dist = serve.find_chromium(), serve.find_ort_web()
    if chromium is None or dist is None:
        raise SystemExit("needs chromium (apt-get install chromium) and onnxruntime-web "
                         "(python -m talkinghead serve --install-web-runtime)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        work = Path(args.workdir) if args.workdir else tmp
        work.mkdir(parents=True, exist_ok=True)
        bundle = Path(args.bundle) if args.bundle else build_bundle(work, not args.no_pocket)
        wav = speech_wav(tmp, args.seconds)
        variants = json.loads((bundle / "manifest.json").read_text())["models"]["renderer"]["variants"]
        plan = [r for r in rows_for(variants, not args.no_fp32) if args.only in (None, r[1])]
        srv = serve.make_server(bundle, "127.0.0.1", 0, dist)
        url = serve.start_in_thread(srv)
        print(f"bundle {bundle} ({', '.join(variants)}); {args.seconds:.1f} s of speech; onnxruntime-web "
              f"{serve.ort_web_version(dist)}; Chromium {chromium}")
        extra = ("" if args.ep == "auto" else f"&ep={args.ep}") + \
            ("" if args.threads is None else f"&threads={args.threads}")
        rows = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=serve.CHROMIUM_ARGS)
            for name, path, q, files in plan:
                ref = python_reference(bundle, files)
                rows.append((name, path, run_page(browser, url, wav, "?" + q + extra), ref))
            browser.close()
        srv.shutdown()
    print_table(rows)
    print("\nshown fps: frames on screen per second in live mode (25 = every frame); latency: an audio sample arriving "
          "-> its frame ready; delay: how late the sound is played so that it matches the face.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
