#!/usr/bin/env python3
"""Independent writer and reader of the bitsandbytes 4-bit serialization that
transformers' save_pretrained writes for a load_in_4bit model (tests/io/test_hf_bnb4.cpp),
written from bitsandbytes' source (QuantState.as_dict(packed=True), pack_dict_to_tensor,
Linear4bit._save_to_state_dict) and transformers' (BitsAndBytesConfig.to_dict(); a Conv1D
weight is transposed to [out, in] before it is quantized), not from teddy's code.
bitsandbytes itself is not installable here; its quantizer is nf4_reference.py's.

  bnb4_reference.py write PLAIN_DIR OUT_DIR DQ
      PLAIN_DIR: a Hugging Face directory with float32 weights (config.json,
      model.safetensors). Writes OUT_DIR/config.json (plus quantization_config) and
      OUT_DIR/model.safetensors: every block linear as bitsandbytes' tensors
        <m>.weight U8 [(n+1)/2, 1], <m>.weight.absmax (U8 with DQ, else F32),
        <m>.weight.quant_map F32 [16], <m>.weight.nested_absmax F32,
        <m>.weight.nested_quant_map F32 [256] (DQ only),
        <m>.weight.quant_state.bitsandbytes__nf4 U8 (json.dumps of the non-tensor items)
      and every other tensor (embeddings, norms, biases, lm_head) as it was. DQ: 1 or 0.
  bnb4_reference.py read BNB_DIR OUT.safetensors
      Dequantizes every module of BNB_DIR/model.safetensors as bitsandbytes'
      dequantize_4bit does in float32 (absmax = nested_quant_map[q] * nested_absmax + offset;
      w = quant_map[code] * absmax, each product rounded to float32), with the file's own
      maps, and writes "<m>.weight" F32 [out, in].
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt_reference import read_safetensors  # noqa: E402
from nf4_reference import NF4, create_dynamic_map, quantize, write  # noqa: E402

LLAMA_MODULES = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                 "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
GPT2_MODULES = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")  # Conv1D: stored [in, out]


write_st = write  # nf4_reference.write: safetensors by hand, with U8 and F16


def linear_modules(config, names):
    """The quantized modules: each block's nn.Linear (GPT-2: Conv1D), never lm_head."""
    out = []
    if config["model_type"] == "gpt2":
        prefix = "transformer.h." if any(n.startswith("transformer.") for n in names) else "h."
        for i in range(config["n_layer"]):
            out += [(f"{prefix}{i}.{m}", True) for m in GPT2_MODULES]
    else:
        for i in range(config["num_hidden_layers"]):
            out += [(f"model.layers.{i}.{m}", False) for m in LLAMA_MODULES]
    return out


def write(plain_dir, out_dir, dq):
    with open(os.path.join(plain_dir, "config.json")) as f:
        config = json.load(f)
    tensors, _ = read_safetensors(os.path.join(plain_dir, "model.safetensors"))
    map8 = create_dynamic_map()
    dtype = config.get("torch_dtype", "float32")
    out = {}
    quantized = set()
    for module, conv1d in linear_modules(config, tensors):
        w = tensors[module + ".weight"].astype(np.float32)
        if conv1d:
            w = w.T  # transformers: new_value = new_value.T for a Conv1D source
        w = np.ascontiguousarray(w)
        q = quantize(w.reshape(-1), dq, map8)
        k = module + ".weight"
        out[k] = q["packed"].reshape(-1, 1)
        out[k + ".quant_map"] = NF4.copy()
        state = {"quant_type": "nf4", "absmax": None, "blocksize": 64, "quant_map": None,
                 "dtype": dtype, "shape": tuple(w.shape)}
        if dq:
            out[k + ".absmax"] = q["absmax_q"]
            out[k + ".nested_absmax"] = q["absmax2"]
            out[k + ".nested_quant_map"] = map8.copy()
            state.update({"nested_absmax": None, "nested_blocksize": 256, "nested_quant_map": None,
                          "nested_dtype": "float32", "nested_offset": float(q["offset"][0])})
        else:
            out[k + ".absmax"] = q["absmax"]
        # pack_dict_to_tensor: json.dumps of the items that are not tensors, in as_dict's order.
        items = {kk: v for kk, v in state.items() if v is not None}
        out[k + ".quant_state.bitsandbytes__nf4"] = np.frombuffer(json.dumps(items).encode("utf-8"), dtype=np.uint8)
        quantized.add(k)
    for k, v in tensors.items():
        if k not in quantized:
            out[k] = v
    config["quantization_config"] = {
        "_load_in_4bit": True, "_load_in_8bit": False, "bnb_4bit_compute_dtype": "float32",
        "bnb_4bit_quant_storage": "uint8", "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": bool(dq),
        "llm_int8_enable_fp32_cpu_offload": False, "llm_int8_has_fp16_weight": False,
        "llm_int8_skip_modules": None, "llm_int8_threshold": 6.0, "load_in_4bit": True, "load_in_8bit": False,
        "quant_method": "bitsandbytes"}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    write_st(os.path.join(out_dir, "model.safetensors"), out, {"format": "pt"})


def read(bnb_dir, out_path):
    tensors, _ = read_safetensors(os.path.join(bnb_dir, "model.safetensors"))
    out = {}
    for k in tensors:
        if not k.endswith(".weight.quant_state.bitsandbytes__nf4"):
            continue
        w = k[: -len(".quant_state.bitsandbytes__nf4")]
        state = json.loads(bytes(tensors[k]).decode("utf-8"))
        assert state["quant_type"] == "nf4" and state["blocksize"] == 64, state
        shape = state["shape"]
        n = shape[0] * shape[1]
        packed = tensors[w].reshape(-1)
        codes = np.empty(packed.size * 2, dtype=np.uint8)
        codes[0::2] = packed >> 4
        codes[1::2] = packed & 0x0F
        codes = codes[:n]
        if "nested_offset" in state:
            assert state["nested_blocksize"] == 256
            qa = tensors[w + ".absmax"].astype(np.int64)
            a2 = tensors[w + ".nested_absmax"]
            m8 = tensors[w + ".nested_quant_map"]
            scale = (m8[qa] * a2[np.arange(qa.size) // 256]).astype(np.float32)
            absmax = (scale + np.float32(state["nested_offset"])).astype(np.float32)
        else:
            absmax = tensors[w + ".absmax"]
        qmap = tensors[w + ".quant_map"]
        vals = (qmap[codes] * absmax[np.arange(n) // 64]).astype(np.float32)
        out[w] = vals.reshape(shape)
    write_st(out_path, out)


def main(argv):
    if argv[1] == "write":
        write(argv[2], argv[3], int(argv[4]))
    elif argv[1] == "read":
        read(argv[2], argv[3])
    else:
        raise SystemExit("usage: bnb4_reference.py write PLAIN_DIR OUT_DIR DQ | read BNB_DIR OUT.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
