#pragma once
// LoRA adapters in PEFT's format (huggingface/peft, save_pretrained): a directory with
// adapter_config.json (peft_type "LORA", r, lora_alpha, lora_dropout, target_modules,
// use_rslora, ...) and adapter_model.safetensors holding, per adapted module,
//   base_model.model.<module path>.lora_A.weight  (r, in)
//   base_model.model.<module path>.lora_B.weight  (out, r)
// with module paths model.layers.N.self_attn.q_proj (LLaMA) or transformer.h.N.attn.c_attn
// (GPT-2; PEFT keeps A and B as Linear layouts for Conv1D too, fan_in_fan_out only
// concerns the base weight). teddy's fused q|k|v and gate|up adapters split into the
// per-module tensors (model/lora.h), so adapters move both ways. See docs/LORA.md.
#include <string>

#include "teddy/model/lora.h"
#include "teddy/model/model.h"

namespace teddy {

// Writes <dir>/adapter_config.json and <dir>/adapter_model.safetensors (f32) from a
// model with LoRA on. `base_name` goes to base_model_name_or_path. The directory is
// created; existing files of those names are replaced atomically.
void save_peft_adapter(const Model& model, const std::string& dir, const std::string& base_name = "");

// adapter_config.json as a LoraConfig; FormatError naming the file and key for what
// teddy cannot represent (another peft_type, bias != "none", DoRA, rank or alpha
// patterns, modules_to_save, layers_to_transform, a regex target_modules).
LoraConfig read_peft_config(const std::string& dir);

// Turns LoRA on in `model` (a plain model holding the base) with the adapter's config
// and reads its tensors. FormatError naming the file and tensor when a tensor the
// config implies is missing or has another shape (an adapter made for another base),
// or the file holds a tensor teddy would not read.
void load_peft_adapter(Model& model, const std::string& dir);

// Another adapter for a model that already has LoRA on (several adapters, one base):
// its config must give the same adapter layout (r, targets), its tensors go into `out`
// (model.flat_size() floats, model.layout()); write them into model.params() to switch.
// FormatError naming the file and key otherwise. Returns its scale-relevant config.
LoraConfig read_peft_adapter_into(const Model& model, const std::string& dir, float* out);

}  // namespace teddy
