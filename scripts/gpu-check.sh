#!/usr/bin/env bash
# The GPU check in two halves, because the GPU machine has CUDA, PyTorch and no Rust toolchain:
#
#   scripts/gpu-check.sh build   # here: builds the GPU test and bench binaries into .gpu/ (git-ignored)
#   scripts/gpu-check.sh run     # on the GPU machine, from the repository root with .gpu/ copied along:
#                                # every GPU test, then our GPU benchmarks beside PyTorch's on the same
#                                # card; a summary table is printed last. About 6 minutes.
#
# With the device tool: run(command="bash scripts/gpu-check.sh run", carry=[".gpu"]).
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"

build() {
  rm -rf .gpu && mkdir -p .gpu/tests
  cargo build --release -p albert --bin albert
  # Every test target whose name starts with cuda_ (kernels, engine ops, model).
  cargo test --release --workspace --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys, shutil, os
for line in sys.stdin:
    try: m = json.loads(line)
    except ValueError: continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"].startswith("cuda_") \
       and m["target"]["kind"] == ["test"]:
        shutil.copy(m["executable"], os.path.join(".gpu/tests", m["target"]["name"]))
'
  cp target/release/albert .gpu/albert
  strip --strip-debug .gpu/albert .gpu/tests/* 2>/dev/null || true
  cp benches/torch_gpu.py .gpu/
  ls -la .gpu .gpu/tests
  du -sh .gpu
}

run() {
  export LD_LIBRARY_PATH="/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export ALBERT_CUDA_CACHE="$PWD/.gpu/cubin-cache"
  local out=.gpu/results && mkdir -p "$out" && : > "$out/bench.jsonl" && : > "$out/tests.txt"
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader | tee "$out/card.txt"
  ls /usr/local/cuda/lib64/libnvrtc.so* | head -2
  echo "== GPU tests"
  for t in .gpu/tests/*; do
    name=$(basename "$t")
    if timeout 300 "$t" --test-threads=1 > "$out/$name.log" 2>&1; then status=pass; else status=FAIL; fi
    summary=$(grep -E '^test result:' "$out/$name.log" | tail -1 || true)
    skipped=$(grep -c 'skipped: no CUDA device' "$out/$name.log" || true)
    echo "$name $status $summary (skip notices: $skipped)" | tee -a "$out/tests.txt"
    [ "$status" = pass ] || grep -E 'panicked|FAILED|error' "$out/$name.log" | head -20
  done
  echo "== benchmarks (ours, then PyTorch on the same card)"
  bench() { "$@" 2>>"$out/bench.err" | grep '^{' >> "$out/bench.jsonl" || echo "failed: $*" | tee -a "$out/bench.err"; }
  bench python3 .gpu/torch_gpu.py ceilings --iters 10
  for shape in "4096 4096 4096 0" "16384 768 768 1" "16384 3072 768 1" "16384 768 3072 1" "16384 768 128 1" "16384 30000 128 1"; do
    set -- $shape
    tb=""; [ "$4" = 1 ] && tb="--trans-b"
    bench .gpu/albert bench gemm --device cuda --dtype bf16 --m "$1" --n "$2" --k "$3" $tb --iters 20 --json
    bench python3 .gpu/torch_gpu.py gemm --dtype bf16 --m "$1" --n "$2" --k "$3" $tb --iters 20
  done
  bench .gpu/albert bench attention --device cuda --batch 32 --seq 512 --iters 20 --json
  bench python3 .gpu/torch_gpu.py attention --batch 32 --heads 12 --seq 512 --head-dim 64 --iters 20
  for what in forward train; do
    bench .gpu/albert bench "$what" --device cuda --bf16 --preset base --batch 32 --seq 512 --iters 10 --json
    bench python3 .gpu/torch_gpu.py "$what" --preset base --batch 32 --seq 512 --iters 10
  done
  echo "== summary"
  cat "$out/card.txt"
  cat "$out/tests.txt"
  python3 - "$out/bench.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def key(r):
    return (r.get("bench"), r.get("m"), r.get("n"), r.get("k"), r.get("preset"))
ours = {key(r): r for r in rows if "torch" not in r}
theirs = {key(r): r for r in rows if "torch" in r}
print(f"{'benchmark':44} {'ours ms':>9} {'torch ms':>9} {'torch/ours':>10} {'ours TFLOP/s':>13} {'torch TFLOP/s':>14}")
for k, t in theirs.items():
    o = ours.get(k)
    name = " ".join(str(x) for x in k if x is not None)
    if o is None:
        print(f"{name:44} {'-':>9} {t['median_ms']:9.3f} {'-':>10} {'-':>13} {t.get('tflops', t.get('gbytes_per_s', 0)):14.1f}")
        continue
    print(f"{name:44} {o['median_ms']:9.3f} {t['median_ms']:9.3f} {t['median_ms'] / o['median_ms']:10.2f} "
          f"{o.get('tflops', 0):13.1f} {t.get('tflops', 0):14.1f}")
PY
}

case "$mode" in
  build) build ;;
  run) run ;;
  *) echo "usage: scripts/gpu-check.sh build|run" >&2; exit 2 ;;
esac
