#pragma once
// bitsandbytes' 4-bit serialization, as transformers' save_pretrained writes a model
// loaded with BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4") to
// safetensors (bitsandbytes Linear4bit._save_to_state_dict + QuantState.as_dict(packed=True)).
// Every quantized nn.Linear `<module>` (each q/k/v/o_proj, gate/up/down_proj; GPT-2's
// c_attn, c_proj, c_fc, transposed to [out, in] first as transformers does for Conv1D)
// has, for a weight of shape [out, in] and n = out * in weights:
//   <module>.weight                  U8 [(n + 1) / 2, 1]  two NF4 codes per byte, first in the high nibble
//   <module>.weight.absmax           U8 [blocks]  (double quantization: 8-bit codes) or F32 [blocks]
//   <module>.weight.quant_map        F32 [16]     the NF4 levels
//   <module>.weight.nested_absmax    F32 [ceil(blocks / 256)]   (double quantization only)
//   <module>.weight.nested_quant_map F32 [256]    bitsandbytes' signed dynamic map (double quantization only)
//   <module>.weight.quant_state.bitsandbytes__nf4  U8 [len]: the bytes of json.dumps of
//       {"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": [out, in],
//        "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": <float>}
//       (the nested keys with double quantization only)
// with blocks = ceil(n / 64). Biases, embeddings, norms and lm_head stay plain tensors
// (lm_head is never quantized by transformers). config.json carries quantization_config.
// These are core/nf4.h's Nf4Tensor fields one for one.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "teddy/core/nf4.h"
#include "teddy/io/hf_model.h"
#include "teddy/io/hf_weights.h"
#include "teddy/io/safetensors.h"

namespace teddy {

// config.json's quantization_config, as teddy reads it.
struct Bnb4Config {
  bool double_quant = true;                 // bnb_4bit_use_double_quant
  std::string compute_dtype = "float32";    // bnb_4bit_compute_dtype (kept for export; teddy computes in fp32)
};

// nullopt when config.json has no quantization_config. Throws FormatError naming `path`
// and the key for anything but bitsandbytes 4-bit NF4 in uint8 storage: another
// quant_method, load_in_8bit, bnb_4bit_quant_type "fp4", bnb_4bit_quant_storage other
// than uint8.
std::optional<Bnb4Config> read_bnb4_config(const nlohmann::json& config, const std::string& path);
// quantization_config as transformers' BitsAndBytesConfig.to_dict() writes it (keys sorted).
nlohmann::json bnb4_quantization_config(const Bnb4Config& c);

// Is this HF tensor a block linear's weight (what transformers quantizes; embeddings,
// norms, biases and lm_head stay plain)?
bool bnb4_block_linear(const HfTensorSpec& s);

// The tensor names of one quantized module (the header's list), e.g. for
// "model.layers.0.self_attn.q_proj".
std::vector<std::string> bnb4_tensor_names(const std::string& module, bool double_quant);

// Reads one module's tensors straight into an Nf4Tensor (no fp32 anywhere). Throws
// FormatError "<file>: <tensor>: <what>, expected <what>" for a missing tensor, a dtype or
// shape other than the header's, a quant_state whose quant_type is not nf4 (fp4 named),
// blocksize not 64, nested_blocksize not 256, shape not `shape`, a quant_map other than
// the NF4 levels, a nested_quant_map other than the dynamic map (its level 0 may be -1,
// as bitsandbytes' CPU quantizer sets it, or create_dynamic_map's value).
Nf4Tensor read_bnb4_linear(const HfWeights& w, const std::string& module, const std::vector<int64_t>& shape,
                           bool double_quant);

// Adds one module's tensors (copies) to `out`. dtype: the torch dtype of the weight
// before quantization ("float32", "bfloat16", "float16"), written into the quant_state.
void add_bnb4_linear(SafetensorsWriter& out, const std::string& module, const Nf4Tensor& t,
                     const std::vector<int64_t>& shape, const std::string& dtype);
// The quant_state bytes: json.dumps of bitsandbytes' non-tensor items, in its order.
std::string bnb4_quant_state_json(const Nf4Tensor& t, const std::vector<int64_t>& shape, const std::string& dtype);

// Python's repr() of a double (what json.dumps writes for a float): the shortest digits
// that read back, "1e-05" / "0.0123" / "1.0" as Python spells them.
std::string python_float_repr(double v);

}  // namespace teddy
