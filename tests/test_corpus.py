"""talkinghead.corpus: coverage counting, the candidate pool, greedy set cover, script page and index schema."""
from __future__ import annotations

import itertools
import json
from collections import Counter

import pytest

from talkinghead import corpus as c
from talkinghead.layout import EMOTIONS
from talkinghead.pipeline import build_corpus


def zh(text, section="labials", emotion="neutral", id="x", pinyin=None):
    return c.Line(id, text, "zh", section, emotion, "", pinyin)


def en(text, section="labials", emotion="neutral", id="y"):
    return c.Line(id, text, "en", section, emotion)


# ---------------------------------------------------------------- counting on known strings
def test_zhongguo_units():
    u = c.line_units(zh("中国"))
    assert u["zh", "initial", "zh"] == 1 and u["zh", "final", "ong"] == 1
    assert u["zh", "initial", "g"] == 1 and u["zh", "final", "uo"] == 1
    assert u["zh", "tone", "1"] == 1 and u["zh", "tone", "2"] == 1
    assert sum(n for (_, kind, _), n in u.items() if kind in c.PHONETIC_KINDS) == 6


def test_strict_and_loose_forms():
    yu, wo, zhi = (c.mandarin_syllables(t)[0] for t in ("鱼", "我", "知"))
    # strict: y/w are not initials, the final carries the glide; ü is written ü as in pypinyin's table
    assert (yu.initial, yu.final, yu.tone) == ("", "ü", "2")
    assert (wo.initial, wo.final, wo.tone) == ("", "uo", "3")
    # non-strict: y/w as initials, the written final
    assert (yu.initial_loose, yu.final_loose) == ("y", "u")
    assert (wo.initial_loose, wo.final_loose) == ("w", "o")
    # coverage counts y/w as initials (21 + 2)
    assert (yu.initial_unit, wo.initial_unit) == ("y", "w")
    # the apical vowel after zh comes out as plain i in both forms
    assert (zhi.initial, zhi.final, zhi.initial_loose, zhi.final_loose) == ("zh", "i", "zh", "i")


def test_counts_on_a_phrase_and_neutral_tone():
    cov = c.coverage([zh("爸爸妈妈"), zh("这个")])
    counts = dict(cov.units("zh", "initial"))
    assert counts["b"] == 2 and counts["m"] == 2 and counts["zh"] == 1 and counts["g"] == 1 and counts["p"] == 0
    finals = dict(cov.units("zh", "final"))
    assert finals["a"] == 4 and finals["e"] == 2
    assert dict(cov.units("zh", "tone")) == {"1": 2, "2": 0, "3": 0, "4": 3, "5": 1}
    assert cov.loose["initial"] == Counter({"b": 2, "m": 2, "zh": 1, "g": 1})


def test_pinyin_override_reaches_e_circumflex():
    # pypinyin's default reading of 欸 is ai1; the table's final ê is only reachable with an explicit reading
    assert c.line_units(zh("欸"))["zh", "final", "ai"] == 1
    u = c.line_units(zh("欸，饿。", pinyin=("ê4", "e4")))
    assert u["zh", "final", "ê"] == 1 and u["zh", "final", "e"] == 1 and u["zh", "tone", "4"] == 2
    with pytest.raises(c.CorpusError, match="2 Han characters but 1 pinyin"):
        c.line_units(zh("欸饿", pinyin=("ê4",)))


def test_english_phonemes_from_cmudict():
    phones, oov = c.english_phonemes("The cat sat, zxqv!")
    assert phones == ["DH", "AH", "K", "AE", "T", "S", "AE", "T"]
    assert oov == ["zxqv"]
    cov = c.coverage([en("The cat sat on a mat.")])
    assert dict(cov.units("en", "phoneme"))["AE"] == 3
    assert len(cov.missing(1, kinds=["phoneme"])) == 39 - len({"DH", "AH", "K", "AE", "T", "S", "AA", "N", "M"})


def test_inventories_come_from_the_libraries():
    from pypinyin.style._constants import _FINALS, _INITIALS

    assert len(c.INITIALS) == 21 and list(c.INITIALS) == list(_INITIALS)
    assert c.INITIALS_WITH_YW[-2:] == ("y", "w") and len(c.INITIALS_WITH_YW) == 23
    assert list(c.FINALS) == list(_FINALS) and len(c.FINALS) == 37 and "ê" in c.FINALS and "ü" in c.FINALS
    assert c.TONES == ("1", "2", "3", "4", "5")
    assert len(c.inventory("en")["phoneme"]) == 39
    assert c.inventory("zh")["emotion"] == tuple(EMOTIONS)


# ---------------------------------------------------------------- the pool
def test_pool_is_valid_and_complete():
    pool = c.load_pool()
    assert len(pool) >= 150 and len({l.id for l in pool}) == len(pool)
    cov = c.coverage(pool)
    assert cov.oov == []  # every English word is in CMUdict
    assert cov.missing(3) == []  # every unit at least 3 times, so min_count up to 3 is reachable
    assert cov.fraction(3) == 1.0
    # sections appear in the coach's order within each language
    for lang in c.LANGUAGES:
        order = [list(c.SECTIONS[lang]).index(l.section) for l in pool if l.language == lang]
        assert order == sorted(order)


@pytest.mark.parametrize("bad,match", [
    ("zh-1\tfr\tvowels\tneutral\t啊\t\t", "language 'fr'"),
    ("zh-1\tzh\tnasals\tneutral\t啊\t\t", "section 'nasals'"),
    ("zh-1\tzh\tvowels\tbored\t啊\t\t", "emotion 'bored'"),
    ("zh-1\tzh\tvowels\tneutral\t啊啊\t\ta1", "1 syllables for 2 Han"),
    ("zh-1\tzh\tvowels\tneutral\t啊\t\t\nzh-1\tzh\tvowels\tneutral\t哦\t\t", "used twice"),
])
def test_bad_pool_rows_are_named(tmp_path, bad, match):
    p = tmp_path / "pool.tsv"
    p.write_text("# comment\nid\tlanguage\tsection\temotion\ttext\tcue\tpinyin\n" + bad + "\n", encoding="utf-8")
    with pytest.raises(c.CorpusError, match=match) as e:
        c.load_pool(p)
    assert str(p) in str(e.value)


# ---------------------------------------------------------------- selection
def _brute_force(pool, targets):
    units = [c.line_units(l) for l in pool]
    best = None
    for r in range(len(pool) + 1):
        for sub in itertools.combinations(range(len(pool)), r):
            tot = Counter()
            for i in sub:
                tot.update(units[i])
            if all(tot[u] >= t for u, t in targets.items()):
                cost = sum(c.line_chars(pool[i]) for i in sub)
                if best is None or cost < best:
                    best = cost
    return best


def test_greedy_plus_prune_is_optimal_on_a_small_case():
    texts = ["擦拿爸大", "拿擦撒大", "他卡发哥", "大妈", "卡", "哥杂擦", "大怕", "撒"]
    pool = [zh(t, id=f"t{i}") for i, t in enumerate(texts)]
    inits = {u for l in pool for u in c.line_units(l) if u[1] == "initial"}
    assert len(inits) == 12
    targets = {u: 1 for u in inits}
    best = _brute_force(pool, targets)  # over all 256 subsets
    greedy = c.select_lines(pool, targets=targets, prune=False)
    chosen = c.select_lines(pool, targets=targets)
    assert best == 16
    assert sum(map(c.line_chars, greedy)) == 17  # greedy alone keeps a redundant line ...
    assert sum(map(c.line_chars, chosen)) == best  # ... the pruning pass removes it: the true minimum
    got = Counter()
    for l in chosen:
        got.update(c.line_units(l))
    assert all(got[u] >= 1 for u in targets)


def test_selected_script_meets_the_target_and_is_irreducible():
    pool = c.load_pool()
    script = c.select_lines(pool, min_count=2, min_emotion=2)
    assert script == c.select_lines(pool, min_count=2, min_emotion=2)  # deterministic
    cov = c.coverage(script)
    assert cov.missing(2, kinds=c.PHONETIC_KINDS) == [] and cov.missing(2, min_emotion=2) == []
    assert cov.fraction(2) == 1.0 and all(r["fraction"] == 1.0 for r in cov.summary(2, min_emotion=2))
    assert all(n >= 2 for _, n in cov.units("zh", "emotion")) and all(n >= 2 for _, n in cov.units("en", "emotion"))
    assert all(n >= 1 for _, n in cov.units("zh", "section"))
    # every line is needed: dropping any one breaks the target
    targets = c.coverage_targets(pool, 2, 2)
    total = Counter()
    for l in script:
        total.update(c.line_units(l))
    for l in script:
        rest = total - c.line_units(l)
        assert any(rest[u] < t for u, t in targets.items()), l.id
    # a tighter target costs more, and the script is much shorter than the pool
    n1 = c.script_stats(c.select_lines(pool, min_count=1))["characters"]
    n2 = c.script_stats(script)["characters"]
    n3 = c.script_stats(c.select_lines(pool, min_count=3))["characters"]
    assert n1 < n2 < n3 < 0.6 * c.script_stats(pool)["characters"]
    # script order: Mandarin first, sections in the coach's order
    assert [l.language for l in script] == sorted((l.language for l in script), key=c.LANGUAGES.index)


def test_infeasible_target_is_one_sentence():
    targets = {("zh", "initial", "b"): 3, ("zh", "initial", "p"): 1, ("zh", "tone", "4"): 1}
    with pytest.raises(c.CorpusError, match=r"cannot meet the coverage target \(zh/initial/b 2 of 3, "
                                            r"zh/initial/p 0 of 1\); add lines"):
        c.select_lines([zh("爸爸")], targets=targets)
    with pytest.raises(c.CorpusError, match=r"zh/initial/p 0 of 1.* and \d+ more"):
        c.select_lines([zh("爸爸")], min_count=1)


# ---------------------------------------------------------------- reading time, script page, index
def test_reading_time():
    assert c.expected_duration(zh("中国人，你好。")) == pytest.approx(5 / 4.5 + 0.25, abs=0.01)
    assert c.expected_duration(en("The quick brown fox.")) == pytest.approx(4 * 60 / 150, abs=0.01)
    st = c.script_stats([zh("中国人，你好。"), en("The quick brown fox.")])
    assert st["characters"] == 5 + 16 and st["recording_s"] == pytest.approx(1.36 + 1.6 + 2 * c.LINE_GAP_S, abs=0.05)


def test_script_markdown(tmp_path):
    pool = c.load_pool()
    script = c.select_lines(pool)
    path = c.write_script_md(script, tmp_path / "script.md", cov=c.coverage(script), min_count=2)
    text = path.read_text(encoding="utf-8")
    assert text == c.script_markdown(script, cov=c.coverage(script), min_count=2)
    for l in script:
        assert f"`{l.id}`" in text and l.text in text
    assert text.index("## Mandarin") < text.index("## English")
    zh_titles = [c.SECTIONS["zh"][s][0] for s in c.SECTIONS["zh"]]
    positions = [text.index(t) for t in zh_titles]
    assert positions == sorted(positions)
    assert "zhōng" in c.script_markdown([zh("中国")]) and "| zh | finals | 2x | 37 | 37 | 100 |" in text
    assert "| zh | sections | 1x | 8 | 8 | 100 |" in text
    assert "4.5 Han characters/s" in text and "150 words/min" in text


def test_index_schema(tmp_path):
    line = zh("中国", section="emotion", emotion="happy", id="zh-900")
    row = c.index_row(line, rate=1.2)
    assert row["id"] == "zh-900@1.2" and row["line_id"] == "zh-900" and row["file"] == "audio/zh-900@1.2.wav"
    assert row["pinyin"] == "zhong1 guo2" and row["cue"] == c.EMOTION_CUES["happy"] and row["duration_s"] is None
    assert set(row) == set(c.ROW_KEYS)
    index = c.make_index([c.index_row(line), row], sample_rate=16000)
    p = c.write_index(index, tmp_path / "index.json")
    assert c.load_index(p) == json.loads(p.read_text(encoding="utf-8"))
    assert c.load_index(p)["format_version"] == c.INDEX_FORMAT_VERSION
    assert [l.id for l in c.lines_from_index(index)] == ["zh-900"]
    for broken, match in [({**index, "format_version": 0}, "format_version 0"),
                          (c.make_index([{k: v for k, v in row.items() if k != "emotion"}]), "'emotion'"),
                          (c.make_index([{**row, "duration_s": "2s"}]), "'duration_s'"),
                          (c.make_index([row, row]), "appears twice"),
                          (c.make_index([{**row, "checks": {"ok": True}}]), "malformed checks"),
                          ({"rows": []}, "not a corpus index")]:
        with pytest.raises(c.CorpusError, match=match):
            c.validate_index(broken, "idx.json")
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(Exception, match="not valid JSON"):
        c.load_index(tmp_path / "bad.json")


def test_build_without_synthesis(workspace):
    out = build_corpus(min_count=1, synthesize=False, limit=5)
    assert out["script_md"].exists() and out["index_json"].exists()
    assert out["script_md"].parent == workspace / "data" / "corpus"
    idx = c.load_index()
    assert len(idx["lines"]) == 5 and all(r["duration_s"] is None for r in idx["lines"])
    assert out["stats"]["lines"] == len(out["script"]) > 5
