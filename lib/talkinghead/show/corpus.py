"""Notebook 01 (notebooks/01_phoneme_corpus.ipynb): the candidate pool, initials/finals/tones, the selected script's
length and coverage, emotions, the synthesised speech and how well its phoneme timings sit on the audio.

Markdown comes back as text (the notebook wraps it in `Markdown`), plots as matplotlib figures.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .. import corpus, tts
from ..corpus import Coverage, Line

EXAMPLE_HANZI = "中国鱼我知吕月翁的"   # strict vs non-strict spellings: y/w, ü, the apical i, the neutral tone
PHONETIC = (("zh", "initial"), ("zh", "final"), ("zh", "tone"), ("en", "phoneme"))


def pool_table(pool: Sequence[Line]) -> str:
    """Markdown: how many candidate lines each language and drill section holds, and a few example lines."""
    rows = ["| language | section | lines |", "| --- | --- | ---: |"]
    for lang in corpus.LANGUAGES:
        for sec, (title, _) in corpus.SECTIONS[lang].items():
            n = sum(1 for l in pool if l.language == lang and l.section == sec)
            rows.append(f"| {lang} | {title} | {n} |")
    examples = list(pool[:3]) + [l for l in pool if l.section == "emotion"][:2]
    lines = "\n".join(f"    {l.id:8} {l.section:10} {l.emotion:9} {l.text}" for l in examples)
    return f"**{len(pool)} candidate lines**\n\n" + "\n".join(rows) + "\n\nFor example:\n\n" + lines


def syllable_table(hanzi: str = EXAMPLE_HANZI, extra: Sequence[tuple[str, str]] = (("ê4", "欸"),)) -> str:
    """Markdown: each syllable of `hanzi` (plus `extra` (pinyin, hanzi) readings) split into strict and non-strict
    initial and final, and its tone; then the size of the inventories the course covers."""
    rows = ["| hanzi | pinyin | strict initial | strict final | non-strict initial | non-strict final | tone |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for s in corpus.mandarin_syllables(hanzi) + [corpus.syllable_of(p, h) for p, h in extra]:
        rows.append(f"| {s.hanzi} | {s.pinyin} | {s.initial or '∅'} | {s.final or '∅'} | {s.initial_loose or '∅'} "
                    f"| {s.final_loose or '∅'} | {s.tone} |")
    n_en = len(corpus.inventory("en")["phoneme"])
    return ("\n".join(rows) + f"\n\n{len(corpus.INITIALS)} initials (+ y, w = {len(corpus.INITIALS_WITH_YW)}), "
            f"{len(corpus.FINALS)} finals in pypinyin's table, tones {', '.join(corpus.TONES)}; {n_en} CMUdict phonemes")


def pool_coverage(cov: Coverage, min_count: int, min_emotion: int) -> str:
    """Markdown: what the whole pool covers, the units below `min_count`, English words CMUdict lacks, and the
    non-strict (as written) initials and finals with their counts."""
    loose = {k: ", ".join(f"{u} {n}" for u, n in sorted(cov.loose[k].items())) for k in ("initial", "final")}
    return (cov.summary_markdown(min_count, min_emotion)
            + f"\n\nUnits below {min_count} in the pool: {cov.missing(min_count) or 'none'}. "
            + f"English words missing from CMUdict: {cov.oov or 'none'}.\n\n"
            + f"**Non-strict initials** (as written, y/w included): {loose['initial']}\n\n"
            + f"**Non-strict finals** (as written): {loose['final']}")


def script_report(pool: Sequence[Line], script: Sequence[Line], min_emotion: int, counts=(1, 2, 3)) -> str:
    """Text: the selected script against the pool (lines, characters, reading and recording time, how the estimate
    is made), and the script's length for each `min_count` in `counts`."""
    st, st_pool = corpus.script_stats(script), corpus.script_stats(pool)
    out = [f"selected {st['lines']} of {len(pool)} lines: {st['characters']} of {st_pool['characters']} characters "
           f"({st['lines_by_language']['zh']} Mandarin, {st['lines_by_language']['en']} English)",
           f"reading time: about {st['speech_s']:.0f} s of speech, {st['recording_s'] / 60:.1f} min to record "
           f"with {corpus.LINE_GAP_S:g} s between lines",
           f"(estimated at {corpus.ZH_CHARS_PER_S:g} Han characters/s for Mandarin, {corpus.EN_WORDS_PER_MIN:g} "
           f"words/min for English, plus {corpus.PAUSE_S:g} s per pause inside a line)"]
    for n in counts:
        s = corpus.script_stats(corpus.select_lines(pool, min_count=n, min_emotion=min_emotion))
        out.append(f"  min_count={n}: {s['lines']:3d} lines, {s['characters']:4d} characters, {s['speech_s']:5.0f} s")
    return "\n".join(out)


def coverage_numbers(cov: Coverage, min_count: int, min_emotion: int) -> dict:
    """How many Mandarin units (initials with y/w, finals, tones) and English phonemes the script shows at least
    `min_count` times: {"zh": (hit, total), "en": (hit, total), "all": fraction, "missing": [...]}."""
    zh_total = sum(len(corpus.inventory("zh")[k]) for k in ("initial", "final", "tone"))
    zh_hit = sum(1 for k in ("initial", "final", "tone") for _, n in cov.units("zh", k) if n >= min_count)
    en_total = len(corpus.inventory("en")["phoneme"])
    en_hit = sum(1 for _, n in cov.units("en", "phoneme") if n >= min_count)
    return {"zh": (zh_hit, zh_total), "en": (en_hit, en_total), "all": cov.fraction(min_count),
            "missing": cov.missing(min_count, min_emotion=min_emotion)}


def coverage_report(cov: Coverage, min_count: int, min_emotion: int) -> str:
    """Text: `coverage_numbers` as three sentences."""
    c = coverage_numbers(cov, min_count, min_emotion)
    (zh_hit, zh_total), (en_hit, en_total) = c["zh"], c["en"]
    return (f"Mandarin: {zh_hit}/{zh_total} units (23 initials incl. y/w, {len(corpus.FINALS)} finals, 5 tones) at least "
            f"{min_count}x = {100 * zh_hit / zh_total:.0f}%\n"
            f"English:  {en_hit}/{en_total} phonemes at least {min_count}x = {100 * en_hit / en_total:.0f}%\n"
            f"all phonetic units: {100 * c['all']:.0f}%; still missing: {c['missing'] or 'none'}")


def coverage_tables(cov: Coverage) -> str:
    """Markdown: the count of every initial, final, tone and English phoneme in the script (bold: missing)."""
    return "\n\n".join(f"**{lang} {kind}s** (count in the script; bold = missing)\n\n"
                       + cov.table_markdown(lang, kind, per_row=19 if kind != "tone" else 5) for lang, kind in PHONETIC)


def plot_emotions(cov: Coverage, min_emotion: int):
    """Bars: lines per emotion and language in the script, with `min_emotion` dashed. Returns the figure."""
    import matplotlib.pyplot as plt

    emo = {lang: dict(cov.units(lang, "emotion")) for lang in cov.languages}
    names = list(next(iter(emo.values())))
    fig, ax = plt.subplots(figsize=(6, 2.5))
    for k, lang in enumerate(emo):
        ax.bar(np.arange(len(names)) + 0.4 * k, [emo[lang].get(n, 0) for n in names], width=0.4, label=lang)
    ax.set_xticks(np.arange(len(names)) + 0.2)
    ax.set_xticklabels(names)
    ax.axhline(min_emotion, color="gray", ls="--", lw=0.8)
    ax.set_title("lines per emotion (drill lines are neutral)")
    ax.legend()
    return fig


def script_head(script_md: Path, until: str = "### Labials") -> str:
    """Markdown: the teleprompter page up to the heading `until` (the whole page when it has none)."""
    text = Path(script_md).read_text(encoding="utf-8")
    return text[: text.index(until)] if until in text else text


def synthesis_report(index: dict, n_lines: int, rates: Sequence[float]) -> str:
    """Text: how many wavs were made, in how long, how many pass the checks, and espeak's pace against the
    reading-time estimate (median of duration / expected over the rate-1 lines)."""
    ok = sum(r["checks"]["ok"] for r in index["lines"] if r["checks"])
    durs = np.array([r["duration_s"] for r in index["lines"] if r["rate"] == 1.0 and r["file"]])
    expd = np.array([r["expected_s"] for r in index["lines"] if r["rate"] == 1.0 and r["file"]])
    pace = f"{np.median(durs / expd):.2f}x" if len(durs) else "n/a"
    return (f"{len(index['lines'])} wavs ({n_lines} lines x {len(rates)} rates) in {index.get('_elapsed_s', 0):.1f} s, "
            f"{index['total_audio_s']:.0f} s of audio; {ok} pass the checks, {len(index['problems'])} do not\n"
            f"espeak reads at {pace} our estimated reading time (median)")


def example_rows(index: dict) -> list[dict]:
    """Three rate-1 rows to listen to: the first line, the first emotion line, the first English line."""
    rows = [r for r in index["lines"] if r["rate"] == 1.0 and r["file"]]
    picks = [rows[0], next((r for r in rows if r["section"] == "emotion"), None),
             next((r for r in rows if r["language"] == "en"), None)]
    return [r for r in picks if r is not None]


def plot_phonemes(samples: np.ndarray, sr: int, phonemes: Sequence[dict]):
    """The waveform with each reported phoneme's span shaded and labelled. Returns the figure."""
    import matplotlib.pyplot as plt

    x = np.asarray(samples)
    top = 0.9 * float(np.abs(x).max() or 1.0)
    fig, ax = plt.subplots(figsize=(11, 1.8))
    ax.plot(np.arange(len(x)) / sr, x, lw=0.4, color="k")
    for k, p in enumerate(phonemes):
        ax.axvspan(p["start_s"], p["end_s"], color=f"C{k % 2}", alpha=0.15)
        ax.text((p["start_s"] + p["end_s"]) / 2, top, p["phoneme"], ha="center", fontsize=7)
    ax.set_xlim(0, len(x) / sr)
    ax.set_yticks([])
    ax.set_xlabel("seconds")
    return fig


def listen(index: dict, out_dir: Path) -> list[tuple[str, np.ndarray, int, list]]:
    """For each of `example_rows`: (caption, samples, sample rate, phonemes reported by espeak-ng), for the notebook to
    play and draw with `plot_phonemes`."""
    out = []
    for r in example_rows(index):
        x, sr = tts.read_wav(Path(out_dir) / r["file"])
        ph = tts.load_phonemes(Path(out_dir) / r["phonemes_file"])["phonemes"]
        out.append((f"{r['id']} [{r['emotion']}] {r['text']}  ({r['duration_s']:.2f} s)", x, sr, ph))
    return out


def alignment(index: dict, out_dir: Path) -> dict:
    """How well the phoneme timings sit on the audio, over every wav: the first phoneme's start minus the audio's
    onset and the last phoneme's end minus its offset (`tts.speech_bounds`), in ms: {"onset_ms": [...],
    "offset_ms": [...]}."""
    on, off = [], []
    for r in index["lines"]:
        if not r["file"]:
            continue
        x, sr = tts.read_wav(Path(out_dir) / r["file"])
        ph = tts.load_phonemes(Path(out_dir) / r["phonemes_file"])["phonemes"]
        onset, offset = tts.speech_bounds(x, sr)
        on.append(1000 * (ph[0]["start_s"] - onset))
        off.append(1000 * (ph[-1]["end_s"] - offset))
    return {"onset_ms": on, "offset_ms": off}


def alignment_report(index: dict, out_dir: Path) -> str:
    """Text: median and worst of `alignment`'s onset and offset differences."""
    a = alignment(index, out_dir)
    if not a["onset_ms"]:
        return "no wavs to compare"
    on, off = a["onset_ms"], a["offset_ms"]
    return (f"first phoneme start - audio onset: median {np.median(on):+.1f} ms, worst {max(on, key=abs):+.1f} ms\n"
            f"last phoneme end - audio offset:   median {np.median(off):+.1f} ms, worst {max(off, key=abs):+.1f} ms")


def files_report(out_dir: Path, n_script_lines: int) -> str:
    """Text: the files notebook 01 wrote (script.md, index.json with its format version, the wavs and their size)
    and one row of the index, read back through `corpus.load_index` (which validates it)."""
    out_dir = Path(out_dir)
    loaded = corpus.load_index(out_dir / "index.json")
    wavs = sorted((out_dir / "audio").glob("*.wav"))
    row = {k: loaded["lines"][0][k] for k in ("id", "text", "section", "emotion", "language", "file", "duration_s",
                                               "rate")} if loaded["lines"] else {}
    return (f"{out_dir / 'script.md'}   teleprompter page, {n_script_lines} lines\n"
            f"{out_dir / 'index.json'}  format_version {loaded['format_version']}, {len(loaded['lines'])} rows\n"
            f"{out_dir / 'audio'}/      {len(wavs)} wavs + phoneme timings, "
            f"{sum(p.stat().st_size for p in wavs) / 1e6:.1f} MB\none row: {row}")
