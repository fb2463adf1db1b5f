"""The line index `index.json`: one row per line and rate, its schema, validation and files (notebook 01)."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Sequence

from ..fileio import load_json, save_json
from ..layout import EMOTIONS
from ..paths import corpus_dir
from .lines import LANGUAGES, Line, expected_duration
from .phonetics import CorpusError, mandarin_syllables

INDEX_FORMAT_VERSION = 1


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


def write_unspoken_index(lines: Iterable[Line], out_dir: str | os.PathLike, rates: Sequence[float] = (1.0,)) -> dict:
    """`index.json` for `lines` at every rate without audio (duration and checks left empty); returns the index."""
    index = make_index([index_row(l, r) for l in lines for r in rates])
    write_index(index, Path(out_dir) / "index.json")
    return index
