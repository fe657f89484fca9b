#!/usr/bin/env python3
"""PyTorch reference for teddy's SFT loss mask (tests/train/test_sft_vs_pytorch.cpp).

Usage: sft_reference.py INPUT.safetensors OUTPUT.safetensors [INPUT2 OUTPUT2 ...]

The claim under test: teddy's gradient on a packed (or padded) batch whose targets
are the ignore index everywhere but the answers equals the gradient of the mean
cross-entropy over the answer tokens alone. This script never sees teddy's mask or
packing: it gets each conversation's full token sequence, finds the answer tokens
itself from the ChatML markers (after <|im_start|> + "assistant\\n", up to and
including the next <|im_end|>), runs each conversation on its own (positions from 0)
with the model of gpt_reference.py, and averages the cross-entropy of exactly those
tokens over all conversations. Computed in float32 and (prefix "f64.") float64.

Input: __metadata__ "config" (model config JSON), "markers" ({"im_start", "im_end",
"assistant": [ids of "assistant\\n"]}); param.<name> float32; ex.<i> int32 (n_i,).
Output: grad.<name> and loss (1) of the float32 run, f64.grad.<name> and f64.loss of
the float64 one, count (1), and answer_positions.<i> (int32, the token indices found,
for the test to cross-check its own mask).
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt_reference import forward, read_safetensors, write_safetensors  # noqa: E402


def answer_positions(tokens, im_start, im_end, assistant):
    """Indices of the tokens of every assistant turn's content and its <|im_end|>."""
    out, i, n, h = [], 0, len(tokens), len(assistant)
    while i < n:
        if tokens[i] == im_start and list(tokens[i + 1:i + 1 + h]) == assistant:
            j = i + 1 + h
            while j < n and tokens[j] != im_end:
                out.append(j)
                j += 1
            if j < n:
                out.append(j)  # the end-of-turn token is learnt too
            i = j
        i += 1
    return out


def mean_answer_loss(cfg, mk, params, examples, dtype, out):
    """The mean cross-entropy over every answer token, each conversation on its own;
    backward; the gradients into out (grad.<name>)."""
    V = cfg["vocab_size"]
    P = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in params.items()}
    total = torch.zeros((), dtype=dtype)
    count = 0
    for i, seq in examples:
        pos = answer_positions(seq.tolist(), mk["im_start"], mk["im_end"], mk["assistant"])
        out[f"answer_positions.{i}"] = np.array(pos, dtype=np.int32)
        toks = torch.from_numpy(seq.astype(np.int64))
        logits = forward(cfg, P, toks[None, :-1])[0, :, :V]  # position j-1 predicts token j
        idx = torch.tensor(pos, dtype=torch.int64)
        total = total + F.cross_entropy(logits[idx - 1], toks[idx], reduction="sum")
        count += len(pos)
    loss = total / count
    loss.backward()
    for n, p in P.items():
        out["grad." + n] = p.grad.detach().numpy().copy()
    out["loss"] = np.array([loss.item()], dtype=np.float64)
    out["count"] = np.array([count], dtype=np.int32)


def run_file(in_path, out_path):
    tensors, meta = read_safetensors(in_path)
    cfg = json.loads(meta["config"])
    mk = json.loads(meta["markers"])
    params = {k[len("param."):]: v for k, v in tensors.items() if k.startswith("param.")}
    examples = sorted((int(k[3:]), v) for k, v in tensors.items() if k.startswith("ex."))
    out, out64 = {}, {}
    mean_answer_loss(cfg, mk, params, examples, torch.float32, out)
    mean_answer_loss(cfg, mk, params, examples, torch.float64, out64)
    out.update({"f64." + k: v.astype(np.float64) for k, v in out64.items() if k.startswith(("grad.", "loss"))})
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
