#include "teddy/checkpoint/shards.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "teddy/core/error.h"
#include "teddy/io/atomic_file.h"
#include "teddy/io/safetensors.h"
#include "teddy/checkpoint/legacy.h"
#include "teddy/checkpoint/state_json.h"

namespace fs = std::filesystem;

namespace teddy {

namespace {

constexpr const char* kFormat = "teddy-sharded-checkpoint";
constexpr const char* kTensors[3] = {"params", "adamw.m", "adamw.v"};
constexpr const char* kSealKey = ",\n \"manifest_xxh3_64\": \"";
constexpr const char* kSealEnd = "\"\n}\n";

uint64_t parse_hex64(const std::string& s, const std::string& where) {
  if (s.size() != 16 || s.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw FormatError(where + ": checksum \"" + s + "\" is not 16 hex digits");
  return std::stoull(s, nullptr, 16);
}

}  // namespace

std::string seal_manifest_text(const std::string& json) {
  const size_t close = json.find_last_of('}');
  std::string body = json.substr(0, close);
  while (!body.empty() && (body.back() == '\n' || body.back() == ' ')) body.pop_back();
  return body + kSealKey + hex64(XXH3_64bits(body.data(), body.size())) + kSealEnd;
}

bool check_manifest_seal(const std::string& text, const std::string& path) {
  const size_t at = text.rfind(kSealKey);
  if (at == std::string::npos) return false;
  const std::string tail = text.substr(at + std::strlen(kSealKey));
  if (tail.size() != 16 + std::strlen(kSealEnd) || tail.compare(16, std::string::npos, kSealEnd) != 0)
    throw FormatError(path + ": damaged: the text after its checksum field is not what teddy writes (truncated or edited)");
  const uint64_t want = parse_hex64(tail.substr(0, 16), path);
  const uint64_t got = XXH3_64bits(text.data(), at);
  if (got != want)
    throw FormatError(path + ": checksum mismatch (contents " + hex64(got) + ", manifest_xxh3_64 " + hex64(want) +
                      "): the file was changed or damaged after it was written");
  return true;
}

std::string shard_file_name(int rank, int world) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "shard_%05d_of_%05d.safetensors", rank, world);
  return buf;
}

bool is_sharded_checkpoint(const std::string& dir) {
  std::error_code ec;
  return fs::exists(fs::path(dir) / kShardManifestFile, ec) || !legacy_checkpoint::is_single_file(dir);
}

ShardEntry write_checkpoint_shard(const std::string& dir, int rank, int world, uint64_t begin, uint64_t end,
                                  const float* params, const float* m, const float* v) {
  ShardEntry e;
  e.file = shard_file_name(rank, world);
  e.begin = begin;
  e.end = end;
  const int64_t n = static_cast<int64_t>(end - begin);
  SafetensorsWriter w;
  const float* src[3] = {params, m, v};
  for (int i = 0; i < 3; ++i) w.add_f32(kTensors[i], {n}, src[i]);
  w.set_metadata("format", "teddy-checkpoint-shard");
  w.set_metadata("range", std::to_string(begin) + "," + std::to_string(end));
  const std::string path = (fs::path(dir) / e.file).string();
  w.write(path);  // fsynced, and the directory too
  e.xxh3 = file_checksum(path, &e.bytes);
  return e;
}

std::string finish_sharded_checkpoint(const std::string& run_dir, const std::string& temp_dir,
                                      const ShardedManifest& man, int keep_last,
                                      const std::function<void(const std::string&)>& after_file) {
  nlohmann::ordered_json j;
  j["format"] = kFormat;
  j["version"] = kShardedCheckpointVersion;
  j["world_size"] = man.world_size;
  j["zero_stage"] = man.zero_stage;
  j["flat_size"] = man.flat_size;
  j["dtype"] = "F32";
  state_to_json(j, man.state, man.optimizer_t, man.model_config);
  j["shards"] = nlohmann::json::array();
  for (const ShardEntry& s : man.shards)
    j["shards"].push_back({{"file", s.file}, {"begin", s.begin}, {"end", s.end}, {"bytes", s.bytes}, {"xxh3_64", hex64(s.xxh3)}});
  j["layout"] = nlohmann::json::array();
  for (const ParamInfo& p : man.layout) j["layout"].push_back({{"name", p.name}, {"offset", p.offset}, {"shape", p.shape}});
  // The manifest is what makes the directory a checkpoint: it goes in last.
  write_file_atomic((fs::path(temp_dir) / kShardManifestFile).string(), seal_manifest_text(j.dump(1)));
  if (after_file) after_file(kShardManifestFile);
  return commit_checkpoint_dir(run_dir, temp_dir, man.state.step, keep_last);
}

ShardedManifest read_shard_manifest(const std::string& dir) {
  const std::string path = (fs::path(dir) / kShardManifestFile).string();
  std::ifstream f(path, std::ios::binary);
  if (!f) throw FormatError(path + ": missing (a sharded checkpoint without its manifest is incomplete)");
  std::stringstream text;
  text << f.rdbuf();
  // The checksum before the parse: a flipped digit still parses, as the wrong number.
  const bool sealed = check_manifest_seal(text.str(), path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path + ": not valid JSON (" + e.what() + ")");
  }
  ShardedManifest m;
  try {
    if (j.value("format", "") != kFormat) throw FormatError(path + ": not a teddy sharded checkpoint (format field)");
    const int version = j.at("version").get<int>();
    if (version < 1 || version > kShardedCheckpointVersion)
      throw FormatError(path + ": sharded checkpoint version " + std::to_string(version) + ", this teddy reads 1 to " +
                        std::to_string(kShardedCheckpointVersion));
    // Version 2 on is always sealed: a manifest without its checksum field lost it.
    if (version >= 2 && !sealed)
      throw FormatError(path + ": damaged: version " + std::to_string(version) +
                        " manifests end with their checksum (manifest_xxh3_64), this one has none");
    if (j.at("dtype").get<std::string>() != "F32") throw FormatError(path + ": dtype " + j.at("dtype").dump() + ", expected \"F32\"");
    m.world_size = j.at("world_size").get<int>();
    m.zero_stage = j.at("zero_stage").get<int>();
    m.flat_size = j.at("flat_size").get<uint64_t>();
    state_from_json(j, path, m.state, m.optimizer_t, m.model_config);
    for (const auto& s : j.at("shards")) {
      ShardEntry e;
      e.file = s.at("file").get<std::string>();
      e.begin = s.at("begin").get<uint64_t>();
      e.end = s.at("end").get<uint64_t>();
      e.bytes = s.at("bytes").get<uint64_t>();
      e.xxh3 = parse_hex64(s.at("xxh3_64").get<std::string>(), path);
      if (e.file.empty() || e.file.find('/') != std::string::npos || e.file[0] == '.')
        throw FormatError(path + ": shard file name \"" + e.file + "\" is not a plain file name");
      m.shards.push_back(std::move(e));
    }
    for (const auto& p : j.at("layout")) {
      ParamInfo pi;
      pi.name = p.at("name").get<std::string>();
      pi.offset = p.at("offset").get<size_t>();
      pi.shape = p.at("shape").get<std::vector<int64_t>>();
      pi.numel = 1;
      for (int64_t d : pi.shape) pi.numel *= static_cast<size_t>(std::max<int64_t>(d, 0));
      if (pi.offset + pi.numel > m.flat_size) throw FormatError(path + ": tensor " + pi.name + " lies outside the flat buffer");
      m.layout.push_back(std::move(pi));
    }
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path + ": missing or malformed field (" + e.what() + ")");
  }
  if (m.world_size < 1 || static_cast<size_t>(m.world_size) != m.shards.size())
    throw FormatError(path + ": world_size " + std::to_string(m.world_size) + " but " + std::to_string(m.shards.size()) +
                      " shards listed (incomplete manifest)");
  uint64_t next = 0;
  for (const ShardEntry& s : m.shards) {
    if (s.begin != next || s.end < s.begin)
      throw FormatError(path + ": shard " + s.file + " covers [" + std::to_string(s.begin) + ", " + std::to_string(s.end) +
                        "), expected to start at " + std::to_string(next) + " (incomplete manifest)");
    next = s.end;
  }
  if (next != m.flat_size)
    throw FormatError(path + ": shards cover " + std::to_string(next) + " of " + std::to_string(m.flat_size) +
                      " floats (incomplete manifest)");
  return m;
}

void verify_shards(const std::string& dir, const ShardedManifest& man, int part, int parts) {
  for (size_t i = 0; i < man.shards.size(); ++i) {
    if (static_cast<int>(i % static_cast<size_t>(parts)) != part) continue;
    const ShardEntry& s = man.shards[i];
    const std::string path = (fs::path(dir) / s.file).string();
    std::error_code ec;
    if (!fs::exists(path, ec)) throw FormatError(path + ": missing (listed in " + kShardManifestFile + ")");
    uint64_t size = 0;
    const uint64_t h = file_checksum(path, &size);
    if (size != s.bytes)
      throw FormatError(path + ": size " + std::to_string(size) + " bytes, " + kShardManifestFile + " records " +
                        std::to_string(s.bytes));
    if (h != s.xxh3)
      throw FormatError(path + ": checksum mismatch (file " + hex64(h) + ", " + kShardManifestFile + " " + hex64(s.xxh3) + ")");
  }
}

void read_shard_range(const std::string& dir, const ShardedManifest& man, uint64_t begin, uint64_t end, float* params,
                      float* m, float* v) {
  if (end < begin || end > man.flat_size)
    throw Error("read_shard_range: [" + std::to_string(begin) + ", " + std::to_string(end) + ") outside the flat buffer of " +
                std::to_string(man.flat_size));
  float* dst[3] = {params, m, v};
  for (const ShardEntry& s : man.shards) {
    const uint64_t lo = std::max(begin, s.begin), hi = std::min(end, s.end);
    if (lo >= hi) continue;
    const std::string path = (fs::path(dir) / s.file).string();
    std::error_code ec;
    if (fs::file_size(path, ec) != s.bytes || ec)
      throw FormatError(path + ": missing or not the " + std::to_string(s.bytes) + " bytes " + kShardManifestFile + " records");
    // Mapped: only the pages of [lo, hi) are read from disk.
    const SafetensorsFile f = SafetensorsFile::open(path);
    for (int i = 0; i < 3; ++i) {
      if (!dst[i]) continue;
      const SafeTensor* t = f.find(kTensors[i]);
      if (!t || t->dtype != "F32" || static_cast<uint64_t>(t->numel()) != s.end - s.begin)
        throw FormatError(path + ": tensor " + kTensors[i] + " missing or not " + std::to_string(s.end - s.begin) + " F32 values");
      std::memcpy(dst[i] + (lo - begin), t->bytes.data() + (lo - s.begin) * sizeof(float), (hi - lo) * sizeof(float));
    }
  }
}

void check_shard_manifest_fits(const std::string& dir, const ShardedManifest& man, const Model& model) {
  const std::string diff = model_config_difference(model.config(), man.model_config);
  if (!diff.empty()) throw ConfigError(dir + ": checkpoint is from an incompatible model config: " + diff);
  const std::string where = (fs::path(dir) / kShardManifestFile).string();
  const auto& params = model.layout().params;
  if (man.flat_size != model.flat_size() || man.layout.size() != params.size())
    throw FormatError(where + ": flat buffer of " + std::to_string(man.flat_size) + " floats in " +
                      std::to_string(man.layout.size()) + " tensors, the model has " + std::to_string(model.flat_size()) +
                      " in " + std::to_string(params.size()));
  for (size_t i = 0; i < params.size(); ++i)
    if (man.layout[i].name != params[i].name || man.layout[i].offset != params[i].offset || man.layout[i].shape != params[i].shape)
      throw FormatError(where + ": tensor " + std::to_string(i) + " (" + man.layout[i].name +
                        ") differs from the model's layout (" + params[i].name + ")");
}

CheckpointInfo checkpoint_info(const std::string& dir, const ShardedManifest& man) {
  CheckpointInfo info;
  info.dir = dir;
  info.state = man.state;
  info.model_config = man.model_config;
  info.optimizer_t = man.optimizer_t;
  return info;
}

}  // namespace teddy
