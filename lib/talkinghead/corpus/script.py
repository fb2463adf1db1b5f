"""The teleprompter page `script.md`, and the script step: select the lines, write the page (notebook 01)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ..fileio import write_bytes
from ..paths import corpus_dir
from .lines import (EN_WORDS_PER_MIN, LANGUAGE_NAMES, LANGUAGES, LINE_GAP_S, PAUSE_S, SECTIONS, ZH_CHARS_PER_S, Line,
                    expected_duration, line_chars, load_pool, pinyin_marks, sort_key)
from .selection import Coverage, coverage, select_lines


def script_stats(lines: Sequence[Line]) -> dict:
    """Length of a script: lines, characters (`line_chars`), speech seconds, and recording seconds with gaps."""
    speech = sum(expected_duration(l) for l in lines)
    by_lang = {lang: sum(1 for l in lines if l.language == lang) for lang in LANGUAGES}
    return {"lines": len(lines), "lines_by_language": by_lang, "characters": sum(line_chars(l) for l in lines),
            "speech_s": round(speech, 1), "recording_s": round(speech + LINE_GAP_S * len(lines), 1),
            "rates": {"zh_chars_per_s": ZH_CHARS_PER_S, "en_words_per_min": EN_WORDS_PER_MIN,
                      "pause_s": PAUSE_S, "line_gap_s": LINE_GAP_S}}


def _fmt_min(s: float) -> str:
    return f"{int(s // 60)} min {int(round(s % 60)):02d} s"


def script_markdown(lines: Sequence[Line], title: str = "Recording script", cov: Coverage | None = None,
                    min_count: int | None = None, min_emotion: int | None = None) -> str:
    """The teleprompter page: sections in order, each line big, with its pinyin, acting cue and expected duration."""
    lines = sorted(lines, key=sort_key) if not _is_sorted(lines) else list(lines)
    st = script_stats(lines)
    out = [f"# {title}", "",
           f"{st['lines']} lines, {st['characters']} characters, about {_fmt_min(st['speech_s'])} of speech "
           f"({_fmt_min(st['recording_s'])} to record with {LINE_GAP_S:g} s between lines). Estimated at "
           f"{ZH_CHARS_PER_S:g} Han characters/s for Mandarin and {EN_WORDS_PER_MIN:g} words/min for English, "
           f"plus {PAUSE_S:g} s per pause inside a line.", ""]
    if cov is not None:
        out += ["Coverage:", "", cov.summary_markdown(min_count or 1, min_emotion), ""]
    out += ["How to record: one take per line; look into the lens; act the cue before you start speaking and hold "
            "the expression for a moment after the last word; leave a second of silence before and after.", ""]
    lang = sec = None
    n = 0
    for line in lines:
        if line.language != lang:
            lang, sec = line.language, None
            out += [f"## {LANGUAGE_NAMES.get(lang, lang)}", ""]
        if line.section != sec:
            sec = line.section
            title_, note = SECTIONS.get(lang, {}).get(sec, (sec, ""))
            out += [f"### {title_}", "", f"*{note}*", ""]
        n += 1
        emo = f" · **{line.emotion}**" if line.section == "emotion" else ""
        out.append(f"**{n}. `{line.id}`**{emo} · about {expected_duration(line):.1f} s")
        out.append("")
        out.append(f"> ## {line.text}")
        if lang == "zh":
            out.append(">")
            out.append(f"> {pinyin_marks(line)}")
        cue = line.acting_cue
        section_note = SECTIONS.get(lang, {}).get(sec, ("", ""))[1]
        if cue and cue != section_note:
            out.append(">")
            out.append(f"> *{cue}*")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _is_sorted(lines: Sequence[Line]) -> bool:
    keys = [sort_key(l)[:3] for l in lines]
    return keys == sorted(keys)


def write_script_md(lines: Sequence[Line], path: str | os.PathLike, **kw) -> Path:
    """Write the teleprompter page (`script_markdown`) atomically to `path`."""
    return write_bytes(path, script_markdown(lines, **kw).encode("utf-8"))


def write_script(out_dir: str | os.PathLike | None = None, min_count: int = 2, min_emotion: int = 2,
                 pool: Sequence[Line] | None = None) -> tuple[list[Line], Coverage]:
    """Select the script from `pool` (default: the built-in pool) and write its teleprompter page `script.md` under
    `out_dir` (default: the workspace's `data/corpus/`). Returns (script lines in order, their coverage).

    The whole corpus step, speech included, is `talkinghead.pipeline.build_corpus`."""
    out = Path(out_dir) if out_dir is not None else corpus_dir()
    pool = list(pool) if pool is not None else load_pool()
    script = select_lines(pool, min_count=min_count, min_emotion=min_emotion)
    cov = coverage(script)
    write_script_md(script, out / "script.md", cov=cov, min_count=min_count, min_emotion=min_emotion)
    return script, cov
