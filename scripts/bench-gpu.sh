#!/usr/bin/env bash
# Issue 15's GPU tables in one command, for a machine with an NVIDIA GPU and no network: bench-solver, bench-forward
# and bench-prune with --device cpu, webgpu (Dawn on the NVIDIA Vulkan driver) and cuda (only if ORT's CUDA provider
# libraries can be found on the machine), the card's fp32 / tf32 / bf16 matrix rates measured in the same run through
# PyTorch, and the PyTorch yardstick: the original SparseGPT code (scripts/reference-sparsegpt.py) against
# `topiary prune` on the same generated Llama and the same token ids, CPU at equal threads and GPU.
#
#   bash scripts/bench-gpu.sh [OUTDIR]            (after `npm run build`; OUTDIR default ./out/bench-gpu)
#
# Environment: TOPIARY_NODE (node binary, default `node`); SPARSEGPT_REF (a checkout of IST-DASLab/sparsegpt: without
# it the yardstick is skipped); BENCH_THREADS (CPU threads for both tools, default all cores); BENCH_BUDGET_S (steps
# not yet started once this many seconds have passed are skipped, default 540; BENCH_DEADLINE_S, default budget + 60:
# no step runs past it); BENCH_QUICK=1 (tiny shapes: a check of the script itself); BENCH_DEVICES (default "cpu webgpu", plus cuda where found).
# A machine without node or libvulkan can be given them by scripts/gpu-bundle.sh.
# Each step has its own timeout and its log under OUTDIR; a failed step is reported and the rest still run. The
# summary (summary.md) is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/bench-gpu}
mkdir -p "$OUT"
NODE=${TOPIARY_NODE:-node}
THREADS=${BENCH_THREADS:-$(nproc)}
BUDGET=${BENCH_BUDGET_S:-540}
DEADLINE=${BENCH_DEADLINE_S:-$(( BUDGET + 60 ))}
QUICK=${BENCH_QUICK:-0}
START=$(date +%s)
SUMMARY="$OUT/summary.md"
: > "$SUMMARY"
say() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }

# step NAME TIMEOUT CMD...: runs CMD with its log in OUT/NAME.log unless the budget is spent; its stdout tables go
# to the summary.
step() {
  local name=$1 limit=$2; shift 2
  local now=$(( $(date +%s) - START ))
  if (( now > BUDGET )); then say "- $name: skipped (budget of ${BUDGET} s spent at ${now} s)"; return 0; fi
  local left=$(( DEADLINE - now )); (( limit > left )) && limit=$left
  local t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  local dt=$(( $(date +%s) - t0 ))
  say ""
  say "### $name (rc $rc, ${dt} s)"
  if (( rc == 0 )); then grep -E '^(\||bench|model|peak|MatMul|topiary|SparseGPT|\{)' "$OUT/$name.log" | tee -a "$SUMMARY"
  else tail -n 8 "$OUT/$name.log" | tee -a "$SUMMARY"; fi
}

say "# bench-gpu $(date -u +%FT%TZ) on $(hostname)"
say ""
say "threads $THREADS; node $($NODE --version 2>&1)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader 2>&1 | sed 's/^/gpu: /' | tee -a "$SUMMARY"
ldconfig -p 2>/dev/null | grep -q libvulkan.so.1 && say "libvulkan.so.1: present" || say "libvulkan.so.1: MISSING (webgpu will find no adapter)"

if python3 -c 'import torch' 2>/dev/null; then
  step matmul-rate 120 python3 - <<'PY'
import json, torch
if not torch.cuda.is_available():
    raise SystemExit('no CUDA device visible to PyTorch')
n = 8192
res = {}
for label, dtype, tf32 in [('fp32', torch.float32, False), ('tf32', torch.float32, True), ('bf16', torch.bfloat16, False)]:
    torch.backends.cuda.matmul.allow_tf32 = tf32
    g = torch.Generator(device='cuda').manual_seed(0)
    a = torch.randn(n, n, device='cuda', dtype=dtype, generator=g)
    b = torch.randn(n, n, device='cuda', dtype=dtype, generator=g)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(10):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); a @ b; e.record(); torch.cuda.synchronize()
        times.append(s.elapsed_time(e) / 1e3)
    times.sort()
    res[label] = 2 * n**3 / times[len(times) // 2] / 1e12
print('| PyTorch matmul 8192³ (median of 10) | fp32 | tf32 | bf16 |')
print('|---|---:|---:|---:|')
print(f"| TFLOP/s | {res['fp32']:.1f} | {res['tf32']:.1f} | {res['bf16']:.1f} |")
print(json.dumps(res))
PY
else
  say "PyTorch not installed: no card matmul rate, no yardstick"
fi

# ORT's CUDA provider: onnxruntime-node ships without it; use a copy of the same ORT version if the machine has one.
ORT_DIR=$($NODE -e "console.log(require('path').dirname(require.resolve('onnxruntime-node/package.json')))" 2>/dev/null)/bin/napi-v6/linux/x64
ORT_VERSION=$($NODE -e "console.log(require('onnxruntime-node/package.json').version)" 2>/dev/null)
DEVICES=${BENCH_DEVICES:-cpu webgpu}
if [[ ! -e "$ORT_DIR/libonnxruntime_providers_cuda.so" ]]; then
  cuda_lib=$(find / -xdev -name 'libonnxruntime_providers_cuda.so' 2>/dev/null | head -n 1)
  if [[ -n "$cuda_lib" ]]; then
    say "CUDA provider found at $cuda_lib (onnxruntime-node is $ORT_VERSION); trying it"
    cp "$cuda_lib" "$(dirname "$cuda_lib")/libonnxruntime_providers_shared.so" "$ORT_DIR/" 2>/dev/null
  else
    say "CUDA provider: no libonnxruntime_providers_cuda.so on this machine (python onnxruntime: $(python3 -c 'import onnxruntime as o; print(o.__version__, o.get_available_providers())' 2>&1 | tail -n 1))"
  fi
fi
[[ -z "${BENCH_DEVICES:-}" && -e "$ORT_DIR/libonnxruntime_providers_cuda.so" ]] && DEVICES="cpu webgpu cuda"

if [[ $QUICK == 1 ]]; then
  SOLVER="--shapes 512x512"; FWD="--hidden 256 --intermediate 704 --heads 4 --kv-heads 2 --layers 2 --vocab 512 --seq 128 --nseq 4 --batch 2"
  PRUNE="--hidden 256 --intermediate 704 --heads 4 --kv-heads 2 --layers 2 --vocab 512 --nseq 4 --seq 128"
  YARD=(YARD_HIDDEN=256 YARD_INTERMEDIATE=704 YARD_LAYERS=2 YARD_NSEQ=4 YARD_SEQ=128)
else
  SOLVER="--shapes 4096x4096,11008x4096"; FWD="--layers 4 --nseq 8 --seq 512 --batch 4"
  PRUNE="--layers 2 --nseq 16 --seq 512"
  YARD=(YARD_HIDDEN=2048 YARD_INTERMEDIATE=5632 YARD_LAYERS=2 YARD_NSEQ=32 YARD_SEQ=512)
fi

# The yardstick (scripts/bench-yardstick.sh): one generated model, one token file, both tools, CPU at equal threads and
# GPU (reference cuda fp16 against Topiary webgpu); wall and peak RSS of each whole process.
if [[ -n "${SPARSEGPT_REF:-}" ]] && python3 -c 'import torch' 2>/dev/null; then
  step yardstick 330 env YARD_GPU=1 YARD_TIMEOUT_S=150 BENCH_THREADS="$THREADS" TOPIARY_NODE="$NODE" PYTHON=python3 "${YARD[@]}" \
    bash scripts/bench-yardstick.sh "$OUT/yard"
else
  say "yardstick skipped (needs SPARSEGPT_REF and python3 with torch)"
fi
for d in $DEVICES; do
  # shellcheck disable=SC2086
  step "bench-prune-$d" 120 $NODE dist/scripts/bench-prune.js $PRUNE --device $d --threads "$THREADS"
done
for d in $DEVICES; do
  # shellcheck disable=SC2086
  step "bench-solver-$d" 100 $NODE dist/scripts/bench-solver.js $SOLVER --device $d
done
for d in $DEVICES; do
  # shellcheck disable=SC2086
  step "bench-forward-$d" 90 $NODE dist/scripts/bench-forward.js $FWD --device $d
done
say ""
say "total $(( $(date +%s) - START )) s"
