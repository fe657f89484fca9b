#!/usr/bin/env python3
"""Fixture-sized evaluation data in the published formats, for docs/EVAL.md's table of
the demo models (`teddy eval` on each task) and docs/BENCHMARKS.md's time per sample.

The questions are synthetic (arithmetic, comparisons, short word problems, small
Python functions): MMLU, ARC, GSM8K and HumanEval themselves are not shipped with
teddy. The files have the real datasets' layout, so the same commands run on them.

Usage: eval_fixture.py OUT_DIR   (writes mmlu/, arc_challenge.jsonl, gsm8k_{train,test}.jsonl,
                                  humaneval.jsonl.gz, humaneval_canonical.jsonl)
"""
import csv
import gzip
import json
import os
import random
import sys

out = sys.argv[1]
rng = random.Random(1234)
os.makedirs(os.path.join(out, "mmlu", "dev"), exist_ok=True)
os.makedirs(os.path.join(out, "mmlu", "test"), exist_ok=True)


def mc_row(q, right, wrong):
    opts = [right] + wrong[:3]
    rng.shuffle(opts)
    return [q] + [str(o) for o in opts] + ["ABCD"[opts.index(right)]]


def arithmetic():
    a, b = rng.randint(2, 60), rng.randint(2, 60)
    r = a + b
    return mc_row(f"What is {a} + {b}?", r, rng.sample([x for x in range(r - 9, r + 10) if x != r], 3))


def comparison():
    xs = rng.sample(range(1, 500), 4)
    return mc_row("Which of these numbers is the largest?", max(xs), [x for x in xs if x != max(xs)])


for subject, make in [("elementary_arithmetic", arithmetic), ("number_comparison", comparison)]:
    for split, n in [("dev", 5), ("test", 50)]:
        with open(os.path.join(out, "mmlu", split, f"{subject}_{split}.csv"), "w", newline="") as f:
            csv.writer(f).writerows(make() for _ in range(n))

colors = ["red", "blue", "green", "yellow", "purple", "orange"]
animals = ["dog", "cat", "horse", "sparrow", "salmon", "frog", "elephant"]
tools = ["hammer", "screwdriver", "saw", "wrench", "chisel"]
with open(os.path.join(out, "arc_challenge.jsonl"), "w") as f:
    for i in range(100):
        kind = rng.choice(["color", "animal", "tool"])
        right = rng.choice({"color": colors, "animal": animals, "tool": tools}[kind])
        pool = [w for w in colors + animals + tools if w not in {"color": colors, "animal": animals, "tool": tools}[kind]]
        opts = [right] + rng.sample(pool, 3)
        rng.shuffle(opts)
        f.write(json.dumps({"id": f"Fixture_{i}", "question": {"stem": f"Which of these is a {kind}?",
                 "choices": [{"text": o, "label": "ABCD"[k]} for k, o in enumerate(opts)]},
                 "answerKey": "ABCD"[opts.index(right)]}) + "\n")

for split, n in [("train", 8), ("test", 20)]:
    with open(os.path.join(out, f"gsm8k_{split}.jsonl"), "w") as f:
        for _ in range(n):
            a, b = rng.randint(2, 40), rng.randint(2, 40)
            name = rng.choice(["Tom", "Ana", "Lee", "Mia"])
            f.write(json.dumps({"question": f"{name} has {a} apples and buys {b} more. How many apples does {name} have?",
                                "answer": f"{name} has {a} + {b} = <<{a}+{b}={a+b}>>{a+b} apples.\n#### {a+b}"}) + "\n")

tasks = [
    ("add", "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n", "    return a + b\n",
     "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-4, 4) == 0\n"),
    ("is_even", "def is_even(n):\n    \"\"\"Return True if n is even.\"\"\"\n", "    return n % 2 == 0\n",
     "def check(candidate):\n    assert candidate(2)\n    assert not candidate(7)\n"),
    ("reverse", "def reverse(s):\n    \"\"\"Return s reversed.\"\"\"\n", "    return s[::-1]\n",
     "def check(candidate):\n    assert candidate('abc') == 'cba'\n    assert candidate('') == ''\n"),
    ("maximum", "from typing import List\n\n\ndef maximum(xs: List[int]) -> int:\n    \"\"\"Return the largest of xs.\"\"\"\n",
     "    return max(xs)\n", "def check(candidate):\n    assert candidate([1, 5, 3]) == 5\n    assert candidate([-2]) == -2\n"),
    ("count_vowels", "def count_vowels(s):\n    \"\"\"Return how many of the characters of s are vowels (aeiou).\"\"\"\n",
     "    return sum(c in 'aeiou' for c in s)\n",
     "def check(candidate):\n    assert candidate('hello') == 2\n    assert candidate('xyz') == 0\n"),
]
with gzip.open(os.path.join(out, "humaneval.jsonl.gz"), "wt") as f, open(os.path.join(out, "humaneval_canonical.jsonl"), "w") as c:
    for i, (entry, prompt, sol, test) in enumerate(tasks):
        f.write(json.dumps({"task_id": f"Fixture/{i}", "prompt": prompt, "canonical_solution": sol,
                            "test": test, "entry_point": entry}) + "\n")
        c.write(json.dumps({"task_id": f"Fixture/{i}", "completion": sol}) + "\n")
