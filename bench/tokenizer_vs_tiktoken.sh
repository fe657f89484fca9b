#!/usr/bin/env bash
# Tokenizer throughput, teddy vs the npm tiktoken package (OpenAI's tiktoken built
# to WASM), on the same ~10 MB text with the gpt2 vocabulary, 1 and 2 threads.
#   bench/tokenizer_vs_tiktoken.sh [BUILD_DIR]     (default: build)
# Needs: BUILD_DIR/bench_tokenizer (ninja bench_tokenizer), node and npm (the
# tiktoken package is installed into BUILD_DIR/npm by tests/tokenizer/setup_tiktoken.sh).
# The text: /usr/share/common-licenses and the Python 3.11 standard library's
# sources, concatenated and cut at a line end near 10 MB (valid UTF-8).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
repeats=${REPEATS:-3}

npm_dir=$build/npm
bash "$root/tests/tokenizer/setup_tiktoken.sh" "$npm_dir" >/dev/null
ranks=$npm_dir/gpt2.tiktoken

corpus=$build/bench/tokenizer_corpus.txt
if [ ! -s "$corpus" ]; then
  mkdir -p "$build/bench"
  { cat /usr/share/common-licenses/*; find /usr/lib/python3.11 -name '*.py' | LC_ALL=C sort | xargs cat; } 2>/dev/null \
    | head -c 10000000 > "$corpus.tmp" || true
  # Cut after the last newline, so no UTF-8 sequence is split.
  node -e 'const fs=require("fs");const b=fs.readFileSync(process.argv[1]);fs.writeFileSync(process.argv[2],b.subarray(0,b.lastIndexOf(10)+1))' \
    "$corpus.tmp" "$corpus"
  rm -f "$corpus.tmp"
fi
bytes=$(stat -c %s "$corpus")

one_core=""
command -v taskset >/dev/null && one_core="taskset -c 0"

teddy_run() {  # threads -> "MB/s tokens"
  local filter="BM_encode/threads:$1/"
  local cpu_pin=""
  [ "$1" = 1 ] && cpu_pin=$one_core
  TEDDY_BENCH_TEXT=$corpus TEDDY_BENCH_TOKENIZER=$ranks $cpu_pin "$build/bench_tokenizer" \
    --benchmark_filter="$filter" --benchmark_repetitions="$repeats" --benchmark_format=json 2>/dev/null |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const b=JSON.parse(s).benchmarks.filter(x=>x.run_type==="iteration");
      const u=x=>({ns:1e-9,us:1e-6,ms:1e-3,s:1})[x.time_unit], mb=Number(process.argv[1])/1e6;
      const wall=Math.min(...b.map(x=>x.real_time*u(x))), cpu=Math.min(...b.map(x=>x.cpu_time*u(x)));
      console.log((mb/wall).toFixed(1), (mb/cpu).toFixed(1), b[0].tokens)})' "$bytes"
}
tiktoken_run() {
  local cpu_pin=""
  [ "$1" = 1 ] && cpu_pin=$one_core
  $cpu_pin node "$root/bench/tiktoken_throughput.js" "$npm_dir" "$corpus" "$1" "$repeats" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);console.log(r.mb_per_s.toFixed(1), r.mb_per_cpu_s.toFixed(1), r.tokens)})'
}

echo "text: $corpus ($bytes bytes), gpt2 vocabulary, best of $repeats"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "MB/s = input MB per wall-clock second; MB/cpu-s = per second of CPU time (1 thread only)"
printf "%-8s %11s %13s %14s %16s %7s %12s %12s\n" threads "teddy MB/s" "teddy MB/cpu-s" "tiktoken MB/s" "tiktoken MB/cpu-s" ratio "teddy ids" "tiktoken ids"
for t in 1 2; do
  read -r tm tc tt < <(teddy_run "$t")
  read -r km kc kt < <(tiktoken_run "$t")
  ratio=$(node -e "console.log(($tm/$km).toFixed(1)+'x')")
  [ "$t" = 1 ] || { tc=-; kc=-; }
  printf "%-8s %11s %13s %14s %16s %7s %12s %12s\n" "$t" "$tm" "$tc" "$km" "$kc" "$ratio" "$tt" "$kt"
done
