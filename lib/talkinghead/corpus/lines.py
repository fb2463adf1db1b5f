"""Script lines: the `Line` record, the candidate pool, script order and a line's reading and length (notebook 01)."""
from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..layout import EMOTIONS
from .phonetics import HAN, CorpusError, english_words, mandarin_syllables

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


# ---------------------------------------------------------------- length and reading time
def line_chars(line: Line) -> int:
    """Length used as the cost of a line: letters, digits and Han characters (no spaces or punctuation)."""
    return sum(1 for ch in line.text if ch.isalnum())


def expected_duration(line: Line) -> float:
    """Seconds to read `line` aloud: Han characters at ZH_CHARS_PER_S or words at EN_WORDS_PER_MIN, plus PAUSE_S
    per comma-like pause inside the line."""
    if line.language == "zh":
        base = len(HAN.findall(line.text)) / ZH_CHARS_PER_S
    else:
        base = len(english_words(line.text)) * 60.0 / EN_WORDS_PER_MIN
    pauses = len(_PAUSES.findall(line.text.strip()))
    return round(base + PAUSE_S * pauses, 2)
