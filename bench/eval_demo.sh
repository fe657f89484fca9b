#!/usr/bin/env bash
# Runs `teddy eval` on every task of bench/eval_fixture.py's data for one model and
# prints a markdown table row per task (docs/EVAL.md's measured table).
# Usage: bench/eval_demo.sh RUN FIXTURE_DIR [PPL_TEXT]
set -euo pipefail
run=$1 fix=$2 ppl=${3:-README.md}
teddy=${TEDDY:-build/teddy}
row() {  # task label, then teddy eval arguments
  local label=$1; shift
  "$teddy" eval "$@" --checkpoint "$run" --json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
j = json.load(sys.stdin); label = sys.argv[1]
keys = [k for k in ("acc", "acc_macro", "acc_norm", "exact_match", "pass@1", "perplexity", "bits_per_byte") if k in j]
metrics = ", ".join(f"{k} {j[k]:.3f}" for k in keys)
chance = j["info"].get("chance", "")
chance = f"{chance:.3f}" if isinstance(chance, float) else str(chance)
n, t = j["n"], j["seconds"]
print(f"| {label} | {n} | {metrics} | {chance} | {t:.1f} s ({t / n:.3f} s/sample) |")' "$label"
}
row "mmlu (5-shot)" mmlu --data "$fix/mmlu"
row "arc_challenge (0-shot)" arc_challenge --data "$fix/arc_challenge.jsonl"
row "gsm8k (8-shot)" gsm8k --data "$fix/gsm8k_test.jsonl" --fewshot "$fix/gsm8k_train.jsonl"
row "humaneval (greedy, n=1)" humaneval --data "$fix/humaneval.jsonl.gz"
row "perplexity ($(basename "$ppl"))" perplexity --data "$ppl"
