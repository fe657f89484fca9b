#!/usr/bin/env python3
"""Independent PyTorch reader of Hugging Face model directories, for the interop test.

Usage: hf_reference.py MODEL_DIR TOKENS OUTPUT.safetensors [MODEL_DIR TOKENS OUTPUT ...]
       hf_reference.py --inv-freq CONFIG_JSON   (prints rope inv_freq in float64, one a line)
  TOKENS: comma-separated token ids (one sequence).
Writes logits (T, vocab_size) computed in float32 ("logits") and in float64
("f64.logits") from the same stored weights (bf16 / f16 values widened exactly).

Written from the Hugging Face conventions as transformers documents them, not from
teddy's code; transformers itself is not needed (nor available here):
  * config.json picks the architecture (model_type "gpt2" -> GPT2LMHeadModel, "llama" ->
    LlamaForCausalLM, "qwen2" -> Qwen2ForCausalLM) and the sizes; model.safetensors, or model.safetensors.index.json
    whose weight_map names the shard of every tensor.
  * GPT2LMHeadModel: transformer.wte / wpe embeddings; per block ln_1, attn.c_attn and
    attn.c_proj, ln_2, mlp.c_fc and mlp.c_proj, all Conv1D layers storing the weight as
    [in, out] (y = x @ W + b); c_attn's output splits into q, k, v of n_embd columns each,
    heads of n_embd / n_head; causal softmax(q k^T / sqrt(head_dim)) v; activation
    "gelu_new" (tanh approximation); LayerNorm with layer_norm_epsilon; transformer.ln_f;
    the head is lm_head.weight, or wte when tie_word_embeddings (the default).
  * LlamaForCausalLM: model.embed_tokens; per layer input_layernorm (RMSNorm:
    x * rsqrt(mean(x^2) + rms_norm_eps) * weight), self_attn.{q,k,v,o}_proj (nn.Linear,
    [out, in]; biases when attention_bias), RoPE as transformers' rotate_half:
    inv_freq = 1 / rope_theta^(arange(0, d, 2) / d), emb = cat(freqs, freqs),
    x * cos + rotate_half(x) * sin with rotate_half(x) = cat(-x2, x1) over the two
    halves of each head; grouped-query attention via repeat_kv (kv head j serves query
    heads j*n_rep .. j*n_rep + n_rep - 1); post_attention_layernorm; MLP
    down_proj(silu(gate_proj(x)) * up_proj(x)) (biases when mlp_bias); model.norm; the head
    lm_head.weight, or embed_tokens when tie_word_embeddings.
    rope_scaling {"rope_type": "llama3", factor, low_freq_factor, high_freq_factor,
    original_max_position_embeddings} rescales inv_freq as transformers'
    _compute_llama3_parameters: wavelen = 2 pi / inv_freq; wavelengths above
    original_max / low_freq_factor divide by factor, those below original_max /
    high_freq_factor stay, between them (1 - s) inv_freq / factor + s inv_freq with
    s = (original_max / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor).
  * Qwen2ForCausalLM: LlamaForCausalLM's computation with biases on q_proj, k_proj and
    v_proj (always) and none on o_proj or the MLP.
The safetensors format is parsed by hand (the `safetensors` package is not required);
the output is written by gpt_reference.py's writer.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt_reference import write_safetensors  # noqa: E402  (the file format only)


def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    data = memoryview(buf)[8 + n:]
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = np.frombuffer(data[begin:end], dtype=np.uint8)
        dt = info["dtype"]
        if dt == "F32":
            arr = raw.view("<f4").astype(np.float64)
        elif dt == "F16":
            arr = raw.view("<f2").astype(np.float64)
        elif dt == "BF16":  # the upper 16 bits of a float32
            arr = (raw.view("<u2").astype(np.uint32) << 16).view("<f4").astype(np.float64)
        else:
            raise ValueError(f"{path}: {name}: dtype {dt} not handled")
        out[name] = arr.reshape(info["shape"])
    return out


def read_weights(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        tensors = {}
        for shard in sorted(set(weight_map.values())):
            part = read_safetensors(os.path.join(model_dir, shard))
            for name, arr in part.items():
                assert weight_map[name] == shard, f"{name} in {shard} but the index says {weight_map[name]}"
                tensors[name] = arr
        assert set(tensors) == set(weight_map), "index and shards disagree"
        return tensors
    return read_safetensors(os.path.join(model_dir, "model.safetensors"))


def causal_attention(q, k, v):
    # q: (nh, T, hd), k/v: (nh, T, hd)
    T, hd = q.shape[1], q.shape[2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    scores = scores.masked_fill(mask, float("-inf"))
    return F.softmax(scores, dim=-1) @ v


def gpt2_logits(cfg, W, ids, dtype):
    w = lambda n: W[n if n in W else n.replace("transformer.", "", 1)]
    C, nh = cfg["n_embd"], cfg["n_head"]
    hd = C // nh
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    T = len(ids)
    x = w("transformer.wte.weight")[ids] + w("transformer.wpe.weight")[torch.arange(T)]
    for i in range(cfg["n_layer"]):
        p = f"transformer.h.{i}."
        a = F.layer_norm(x, (C,), w(p + "ln_1.weight"), w(p + "ln_1.bias"), eps)
        qkv = a @ w(p + "attn.c_attn.weight") + w(p + "attn.c_attn.bias")  # Conv1D: [in, out]
        q, k, v = qkv.split(C, dim=-1)
        heads = lambda t: t.view(T, nh, hd).transpose(0, 1)
        y = causal_attention(heads(q), heads(k), heads(v)).transpose(0, 1).reshape(T, C)
        x = x + y @ w(p + "attn.c_proj.weight") + w(p + "attn.c_proj.bias")
        m = F.layer_norm(x, (C,), w(p + "ln_2.weight"), w(p + "ln_2.bias"), eps)
        h = m @ w(p + "mlp.c_fc.weight") + w(p + "mlp.c_fc.bias")
        h = 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * torch.pow(h, 3.0))))  # gelu_new
        x = x + h @ w(p + "mlp.c_proj.weight") + w(p + "mlp.c_proj.bias")
    x = F.layer_norm(x, (C,), w("transformer.ln_f.weight"), w("transformer.ln_f.bias"), eps)
    head = W["lm_head.weight"] if not cfg.get("tie_word_embeddings", True) else w("transformer.wte.weight")
    return x @ head.T


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope_inv_freq(cfg, hd, dtype):
    """LlamaRotaryEmbedding's inv_freq in `dtype`, with llama3 scaling when configured."""
    theta = cfg.get("rope_theta", 10000.0)
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).to(dtype) / hd))
    rs = cfg.get("rope_scaling")
    if rs is None or rs.get("rope_type", rs.get("type")) == "default":
        return inv_freq
    assert rs.get("rope_type", rs.get("type")) == "llama3", rs
    factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old_len = rs["original_max_position_embeddings"]
    low_freq_wavelen, high_freq_wavelen = old_len / lo, old_len / hi
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(medium, smoothed, scaled)


def llama_logits(cfg, W, ids, dtype):
    C, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    hd = cfg.get("head_dim", C // nh)
    eps = cfg.get("rms_norm_eps", 1e-6)
    T = len(ids)
    # As LlamaRotaryEmbedding: inv_freq, the angles and their cos / sin in the run's dtype.
    inv_freq = rope_inv_freq(cfg, hd, dtype)
    freqs = torch.outer(torch.arange(T, dtype=dtype), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()  # (T, hd)

    def linear(x, name):
        y = x @ W[name + ".weight"].T  # nn.Linear: [out, in]
        return y + W[name + ".bias"] if name + ".bias" in W else y

    x = W["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        a = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        q = linear(a, p + "self_attn.q_proj").view(T, nh, hd).transpose(0, 1)
        k = linear(a, p + "self_attn.k_proj").view(T, nkv, hd).transpose(0, 1)
        v = linear(a, p + "self_attn.v_proj").view(T, nkv, hd).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        n_rep = nh // nkv  # repeat_kv
        k = k[:, None].expand(nkv, n_rep, T, hd).reshape(nh, T, hd)
        v = v[:, None].expand(nkv, n_rep, T, hd).reshape(nh, T, hd)
        y = causal_attention(q, k, v).transpose(0, 1).reshape(T, nh * hd)
        x = x + linear(y, p + "self_attn.o_proj")
        m = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        x = x + linear(F.silu(linear(m, p + "mlp.gate_proj")) * linear(m, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else W["lm_head.weight"]
    return x @ head.T


def run(model_dir, tokens, out_path):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    stored = read_weights(model_dir)
    ids = torch.tensor([int(t) for t in tokens.split(",")], dtype=torch.long)
    fn = {"gpt2": gpt2_logits, "llama": llama_logits, "qwen2": llama_logits}[cfg["model_type"]]
    if cfg["model_type"] == "qwen2":  # q/k/v biases present, nothing else
        L = cfg["num_hidden_layers"]
        want = {f"model.layers.{i}.self_attn.{p}_proj.bias" for i in range(L) for p in "qkv"}
        assert {n for n in stored if n.endswith(".bias")} == want
    out = {}
    for dtype, prefix in ((torch.float32, ""), (torch.float64, "f64.")):
        W = {n: torch.from_numpy(a).to(dtype) for n, a in stored.items()}
        with torch.no_grad():
            logits = fn(cfg, W, ids, dtype)
        assert logits.shape == (len(ids), cfg["vocab_size"]), logits.shape
        out[prefix + "logits"] = logits.numpy()
    write_safetensors(out_path, out, {})


def main():
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "--inv-freq":
        cfg = json.loads(args[1])
        for v in rope_inv_freq(cfg, cfg["head_dim"], torch.float64).tolist():
            print(repr(v))
        return
    if not args or len(args) % 3:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    for i in range(0, len(args), 3):
        run(*args[i:i + 3])


if __name__ == "__main__":
    main()
