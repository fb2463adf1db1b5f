"""benchmarks/bench_gpu.py runs end to end on the CPU on the sample profile (`--quick`), and its table adds up.

On a GPU `bash benchmarks/gpu_check.sh` runs it at full size; here the rows must exist, the float32 paths must agree
(PSNR), and the ratio printed last must be the one the table's own numbers give.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import stage_fixtures as sf

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_gpu_quick_on_the_sample_profile(capsys):
    with sf.one_thread():
        assert _bench().main(["--profile", "sample", "--quick", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert "device cpu" in lines[0] and "profile sample" in lines[0]
    rows = {m[1].strip(): (float(m[2]), m[4]) for m in
            (re.match(r"^(.{58}) +([\d.]+) +([\d.]+) +(\S+) +([\d.]+)%$", ln) for ln in lines) if m}
    lp = rows["LivePortrait fp32, W+G, batch 1"]
    ours1 = rows["ours float32, eager, end to end, batch 1"]
    ours2 = rows["ours float32, eager, end to end, batch 2"]
    assert lp[1] == "ref" and len(rows) == 3                         # no autocast or .half() rows without CUDA
    assert float(ours1[1]) > 60 and float(ours2[1]) > 60             # float32 on the CPU: the reference up to batching
    assert lines[-1].startswith("ratio: ")
    ratio = float(re.search(r"= ([\d.]+)x", lines[-1])[1])
    assert abs(ratio - lp[0] / ours1[0]) <= 0.01 * ratio + 0.01
    assert re.search(r"one frame: \d+ GFLOP", out) and re.search(r"matmul peak \(float32\): \d+ GFLOP/s", out)
