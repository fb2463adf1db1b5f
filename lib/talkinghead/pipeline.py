"""The course's stages chained: what `python -m talkinghead demo` runs, and what a notebook opened out of order uses to
make its missing inputs on the sample assets.

Each `ensure_*` returns the stage's output in the workspace, making it (and whatever it needs) only when it is missing,
so running them in order is exactly the course: corpus (01) -> sample recording + dataset (03) -> bundle (02) ->
Audio2Motion (04) -> ONNX export (05) -> speech to video (06).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from . import corpus, paths, tts
from .bake import bake, sample_portrait
from .errors import TalkingHeadError
from .fileio import is_scratch, load_json
from .motion import extract
from .profiles import get_profile
from . import sample
from .sample import make_sample_recording

# `a2m` and `export` are imported inside the two functions that need them: both import torch when loaded, and this
# module must stay importable without torch (notebooks 01-03, the command line, `live`'s notebook glue).

# How much of the corpus the sample recording uses. 16 lines (~40 s) is the least from which Audio2Motion learns the
# procedural visemes clearly (held-out mouth r ~0.76 against ~0.4 from 10 lines) while the suite stays fast on two cores.
SAMPLE_RECORDING_LINES = {"sample": 16, "full": None}


def _say(msg: str, verbose: bool) -> None:
    if verbose:
        print(msg)


def build_corpus(out_dir: str | os.PathLike | None = None, min_count: int = 2, min_emotion: int = 2,
                 rates: Sequence[float] = (1.0,), backend: str = "espeak", synthesize: bool = True,
                 limit: int | None = None, progress: bool = True, pool: Sequence[corpus.Line] | None = None) -> dict:
    """The corpus step (notebook 01): select the script, write `script.md` (`corpus.write_script`), then one wav per
    line and rate with `index.json` (`tts.synthesize_corpus`), or with `synthesize=False` the index alone.

    `out_dir` defaults to the workspace's `data/corpus/`. `limit` synthesises only the first `limit` lines of the
    script (the whole script is still written to script.md). Returns a summary: stats, coverage rows, the script,
    paths and the index.
    """
    out = Path(out_dir) if out_dir is not None else paths.corpus_dir()
    script, cov = corpus.write_script(out, min_count=min_count, min_emotion=min_emotion, pool=pool)
    todo = script if limit is None else script[:limit]
    if synthesize:
        index = tts.synthesize_corpus(todo, out, backend=backend, rates=rates, progress=progress)
    else:
        index = corpus.write_unspoken_index(todo, out, rates)
    return {"stats": corpus.script_stats(script), "coverage": cov.summary(min_count, min_emotion), "script": script,
            "script_md": out / "script.md", "index_json": out / "index.json", "index": index}


def ensure_corpus(verbose: bool = True) -> Path:
    """`data/corpus/index.json` with one wav per script line (notebook 01)."""
    index = paths.corpus_dir() / "index.json"
    if not index.is_file():
        _say("making the recording script and its speech (notebook 01) ...", verbose)
        build_corpus(progress=verbose)
    return index


def ensure_sample_recording(profile=None, verbose: bool = True) -> Path:
    """`data/sample_recording.mp4`, the offline talking video (notebook 03), rendered from the corpus."""
    video = paths.data_dir() / "sample_recording.mp4"
    if not video.is_file():
        ensure_corpus(verbose)
        p = get_profile(profile)
        _say("rendering the sample recording (notebook 03) ...", verbose)
        make_sample_recording(profile=p.name, max_lines=SAMPLE_RECORDING_LINES[p.name], progress=verbose)
    return video


def ensure_dataset(video=None, profile=None, verbose: bool = True) -> Path:
    """`data/dataset.npz`: motion and audio features extracted from the recording (notebook 03).

    An existing dataset is kept, whoever's it is. When it is missing the recording is `video`, else yours in the
    workspace (`inputs/recording.*`, uploaded or recorded in notebook 03), and only without either the sample one."""
    dataset = paths.data_dir() / "dataset.npz"
    if not dataset.is_file():
        video = video or paths.find_input("recording") or ensure_sample_recording(profile, verbose)
        _say(f"extracting motion from {Path(video).name} (notebook 03) ...", verbose)
        extract(video, dataset, profile=get_profile(profile).name, progress=verbose)
    return dataset


def ensure_bundle(portrait=None, profile=None, verbose: bool = True) -> Path:
    """`avatar/`: the baked portrait (notebook 02).

    An existing bundle is kept, whoever's it is. When it is missing the portrait is `portrait`, else yours in the
    workspace (`inputs/portrait.*`, uploaded in notebook 02), and only without either the sample astronaut."""
    bundle = paths.avatar_dir()
    if not (bundle / "manifest.json").is_file():
        portrait = portrait if portrait is not None else paths.find_input("portrait")
        _refuse_to_bake_over(bundle, portrait)
        _say("baking the portrait into the avatar bundle (notebook 02) ...", verbose)
        bake(portrait if portrait is not None else sample_portrait(), bundle, profile=get_profile(profile).name,
             name=None if portrait is not None else "astronaut.png")
    return bundle


def _refuse_to_bake_over(bundle: Path, portrait) -> None:
    """A workspace `avatar/` without manifest.json but with files in it is the user's: never bake over it."""
    held = [e.name for e in sorted(bundle.iterdir()) if not is_scratch(e.name)] if bundle.is_dir() else []
    if held:
        what = "the sample avatar" if portrait is None else "a new avatar"
        raise TalkingHeadError(f"{bundle}: has no manifest.json but holds {len(held)} file(s) (such as {held[0]!r}), so "
                               f"{what} is not baked over them; restore its manifest.json, or move the folder away "
                               "and bake again (`python -m talkinghead bake PORTRAIT`).")


def training_dataset(profile=None, verbose: bool = True) -> Path:
    """The dataset Audio2Motion trains on (made when missing): `data/dataset.npz` (extracted, notebook 03), or on the
    sample profile the sample recording's true motion (`sample.training_file` says when and why)."""
    return sample.training_file(ensure_dataset(profile=profile, verbose=verbose), profile, verbose)


def ensure_training_inputs(profile=None, verbose: bool = True) -> tuple[Path, Path]:
    """(dataset, avatar bundle folder): what notebook 04 trains from (`training_dataset`) and saves into."""
    bundle = ensure_bundle(profile=profile, verbose=verbose)  # first (the course's order): it may refuse at once
    return training_dataset(profile, verbose), bundle


def ensure_trained(profile=None, epochs: int | None = None, verbose: bool = True) -> Path:
    """`avatar/audio2motion.pt`, trained on the dataset (notebook 04)."""
    from .a2m import CHECKPOINT_NAME, run_training

    bundle = ensure_bundle(profile=profile, verbose=verbose)
    ckpt = bundle / CHECKPOINT_NAME
    if not ckpt.is_file():  # the dataset (and its status line) only when there is something to train
        dataset = training_dataset(profile, verbose)
        _say("training Audio2Motion (notebook 04) ...", verbose)
        run_training(dataset, bundle, epochs=epochs, progress=verbose)
    return ckpt


def ensure_exported(profile=None, variants=("fp32",), verbose: bool = True) -> Path:
    """The bundle with its ONNX models (`renderer.onnx`, `paste.onnx`, `audio2motion.onnx`) (notebook 05)."""
    from .export import export_bundle

    ensure_trained(profile, verbose=verbose)
    bundle = paths.avatar_dir()
    if "models" not in load_json(bundle / "manifest.json", "avatar manifest"):
        _say("exporting the avatar to ONNX (notebook 05) ...", verbose)
        export_bundle(bundle, paths.data_dir() / "dataset.npz", variants=variants, progress=verbose)
    return bundle
