#!/usr/bin/env python3
"""Independent numpy/torch reimplementation of bitsandbytes' NF4 quantization with
double quantization (tests/core/test_nf4.cpp), written from bitsandbytes' algorithm:

  quantize_4bit(A, blocksize=64, quant_type="nf4", compress_statistics=dq):
    absmax[b] = max |A[64b : 64b + 64]|
    code = dQuantizeNF4(A[i] * (1 / absmax[b]))   (float32; the decision tree of
           csrc/kernels.cu, whose thresholds are listed below as published)
    packed[i // 2] = code(A[2j]) << 4 | code(A[2j + 1])
    with dq: offset = mean(absmax); quantize_blockwise(absmax - offset, blocksize=256)
           with create_dynamic_map(signed=True): absmax2[g] = max |.| of 256 values,
           q = the nearest map level of v * (1 / absmax2[g]) (ties: the lower level)

Usage: nf4_reference.py IN.safetensors OUT.safetensors
Input: case.<k> float32 vectors. Output per case and mode m in {dq, plain}:
<m>.<k>.packed (u8), plain.<k>.absmax (f32), dq.<k>.absmax_q (u8), dq.<k>.absmax2 (f32),
dq.<k>.offset (f32 [1]); also map8 (256 f32) and nf4 (16 f32), thresholds (15 f32).
The mean is taken in float64 and rounded to float32 (bitsandbytes takes torch's
float32 mean, which can differ in the last bit).
"""
import sys
import os

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt_reference import read_safetensors  # noqa: E402

NF4 = np.array([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
                0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=np.float32)
# dQuantizeNF4's tree (bitsandbytes csrc/kernels.cu), its thresholds in ascending order.
TREE = np.array([-0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
                 -0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
                 0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
                 0.5016634166240692, 0.6427869200706482, 0.8614784181118011], dtype=np.float32)


def create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8):
    """bitsandbytes.functional.create_dynamic_map, restated."""
    data = []
    non_sign_bits = total_bits - (1 if signed else 0)
    additional_items = 2 ** (non_sign_bits - max_exponent_bits) - 1
    for i in range(max_exponent_bits):
        fraction_items = int(2 ** (i + non_sign_bits - max_exponent_bits) + 1 if signed
                             else 2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1)
        boundaries = torch.linspace(0.1, 1, fraction_items, dtype=torch.float32)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    assert additional_items == 0
    data.append(0)
    data.append(1.0)
    data.sort()
    m = np.array(data, dtype=np.float32)
    m[0] = -1.0  # the CPU quantizer's adjustment (code[0] = -1)
    return m


def nf4_codes(x):
    return (x[:, None] > TREE[None, :]).sum(axis=1).astype(np.uint8)


def quantize(w, dq, map8):
    n = w.size
    nb = (n + 63) // 64
    pad = np.zeros(nb * 64, dtype=np.float32)
    pad[:n] = w
    blocks = pad.reshape(nb, 64)
    absmax = np.abs(blocks).max(axis=1).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = (np.float32(1.0) / absmax).astype(np.float32)
        normed = (blocks * inv[:, None]).astype(np.float32).reshape(-1)[:n]
    codes = nf4_codes(normed)
    if n % 2:
        codes = np.append(codes, np.uint8(0))
    packed = (codes[0::2] << 4) | codes[1::2]
    out = {"packed": packed.astype(np.uint8)}
    if not dq:
        out["absmax"] = absmax
        return out
    offset = np.float32(np.mean(absmax.astype(np.float64)))
    v = (absmax - offset).astype(np.float32)
    ng = (nb + 255) // 256
    q = np.zeros(nb, dtype=np.uint8)
    a2 = np.zeros(ng, dtype=np.float32)
    for g in range(ng):
        seg = v[g * 256:(g + 1) * 256]
        a2[g] = np.abs(seg).max()
        with np.errstate(divide="ignore", invalid="ignore"):
            x = (seg * (np.float32(1.0) / a2[g])).astype(np.float32)
        d = np.abs(map8[None, :] - x[:, None]).astype(np.float32)
        q[g * 256:(g + 1) * 256] = np.argmin(d, axis=1)  # first minimum: ties go to the lower level
    out.update({"absmax_q": q, "absmax2": a2, "offset": np.array([offset], dtype=np.float32)})
    return out


def write(path, tensors, meta=None):
    """A safetensors file, by hand (F32, F16 and U8 tensors; optional __metadata__)."""
    import json
    import struct
    dt = {np.dtype("float32"): "F32", np.dtype("uint8"): "U8", np.dtype("float16"): "F16"}
    header, blobs, off = ({"__metadata__": meta} if meta else {}), [], 0
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k])
        raw = a.tobytes()
        header[k] = {"dtype": dt[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main(argv):
    tensors, _ = read_safetensors(argv[1])
    map8 = create_dynamic_map()
    out = {"map8": map8, "nf4": NF4, "thresholds": TREE}
    for k, w in tensors.items():
        if not k.startswith("case."):
            continue
        name = k[len("case."):]
        for dq in (True, False):
            for kk, v in quantize(w.astype(np.float32).reshape(-1), dq, map8).items():
                out[f"{'dq' if dq else 'plain'}.{name}.{kk}"] = v
    write(argv[2], out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
