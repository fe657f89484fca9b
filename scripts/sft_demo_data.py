#!/usr/bin/env python3
"""Writes teddy's SFT demonstration set: synthetic, deterministic, no download.

Usage: scripts/sft_demo_data.py [OUT_DIR]   (default data/sft_demo)
Writes OUT_DIR/train.jsonl and OUT_DIR/val.jsonl (same seed, same bytes, every run).

Tasks, each answered in one short, exact form so replies can be scored by exact match:
  arith     "What is 3 + 5?" -> "8"; small sums and differences, several phrasings
  compare   "Is 12 greater than 7? Answer yes or no." -> "yes"
  spell     "Spell 'cat' with dashes between the letters." -> "c-a-t"
  upper     "Write 'cat' in capital letters." -> "CAT"
  reverse   "Reverse the word 'cat'." -> "tac"
  count     "Count from 3 to 6." -> "3, 4, 5, 6"
  repeat    "Repeat 'cat' 3 times." -> "cat cat cat"
  kb        questions about a fixed fictional knowledge base (countries of an invented
            world: capital, language, currency, animal), e.g.
            "What is the capital of Vormland?" -> "Ostrel"
Validation examples are held out at random; a knowledge-base question is held out only
if its fact stays in training under another phrasing (the model cannot know a fact it
never saw). Lines use all three formats teddy reads (messages, prompt/completion,
Alpaca), some with a system turn, and carry a "task" label.
"""
import json
import os
import random
import sys

SEED = 20240611
VAL_FRACTION = 0.1

WORDS = """cat dog sun map cup red pen box hat fox owl bee ant cow pig hen egg ice oak elm
bird fish frog lion bear wolf deer duck goat lamb moon star rain snow wind fire rock sand
tree leaf rose lily milk cake rice corn bean salt ship boat road door wall roof lamp bell
ring book desk king gold iron blue pink gray jump swim walk talk sing read cold warm fast
slow tall wide apple grape lemon melon peach mango bread honey sugar stone river cloud
storm green black white brown plant chair table piano tiger zebra horse sheep mouse eagle
robin""".split()

SYLLABLES = "vor zan mel tir quo bra lun fen dar osk rel ith nav pol gar sil tek umb yor wex".split()


def fictional_name(rng, parts):
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


def knowledge_base(rng):
    """30 invented countries, each with four facts; names unique."""
    used, kb = set(), []
    languages = ["Vellish", "Ostric", "Marnese", "Tullan", "Quessic", "Brannic"]
    currencies = ["crown", "pebble", "shell", "mark", "leaf", "ring"]
    animals = ["otter", "heron", "lynx", "badger", "falcon", "newt", "moose", "crane"]

    def fresh(parts, suffix=""):
        while True:
            n = fictional_name(rng, parts) + suffix
            if n not in used:
                used.add(n)
                return n

    for _ in range(30):
        kb.append({"country": fresh(2, "land" if rng.random() < 0.4 else ""),
                   "capital": fresh(2),
                   "language": rng.choice(languages),
                   "currency": rng.choice(currencies),
                   "animal": rng.choice(animals)})
    return kb


KB_PHRASINGS = {
    "capital": ["What is the capital of {c}?", "Name the capital city of {c}.", "Which city is the capital of {c}?"],
    "language": ["What language is spoken in {c}?", "Which language do people speak in {c}?",
                 "Name the language of {c}."],
    "currency": ["What is the currency of {c}?", "Which currency is used in {c}?", "Name the money of {c}."],
    "animal": ["What is the national animal of {c}?", "Which animal is the symbol of {c}?",
               "Name the national animal of {c}."],
}


def examples(rng):
    out = []  # (task, question, answer, fact key or None)
    add_q = ["What is {a} + {b}?", "Compute {a} + {b}.", "Add {a} and {b}.", "What is the sum of {a} and {b}?"]
    sub_q = ["What is {a} - {b}?", "Subtract {b} from {a}."]
    for a in range(10):
        for b in range(10):
            for q in add_q:
                out.append(("arith", q.format(a=a, b=b), str(a + b), None))
            if a >= b:
                for q in sub_q:
                    out.append(("arith", q.format(a=a, b=b), str(a - b), None))
    for a in range(21):
        for b in range(21):
            if a != b and rng.random() < 0.6:
                out.append(("compare", f"Is {a} greater than {b}? Answer yes or no.", "yes" if a > b else "no", None))
    for w in WORDS:
        out.append(("spell", f"Spell '{w}' with dashes between the letters.", "-".join(w), None))
        out.append(("upper", f"Write '{w}' in capital letters.", w.upper(), None))
        out.append(("reverse", f"Reverse the word '{w}'.", w[::-1], None))
        k = rng.choice([2, 3])
        out.append(("repeat", f"Repeat '{w}' {k} times.", " ".join([w] * k), None))
    for a in range(1, 16):
        for n in range(2, 6):
            out.append(("count", f"Count from {a} to {a + n}.", ", ".join(str(i) for i in range(a, a + n + 1)), None))
    for entry in knowledge_base(rng):
        for attr, phrasings in KB_PHRASINGS.items():
            for q in phrasings:
                out.append(("kb", q.format(c=entry["country"]), entry[attr], (entry["country"], attr)))
    return out


def to_line(rng, task, question, answer):
    r = rng.random()
    if r < 0.6:
        msgs = []
        if rng.random() < 0.2:
            msgs.append({"role": "system", "content": "Answer briefly."})
        msgs += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        obj = {"messages": msgs}
    elif r < 0.8:
        obj = {"prompt": question, "completion": answer}
    else:
        obj = {"instruction": question, "input": "", "output": answer}
    obj["task"] = task
    return json.dumps(obj, ensure_ascii=False)


def main(argv):
    out_dir = argv[1] if len(argv) > 1 else "data/sft_demo"
    rng = random.Random(SEED)
    exs = examples(rng)
    rng.shuffle(exs)
    n_val = int(len(exs) * VAL_FRACTION)
    val, train = exs[:n_val], exs[n_val:]
    # A held-out knowledge-base question needs its fact in training under another phrasing.
    train_facts = {e[3] for e in train if e[3]}
    moved = [e for e in val if e[3] and e[3] not in train_facts]
    val = [e for e in val if not (e[3] and e[3] not in train_facts)]
    train += moved
    os.makedirs(out_dir, exist_ok=True)
    for name, part in (("train", train), ("val", val)):
        with open(os.path.join(out_dir, name + ".jsonl"), "w", encoding="utf-8") as f:
            for task, q, a, _ in part:
                f.write(to_line(rng, task, q, a) + "\n")
    counts = {}
    for e in val:
        counts[e[0]] = counts.get(e[0], 0) + 1
    print(f"{out_dir}: {len(train)} train, {len(val)} val examples; val by task: "
          + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
