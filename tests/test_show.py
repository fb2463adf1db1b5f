"""What notebooks 00, 01, 05 and 06 show (`talkinghead.show`): the numbers behind their tables and plots, computed
here without a notebook (issue 10: the cells only call these and display)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from talkinghead import corpus, tts, video
from talkinghead.show import corpus as show_corpus
from talkinghead.show import export as show_export
from talkinghead.show import live as show_live
from talkinghead.show import setup as show_setup

SR = 16000


# ------------------------------------------------------------------------------------------------ notebook 01
def test_the_pool_table_counts_every_line_once():
    pool = corpus.load_pool()
    table = show_corpus.pool_table(pool)
    counts = [int(n) for n in re.findall(r"^\| (?:zh|en) \| [^|]+ \| (\d+) \|$", table, re.M)]
    assert sum(counts) == len(pool) and f"**{len(pool)} candidate lines**" in table
    assert pool[0].text in table


def test_the_syllable_table_splits_strict_and_non_strict():
    table = show_corpus.syllable_table("鱼我")
    assert "| 鱼 | yu2 | ∅ | ü | y | u | 2 |" in table       # strict: y folds into ü; as written: y + u
    assert "| 我 | wo3 | ∅ | uo | w | o | 3 |" in table
    assert "| 欸 | ê4 | ∅ | ê | ∅ | ê | 4 |" in table         # the extra reading the pool fixes
    assert "21 initials (+ y, w = 23)" in table


def test_coverage_numbers_agree_with_what_is_missing():
    pool = corpus.load_pool()
    full = corpus.coverage(corpus.select_lines(pool, min_count=1, min_emotion=1))
    c = show_corpus.coverage_numbers(full, 1, 1)
    assert c["zh"][0] == c["zh"][1] and c["en"][0] == c["en"][1] and c["all"] == 1.0 and not c["missing"]
    few = corpus.coverage(pool[:5])
    c = show_corpus.coverage_numbers(few, 2, 2)
    zh_missing = [u for u in few.missing(2) if u[0] == "zh" and u[1] in ("initial", "final", "tone")]
    assert c["zh"][0] == c["zh"][1] - len(zh_missing) and c["zh"][0] < c["zh"][1]
    assert f"{c['zh'][0]}/{c['zh'][1]} units" in show_corpus.coverage_report(few, 2, 2)


def test_the_emotion_plot_draws_the_counts():
    import matplotlib

    matplotlib.use("Agg")
    cov = corpus.coverage(corpus.select_lines(corpus.load_pool()))
    fig = show_corpus.plot_emotions(cov, 2)
    bars = [p.get_height() for p in fig.axes[0].patches]
    expect = [n for lang in cov.languages for _, n in cov.units(lang, "emotion")]
    assert bars == expect and min(bars) >= 2


def test_alignment_measures_how_far_the_timings_sit_from_the_audio(tmp_path):
    pytest.importorskip("espeakng_loader")
    lines = corpus.select_lines(corpus.load_pool())[:2]
    index = tts.synthesize_corpus(lines, tmp_path, rates=(1.0,), progress=False)
    before = show_corpus.alignment(index, tmp_path)
    assert len(before["onset_ms"]) == 2 and max(abs(v) for v in before["onset_ms"]) < 150
    ph_file = tmp_path / index["lines"][0]["phonemes_file"]
    d = json.loads(ph_file.read_text())
    d["phonemes"][0]["start_s"] += 0.1                     # espeak's first phoneme 100 ms late
    ph_file.write_text(json.dumps(d))
    after = show_corpus.alignment(index, tmp_path)
    assert after["onset_ms"][0] == pytest.approx(before["onset_ms"][0] + 100, abs=1e-6)
    assert after["onset_ms"][1] == before["onset_ms"][1]
    assert "median" in show_corpus.alignment_report(index, tmp_path)
    assert [r["id"] for r in show_corpus.example_rows(index)][0] == lines[0].id


# ------------------------------------------------------------------------------------------------ notebook 05
def test_the_int8_report_lists_blocks_worst_first():
    report = {"models": {"renderer": {"variants": {"int8": {
        "quantized_layers": 7, "eligible_layers": 9, "kept_float": ["spade_generator.G_middle_0"],
        "block_psnr_db": {"warping_module": 41.5, "spade_generator.G_middle_0": 22.0, "appearance": 38.0}}}}}}
    text = show_export.int8_report(report).splitlines()
    assert text[0] == "int8: 7 of 9 Conv/MatMul/Gemm layers quantized; kept in float: spade_generator.G_middle_0"
    assert [ln.split()[1] for ln in text[2:]] == ["spade_generator.G_middle_0", "appearance", "warping_module"]
    assert text[2].endswith("-> kept float") and not text[3].endswith("kept float")
    assert show_export.int8_report({"models": {"renderer": {"variants": {"fp32": {}}}}}) == ""


def test_the_export_files_report_reads_sizes_from_the_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"files": {
        "renderer.onnx": {"bytes": 2_500_000, "sha256": "ab" * 32}, "paste.onnx": {"bytes": 10_000, "sha256": "cd" * 32}}}))
    text = show_export.files_report(tmp_path, {"files": ["renderer.onnx", "paste.onnx"], "motions": "random",
                                               "seconds": 12.4, "models": {"opset": 20}}).splitlines()
    assert text[0].startswith("paste.onnx") and "0.01 MB" in text[0] and "sha256 cdcdcdcdcdcd" in text[0]
    assert "2.50 MB" in text[1] and text[-1] == "export took 12 s; opset 20"


# ------------------------------------------------------------------------------------------------ notebook 06
def test_speech_from_a_file_is_16_khz_mono_and_written(tmp_path):
    import soundfile as sf

    t = np.arange(int(0.5 * 44100)) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 300 * t)], 1).astype(np.float32) * 0.5
    sf.write(tmp_path / "me.wav", stereo, 44100)
    samples, sr, spoken = show_live.speech("unused", tmp_path / "me.wav", wav_path=tmp_path / "out" / "x.wav")
    assert sr == SR and samples.ndim == 1 and abs(len(samples) - SR // 2) <= 1 and spoken.endswith("me.wav")
    back, back_sr = tts.read_wav(tmp_path / "out" / "x.wav")
    assert back_sr == SR and len(back) == len(samples)


def test_the_video_report_and_the_skipped_live_run(tmp_path, capsys):
    assert show_live.video_report(None) == ("no frames (empty audio): no video was written", False)
    frames = [np.full((16, 16, 3), k * 10, np.uint8) for k in range(10)]
    path = video.write_video(tmp_path / "v.mp4", frames, audio=(np.zeros(SR // 2, np.float32), SR), progress=False)
    text, embed = show_live.video_report(path)
    assert embed and "video 0.400 s, audio 0.400 s" in text
    assert show_live.video_report(path, embed_max_mb=0.0)[1] is False
    assert show_live.run_live(None, np.zeros(10), SR, enabled=False) is None
    assert "REALTIME is False" in capsys.readouterr().out
    assert show_live.timing_tables(None) == ""


# ------------------------------------------------------------------------------------------------ notebook 00
def test_setup_fetches_nothing_on_the_sample_profile_and_times_five_networks(capsys):
    import matplotlib

    matplotlib.use("Agg")
    assert show_setup.fetch_weights("sample") == {}
    assert "no download" in capsys.readouterr().out
    lp = show_setup.load_networks("sample")
    assert "loaded the sample networks" in capsys.readouterr().out
    fig = show_setup.time_networks(lp)
    assert len(fig.axes[0].patches) == 5 and all(p.get_width() > 0 for p in fig.axes[0].patches)
