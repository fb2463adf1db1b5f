"""Command line: `python -m talkinghead <stage> ...`, one subcommand per notebook, plus `demo` for all of them.

Every subcommand takes `--profile {full,sample}` and `--workspace DIR`; files land in the workspace's `data/`,
`avatar/` and `out/` folders (see `talkinghead.paths`). Errors print one sentence and exit with status 2.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from . import paths
from .bundle import load_bundle
from .clicheck import check_args, cli_spelling, os_sentence, tidy_workspace
from .errors import TalkingHeadError
from .hub import LICENCE_NOTE, fetch_all
from .layout import FPS
from .machine import format_report, machine_report, parameter_counts
from .profiles import get_profile

# The stage modules (pipeline, sample, bake, motion, a2m, export, live, pocket, serve, liveportrait) are imported
# inside the command that runs them: between them they load torch, OpenCV, pypinyin and onnxruntime (seconds), and
# `--help` or a usage error must answer at once.

EPILOG = """\
The course, stage by stage (each subcommand mirrors one notebook):
  setup             00  check the machine, fetch the LivePortrait weights (or build the sample ones)
  corpus            01  write the recording script (script.md) and synthesise every line (audio/*.wav)
  sample-recording  03  render the offline sample recording (sample portrait driven by the corpus audio)
  bake              02  portrait -> avatar bundle (crop, appearance features, source keypoints, mask)
  extract           03  recording -> data/dataset.npz (motion per frame + audio features)
  train             04  dataset -> avatar/audio2motion.pt
  export            05  avatar -> ONNX models + manifest.json
  speak             06  new speech -> out/*.mp4 through the exported models
  distill           07  avatar -> pocket.onnx + pocket_frame.onnx, a small renderer for this avatar (CPU real time)
  demo                  all of the above on the sample assets, end to end
  serve                 the avatar in a web page (microphone or audio file), served from this machine

Profiles: 'full' uses the released LivePortrait weights (downloaded once from the hub, or --weights-dir);
'sample' uses seeded random weights at reduced widths: offline and fast, but every image is noise.
"""


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line (exit status 2), like every other error of the command line."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see --help).\n")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", choices=["full", "sample"], default=None,
                   help="network weights: released ('full', default) or seeded noise ('sample'); env TALKINGHEAD_PROFILE")
    p.add_argument("--workspace", default=None,
                   help="folder for data/, avatar/, out/ (default ./talkinghead-workspace; env TALKINGHEAD_WORKSPACE)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default=None,
                   help="where PyTorch runs: 'auto' (default: CUDA, then Apple MPS, then CPU), or one of them; "
                        "env TALKINGHEAD_DEVICE")
    p.add_argument("--weights-dir", default=None,
                   help="a local folder laid out like the hub repo KwaiVGI/LivePortrait (env TALKINGHEAD_WEIGHTS_DIR)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m talkinghead", description=__doc__.splitlines()[0],
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, (helptext, add_args, _) in COMMANDS.items():
        p = sub.add_parser(name, help=helptext, description=helptext,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        _common(p)
        add_args(p)
    return parser


def _apply_env(args: argparse.Namespace) -> None:
    if args.profile:
        os.environ["TALKINGHEAD_PROFILE"] = args.profile
    if args.workspace:
        os.environ["TALKINGHEAD_WORKSPACE"] = args.workspace
    if args.weights_dir:
        os.environ["TALKINGHEAD_WEIGHTS_DIR"] = args.weights_dir
    if args.device:
        os.environ["TALKINGHEAD_DEVICE"] = args.device


# ---------------------------------------------------------------- setup
def _setup_args(p):
    p.add_argument("--no-face-detector", action="store_true", help="do not fetch insightface's det_10g.onnx")


def cmd_setup(args) -> int:
    from .liveportrait import load_liveportrait

    print(format_report(machine_report()))
    profile = get_profile()
    if not profile.is_sample:
        print(LICENCE_NOTE)
        for name, path in fetch_all(face_detector=not args.no_face_detector).items():
            print(f"  {name}: {path}")
    t0 = time.perf_counter()
    lp = load_liveportrait(profile=profile.name)
    print(f"LivePortrait ({profile.name}) loaded in {time.perf_counter() - t0:.2f} s: "
          + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in parameter_counts(lp).items()))
    return 0


# ---------------------------------------------------------------- corpus (01)
def _corpus_args(p):
    p.add_argument("--min-count", type=int, default=2, help="each initial/final/tone/phoneme at least this often (2)")
    p.add_argument("--rates", default="1.0", help="comma-separated speaking rates, one wav each (default 1.0)")
    p.add_argument("--limit", type=int, default=None, help="synthesise only the first N script lines")
    p.add_argument("--no-tts", action="store_true", help="write script.md and index.json without synthesising")


def cmd_corpus(args) -> int:
    from .pipeline import build_corpus

    r = build_corpus(min_count=args.min_count, rates=[float(x) for x in args.rates.split(",")], limit=args.limit,
                     synthesize=not args.no_tts)
    st = r["stats"]
    print(f"script: {st['lines']} lines, {st['characters']} characters, ~{st['speech_s']:.0f} s of speech")
    print(f"wrote {r['script_md']} and {r['index_json']}")
    return 0


# ---------------------------------------------------------------- sample recording (03)
def _sample_args(p):
    p.add_argument("--lines", type=int, default=None,
                   help="corpus lines to use (default: 16 on the sample profile, all on full)")
    p.add_argument("--seed", type=int, default=0, help="seed of blinks and head sway")


def cmd_sample_recording(args) -> int:
    from .pipeline import SAMPLE_RECORDING_LINES, ensure_corpus
    from .sample import make_sample_recording

    ensure_corpus()
    profile = get_profile()
    rec = make_sample_recording(profile=profile.name, seed=args.seed,
                                max_lines=args.lines or SAMPLE_RECORDING_LINES[profile.name])
    print(f"wrote {rec.video} ({rec.n_frames} frames, {len(rec.segments)} lines), {rec.motion_file}, {rec.meta_file}")
    return 0


# ---------------------------------------------------------------- bake (02)
def _bake_args(p):
    p.add_argument("portrait", nargs="?", default=None,
                   help="your portrait (JPEG/PNG, any size); omitted: the sample astronaut")
    p.add_argument("--pick", choices=["single", "largest"], default="single",
                   help="several faces: fail ('single', default) or take the biggest ('largest')")
    p.add_argument("--detector", choices=["auto", "scrfd", "opencv"], default="auto", help="face detector")
    p.add_argument("--out", default=None, help="bundle folder (default: WORKSPACE/avatar)")
    p.add_argument("--force", action="store_true",
                   help="re-baking another portrait: replace the trained/exported models it makes stale")


def cmd_bake(args) -> int:
    from .bake import bake, sample_portrait

    src = args.portrait if args.portrait else sample_portrait()
    out = bake(src, args.out, pick=args.pick, detector=args.detector,
               name=None if args.portrait else "astronaut.png", force=args.force)
    b = load_bundle(out)
    print(f"baked {b.manifest['source']['name']} into {out} ({len(b.manifest['files'])} files, profile {b.profile})")
    return 0


# ---------------------------------------------------------------- extract (03)
def _extract_args(p):
    p.add_argument("video", nargs="?", default=None,
                   help="your recording (mp4/mov/webm with sound); omitted: the sample recording")
    p.add_argument("--out", default=None, help="dataset path (default: WORKSPACE/data/dataset.npz)")
    p.add_argument("--fps", type=float, default=FPS, help=f"the video clock (default {FPS})")


def cmd_extract(args) -> int:
    from .motion import extract
    from .pipeline import ensure_sample_recording

    video = args.video or ensure_sample_recording()
    ex = extract(video, args.out, fps=args.fps)
    print(f"{ex.n_frames} frames ({ex.n_valid} with a face) at {ex.fps:.1f} frames/s -> {ex.dataset}")
    return 0


# ---------------------------------------------------------------- train (04)
def _train_args(p):
    p.add_argument("--dataset", default=None, help="dataset.npz (default: WORKSPACE/data/dataset.npz; on the sample "
                   "profile with the sample recording, its true motion data/sample_truth.npz)")
    p.add_argument("--bundle", default=None, help="avatar bundle to save into (default: WORKSPACE/avatar)")
    p.add_argument("--epochs", type=int, default=None, help="maximum epochs (early stopping on held-out lines)")
    p.add_argument("--mode", choices=["audio_only", "idle_from_recording"], default="idle_from_recording",
                   help="add blinks and head sway replayed from the recording (default) or audio only")
    p.add_argument("--seed", type=int, default=0)


def cmd_train(args) -> int:
    from .a2m import run_training
    from .pipeline import ensure_bundle, training_dataset

    dataset = Path(args.dataset) if args.dataset else training_dataset()
    bundle = Path(args.bundle) if args.bundle else ensure_bundle()
    r = run_training(dataset, bundle, epochs=args.epochs, mode=args.mode, seed=args.seed)
    print(f"wrote {r.paths['checkpoint']} and {r.paths['metrics']}")
    return 0


# ---------------------------------------------------------------- export (05)
def _export_args(p):
    p.add_argument("--bundle", default=None, help="avatar bundle (default: WORKSPACE/avatar)")
    p.add_argument("--variants", default="fp32,fp16,int8", help="renderer variants (default fp32,fp16,int8)")


def cmd_export(args) -> int:
    from .export import export_bundle, variant_table
    from .pipeline import ensure_trained

    bundle = Path(args.bundle) if args.bundle else ensure_trained().parent
    dataset = paths.data_dir() / "dataset.npz"
    report = export_bundle(bundle, dataset if dataset.is_file() else None, variants=tuple(args.variants.split(",")))
    print(variant_table(report))
    return 0


# ---------------------------------------------------------------- speak (06)
def _speak_args(p):
    g = p.add_mutually_exclusive_group()
    g.add_argument("audio", nargs="?", default=None, help="speech to animate (wav/mp3/mp4..., any rate/channels)")
    g.add_argument("--text", default=None, help="or a sentence to synthesise (Chinese or English)")
    p.add_argument("--bundle", default=None, help="exported avatar bundle (default: WORKSPACE/avatar)")
    p.add_argument("--out", default=None, help="output mp4 (default: WORKSPACE/out/speak.mp4)")
    p.add_argument("--variant", default="auto", help="renderer variant: auto (the fastest whose quality passes, "
                   "measured here), fp32, fp16, int8, pocket or default (the one export measured fastest)")
    p.add_argument("--renderer", choices=["auto", "onnx", "torch"], default="auto",
                   help="renderer backend: auto (PyTorch on a CUDA GPU, compiled under autocast; else onnxruntime), "
                        "onnx or torch")


def cmd_speak(args) -> int:
    from .live import speak
    from .pipeline import ensure_exported

    bundle = Path(args.bundle) if args.bundle else ensure_exported()
    what = args.audio or args.text or DEMO_SENTENCE
    out = Path(args.out) if args.out else paths.out_dir() / "speak.mp4"
    result = speak(bundle, what, out, variant=args.variant, renderer=args.renderer)
    if result.path is None:
        raise TalkingHeadError(f"{what}: nothing to say (no audio in it); no video written.")
    print(result.summary())
    if getattr(result.report, "stopped", False):
        print(f"stopped (Ctrl-C): {result.path} holds the frames made so far.", file=sys.stderr)
        return 130
    return 0


# ---------------------------------------------------------------- distill (07)
def _distill_args(p):
    p.add_argument("--bundle", default=None, help="exported avatar bundle (default: WORKSPACE/avatar)")
    p.add_argument("--dataset", default=None, help="dataset.npz whose motions the teacher renders (default: the "
                   "workspace's training dataset, as `train` uses)")
    p.add_argument("--frames", type=int, default=None,
                   help="training teacher frames (default: 160 on the sample profile, 3000 on full)")
    p.add_argument("--held-out", type=int, default=None, help="held-out teacher frames (default: 40 / 250)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: 200 / 8000)")
    # --device (auto: a GPU when present) is a common flag: where the teacher renders and the student trains
    p.add_argument("--seed", type=int, default=0)


def cmd_distill(args) -> int:
    from .pocket import DistillConfig, distill

    cfg = DistillConfig(steps=args.steps, n_train=args.frames, n_held=args.held_out, seed=args.seed)
    r = distill(Path(args.bundle) if args.bundle else None, Path(args.dataset) if args.dataset else None,
                config=cfg, device=args.device or "auto")
    print(r.summary())
    print('use it: python -m talkinghead speak --variant pocket --text "..."')
    return 0


# ---------------------------------------------------------------- demo
DEMO_SENTENCE = "你好，我是你的数字分身。Hello, I am your talking avatar."


def _demo_args(p):
    p.add_argument("--text", default=DEMO_SENTENCE, help="the new sentence the avatar speaks at the end")
    p.add_argument("--epochs", type=int, default=None, help="Audio2Motion training epochs (default: the model's)")


def cmd_demo(args) -> int:
    """corpus -> sample recording -> bake -> extract -> train -> export -> speak a new sentence."""
    from . import pipeline
    from .live import speak

    t0 = time.perf_counter()
    profile = get_profile()
    print(format_report(machine_report()))
    if profile.is_sample:
        print("\nSAMPLE PROFILE: seeded random weights, every image is noise; the files and timings are real.\n")
    steps = [("corpus and TTS (01)", lambda: pipeline.ensure_corpus()),
             ("sample recording (03)", lambda: pipeline.ensure_sample_recording(profile.name)),
             ("bake (02)", lambda: pipeline.ensure_bundle(profile=profile.name)),
             ("extract (03)", lambda: pipeline.ensure_dataset(profile=profile.name)),
             ("train (04)", lambda: pipeline.ensure_trained(profile.name, epochs=args.epochs)),
             ("export (05)", lambda: pipeline.ensure_exported(profile.name)),
             ("speak (06)", lambda: speak(pipeline.ensure_exported(profile.name), args.text,
                                          paths.out_dir() / "demo.mp4"))]
    for i, (name, step) in enumerate(steps, 1):
        t = time.perf_counter()
        print(f"[{i}/{len(steps)}] {name}")
        step()
        print(f"      done in {time.perf_counter() - t:.1f} s")
    print(f"\nthe demo wrote {paths.out_dir() / 'demo.mp4'} and the avatar bundle {paths.avatar_dir()} "
          f"in {time.perf_counter() - t0:.0f} s")
    return 0


# ---------------------------------------------------------------- serve (the browser page)
def _serve_args(p):
    from .serve import add_arguments
    add_arguments(p)


def cmd_serve(args) -> int:
    from .serve import run_cli
    return run_cli(args)


COMMANDS = {
    "setup": ("00: check the machine and fetch (or build) the LivePortrait weights", _setup_args, cmd_setup),
    "corpus": ("01: write the recording script (script.md) and synthesise each line (audio/*.wav, index.json)",
               _corpus_args, cmd_corpus),
    "sample-recording": ("03: render the offline sample recording (data/sample_recording.mp4) from the corpus",
                         _sample_args, cmd_sample_recording),
    "bake": ("02: portrait -> avatar bundle (avatar/: crop, features, keypoints, mask, manifest.json)",
             _bake_args, cmd_bake),
    "extract": ("03: recording -> data/dataset.npz (motion per frame + audio features)", _extract_args, cmd_extract),
    "train": ("04: dataset -> avatar/audio2motion.pt (+ metrics JSON)", _train_args, cmd_train),
    "export": ("05: avatar -> ONNX models (renderer, paste, audio2motion) + manifest", _export_args, cmd_export),
    "speak": ("06: new speech (audio file or --text) -> mp4 through the exported models", _speak_args, cmd_speak),
    "distill": ("07: avatar -> pocket.onnx, a small per-avatar renderer distilled from the full one (renderer "
                "variant 'pocket', 25 fps on a CPU), and its frame graph pocket_frame.onnx (only the pixels that "
                "move: what the live engine and the browser page run)", _distill_args, cmd_distill),
    "demo": ("the whole course end to end on the sample assets -> out/demo.mp4 + the avatar bundle",
             _demo_args, cmd_demo),
    "serve": ("the avatar in a browser: a local web page (microphone or audio file in, the face in sync) running "
              "the bundle with onnxruntime-web", _serve_args, cmd_serve),
}


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Exit status: 0 done, 2 a bad input or a failure the message explains (one sentence,
    no traceback), 130 stopped with Ctrl-C, 1 an unexpected error (a bug: TALKINGHEAD_DEBUG=1 shows the traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    try:
        check_args(args)
        _apply_env(args)
        tidy_workspace()  # what killed runs left behind
        return COMMANDS[args.command][2](args) or 0
    except TalkingHeadError as e:
        return _fail(parser, str(e), 2)
    except KeyboardInterrupt:
        print("stopped (Ctrl-C).", file=sys.stderr)
        return 130
    except MemoryError:
        return _fail(parser, "out of memory; close other programs, or use smaller inputs (a shorter recording, a "
                             "smaller photo).", 2)
    except OSError as e:
        return _fail(parser, os_sentence(e), 2)
    except Exception as e:  # noqa: BLE001 - the last line of defence: a sentence, not a traceback
        if os.environ.get("TALKINGHEAD_DEBUG"):
            raise
        return _fail(parser, f"unexpected {type(e).__name__}: {e} (a bug in talkinghead: run again with "
                             "TALKINGHEAD_DEBUG=1 for the traceback and report it).", 1)


def _fail(parser: argparse.ArgumentParser, message: str, code: int) -> int:
    print(f"error: {cli_spelling(' '.join(message.split()), parser)}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
