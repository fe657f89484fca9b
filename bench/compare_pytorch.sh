#!/bin/bash
# teddy vs PyTorch, same training step (forward, backward, clip, AdamW), fp32, same
# threads, for the standard workloads W1, W1b, W2. One command:
#   bench/compare_pytorch.sh [--teddy build/teddy] [--threads 2] [--steps 5] [--gemm auto] [--workload W1b ...]
# Each workload runs in its own process (clean peak RSS), teddy and PyTorch
# interleaved so drifting machine load hits both alike. Prints a side-by-side table;
# the raw JSON lines go to stderr.
# Each side at its best setting: PyTorch with OMP_WAIT_POLICY=PASSIVE (its OpenMP team
# and its BLAS threads otherwise spin against each other on small VMs: 33.5 s vs 9 s
# per W1b step measured on 2 cores), teddy with the GEMM library of --gemm (default
# auto, the training default: fp32 on oneDNN where it has AVX-512 and OpenBLAS only AVX2
# kernels, else OpenBLAS; docs/TRAINING_OPTIMIZATIONS.md "GEMM library").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
teddy="$here/../build/teddy"
threads=2
steps=5
gemm=auto
workloads=()
while [ $# -gt 0 ]; do
  case "$1" in
    --teddy) teddy=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --gemm) gemm=$2; shift 2 ;;
    --workload) workloads+=("$2"); shift 2 ;;
    *) echo "usage: $0 [--teddy PATH] [--threads N] [--steps N] [--gemm openblas|onednn|auto] [--workload W1|W1b|W2]..." >&2; exit 2 ;;
  esac
done
[ ${#workloads[@]} -eq 0 ] && workloads=(W1 W1b W2)
[ -x "$teddy" ] || { echo "$0: no teddy binary at $teddy (build it, or pass --teddy)" >&2; exit 2; }

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for w in "${workloads[@]}"; do
  OMP_NUM_THREADS=$threads "$teddy" bench train --json --workload "$w" --threads "$threads" --steps "$steps" --gemm "$gemm" \
    | sed 's/^/teddy /' | tee -a "$results" >&2
  OMP_NUM_THREADS=$threads OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 "$here/pytorch_train_step.py" --workload "$w" --threads "$threads" \
    --steps "$steps" | sed 's/^/torch /' | tee -a "$results" >&2
done

/usr/bin/python3 - "$results" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    impl, js = line.split(" ", 1)
    j = json.loads(js)
    rows.setdefault(j["workload"], {})[impl] = j
print("FLOPs per token = 6*N + 12*L*C*T; MFU against teddy's sgemm ceiling sampled around every timed step (median of per-step ratios);")
print("MFUpk against the physical peak measured at start (FMA loop; vdpbf16ps for bf16 products). PyTorch ran with OMP_WAIT_POLICY=PASSIVE.")
hdr = f"{'workload':8} {'B':>2} {'T':>4} {'thr':>3} | {'teddy ms':>9} {'tok/s':>7} {'GFLOP/s':>7} {'MFU':>6} {'MFUpk':>6} {'RSS MB':>7} | {'torch ms':>9} {'tok/s':>7} {'GFLOP/s':>7} {'RSS MB':>7} | {'teddy/torch':>11}"
print(hdr)
print("-" * len(hdr))
for w, r in rows.items():
    t, p = r.get("teddy"), r.get("torch")
    if not t or not p:
        continue
    print(f"{w:8} {t['batch']:>2} {t['seq']:>4} {t['threads']:>3} | {t['ms_per_step']:9.1f} {t['tokens_per_s']:7.0f} "
          f"{t['gflops_per_s']:7.1f} {100 * t['mfu']:5.1f}% {100 * t['mfu_peak']:5.1f}% {t['peak_rss_bytes'] / 1e6:7.0f} | {p['ms_per_step']:9.1f} "
          f"{p['tokens_per_s']:7.0f} {p['gflops_per_s']:7.1f} {p['peak_rss_bytes'] / 1e6:7.0f} | "
          f"{t['tokens_per_s'] / p['tokens_per_s']:10.2f}x")
for w, r in rows.items():
    t = r.get("teddy")
    if t:
        print(f"{w}: teddy GEMMs {t['gemm_library']} (backend {t['backend']}); CPU {t['cpu']}; physical peak fp32 "
              f"{t['peak_fp32_gflops']:.1f} GFLOP/s ({t['peak_fp32_isa']}), bf16 {t['peak_bf16_gflops']:.1f} ({t['peak_bf16_isa']})")
        print(f"{w}: sgemm ceiling (OpenBLAS, {t['threads']} threads, 15 training shapes) median {t['sgemm_gflops']:.1f} "
              f"of {t['sgemm_samples']} samples (min {t['sgemm_gflops_min']:.1f}, max {t['sgemm_gflops_max']:.1f}) GFLOP/s; "
              f"against the older 5-shape ceiling ({t['sgemm_gflops_five_shape']:.1f}) MFU {100 * t['mfu_five_shape']:.1f}%")
PY
