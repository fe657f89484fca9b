#!/usr/bin/env bash
# Two LoRA adapters, two tasks, one base (docs/LORA.md, "Several adapters, one base"):
# trains one adapter on the SFT demo set's additions and subtractions ("arith") and one
# on its yes/no comparisons ("compare"), each with `teddy sft` + [lora] on the demo's
# pretrained base, exports both as PEFT adapters, then answers every held-out question
# of both tasks with the base alone, adapter arith and adapter compare in ONE
# `teddy generate --prompts` run: one loaded base, the adapter chosen per request
# inside each batch. Prints exact match per task x adapter.
#
# Environment: BUILD_DIR (default build); BASE (default runs/sft_base: made here as in
# docs/SFT.md when missing, 300 pretraining steps on the default byte-level corpus);
# OUT (default runs/lora_demo); EPOCHS (default 30), LR (default 5e-3), RANK (default 16);
# TEMPLATE (default jinja:configs/sft/plain_eot.jinja: "Q: ...\nA: ...<|endoftext|>").
# Why not chatml: its <|im_start|> / <|im_end|> are new to the byte-level base, and under
# LoRA new token rows stay frozen at the mean row (docs/LORA.md, "Not done yet"), so an
# adapter never learns to emit <|im_end|> and no reply ever ends; the plain template ends
# each reply with the base's own end-of-document token.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
TEDDY="$BUILD_DIR/teddy"
BASE=${BASE:-runs/sft_base}
OUT=${OUT:-runs/lora_demo}
EPOCHS=${EPOCHS:-30}
LR=${LR:-5e-3}
RANK=${RANK:-16}
TEMPLATE=${TEMPLATE:-jinja:configs/sft/plain_eot.jinja}
PY=/usr/bin/python3
TASKS=(arith compare)

if [ ! -d "$BASE" ]; then
  echo "== base: pretraining gpt2-mini for 300 steps (docs/SFT.md)"
  scripts/default_corpus.sh
  "$TEDDY" data prepare --config configs/data/default.toml --force
  "$TEDDY" pretrain -c configs/pretrain/demo.toml train.steps=300 run.dir="$BASE" --overwrite
fi

echo "== data: the SFT demo set, split by task"
$PY scripts/sft_demo_data.py data/sft_demo
mkdir -p "$OUT/data"
$PY - "$OUT/data" "${TASKS[@]}" <<'EOF'
import json, sys
out, tasks = sys.argv[1], sys.argv[2:]
for split in ("train", "val"):
    lines = open(f"data/sft_demo/{split}.jsonl", encoding="utf-8").read().splitlines()
    for t in tasks:
        with open(f"{out}/{t}_{split}.jsonl", "w", encoding="utf-8") as f:
            for l in lines:
                if json.loads(l)["task"] == t:
                    f.write(l + "\n")
# The generation requests: every held-out question of the tasks, once per adapter
# (none = the base alone). The question as teddy sft eval renders it: the turns
# before the last assistant turn (a system turn kept), the reference its answer.
req, refs = [], []
for l in open("data/sft_demo/val.jsonl", encoding="utf-8"):
    o = json.loads(l)
    if o["task"] not in tasks:
        continue
    system = ""
    if "messages" in o:
        m = o["messages"]
        system = next((t["content"] for t in m if t["role"] == "system"), "")
        q, a = [t["content"] for t in m if t["role"] == "user"][-1], m[-1]["content"]
    elif "prompt" in o:
        q, a = o["prompt"], o["completion"]
    else:
        q = o["instruction"] + ("\n\n" + o["input"] if o["input"] else "")
        a = o["output"]
    for adapter in ["none"] + tasks:
        r = {"prompt": q, "adapter": adapter, "task": o["task"]}
        if system:
            r["system"] = system
        req.append(r)
        refs.append(a)
with open(f"{out}/requests.jsonl", "w", encoding="utf-8") as f:
    f.writelines(json.dumps(r) + "\n" for r in req)
with open(f"{out}/references.txt", "w", encoding="utf-8") as f:
    f.writelines(json.dumps(a) + "\n" for a in refs)
print(f"{len(req)} requests ({len(req) // (len(tasks) + 1)} questions x {len(tasks) + 1} adapters)")
EOF

for t in "${TASKS[@]}"; do
  echo "== LoRA SFT on task $t"
  "$TEDDY" sft -c configs/sft/demo.toml --overwrite model.init="$BASE" \
    data.train="$OUT/data/${t}_train.jsonl" data.val="$OUT/data/${t}_val.jsonl" \
    lora.r="$RANK" lora.alpha=$((2 * RANK)) optim.lr="$LR" train.epochs="$EPOCHS" \
    template.name="$TEMPLATE" eval.interval=100 checkpoint.interval=1000 run.dir="$OUT/sft_$t"
  "$TEDDY" lora export --checkpoint "$OUT/sft_$t" --out "$OUT/adapters/$t"
done

echo "== one base, adapters per request: $(wc -l < "$OUT/data/requests.jsonl") requests"
adapters=()
for t in "${TASKS[@]}"; do adapters+=(--adapter "$t=$OUT/adapters/$t"); done
/usr/bin/time -v "$TEDDY" generate --checkpoint "$BASE" --chat --template "$TEMPLATE" --temperature 0 --max-tokens 32 \
  "${adapters[@]}" --prompts "$OUT/data/requests.jsonl" --batch 16 > "$OUT/answers.jsonl" 2> "$OUT/generate.time"
grep -E "Elapsed|User time|System time|Maximum resident" "$OUT/generate.time"

echo "== exact match (reply == reference, both trimmed), held-out questions"
$PY - "$OUT/data/requests.jsonl" "$OUT/data/references.txt" "$OUT/answers.jsonl" "${TASKS[@]}" <<'EOF'
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
refs = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
ans = [json.loads(l) for l in open(sys.argv[3], encoding="utf-8")]
tasks = sys.argv[4:]
assert len(reqs) == len(refs) == len(ans), "one answer per request"
hit, tot = {}, {}
for r, ref, a in zip(reqs, refs, ans):
    assert a["prompt"] == r["prompt"] and a["adapter"] == r["adapter"], "answers in input order"
    k = (r["task"], r["adapter"])
    tot[k] = tot.get(k, 0) + 1
    hit[k] = hit.get(k, 0) + (a["completion"].strip() == ref.strip())
cols = ["none"] + tasks
print("| task | held out | " + " | ".join("base alone" if c == "none" else f"adapter {c}" for c in cols) + " |")
print("|---|---|" + "---|" * len(cols))
for t in tasks:
    n = tot[(t, "none")]
    print(f"| {t} | {n} | " + " | ".join(f"{hit[(t, c)]} ({100 * hit[(t, c)] / n:.1f}%)" for c in cols) + " |")
EOF
