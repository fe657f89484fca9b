#include "teddy/train/lora_run.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "teddy/core/error.h"
#include "teddy/io/atomic_file.h"

namespace fs = std::filesystem;

namespace teddy {

void write_lora_run_info(const std::string& run_dir, const LoraRunInfo& info) {
  const LoraConfig& l = info.lora;
  nlohmann::json j = {{"r", l.r},           {"alpha", l.alpha},       {"dropout", l.dropout},
                      {"targets", l.targets}, {"rslora", l.rslora},     {"quantize", l.quantize},
                      {"base", info.base},  {"tokenizer", info.tokenizer}};
  write_file_atomic((fs::path(run_dir) / "lora.json").string(), j.dump(2) + "\n");
}

std::optional<LoraRunInfo> read_lora_run_info(const std::string& run_dir) {
  const fs::path p = fs::path(run_dir) / "lora.json";
  if (!fs::exists(p)) return std::nullopt;
  std::ifstream f(p);
  LoraRunInfo info;
  std::string key;
  try {
    const nlohmann::json j = nlohmann::json::parse(f);
    key = "r", info.lora.r = j.at(key).get<int>();
    key = "alpha", info.lora.alpha = j.at(key).get<float>();
    key = "dropout", info.lora.dropout = j.at(key).get<float>();
    key = "targets", info.lora.targets = j.at(key).get<std::vector<std::string>>();
    key = "rslora", info.lora.rslora = j.at(key).get<bool>();
    key = "quantize", info.lora.quantize = j.at(key).get<std::string>();
    key = "base", info.base = j.at(key).get<std::string>();
    key = "tokenizer", info.tokenizer = j.at(key).get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(p.string() + ": bad or missing \"" + key + "\" (" + e.what() + ")");
  }
  try {
    info.lora.validate_values();
  } catch (const ConfigError& e) {
    throw FormatError(p.string() + ": " + e.what());
  }
  return info;
}

}  // namespace teddy
