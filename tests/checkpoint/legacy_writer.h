#pragma once
// The single-file checkpoint writer teddy used before every checkpoint was sharded
// (model.safetensors, optimizer.safetensors, state.json last), kept here, byte for
// byte as it was, so tests can make the old format and check that it still loads
// everywhere (checkpoint/legacy.h reads it; nothing in the library writes it).
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "teddy/checkpoint/checkpoint.h"
#include "teddy/checkpoint/legacy.h"
#include "teddy/checkpoint/state_json.h"
#include "teddy/io/safetensors.h"
#include "teddy/model/config_json.h"

namespace teddy::test {

inline std::string save_single_file_checkpoint(const std::string& run_dir, const Model& model, const AdamW& opt,
                                               const CheckpointState& state, int keep_last = 0) {
  namespace fs = std::filesystem;
  using namespace legacy_checkpoint;
  const fs::path tmp_dir = checkpoint_temp_dir(run_dir, state.step);
  begin_checkpoint_dir(tmp_dir.string());
  {
    SafetensorsWriter w;
    for (const ParamInfo& p : model.layout().params) w.add_f32(p.name, p.shape, model.params() + p.offset);
    w.set_metadata("format", "teddy-checkpoint");
    w.set_metadata("model_config", model_config_to_json(model.config()));
    w.write((tmp_dir / kModelFile).string());
  }
  {
    SafetensorsWriter w;
    const int64_t n = static_cast<int64_t>(opt.size());
    w.add_f32("adamw.m", {n}, opt.m());
    w.add_f32("adamw.v", {n}, opt.v());
    w.set_metadata("adamw_t", std::to_string(opt.t()));
    w.write((tmp_dir / kOptimizerFile).string());
  }
  nlohmann::ordered_json j;
  j["format"] = "teddy-checkpoint";
  j["version"] = kCheckpointVersion;
  state_to_json(j, state, opt.t(), model.config());
  for (const char* f : {kModelFile, kOptimizerFile}) {
    uint64_t size = 0;
    const uint64_t h = file_checksum((tmp_dir / f).string(), &size);
    j["files"][f] = {{"bytes", size}, {"xxh3_64", hex64(h)}};
  }
  std::ofstream((tmp_dir / kStateFile).string(), std::ios::trunc) << j.dump(2) << "\n";
  return commit_checkpoint_dir(run_dir, tmp_dir.string(), state.step, keep_last);
}

// Rewrites checkpoint `dir` (either format) in the single-file format in place:
// the same parameters, optimizer state and run state.
inline std::string convert_to_single_file(const std::string& dir) {
  namespace fs = std::filesystem;
  const CheckpointInfo info = inspect_checkpoint(dir);
  Model model(info.model_config);
  AdamW opt(model.layout(), AdamWConfig{});
  load_checkpoint(dir, model, &opt);
  const std::string run_dir = fs::path(dir).parent_path().parent_path().string();
  return save_single_file_checkpoint(run_dir, model, opt, info.state);
}

}  // namespace teddy::test
