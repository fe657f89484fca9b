#pragma once
// A LoRA run's checkpoints hold only the adapters (the flat buffers the engine
// trained). What rebuilds the whole model is written next to them as lora.json:
// the [lora] config, the base checkpoint the run started from and the tokenizer it
// named. load_chat_model (chat_model.h) reads it, so `teddy generate`, `teddy sft
// eval` and `teddy lora merge` see the base with the adapters folded in.
#include <optional>
#include <string>

#include "teddy/model/lora.h"

namespace teddy {

struct LoraRunInfo {
  LoraConfig lora;
  std::string base;       // the base checkpoint directory the run loaded (model.init resolved)
  std::string tokenizer;  // model.tokenizer as the run named it ("" = the base run's)
};

// <run_dir>/lora.json, atomically.
void write_lora_run_info(const std::string& run_dir, const LoraRunInfo& info);
// The run's lora.json, or nullopt if it has none; FormatError naming the file and key.
std::optional<LoraRunInfo> read_lora_run_info(const std::string& run_dir);

}  // namespace teddy
