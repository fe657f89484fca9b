#!/usr/bin/env bash
# The README's main job, from a fresh Debian 12 machine: install dependencies, build
# teddy from scratch, build the default corpus from Debian packages, train a BPE
# tokenizer on it, tokenize it into shards, pretrain a small GPT-2-style model for a
# few minutes on the CPU (validation loss printed as it falls), then sample from it.
# Environment: BUILD_DIR (default build), STEPS (default: the config's 2500).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
TEDDY="$BUILD_DIR/teddy"

scripts/setup.sh
BUILD_TARGETS=teddy scripts/build.sh
scripts/default_corpus.sh

echo "== tokenizer: byte-level BPE, 4096 ids, trained on the corpus"
mkdir -p data/prepared
if [ ! -f data/prepared/bpe4k.json ]; then
  "$TEDDY" tokenizer train --vocab-size 4096 --output data/prepared/bpe4k.json \
    --input data/corpus/prose --input data/corpus/code --input data/corpus/multilingual
fi

echo "== data: tokenizing the corpus into shards"
"$TEDDY" data prepare --config configs/data/default.toml --tokenizer data/prepared/bpe4k.json --force

echo "== pretraining (configs/pretrain/demo.toml)"
overrides=()
[ -n "${STEPS:-}" ] && overrides+=("train.steps=$STEPS" "optim.warmup_steps=$((STEPS / 10))")
"$TEDDY" pretrain --config configs/pretrain/demo.toml --overwrite "${overrides[@]}"

echo "== samples"
for prompt in "The Python interpreter" "def parse_args(" "Der Mensch"; do
  echo "--- prompt: $prompt"
  "$TEDDY" generate --checkpoint runs/demo --prompt "$prompt" --max-tokens 60 --temperature 0.8 --top-k 40 --seed 1
done
