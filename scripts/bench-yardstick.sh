#!/usr/bin/env bash
# Issue 15's yardstick: the original SparseGPT code (scripts/reference-sparsegpt.py driving IST-DASLab/sparsegpt's
# SparseGPT class) against `topiary prune`, SparseGPT 50 %, on the same generated Llama (bf16) and the same token ids,
# each a whole process: wall time and peak RSS (getrusage of the child), in rounds (ref, topiary, ref, topiary, …) so
# both see the same machine. CPU at equal threads; with YARD_GPU=1 also the reference on cuda (fp16, as llama.py runs
# it) against Topiary on webgpu. Prints a markdown table (also to OUTDIR/yardstick.md).
#
#   SPARSEGPT_REF=DIR bash scripts/bench-yardstick.sh [OUTDIR]      (after `npm run build`; OUTDIR default out/yardstick)
#
# Environment: SPARSEGPT_REF (a checkout of IST-DASLab/sparsegpt; its code is not in this repository); PYTHON (a
# python3 with torch and numpy; default the first of python3, /usr/bin/python3 that imports torch — Debian's
# python3-torch works: the driver needs no transformers); TOPIARY_NODE (default node); BENCH_THREADS (default all
# cores); YARD_LAYERS / YARD_HIDDEN / YARD_INTERMEDIATE / YARD_NSEQ / YARD_SEQ (default 4 / 2048 / 5632 / 32 / 512,
# the issue's shape); YARD_REPS (rounds, default 1); YARD_TIMEOUT_S (per process, default 1800).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/yardstick}
NODE=${TOPIARY_NODE:-node}
THREADS=${BENCH_THREADS:-$(nproc)}
REPS=${YARD_REPS:-1}
LIMIT=${YARD_TIMEOUT_S:-1800}
NSEQ=${YARD_NSEQ:-32}
SEQ=${YARD_SEQ:-512}
SHAPE=(--hidden "${YARD_HIDDEN:-2048}" --intermediate "${YARD_INTERMEDIATE:-5632}" --heads 16 --kv-heads 8
  --layers "${YARD_LAYERS:-4}" --vocab 4096)
if [[ -z "${SPARSEGPT_REF:-}" || ! -e "${SPARSEGPT_REF}/sparsegpt.py" ]]; then
  echo "bench-yardstick: set SPARSEGPT_REF to a checkout of IST-DASLab/sparsegpt (sparsegpt.py, quant.py)" >&2; exit 2
fi
PY=${PYTHON:-}
if [[ -z "$PY" ]]; then
  for p in python3 /usr/bin/python3; do "$p" -c 'import torch, numpy' 2>/dev/null && { PY=$p; break; }; done
fi
[[ -n "$PY" ]] || { echo "bench-yardstick: no python3 with torch and numpy (PYTHON=…)" >&2; exit 2; }
mkdir -p "$OUT"
Y=$(mktemp -d "${TMPDIR:-/tmp}/yardstick.XXXXXX")
trap 'rm -rf "$Y"' EXIT

$NODE dist/scripts/gen-model.js --arch llama "${SHAPE[@]}" --dtype bf16 --seed 0 --out "$Y/model" > "$OUT/gen.log" 2>&1 \
  || { tail -n 5 "$OUT/gen.log" >&2; exit 1; }
"$PY" - "$Y/tokens.safetensors" "$NSEQ" "$SEQ" 4096 <<'PY'
import json, struct, sys, numpy as np
path, n, t, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ids = np.random.default_rng(0).integers(0, vocab, size=(n, t), dtype=np.int64).astype('<i4')
head = json.dumps({'__metadata__': {'corpus': 'random', 'seed': '0'},
                   'input_ids': {'dtype': 'I32', 'shape': [n, t], 'data_offsets': [0, ids.nbytes]}}).encode()
head += b' ' * (-len(head) % 8)
with open(path, 'wb') as f:
    f.write(struct.pack('<Q', len(head)) + head + ids.tobytes())
PY

# measure NAME CMD...: CMD as a child of python, which prints its exit status, wall seconds and peak RSS as JSON.
measure() {
  local name=$1; shift
  "$PY" - timeout "$LIMIT" "$@" > "$OUT/$name.json" 2> "$OUT/$name.log" <<'PY'
import json, resource, subprocess, sys, time
t0 = time.time()
p = subprocess.run(sys.argv[1:], stdout=sys.stderr, stderr=sys.stderr)
print(json.dumps({'rc': p.returncode, 'wall': time.time() - t0,
                  'peakRssMiB': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
PY
}
ref() { measure "$1" env SPARSEGPT_REF="$SPARSEGPT_REF" "$PY" scripts/reference-sparsegpt.py "$Y/model" "$Y/tokens.safetensors" "${@:2}"; }
top() { rm -rf "$Y/out"; measure "$1" $NODE dist/src/cli/main.js prune "$Y/model" --method sparsegpt --sparsity 0.5 --calib-tokens "$Y/tokens.safetensors" --out "$Y/out" "${@:2}"; }

RUNS=()
for ((r = 1; r <= REPS; r++)); do
  ref "ref-cpu-$r" --device cpu --threads "$THREADS" --dtype float32; RUNS+=("ref-cpu-$r")
  top "topiary-cpu-$r" --device cpu --threads "$THREADS"; RUNS+=("topiary-cpu-$r")
  if [[ ${YARD_GPU:-0} == 1 ]]; then
    ref "ref-cuda-$r" --device cuda --dtype float16; RUNS+=("ref-cuda-$r")
    top "topiary-webgpu-$r" --device webgpu; RUNS+=("topiary-webgpu-$r")
  fi
done

"$PY" - "$OUT" "$THREADS" "$NSEQ" "$SEQ" "${SHAPE[*]}" "${RUNS[@]}" <<'PY' | tee "$OUT/yardstick.md"
import json, os, sys
out, threads, nseq, seq, shape, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
load = open('/proc/loadavg').read().split()[:3] if os.path.exists('/proc/loadavg') else ['?'] * 3
print(f'SparseGPT 50 %, generated llama {shape}, bf16 weights, {nseq} × {seq} random token ids, {threads} threads; '
      f'load average at the end {" ".join(load)}\n')
print('| run | rc | wall s | peak RSS MiB |')
print('|---|---:|---:|---:|')
res = {}
for r in runs:
    try:
        d = json.load(open(os.path.join(out, r + '.json')))
    except (OSError, ValueError):
        print(f'| {r} | – | – | – |'); continue
    res[r] = d
    print(f"| {r} | {d['rc']} | {d['wall']:.1f} | {d['peakRssMiB']:.0f} |")
for a, b in [('ref-cpu', 'topiary-cpu'), ('ref-cuda', 'topiary-webgpu')]:
    pairs = [(res[k], res[k.replace(a, b)]) for k in res if k.startswith(a + '-') and k.replace(a, b) in res]
    pairs = [(x, y) for x, y in pairs if x['rc'] == 0 and y['rc'] == 0]
    if pairs:
        speed = sorted(x['wall'] / y['wall'] for x, y in pairs)
        mem = sorted(y['peakRssMiB'] / x['peakRssMiB'] for x, y in pairs)
        print(f'\n{b} vs {a}: {speed[len(speed) // 2]:.2f}× faster (median of {len(pairs)}; range {speed[0]:.2f}–{speed[-1]:.2f}), '
              f'peak RSS {mem[len(mem) // 2]:.2f}× the reference\'s')
PY
for r in "${RUNS[@]}"; do
  [[ -s "$OUT/$r.json" ]] && grep -q '"rc": 0' "$OUT/$r.json" || { echo "$r failed:"; tail -n 5 "$OUT/$r.log"; }
done
