#!/usr/bin/env python3
"""Independent PyTorch reference for teddy's LoRA (tests/model/test_lora_vs_pytorch.cpp).

Usage: lora_reference.py INPUT.safetensors OUTPUT.safetensors [INPUT2 OUTPUT2 ...]

Written from LoRA's definition (Hu et al. 2021), not from teddy's C++: every adapted
linear's weight is W0 + scale * B_p @ A_p on the rows of part p (q_proj, k_proj and
v_proj are parts of teddy's fused qkv weight, gate_proj and up_proj of its fused up
weight), the merged weights go through the model of gpt_reference.py, and autograd
gives the gradient of the mean cross-entropy with respect to A and B. The base is a
constant (no gradient). Computed in float32 and (prefix "f64.") float64.

Input: __metadata__ "config" (model config JSON), "lora" ({"r", "scale", "sites":
[{"name": "attn.qkv", "parts": [[off, rows], ...]}]}, "n_layer"); param.<name> the
base, float32; adapter.<name> (layers.i.<site>.lora_A (P*r, in), .lora_B (rows, r));
tokens, targets int32 (B, T).
Output: loss (1), logits (B, T, V), grad.<adapter name>; the same with "f64.".
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt_reference import forward, loss_fn, read_safetensors, write_safetensors  # noqa: E402


def merged(cfg, lo, P, AD):
    """The base with every adapter folded in: W0 + scale * B_p A_p per part."""
    out = dict(P)
    r, scale = lo["r"], lo["scale"]
    for i in range(cfg["n_layer"]):
        for site in lo["sites"]:
            pre = f"layers.{i}.{site['name']}"
            W = P[pre + ".weight"]
            A, B = AD[pre + ".lora_A"], AD[pre + ".lora_B"]
            brow = 0
            delta = torch.zeros_like(W)
            for p, (off, n) in enumerate(site["parts"]):
                delta[off:off + n] = scale * (B[brow:brow + n] @ A[p * r:(p + 1) * r])
                brow += n
            out[pre + ".weight"] = W + delta
    return out


def run(cfg, lo, base, adapters, tokens, targets, dtype):
    P = {k: torch.tensor(v, dtype=dtype) for k, v in base.items()}
    AD = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in adapters.items()}
    logits = forward(cfg, merged(cfg, lo, P, AD), tokens)
    loss = loss_fn(cfg, logits, targets)
    loss.backward()
    out = {"loss": np.array([loss.item()], dtype=np.float64),
           "logits": logits[..., :cfg["vocab_size"]].detach().numpy().copy()}
    for k, v in AD.items():
        out["grad." + k] = v.grad.detach().numpy().copy()
    return out


def run_file(in_path, out_path):
    tensors, meta = read_safetensors(in_path)
    cfg = json.loads(meta["config"])
    lo = json.loads(meta["lora"])
    base = {k[len("param."):]: v for k, v in tensors.items() if k.startswith("param.")}
    adapters = {k[len("adapter."):]: v for k, v in tensors.items() if k.startswith("adapter.")}
    tokens = torch.from_numpy(tensors["tokens"].astype(np.int64))
    targets = torch.from_numpy(tensors["targets"].astype(np.int64))
    out = run(cfg, lo, base, adapters, tokens, targets, torch.float32)
    out64 = run(cfg, lo, base, adapters, tokens, targets, torch.float64)
    out.update({"f64." + k: v.astype(np.float64) for k, v in out64.items()})
    write_safetensors(out_path, out, {"torch": torch.__version__})


def main(argv):
    if len(argv) < 3 or len(argv) % 2 != 1:
        sys.stderr.write(__doc__)
        return 2
    torch.set_num_threads(1)
    for i in range(1, len(argv), 2):
        run_file(argv[i], argv[i + 1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
