"""What a set of lines covers (units per language), and the shortest script that covers enough (notebook 01)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..layout import EMOTIONS
from .lines import LANGUAGES, SECTIONS, Line, line_chars, sort_key
from .phonetics import (FINALS, INITIALS_WITH_YW, TONES, CorpusError, english_inventory, english_phonemes,
                        mandarin_syllables)

PHONETIC_KINDS = ("initial", "final", "tone", "phoneme")


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
