#include "teddy/checkpoint/legacy.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "teddy/checkpoint/state_json.h"
#include "teddy/core/error.h"
#include "teddy/io/safetensors.h"

namespace fs = std::filesystem;

namespace teddy::legacy_checkpoint {

namespace {

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw FormatError(path + ": missing");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Floats [lo, hi) of tensor `t` (element 0 at flat offset `offset`) into dst (at element lo).
void copy_slice(const SafetensorsFile& f, const SafeTensor& t, uint64_t offset, uint64_t lo, uint64_t hi, float* dst) {
  const uint64_t first = lo - offset, n = hi - lo;
  if (t.dtype == "F32") {
    std::memcpy(dst, t.bytes.data() + first * sizeof(float), n * sizeof(float));
    return;
  }
  const std::vector<float> all = f.to_f32(t.name);  // another float dtype: converted whole
  std::copy_n(all.begin() + static_cast<std::ptrdiff_t>(first), n, dst);
}

}  // namespace

bool is_single_file(const std::string& dir) {
  std::error_code ec;
  return fs::exists(fs::path(dir) / kStateFile, ec);
}

VerifiedCheckpoint verify(const std::string& dir, int part, int parts) {
  VerifiedCheckpoint out;
  const std::string state_path = (fs::path(dir) / kStateFile).string();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text(state_path));
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(state_path + ": not valid JSON (" + e.what() + ")");
  }
  CheckpointInfo& info = out.info;
  info.dir = dir;
  try {
    if (j.value("format", "") != "teddy-checkpoint") throw FormatError(state_path + ": not a teddy checkpoint (format field)");
    const int version = j.at("version").get<int>();
    if (version != kCheckpointVersion)
      throw FormatError(state_path + ": checkpoint version " + std::to_string(version) + ", this teddy reads " +
                        std::to_string(kCheckpointVersion));
    state_from_json(j, state_path, info.state, info.optimizer_t, info.model_config);
    int index = 0;
    for (const char* f : {kModelFile, kOptimizerFile}) {
      if (index++ % parts != part) continue;
      const auto& fj = j.at("files").at(f);
      const std::string path = (fs::path(dir) / f).string();
      if (!fs::exists(path)) throw FormatError(path + ": missing");
      uint64_t size = 0;
      const uint64_t h = file_checksum(path, &size);
      if (size != fj.at("bytes").get<uint64_t>())
        throw FormatError(path + ": size " + std::to_string(size) + " bytes, state.json records " +
                          std::to_string(fj.at("bytes").get<uint64_t>()));
      if (hex64(h) != fj.at("xxh3_64").get<std::string>())
        throw FormatError(path + ": checksum mismatch (file " + hex64(h) + ", state.json " +
                          fj.at("xxh3_64").get<std::string>() + ")");
    }
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(state_path + ": missing or malformed field (" + e.what() + ")");
  }
  return out;
}

void read_range(const VerifiedCheckpoint& c, uint64_t begin, uint64_t end, float* params, float* m, float* v) {
  const std::string& dir = c.info.dir;
  const ParamLayout layout = make_param_layout(c.info.model_config);
  if (end < begin || end > layout.total)
    throw Error("read_checkpoint_range: [" + std::to_string(begin) + ", " + std::to_string(end) +
                ") outside the flat buffer of " + std::to_string(layout.total));
  if (params) {
    const SafetensorsFile mf = SafetensorsFile::open((fs::path(dir) / kModelFile).string());
    std::fill(params, params + (end - begin), 0.0f);  // alignment padding
    for (const ParamInfo& p : layout.params) {
      const SafeTensor* t = mf.find(p.name);
      if (!t) throw FormatError(mf.path() + ": tensor " + p.name + " missing");
      if (t->shape != p.shape) throw FormatError(mf.path() + ": tensor " + p.name + " has the wrong shape");
      const uint64_t lo = std::max<uint64_t>(begin, p.offset), hi = std::min<uint64_t>(end, p.offset + p.numel);
      if (lo < hi) copy_slice(mf, *t, p.offset, lo, hi, params + (lo - begin));
    }
  }
  if (m || v) {
    const SafetensorsFile of = SafetensorsFile::open((fs::path(dir) / kOptimizerFile).string());
    const char* names[2] = {"adamw.m", "adamw.v"};
    float* dst[2] = {m, v};
    for (int i = 0; i < 2; ++i) {
      if (!dst[i]) continue;
      const SafeTensor* t = of.find(names[i]);
      if (!t) throw FormatError(of.path() + ": tensor " + names[i] + " missing");
      if (static_cast<uint64_t>(t->numel()) != layout.total)
        throw FormatError(of.path() + ": optimizer state has " + std::to_string(t->numel()) + " floats, expected " +
                          std::to_string(layout.total));
      if (begin < end) copy_slice(of, *t, 0, begin, end, dst[i]);
    }
  }
}

}  // namespace teddy::legacy_checkpoint
