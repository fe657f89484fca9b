#!/usr/bin/env bash
# Test setup for the tokenizer's exactness test (idempotent):
#   1. npm-installs the `tiktoken` package (WASM build of OpenAI's tiktoken) into DIR
#   2. extracts its gpt2 and cl100k_base ranks to DIR/gpt2.tiktoken and
#      DIR/cl100k_base.tiktoken in tiktoken's rank-file format ("<base64 token> <rank>"
#      per line), which teddy loads. (cl100k_base uses the LLaMA-3 regex.)
# Usage: tests/tokenizer/setup_tiktoken.sh [DIR]   (default: build/npm)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here/../../build/npm}
version=1.0.22  # pinned: the test compares ids with this exact release
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# ctest runs test cases in parallel; one setup at a time.
exec 9>"$dir/.setup.lock"
flock 9

command -v node >/dev/null || { echo "setup_tiktoken.sh: node is not installed (needed for the tiktoken comparison)" >&2; exit 1; }
command -v npm >/dev/null || { echo "setup_tiktoken.sh: npm is not installed (needed for the tiktoken comparison)" >&2; exit 1; }

if [ "$(node -p "try { require('$dir/node_modules/tiktoken/package.json').version } catch (e) { '' }")" != "$version" ]; then
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "tiktoken@$version" >&2
fi

# encoders/<name>.json keep the ranks compressed: lines of "<tag> <first rank> <base64>...".
for enc in gpt2:50256 cl100k_base:100256; do
  name=${enc%%:*} count=${enc##*:}
  [ -s "$dir/$name.tiktoken" ] && continue
  node -e '
    const [dir, name, count, dest] = process.argv.slice(1);
    const d = require(dir + "/node_modules/tiktoken/encoders/" + name + ".json");
    const out = [];
    for (const line of d.bpe_ranks.split("\n")) {
      if (!line) continue;
      const [, offset, ...tokens] = line.split(" ");
      tokens.forEach((t, i) => out.push(t + " " + (Number(offset) + i)));
    }
    if (out.length !== Number(count)) throw new Error("expected " + count + " " + name + " ranks, got " + out.length);
    require("fs").writeFileSync(dest, out.join("\n") + "\n");
  ' "$dir" "$name" "$count" "$dir/$name.tiktoken.tmp"
  mv "$dir/$name.tiktoken.tmp" "$dir/$name.tiktoken"
done
echo "$dir"
