"""Command line: `python -m talkinghead <stage> ...`, one subcommand per notebook, plus `demo` for all of them.

Every subcommand takes `--profile {full,sample}` and `--workspace DIR`; files land in the workspace's `data/`,
`avatar/` and `out/` folders (see `talkinghead.paths`). Errors print one sentence and exit with status 2.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from .errors import TalkingHeadError

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
  demo                  all of the above on the sample assets, end to end

Profiles: 'full' uses the released LivePortrait weights (downloaded once from the hub, or --weights-dir);
'sample' uses seeded random weights at reduced widths: offline and fast, but every image is noise.
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", choices=["full", "sample"], default=None,
                   help="network weights: released ('full', default) or seeded noise ('sample'); env TALKINGHEAD_PROFILE")
    p.add_argument("--workspace", default=None,
                   help="folder for data/, avatar/, out/ (default ./talkinghead-workspace; env TALKINGHEAD_WORKSPACE)")
    p.add_argument("--weights-dir", default=None,
                   help="a local folder laid out like the hub repo KwaiVGI/LivePortrait (env TALKINGHEAD_WEIGHTS_DIR)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m talkinghead", description=__doc__.splitlines()[0],
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


# ---------------------------------------------------------------- setup
def _setup_args(p):
    p.add_argument("--no-face-detector", action="store_true", help="do not fetch insightface's det_10g.onnx")


def cmd_setup(args) -> int:
    from .machine import format_report, machine_report, parameter_counts
    from .liveportrait import load_liveportrait
    from .profiles import get_profile

    print(format_report(machine_report()))
    profile = get_profile()
    if not profile.is_sample:
        from .hub import LICENCE_NOTE, fetch_all
        print(LICENCE_NOTE)
        for name, path in fetch_all(face_detector=not args.no_face_detector).items():
            print(f"  {name}: {path}")
    t0 = time.perf_counter()
    lp = load_liveportrait(profile=profile.name)
    print(f"LivePortrait ({profile.name}) loaded in {time.perf_counter() - t0:.2f} s: "
          + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in parameter_counts(lp).items()))
    return 0


# ---------------------------------------------------------------- demo
def _demo_args(p):
    pass


def cmd_demo(args) -> int:
    """Run every stage that exists, in order, on the sample assets."""
    return cmd_setup(argparse.Namespace(no_face_detector=False, **vars(args)))


COMMANDS = {
    "setup": ("check the machine and fetch (or build) the LivePortrait weights", _setup_args, cmd_setup),
    "demo": ("run the whole course end to end on the sample assets", _demo_args, cmd_demo),
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    _apply_env(args)
    try:
        return COMMANDS[args.command][2](args) or 0
    except TalkingHeadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
