"""Benchmark the avatar page (`python -m talkinghead serve`) in headless Chromium: frames per second and
audio-to-frame latency, for each renderer the bundle has that the page can use (the full renderer, and the pocket
renderer when `models.renderer.variants.pocket` exists).

    python benchmarks/bench_browser.py                        # a sample-profile bundle built in a temporary folder,
                                                              # plus an untrained pocket renderer at released size
    python benchmarks/bench_browser.py --bundle talkinghead-workspace/avatar --seconds 8

For each renderer, two runs of the same espeak-ng sentence through the page's file input:
  live     the audio enters at its real-time pace; frames that would be late are dropped. Prints the frames shown
           per second (what a viewer sees; 25 is real time), the delay the page scheduled (sound played that late),
           and the latency from an audio sample arriving to its frame being ready (mean, p95).
  offline  every frame rendered as fast as possible: the page's render rate (frames/s).
each with the face pasted by paste.onnx (the Python engine's pixels) and by the canvas (the page's fast paste),
and, as a same-run reference, onnxruntime (Python, CPU) rendering the same renderer + paste.onnx in this process.
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
    does not depend on the values) as the variant "pocket": bench_pocket.untrained_student."""
    from bench_pocket import untrained_student
    from talkinghead import pocket

    student = untrained_student()
    path = pocket.export_onnx(student, bundle / pocket.POCKET_FILE)
    pocket.register(bundle, {"file": pocket.POCKET_FILE, "use": "benchmark only: untrained, released size",
                             "bytes": path.stat().st_size})


def speech_wav(folder: Path, seconds: float) -> Path:
    import soundfile as sf

    from talkinghead import tts

    s = tts.get_backend("espeak").synthesize(SENTENCE, "en")
    x = tts.to_mono_16k(s.samples, s.sample_rate)[: int(seconds * 16000)]
    sf.write(folder / "speech.wav", x.astype(np.float32), 16000, subtype="FLOAT")
    return folder / "speech.wav"


def python_reference(bundle: Path, variant_file: str, frames: int = 5) -> float:
    """Frames per second of renderer + paste in onnxruntime (Python, CPU, default threads), batch 1."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    r = ort.InferenceSession(str(bundle / variant_file), so, providers=["CPUExecutionProvider"])
    p = ort.InferenceSession(str(bundle / "paste.onnx"), so, providers=["CPUExecutionProvider"])
    m = np.zeros((1, 69), np.float32)
    p.run(None, {p.get_inputs()[0].name: r.run(None, {r.get_inputs()[0].name: m})[0]})
    t = time.perf_counter()
    for _ in range(frames):
        p.run(None, {p.get_inputs()[0].name: r.run(None, {r.get_inputs()[0].name: m})[0]})
    return frames / (time.perf_counter() - t)


def run_page(browser, url: str, wav: Path, query: str) -> dict:
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(url + query)
    page.wait_for_function("window.talkinghead && window.talkinghead.loaded === true", timeout=600_000)
    err = page.evaluate("talkinghead.error")
    if err:
        raise SystemExit(f"the page says: {err}")
    out = {"ep": page.evaluate("talkinghead.ep"), "threads": page.evaluate("talkinghead.threads")}
    for mode in ("live", "offline"):
        n = page.evaluate("talkinghead.runs.length")
        page.select_option("#mode", mode)
        page.set_input_files("#file", str(wav))
        page.wait_for_function(f"talkinghead.runs.length > {n} || talkinghead.error", timeout=1_800_000)
        out[mode] = page.evaluate(f"talkinghead.runs[{n}]")
    ctx.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=None, help="an exported bundle (default: build a sample one)")
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds of speech (default 5)")
    ap.add_argument("--ep", choices=["auto", "wasm", "webgpu"], default="auto", help="onnxruntime-web backend")
    ap.add_argument("--threads", type=int, default=None,
                    help="onnxruntime-web wasm threads for the renderer (default: the page's choice)")
    ap.add_argument("--no-pocket", action="store_true",
                    help="do not add an untrained released-size pocket renderer to the built sample bundle")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from talkinghead import serve

    chromium, dist = serve.find_chromium(), serve.find_ort_web()
    if chromium is None or dist is None:
        raise SystemExit("needs chromium (apt-get install chromium) and onnxruntime-web "
                         "(python -m talkinghead serve --install-web-runtime)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bundle = Path(args.bundle) if args.bundle else sample_bundle(tmp)
        if not args.bundle and not args.no_pocket:
            add_pocket(bundle)
        wav = speech_wav(tmp, args.seconds)
        variants = json.loads((bundle / "manifest.json").read_text())["models"]["renderer"]["variants"]
        names = [v for v in ("pocket", "fp32") if v in variants]
        srv = serve.make_server(bundle, "127.0.0.1", 0, dist)
        url = serve.start_in_thread(srv)
        print(f"bundle {bundle} ({', '.join(names)}); {args.seconds:.1f} s of speech; onnxruntime-web "
              f"{serve.ort_web_version(dist)}; Chromium {chromium}")
        rows = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=serve.CHROMIUM_ARGS)
            for name in names:
                ref = python_reference(bundle, variants[name]["file"])
                for paste in ("onnx", "canvas"):
                    q = f"?renderer={name}&paste={paste}" + ("" if args.ep == "auto" else f"&ep={args.ep}") + \
                        ("" if args.threads is None else f"&threads={args.threads}")
                    rows.append((name, paste, run_page(browser, url, wav, q), ref))
            browser.close()
        srv.shutdown()
    print(f"\n{'renderer':<9} {'paste':<7} {'backend':<10} {'shown fps':>9} {'dropped':>8} {'delay ms':>9} {'latency ms':>11} "
          f"{'p95 ms':>7} {'render fps':>10} {'python fps':>10} {'page/python':>11}")
    for name, paste, r, ref in rows:
        live, off = r["live"], r["offline"]
        print(f"{name:<9} {paste:<7} {r['ep'] + ' x' + str(r['threads']):<10} {live['achieved_fps']:>9.1f} "
              f"{live['dropped']:>4}/{live['frames']:<3} {live['delay_ms']:>9.0f} {live['latency_mean_ms']:>11.0f} "
              f"{live['latency_p95_ms']:>7.0f} {off['render_fps']:>10.2f} {ref:>10.2f} {off['render_fps'] / ref:>11.2f}")
    print("\nshown fps: frames on screen per second in live mode (25 = every frame); latency: an audio sample arriving "
          "-> its frame ready; delay: how late the sound is played so that it matches the face.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
