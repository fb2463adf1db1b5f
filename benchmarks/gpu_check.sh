#!/usr/bin/env bash
# The GPU check of issue 11, one script for a session that has a CUDA GPU:   bash benchmarks/gpu_check.sh [STEP...]
#
# STEPs (default: all four, in this order; each has its own time limit; all four should fit in ~10 minutes on an
# H200, not yet timed there):
#   machine  torch, CUDA, and the device talkinghead chooses with no argument (and why)
#   tests    the CUDA tests (tests/test_device.py, tests/test_loader.py; they skip without CUDA)
#   bench    benchmarks/bench_gpu.py at full (released) size: LivePortrait's own W+G beside ours, PSNR, ratio
#   demo     `python -m talkinghead setup --profile sample` and `... demo --profile sample`: the GPU must be chosen
#
# `bash benchmarks/gpu_check.sh tests bench` and then `... demo` split it into two shorter runs.
# Without a CUDA GPU it runs the same steps in their CPU-safe form (bench on the sample profile with --quick; the
# device check expects the CPU), which proves the script itself works. Figures go to stdout and, when $OUT is set,
# to $OUT/gpu_check.log and $OUT/bench_gpu.txt. Env: GPU_CHECK_SKIP_DEMO=1 skips the demo (15 minutes on a 2-core
# CPU); GPU_CHECK_BENCH_ARGS replaces the benchmark's extra arguments (default on a GPU: "--batches 1,8,32 --repeats
# 10": each batch size compiles once, ~30 s).
# Exit status: the number of failed steps (0: all passed).
set -u
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export PYTHONPATH="$REPO/lib${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg
unset TALKINGHEAD_DEVICE                                  # the check is that "auto" finds the GPU by itself
PY="${PYTHON:-python}"
LOG=/dev/null
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT"; LOG="$OUT/gpu_check.log"; : >"$LOG"; fi
say() { echo "$*" | tee -a "$LOG"; }
SUMMARY=()
FAILED=0
step() {  # step NAME TIMEOUT_S COMMAND...: run, tee the output, record PASS/FAIL with seconds
    local name="$1" limit="$2"; shift 2
    say ""; say "=== $name"
    local t0=$SECONDS
    set -o pipefail
    timeout "$limit" "$@" 2>&1 | tee -a "$LOG"
    local rc=$?
    set +o pipefail
    local verdict=PASS; [ $rc -ne 0 ] && { verdict="FAIL (exit $rc)"; FAILED=$((FAILED + 1)); }
    SUMMARY+=("$verdict  $name  ($((SECONDS - t0)) s)")
}

HAS_CUDA=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
if [ "$HAS_CUDA" = 1 ]; then
    WANT=cuda; BENCH="--profile full ${GPU_CHECK_BENCH_ARGS---batches 1,8,32 --repeats 10}"
else
    WANT=cpu; BENCH="--profile sample --quick ${GPU_CHECK_BENCH_ARGS:-}"
fi
STEPS=" ${*:-machine tests bench demo} "
want() { [[ "$STEPS" == *" $1 "* ]]; }
say "gpu_check: $(date -u +%FT%TZ) in $REPO; CUDA: $([ "$HAS_CUDA" = 1 ] && echo yes || echo 'no (CPU-safe parts only)')"

want machine && step "machine and device rule" 120 "$PY" - <<EOF
import torch
from talkinghead.device import describe
from talkinghead.machine import format_report, machine_report
print(format_report(machine_report()))
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor}")
d = describe()
assert d["device"].startswith("$WANT"), f"device='auto' chose {d['device']}, expected $WANT: {d['device_reason']}"
print(f"OK: device='auto' -> {d['device']} ({d['device_reason']}); {d['precision']}; render batch {d['render_batch']}")
EOF

want tests && step "CUDA tests" 300 "$PY" -m pytest -q -rs -s -o addopts= -p no:cacheprovider tests/test_device.py tests/test_loader.py \
    -k "cuda or renderer or compile or autocast"

BENCH_TXT="${OUT:-/tmp}/bench_gpu.txt"
want bench && step "bench_gpu.py $BENCH" 360 \
    bash -c "set -o pipefail; '$PY' benchmarks/bench_gpu.py $BENCH | tee '$BENCH_TXT'"

WS="$(mktemp -d -t th-gpu-check-XXXX)"
want demo && step "setup --profile sample chooses $WANT" 300 bash -c "set -o pipefail; '$PY' -m talkinghead setup --profile sample \
    --workspace '$WS' | tee '$WS/setup.txt' && grep -E '^device +: $WANT' '$WS/setup.txt'"
if want demo && [ "${GPU_CHECK_SKIP_DEMO:-0}" != 1 ]; then
    step "demo --profile sample chooses $WANT" 1500 bash -c "set -o pipefail; '$PY' -m talkinghead demo \
        --profile sample --workspace '$WS' | tee '$WS/demo.txt' && grep -E '^device +: $WANT' '$WS/demo.txt'"
elif want demo; then
    SUMMARY+=("SKIP  demo (GPU_CHECK_SKIP_DEMO=1)")
fi

say ""; say "=== summary"
for line in "${SUMMARY[@]}"; do say "$line"; done
want bench && [ -s "$BENCH_TXT" ] && say "bench: $(tail -n 1 "$BENCH_TXT")"
exit $FAILED
