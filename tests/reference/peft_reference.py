#!/usr/bin/env python3
"""Checks a PEFT LoRA adapter written by teddy against PEFT's conventions, by hand.

Usage: peft_reference.py HF_BASE_DIR PEFT_DIR HF_MERGED_DIR

Written from PEFT's format, not from teddy's C++: reads adapter_config.json (r,
lora_alpha, use_rslora, target_modules, fan_in_fan_out) and adapter_model.safetensors
(base_model.model.<module>.lora_A.weight (r, in), .lora_B.weight (out, r)), folds every
adapter into the Hugging Face base model's weight of that module, <module>.weight, the
way PEFT's merge_and_unload does: W += scale * B @ A, transposed for GPT-2's Conv1D
weights (fan_in_fan_out: stored (in, out)); scale = lora_alpha / r, or / sqrt(r) with
use_rslora. Every adapter key must name a module of the base whose name ends with one
of target_modules. The result (float64) must equal teddy's merged model (exported to
the same HF layout) within the rounding of one float32 store per weight and of a
float32 scale; every tensor
the adapters do not touch must be identical. Prints a summary; exits 1 on a mismatch.
"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt_reference import read_safetensors  # noqa: E402


def main(argv):
    base_dir, peft_dir, merged_dir = argv[1:4]
    base, _ = read_safetensors(os.path.join(base_dir, "model.safetensors"))
    merged, _ = read_safetensors(os.path.join(merged_dir, "model.safetensors"))
    ad, _ = read_safetensors(os.path.join(peft_dir, "adapter_model.safetensors"))
    with open(os.path.join(peft_dir, "adapter_config.json")) as f:
        cfg = json.load(f)
    assert cfg["peft_type"] == "LORA", cfg["peft_type"]
    r, alpha = cfg["r"], cfg["lora_alpha"]
    scale = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
    targets = cfg["target_modules"]
    W = {k: torch.tensor(v, dtype=torch.float64) for k, v in base.items()}
    touched = set()
    D = {}
    modules = sorted({k[len("base_model.model."):].rsplit(".lora_", 1)[0] for k in ad})
    for mod in modules:
        if not any(mod == t or mod.endswith("." + t) for t in targets):
            print(f"adapter for {mod} matches no target_modules entry {targets}")
            return 1
        A = torch.tensor(ad[f"base_model.model.{mod}.lora_A.weight"], dtype=torch.float64)
        B = torch.tensor(ad[f"base_model.model.{mod}.lora_B.weight"], dtype=torch.float64)
        assert A.shape[0] == r and B.shape[1] == r, (mod, A.shape, B.shape)
        key = mod + ".weight"
        if key not in W:
            print(f"adapter {mod}: the base has no {key}")
            return 1
        delta = scale * (B @ A)  # (out, in)
        if cfg.get("fan_in_fan_out"):
            delta = delta.T  # Conv1D stores (in, out)
        if W[key].shape != delta.shape:
            print(f"{key}: base shape {tuple(W[key].shape)}, adapter gives {tuple(delta.shape)}")
            return 1
        W[key] = W[key] + delta
        D[key] = delta
        touched.add(key)
    worst = 0.0
    for k, want in W.items():
        got = torch.tensor(merged[k], dtype=torch.float64)
        if k not in touched:
            if not torch.equal(got, want):
                print(f"{k}: changed but no adapter touches it")
                return 1
            continue
        # One float32 rounding of each merged weight, 2^-24 |want|, plus a float32 scale:
        # teddy keeps scale as a float (alpha / sqrt(r): a square root and a division,
        # each rounded by at most 2^-24), which moves the delta by up to 2^-23 |delta|
        # (+ the float64 products' own error, far below).
        err = (got - want).abs()
        bound = (want.abs() * 2.0**-24 + D[k].abs() * 2.0**-23) * (1 + 1e-9) + 1e-300
        used = float((err / bound).max())
        worst = max(worst, used)
        if used > 1:
            print(f"{k}: merged weight off by {float(err.max())} (bound used {used:.3g})")
            return 1
    print(f"peft reference: {len(modules)} adapted modules, {len(touched)} weights folded, "
          f"largest fraction of the one-rounding bound used {worst:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
