#!/usr/bin/python3
"""Times the same training step as `teddy bench train` in PyTorch (Debian's python3-torch).

Same model (GPT-2 family: LayerNorm, learned positions, GELU tanh, tied embeddings,
biases, vocab padded to 50304), same batch shapes, same AdamW (betas 0.9/0.95, wd 0.1
on 2-D tensors), gradient clipping at 1.0, fp32. Prints one JSON object per workload.

Usage: /usr/bin/python3 bench/pytorch_train_step.py [--threads 2] [--steps 5] [--workload W1b]
"""
import argparse
import json
import math
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

WORKLOADS = {
    # name: (n_layer, n_head, d_model, batch, seq)
    "W1": (12, 12, 768, 4, 64),
    "W1b": (12, 12, 768, 4, 256),
    "W2": (6, 6, 384, 8, 256),
}
VOCAB, PADDED_VOCAB, MAX_T = 50257, 50304, 1024


class Block(nn.Module):
    def __init__(self, c, nh):
        super().__init__()
        self.nh = nh
        self.ln1 = nn.LayerNorm(c)
        self.qkv = nn.Linear(c, 3 * c)
        self.proj = nn.Linear(c, c)
        self.ln2 = nn.LayerNorm(c)
        self.up = nn.Linear(c, 4 * c)
        self.down = nn.Linear(4 * c, c)

    def forward(self, x, mask):
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q = q.view(b, t, self.nh, c // self.nh).transpose(1, 2)
        k = k.view(b, t, self.nh, c // self.nh).transpose(1, 2)
        v = v.view(b, t, self.nh, c // self.nh).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(mask[:t, :t] == 0, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
        x = x + self.proj(y)
        return x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, n_layer, n_head, c):
        super().__init__()
        self.wte = nn.Embedding(PADDED_VOCAB, c)
        self.wpe = nn.Embedding(MAX_T, c)
        self.blocks = nn.ModuleList(Block(c, n_head) for _ in range(n_layer))
        self.lnf = nn.LayerNorm(c)
        self.register_buffer("mask", torch.tril(torch.ones(MAX_T, MAX_T)))

    def forward(self, idx, targets):
        t = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(t))
        for blk in self.blocks:
            x = blk(x, self.mask)
        logits = F.linear(self.lnf(x), self.wte.weight)[..., :VOCAB]
        return F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))


def run(name, threads, steps, warmup):
    n_layer, n_head, c, b, t = WORKLOADS[name]
    torch.manual_seed(0)
    model = GPT(n_layer, n_head, c)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8, foreach=True)
    idx = torch.randint(0, VOCAB, (b, t))
    tgt = torch.randint(0, VOCAB, (b, t))
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
    ms = statistics.median(times) * 1e3
    n_params = sum(p.numel() for p in model.parameters())
    flops_per_token = 6 * n_params + 12 * n_layer * c * t
    return {
        "impl": "pytorch", "torch": torch.__version__, "workload": name, "model": f"gpt2 {n_layer}L/{n_head}H/{c}",
        "batch": b, "seq": t, "threads": threads, "ms_per_step": round(ms, 2),
        "tokens_per_s": round(b * t / (ms / 1e3), 1),
        "gflops_per_s": round(flops_per_token * b * t / (ms / 1e3) / 1e9, 2),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "params": n_params,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--workload", choices=sorted(WORKLOADS), action="append")
    a = ap.parse_args()
    # Its best settings on this CPU: intra-op threads = cores, no inter-op pool (the
    # step is one chain of ops), and OpenMP threads pinned by OMP_NUM_THREADS if set.
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    for name in a.workload or ["W1", "W1b", "W2"]:
        print(json.dumps(run(name, a.threads, a.steps, a.warmup)), flush=True)


if __name__ == "__main__":
    main()
