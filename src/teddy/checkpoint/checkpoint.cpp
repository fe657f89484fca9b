// Reading checkpoints of either format, and the one-process save (checkpoint.h).
#include "teddy/checkpoint/checkpoint.h"

#include <xxhash.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "teddy/checkpoint/group.h"
#include "teddy/checkpoint/legacy.h"
#include "teddy/checkpoint/shards.h"
#include "teddy/checkpoint/state_json.h"
#include "teddy/core/error.h"
#include "teddy/model/config_json.h"

namespace fs = std::filesystem;

namespace teddy {

namespace {

std::string no_intact_checkpoint_message(const std::string& path, const std::vector<std::string>& skipped) {
  std::string msg = path + ": no intact checkpoint found (expected a checkpoint directory with manifest.json or state.json, or a run directory with checkpoints/step_*)";
  for (const auto& s : skipped) msg += "\n  skipped " + s;
  return msg;
}

bool is_checkpoint_dir(const std::string& path) {
  return legacy_checkpoint::is_single_file(path) || fs::exists(fs::path(path) / kShardManifestFile);
}

}  // namespace

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

uint64_t file_checksum(const std::string& path, uint64_t* size) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw FormatError(path + ": cannot open");
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  std::vector<char> buf(1 << 20);
  uint64_t total = 0;
  while (f) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto got = f.gcount();
    if (got > 0) {
      XXH3_64bits_update(st, buf.data(), static_cast<size_t>(got));
      total += static_cast<uint64_t>(got);
    }
  }
  const uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  if (size) *size = total;
  return h;
}

std::string model_config_difference(const ModelConfig& a, const ModelConfig& b) {
#define TEDDY_CMP(f) \
  if (a.f != b.f) { std::ostringstream os; os << #f << " (checkpoint " << b.f << ", run " << a.f << ")"; return os.str(); }
  if (a.family != b.family) return "family (checkpoint " + std::string(family_name(b.family)) + ", run " + std::string(family_name(a.family)) + ")";
  TEDDY_CMP(vocab_size) TEDDY_CMP(padded_vocab_size) TEDDY_CMP(max_seq_len) TEDDY_CMP(n_layer)
  TEDDY_CMP(n_head) TEDDY_CMP(n_kv_head) TEDDY_CMP(d_model) TEDDY_CMP(d_ff) TEDDY_CMP(norm_eps)
  TEDDY_CMP(rope_theta) TEDDY_CMP(tie_embeddings) TEDDY_CMP(bias) TEDDY_CMP(qkv_bias)
#undef TEDDY_CMP
  if (!(a.rope_scaling == b.rope_scaling)) return "rope_scaling (checkpoint and run differ)";
  return "";
}

void state_to_json(nlohmann::ordered_json& j, const CheckpointState& state, int64_t optimizer_t,
                   const ModelConfig& model_config) {
  j["step"] = state.step;
  j["tokens_processed"] = state.tokens_processed;
  j["seed"] = state.seed;
  j["optimizer_t"] = optimizer_t;
  j["model_config"] = nlohmann::json::parse(model_config_to_json(model_config));
  j["loader_state"] = state.loader_state.empty() ? nlohmann::json() : nlohmann::json::parse(state.loader_state);
  j["run_config"] = state.run_config;
  if (!state.loss_scaler.empty()) j["loss_scaler"] = nlohmann::json::parse(state.loss_scaler);
}

void state_from_json(const nlohmann::json& j, const std::string& where, CheckpointState& state,
                     int64_t& optimizer_t, ModelConfig& model_config) {
  state.step = j.at("step").get<int64_t>();
  state.tokens_processed = j.at("tokens_processed").get<int64_t>();
  state.seed = j.at("seed").get<uint64_t>();
  optimizer_t = j.at("optimizer_t").get<int64_t>();
  state.loader_state = j.at("loader_state").is_null() ? "" : j.at("loader_state").dump();
  state.run_config = j.at("run_config").get<std::string>();
  state.loss_scaler = j.contains("loss_scaler") ? j.at("loss_scaler").dump() : "";
  model_config = model_config_from_json(j.at("model_config").dump(), where);
}

// ---- Writing ----------------------------------------------------------------------

std::string save_checkpoint(const std::string& run_dir, const Model& model, const AdamW& opt,
                            const CheckpointState& state, int keep_last,
                            const std::function<void(const std::string&)>& after_file) {
  if (opt.size() != model.flat_size())
    throw Error("save_checkpoint: optimizer has " + std::to_string(opt.size()) + " floats, model " +
                std::to_string(model.flat_size()));
  CheckpointMeta meta;
  meta.state = state;
  meta.optimizer_t = opt.t();
  const ShardPiece all{0, model.flat_size(), model.params(), opt.m(), opt.v()};
  return save_sharded_checkpoint(CheckpointGroup::single(), run_dir, model, all, meta, keep_last, after_file);
}

// ---- Reading ----------------------------------------------------------------------

VerifiedCheckpoint verify_checkpoint_part(const std::string& dir, int part, int parts) {
  if (!is_sharded_checkpoint(dir)) return legacy_checkpoint::verify(dir, part, parts);
  VerifiedCheckpoint out;
  auto man = std::make_shared<ShardedManifest>(read_shard_manifest(dir));
  verify_shards(dir, *man, part, parts);
  out.info = checkpoint_info(dir, *man);
  out.manifest = std::move(man);
  return out;
}

VerifiedCheckpoint verify_checkpoint(const std::string& dir) { return verify_checkpoint_part(dir, 0, 1); }

CheckpointInfo inspect_checkpoint(const std::string& dir) { return verify_checkpoint(dir).info; }

std::optional<VerifiedCheckpoint> latest_verified_checkpoint(const std::string& run_dir,
                                                             std::vector<std::string>* skipped) {
  std::vector<std::string> passed;
  for (const std::string& d : list_checkpoints(run_dir)) {
    try {
      VerifiedCheckpoint c = verify_checkpoint(d);
      c.skipped = passed;
      if (skipped) *skipped = std::move(passed);
      return c;
    } catch (const Error& e) {
      passed.push_back(d + ": " + e.what());
    }
  }
  if (skipped) *skipped = std::move(passed);
  return std::nullopt;
}

std::optional<std::string> latest_intact_checkpoint(const std::string& run_dir, std::vector<std::string>* skipped) {
  if (auto c = latest_verified_checkpoint(run_dir, skipped)) return c->info.dir;
  return std::nullopt;
}

void check_checkpoint_fits(const VerifiedCheckpoint& c, const Model& model) {
  if (c.manifest) {
    check_shard_manifest_fits(c.info.dir, *c.manifest, model);
    return;
  }
  const std::string diff = model_config_difference(model.config(), c.info.model_config);
  if (!diff.empty()) throw ConfigError(c.info.dir + ": checkpoint is from an incompatible model config: " + diff);
}

void read_checkpoint_range(const VerifiedCheckpoint& c, uint64_t begin, uint64_t end, float* params, float* m,
                           float* v) {
  if (c.manifest)
    read_shard_range(c.info.dir, *c.manifest, begin, end, params, m, v);
  else
    legacy_checkpoint::read_range(c, begin, end, params, m, v);
}

CheckpointInfo load_checkpoint(const std::string& dir, Model& model, AdamW* opt) {
  return load_checkpoint(verify_checkpoint(dir), model, opt);
}

CheckpointInfo load_checkpoint(const VerifiedCheckpoint& c, Model& model, AdamW* opt) {
  check_checkpoint_fits(c, model);
  const size_t n = model.flat_size();
  if (opt && opt->size() != n)
    throw Error(c.info.dir + ": the optimizer has " + std::to_string(opt->size()) + " floats, the model " +
                std::to_string(n));
  std::vector<float> m, v;
  if (opt) {
    m.resize(n);
    v.resize(n);
  }
  read_checkpoint_range(c, 0, n, model.params(), opt ? m.data() : nullptr, opt ? v.data() : nullptr);
  if (opt) opt->set_state(c.info.optimizer_t, m.data(), v.data());
  return c.info;
}

VerifiedCheckpoint resolve_verified_checkpoint(const std::string& path) {
  if (is_checkpoint_dir(path)) return verify_checkpoint(path);
  std::vector<std::string> skipped;
  if (auto latest = latest_verified_checkpoint(path, &skipped)) return std::move(*latest);
  throw Error(no_intact_checkpoint_message(path, skipped));
}

}  // namespace teddy
