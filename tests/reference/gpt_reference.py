#!/usr/bin/env python3
"""Independent PyTorch reference for teddy's model contract test.

Usage: gpt_reference.py INPUT.safetensors OUTPUT.safetensors [INPUT2 OUTPUT2 ...]
(several cases per call: importing torch costs more than the cases themselves)

Written from the math of the two model families, not from teddy's C++:
  GPT-2: token + learned position embeddings; pre-LayerNorm blocks with biases;
         causal multi-head attention; MLP with GELU (tanh approximation);
         final LayerNorm; lm head tied to the token embedding.
  LLaMA: token embedding; pre-RMSNorm blocks without biases; RoPE on q and k
         (rotate_half convention, base theta); grouped-query attention (query head h
         reads kv head h // (n_head / n_kv_head)); SwiGLU MLP whose up weight stacks
         rows [gate; up]; final RMSNorm; untied lm head.
Loss: F.cross_entropy(logits[..., :vocab_size], targets, ignore_index=-100), the mean
over non-ignored targets; padded vocabulary columns take no part.

Training: torch.optim.AdamW with two groups (tensors with dim >= 2 decay, the rest
do not), the warmup + cosine schedule of teddy's lr_schedule.h, and global
gradient-norm clipping with torch.nn.utils.clip_grad_norm_.

The input file (written by tests/model/test_vs_pytorch.cpp) holds:
  __metadata__ "config": model config JSON; "train": training hyperparameters JSON
  param.<name>: every parameter under teddy's names, float32, PyTorch [out, in] layout
  tokens, targets: int32 (B, T)
  teddy.step_param.<name>, teddy.step_grad.<name> (steps, ...): teddy's own training
  run, the parameters at the start of each step and the (unclipped) gradient it
  computed there
The output file holds, for the float32 run and (prefix "f64.") a float64 run of the
same computation from the same float32 inputs:
  logits (B, T, V), loss (1), grad.<name>, step_losses, step_grad_norms, step_lrs,
  final.<name> (parameters after all steps): this reference's own training run;
  at.logits (steps, B, T, V), at.loss (steps), at.grad.<name> (steps, ...): the forward
  and backward evaluated at teddy's parameters of each step (so every step of teddy's
  run is checked against a float64 value of the same point, whatever way the two
  trajectories drift apart through rounding);
and, in float64 only (prefix "f64."):
  replay.param.<name> (steps, ...): torch.optim.AdamW (with clip_grad_norm_ and the
  schedule) replayed from param.<name> on teddy's own gradients, the parameters after
  each step: what teddy's optimizer step must produce from the gradients it had.
Metadata "decay": {name: bool}.

The `safetensors` package is not required: the format is parsed by hand.
"""
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

# ---- safetensors, by hand ---------------------------------------------------------

_NP_OF = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I32": "<i4", "I64": "<i8", "U8": "u1"}
_ST_OF = {np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("int32"): "I32",
          np.dtype("int64"): "I64"}


def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = memoryview(buf)[8 + n:]
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        arr = np.frombuffer(data[begin:end], dtype=np.dtype(_NP_OF[info["dtype"]]))
        tensors[name] = arr.reshape(info["shape"]).copy()
    return tensors, meta


def write_safetensors(path, tensors, meta):
    header = {"__metadata__": meta} if meta else {}
    blobs, offset = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _ST_OF[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---- the two model families ---------------------------------------------------------

def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def rope_cos_sin(T, head_dim, theta, dtype):
    # Angles in float64 (position * theta^(-2j/head_dim)), then cast: the precise value.
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]
    emb = torch.cat([angles, angles], dim=-1)  # (T, head_dim)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def causal_attention(q, k, v):
    """q (B, NH, T, HS); k, v (B, NH, T, HS) already expanded to NH heads."""
    T, hs = q.shape[-2], q.shape[-1]
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
    future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
    scores = scores.masked_fill(future, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def forward(cfg, P, tokens):
    """Logits (B, T, padded_vocab) for int64 tokens (B, T); P maps teddy names to tensors."""
    gpt2 = cfg["family"] == "gpt2"
    B, T = tokens.shape
    C, NH, NKV = cfg["d_model"], cfg["n_head"], cfg["n_kv_head"]
    HS = C // NH
    eps = cfg["norm_eps"]
    bias = cfg["bias"]

    def linear(x, name):
        return F.linear(x, P[name + ".weight"], P[name + ".bias"] if bias else None)

    def norm(x, name):
        if gpt2:
            return F.layer_norm(x, (C,), P[name + ".weight"], P[name + ".bias"], eps)
        return rms_norm(x, P[name + ".weight"], eps)

    x = P["tok_emb.weight"][tokens]
    if gpt2:
        x = x + P["pos_emb.weight"][torch.arange(T)][None, :, :]
    else:
        cos, sin = rope_cos_sin(T, HS, cfg["rope_theta"], x.dtype)
    for i in range(cfg["n_layer"]):
        p = f"layers.{i}."
        h = norm(x, p + "norm1")
        qkv = linear(h, p + "attn.qkv")
        q, k, v = qkv.split([NH * HS, NKV * HS, NKV * HS], dim=-1)
        q = q.view(B, T, NH, HS).transpose(1, 2)
        k = k.view(B, T, NKV, HS).transpose(1, 2)
        v = v.view(B, T, NKV, HS).transpose(1, 2)
        if not gpt2:
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(NH // NKV, dim=1)
        v = v.repeat_interleave(NH // NKV, dim=1)
        y = causal_attention(q, k, v).transpose(1, 2).reshape(B, T, NH * HS)
        x = x + linear(y, p + "attn.proj")
        h = norm(x, p + "norm2")
        up = linear(h, p + "mlp.up")
        if gpt2:
            m = F.gelu(up, approximate="tanh")
        else:
            gate, val = up.chunk(2, dim=-1)  # rows [gate; up] of the weight
            m = F.silu(gate) * val
        x = x + linear(m, p + "mlp.down")
    x = norm(x, "final_norm")
    head = P["tok_emb.weight"] if cfg["tie_embeddings"] else P["lm_head.weight"]
    return x @ head.t()


def loss_fn(cfg, logits, targets):
    V = cfg["vocab_size"]
    return F.cross_entropy(logits[..., :V].reshape(-1, V), targets.reshape(-1), ignore_index=-100)


def lr_at(tr, step):
    lr, warmup, total = tr["lr"], tr["warmup_steps"], tr["total_steps"]
    min_lr = lr * tr["min_lr_ratio"]
    if step < warmup:
        return lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    ratio = (step - warmup) / (total - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def run(cfg, tr, params_np, tokens, targets, dtype):
    names = list(params_np)
    P = {n: torch.tensor(params_np[n], dtype=dtype, requires_grad=True) for n in names}
    out = {}

    logits = forward(cfg, P, tokens)
    loss = loss_fn(cfg, logits, targets)
    loss.backward()
    out["logits"] = logits[..., :cfg["vocab_size"]].detach().numpy()
    out["loss"] = np.array([loss.item()], dtype=np.float64)
    for n in names:
        out["grad." + n] = P[n].grad.detach().numpy().copy()

    decay, groups = param_groups(P, names, tr)
    opt = torch.optim.AdamW(groups, lr=tr["lr"], betas=(tr["beta1"], tr["beta2"]), eps=tr["eps"])
    losses, norms, lrs = [], [], []
    for step in range(tr["steps"]):
        lr = lr_at(tr, step)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(cfg, forward(cfg, P, tokens), targets)
        loss.backward()
        all_params = [P[n] for n in names]
        if tr["max_grad_norm"] > 0:
            norm = torch.nn.utils.clip_grad_norm_(all_params, tr["max_grad_norm"])
        else:
            norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in all_params]))
        opt.step()
        losses.append(loss.item())
        norms.append(norm.item())
        lrs.append(lr)
    out["step_losses"] = np.array(losses, dtype=np.float64)
    out["step_grad_norms"] = np.array(norms, dtype=np.float64)
    out["step_lrs"] = np.array(lrs, dtype=np.float64)
    for n in names:
        out["final." + n] = P[n].detach().numpy().copy()
    return out, decay


def param_groups(P, names, tr):
    decay = {n: P[n].dim() >= 2 for n in names}
    return decay, [
        {"params": [P[n] for n in names if decay[n]], "weight_decay": tr["weight_decay"]},
        {"params": [P[n] for n in names if not decay[n]], "weight_decay": 0.0},
    ]


def at_points(cfg, step_params, tokens, targets, dtype):
    """Logits, loss and gradients at each of teddy's step parameters."""
    names = list(step_params)
    steps = step_params[names[0]].shape[0]
    logits, losses, grads = [], [], {n: [] for n in names}
    for s in range(steps):
        P = {n: torch.tensor(step_params[n][s], dtype=dtype, requires_grad=True) for n in names}
        lg = forward(cfg, P, tokens)
        loss = loss_fn(cfg, lg, targets)
        loss.backward()
        logits.append(lg[..., :cfg["vocab_size"]].detach().numpy().copy())
        losses.append(loss.item())
        for n in names:
            grads[n].append(P[n].grad.detach().numpy().copy())
    out = {"at.logits": np.stack(logits), "at.loss": np.array(losses, dtype=np.float64)}
    for n in names:
        out["at.grad." + n] = np.stack(grads[n])
    return out


def replay(tr, params_np, step_grads):
    """torch's AdamW + clipping + schedule in float64, driven by teddy's gradients."""
    names = list(params_np)
    P = {n: torch.tensor(params_np[n], dtype=torch.float64, requires_grad=True) for n in names}
    _, groups = param_groups(P, names, tr)
    opt = torch.optim.AdamW(groups, lr=tr["lr"], betas=(tr["beta1"], tr["beta2"]), eps=tr["eps"])
    after = {n: [] for n in names}
    for step in range(step_grads[names[0]].shape[0]):
        for g in opt.param_groups:
            g["lr"] = lr_at(tr, step)
        for n in names:
            P[n].grad = torch.tensor(step_grads[n][step], dtype=torch.float64)
        if tr["max_grad_norm"] > 0:
            torch.nn.utils.clip_grad_norm_([P[n] for n in names], tr["max_grad_norm"])
        opt.step()
        for n in names:
            after[n].append(P[n].detach().numpy().copy())
    return {"replay.param." + n: np.stack(after[n]) for n in names}


def main(argv):
    if len(argv) < 3 or len(argv) % 2 != 1:
        sys.stderr.write(__doc__)
        return 2
    torch.set_num_threads(1)  # tiny tensors: threads only add synchronisation cost
    for i in range(1, len(argv), 2):
        run_file(argv[i], argv[i + 1])
    return 0


def run_file(in_path, out_path):
    tensors, meta = read_safetensors(in_path)
    cfg = json.loads(meta["config"])
    tr = json.loads(meta["train"])
    params = {k[len("param."):]: v for k, v in tensors.items() if k.startswith("param.")}
    tokens = torch.from_numpy(tensors["tokens"].astype(np.int64))
    targets = torch.from_numpy(tensors["targets"].astype(np.int64))

    out32, decay = run(cfg, tr, params, tokens, targets, torch.float32)
    out64, _ = run(cfg, tr, params, tokens, targets, torch.float64)
    step_params = {k[len("teddy.step_param."):]: v for k, v in tensors.items() if k.startswith("teddy.step_param.")}
    step_grads = {k[len("teddy.step_grad."):]: v for k, v in tensors.items() if k.startswith("teddy.step_grad.")}
    if step_params:
        out32.update(at_points(cfg, step_params, tokens, targets, torch.float32))
        out64.update(at_points(cfg, step_params, tokens, targets, torch.float64))
        out64.update(replay(tr, params, step_grads))
    result = dict(out32)
    result.update({"f64." + k: v.astype(np.float64) for k, v in out64.items()})
    out_meta = {"decay": json.dumps(decay, sort_keys=True), "torch": torch.__version__}
    write_safetensors(out_path, result, out_meta)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
