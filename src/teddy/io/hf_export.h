#pragma once
// `teddy export hf --checkpoint RUN --out DIR`: a teddy checkpoint as a Hugging Face
// model directory that transformers loads as GPT2LMHeadModel or LlamaForCausalLM:
//   config.json, generation_config.json, tokenizer.json, tokenizer_config.json (special
//   tokens, chat_template), and model.safetensors, or, when the tensors exceed
//   max_shard_bytes, model-0000i-of-0000n.safetensors plus model.safetensors.index.json
//   split the way transformers' save_pretrained splits (tensors in state_dict order, a
//   new shard when the next tensor would pass the limit, an oversized tensor alone).
// The directory is assembled under a temporary name and renamed into place whole.
#include <cstdint>
#include <string>
#include <vector>

#include "teddy/core/dtype.h"
#include "teddy/io/hf_run.h"

namespace teddy {

struct HfExportOptions {
  std::string tokenizer;                     // "" : the run's tokenizer.json
  DType dtype = DType::f32;                  // tensor dtype written (bf16 / f16 round to nearest even)
  uint64_t max_shard_bytes = 5'000'000'000;  // transformers' default max_shard_size "5GB"
  // --quantize nf4: every block linear as bitsandbytes 4-bit NF4 (io/hf_bnb4.h), one
  // quantized tensor set per HF module, config.json with transformers' quantization_config;
  // embeddings, norms, biases and lm_head in `dtype`, as transformers leaves them.
  bool quantize_nf4 = false;
  bool double_quant = true;  // bnb_4bit_use_double_quant
};

struct HfExportReport {
  std::string out_dir, checkpoint, architecture;
  std::vector<std::string> skipped;  // damaged newer checkpoints passed over, "dir: why"
  std::vector<std::string> files;  // written, in order
  size_t tensors = 0;  // safetensors entries (a bitsandbytes module is 4 to 6)
  uint64_t tensor_bytes = 0;
  int shards = 1;
};

HfExportReport export_hf(const std::string& checkpoint, const std::string& out_dir, const HfExportOptions& opts);
// The same from a run already read.
HfExportReport write_hf_dir(const TeddyRun& run, const std::string& out_dir, const HfExportOptions& opts);

}  // namespace teddy
