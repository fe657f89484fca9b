#include "teddy/train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <signal.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "teddy/core/error.h"
#include "teddy/io/safetensors.h"
#include "teddy/model/config_json.h"
#include "teddy/train/checkpoint_json.h"
#include "teddy/train/sharded_checkpoint.h"

namespace fs = std::filesystem;

namespace teddy {

namespace {

constexpr const char* kModelFile = "model.safetensors";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kStateFile = "state.json";


void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) throw Error(path + ": cannot open to fsync: " + std::strerror(errno));
  if (::fsync(fd) != 0 && errno != EINVAL) {
    const int e = errno;
    ::close(fd);
    throw Error(path + ": fsync failed: " + std::strerror(e));
  }
  ::close(fd);
}

void write_durable(const std::string& path, const std::string& content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw Error(path + ": cannot create: " + std::strerror(errno));
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t w = ::write(fd, content.data() + done, content.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      throw Error(path + ": write failed: " + std::strerror(e));
    }
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) {
    const int e = errno;
    ::close(fd);
    throw Error(path + ": fsync failed: " + std::strerror(e));
  }
  ::close(fd);
}



std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw FormatError(path + ": missing");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// First differing field of two model configs, or "".
std::string config_difference(const ModelConfig& a, const ModelConfig& b) {
#define TEDDY_CMP(f) \
  if (a.f != b.f) { std::ostringstream os; os << #f << " (checkpoint " << b.f << ", run " << a.f << ")"; return os.str(); }
  if (a.family != b.family) return "family (checkpoint " + std::string(family_name(b.family)) + ", run " + std::string(family_name(a.family)) + ")";
  TEDDY_CMP(vocab_size) TEDDY_CMP(padded_vocab_size) TEDDY_CMP(max_seq_len) TEDDY_CMP(n_layer)
  TEDDY_CMP(n_head) TEDDY_CMP(n_kv_head) TEDDY_CMP(d_model) TEDDY_CMP(d_ff) TEDDY_CMP(norm_eps)
  TEDDY_CMP(rope_theta) TEDDY_CMP(tie_embeddings) TEDDY_CMP(bias)
#undef TEDDY_CMP
  return "";
}

std::string no_intact_checkpoint_message(const std::string& path, const std::vector<std::string>& skipped) {
  std::string msg = path + ": no intact checkpoint found (expected a checkpoint directory with state.json or manifest.json, or a run directory with checkpoints/step_*)";
  for (const auto& s : skipped) msg += "\n  skipped " + s;
  return msg;
}

}  // namespace

std::string step_dir_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%08lld", static_cast<long long>(step));
  return buf;
}

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

std::string model_config_difference(const ModelConfig& run, const ModelConfig& checkpoint) {
  return config_difference(run, checkpoint);
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

namespace {

std::string this_host() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  std::string h(buf);
  // The name goes into a directory name: keep it to characters that are safe there.
  for (char& c : h)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') c = '_';
  return h.empty() ? "localhost" : h;
}

// A temporary directory's writer: "step_N.tmp-<pid>@<host>" (or, before hosts were
// recorded, "step_N.tmp-<pid>", taken as this host's). nullopt: not a temp directory.
struct TempWriter {
  int64_t pid = 0;
  std::string host;
};
std::optional<TempWriter> temp_writer(const std::string& name) {
  const size_t at = name.find(".tmp-");
  if (name.rfind("step_", 0) != 0 || at == std::string::npos) return std::nullopt;
  const std::string rest = name.substr(at + 5);
  const size_t sep = rest.find('@');
  const std::string digits = rest.substr(0, sep);
  if (digits.empty() || digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return std::nullopt;
  return TempWriter{std::stoll(digits), sep == std::string::npos ? this_host() : rest.substr(sep + 1)};
}

bool process_alive(int64_t pid) {
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;  // EPERM: alive, someone else's
}

}  // namespace

std::string checkpoint_temp_dir(const std::string& run_dir, int64_t step) {
  return (fs::path(run_dir) / "checkpoints" /
          (step_dir_name(step) + ".tmp-" + std::to_string(::getpid()) + "@" + this_host()))
      .string();
}

Resume resume_from_flag(const std::string& name) {
  if (name.empty()) return Resume::no;
  if (name == "auto") return Resume::if_any;
  if (name == "require") return Resume::require;
  throw ConfigError("--resume: expected auto (the default: start from scratch when run.dir has no checkpoint yet) or require (got \"" + name + "\")");
}

StaleTemps remove_stale_checkpoint_temps(const std::string& run_dir) {
  StaleTemps out;
  const fs::path root = fs::path(run_dir) / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  const std::string host = this_host();
  std::vector<fs::path> found;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.is_directory(ec)) found.push_back(e.path());
  std::sort(found.begin(), found.end());
  for (const fs::path& d : found) {
    const auto w = temp_writer(d.filename().string());
    if (!w) continue;
    if (w->host != host) {  // its writer's pid means nothing here: it may still be saving
      out.other_hosts.push_back(d.string());
      continue;
    }
    if (process_alive(w->pid)) continue;  // a live writer (another run on this directory)
    std::error_code rec;
    fs::remove_all(d, rec);
    if (rec)
      out.failed.push_back(d.string() + ": " + rec.message());
    else
      out.removed.push_back(d.string());
  }
  return out;
}

std::string StaleTemps::summary() const {
  std::string s;
  auto names = [](const std::vector<std::string>& v) {
    std::string r;
    for (const std::string& x : v) r += (r.empty() ? "" : ", ") + fs::path(x.substr(0, x.find(": "))).filename().string();
    return r;
  };
  if (!removed.empty())
    s += "# removed " + std::to_string(removed.size()) +
         " temporary checkpoint director" + (removed.size() == 1 ? "y" : "ies") + " of writers that are gone: " +
         names(removed) + "\n";
  for (const std::string& f : failed) s += "# could not remove a stale temporary checkpoint directory: " + f + "\n";
  if (!other_hosts.empty())
    s += "# left " + std::to_string(other_hosts.size()) + " temporary checkpoint director" +
         (other_hosts.size() == 1 ? "y" : "ies") + " written from other hosts (their writers cannot be checked from here): " +
         names(other_hosts) + "\n";
  return s;
}

std::string checkpoint_dir(const std::string& run_dir, int64_t step) {
  return (fs::path(run_dir) / "checkpoints" / step_dir_name(step)).string();
}

void begin_checkpoint_dir(const std::string& temp_dir) {
  std::error_code ec;
  fs::remove_all(temp_dir, ec);  // a leftover of a crashed save under the same pid
  fs::create_directories(temp_dir, ec);
  if (ec) throw Error(temp_dir + ": cannot create: " + ec.message());
}

std::string commit_checkpoint_dir(const std::string& run_dir, const std::string& temp_dir, int64_t step,
                                  int keep_last) {
  fsync_path(temp_dir, true);
  const fs::path root = fs::path(run_dir) / "checkpoints";
  const fs::path final_dir = checkpoint_dir(run_dir, step);
  // Replace an older checkpoint of the same step (a rerun) only after the new one is complete.
  std::error_code ec;
  if (fs::exists(final_dir)) fs::remove_all(final_dir, ec);
  fs::rename(temp_dir, final_dir, ec);
  if (ec) throw Error(final_dir.string() + ": cannot rename checkpoint into place: " + ec.message());
  fsync_path(root.string(), true);
  if (keep_last > 0) {
    const std::vector<std::string> all = list_checkpoints(run_dir);
    for (size_t i = static_cast<size_t>(keep_last); i < all.size(); ++i) fs::remove_all(all[i], ec);
  }
  return final_dir.string();
}

std::string save_checkpoint(const std::string& run_dir, const Model& model, const AdamW& opt,
                            const CheckpointState& state, int keep_last,
                            const std::function<void(const std::string&)>& after_file) {
  const fs::path tmp_dir = checkpoint_temp_dir(run_dir, state.step);
  begin_checkpoint_dir(tmp_dir.string());

  const ParamLayout& layout = model.layout();
  {
    SafetensorsWriter w;
    for (const ParamInfo& p : layout.params) w.add_f32(p.name, p.shape, model.params() + p.offset);
    w.set_metadata("format", "teddy-checkpoint");
    w.set_metadata("model_config", model_config_to_json(model.config()));
    w.write((tmp_dir / kModelFile).string());
    if (after_file) after_file(kModelFile);
  }
  {
    SafetensorsWriter w;
    const int64_t n = static_cast<int64_t>(opt.size());
    w.add_f32("adamw.m", {n}, opt.m());
    w.add_f32("adamw.v", {n}, opt.v());
    w.set_metadata("adamw_t", std::to_string(opt.t()));
    w.write((tmp_dir / kOptimizerFile).string());
    if (after_file) after_file(kOptimizerFile);
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
  write_durable((tmp_dir / kStateFile).string(), j.dump(2) + "\n");
  if (after_file) after_file(kStateFile);
  return commit_checkpoint_dir(run_dir, tmp_dir.string(), state.step, keep_last);
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  const fs::path root = fs::path(run_dir) / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return {};
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string n = e.path().filename().string();
    if (!e.is_directory() || n.rfind("step_", 0) != 0 || n.find(".tmp") != std::string::npos) continue;
    const std::string digits = n.substr(5);
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
    found.emplace_back(std::stoll(digits), e.path().string());
  }
  std::sort(found.begin(), found.end(), [](auto& a, auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

namespace {

// inspect_checkpoint_part, keeping the sharded manifest.
VerifiedCheckpoint inspect(const std::string& dir, int part, int parts) {
  VerifiedCheckpoint out;
  if (is_sharded_checkpoint(dir)) {
    auto man = std::make_shared<ShardedManifest>(read_shard_manifest(dir));
    verify_shards(dir, *man, part, parts);
    out.info = checkpoint_info(dir, *man);
    out.manifest = std::move(man);
    return out;
  }
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

}  // namespace

CheckpointInfo inspect_checkpoint(const std::string& dir) { return inspect(dir, 0, 1).info; }

CheckpointInfo inspect_checkpoint_part(const std::string& dir, int part, int parts) {
  return inspect(dir, part, parts).info;
}

VerifiedCheckpoint verify_checkpoint(const std::string& dir) { return inspect(dir, 0, 1); }

std::optional<VerifiedCheckpoint> latest_verified_checkpoint(const std::string& run_dir,
                                                             std::vector<std::string>* skipped) {
  for (const std::string& d : list_checkpoints(run_dir)) {
    try {
      return verify_checkpoint(d);
    } catch (const Error& e) {
      if (skipped) skipped->push_back(d + ": " + e.what());
    }
  }
  return std::nullopt;
}

std::optional<std::string> latest_intact_checkpoint(const std::string& run_dir, std::vector<std::string>* skipped) {
  if (auto c = latest_verified_checkpoint(run_dir, skipped)) return c->info.dir;
  return std::nullopt;
}

CheckpointInfo load_checkpoint(const std::string& dir, Model& model, AdamW* opt) {
  return load_checkpoint(verify_checkpoint(dir), model, opt);
}

CheckpointInfo load_checkpoint(const VerifiedCheckpoint& checkpoint, Model& model, AdamW* opt) {
  const std::string& dir = checkpoint.info.dir;
  const CheckpointInfo& info = checkpoint.info;
  if (checkpoint.manifest) {
    const ShardedManifest& man = *checkpoint.manifest;
    check_shard_manifest_fits(dir, man, model);
    std::vector<float> m, v;
    if (opt) {
      m.resize(man.flat_size);
      v.resize(man.flat_size);
    }
    read_shard_range(dir, man, 0, man.flat_size, model.params(), opt ? m.data() : nullptr, opt ? v.data() : nullptr);
    if (opt) opt->set_state(man.optimizer_t, m.data(), v.data());
    return info;
  }
  const std::string diff = config_difference(model.config(), info.model_config);
  if (!diff.empty()) throw ConfigError(dir + ": checkpoint is from an incompatible model config: " + diff);
  const SafetensorsFile mf = SafetensorsFile::open((fs::path(dir) / kModelFile).string());
  for (const ParamInfo& p : model.layout().params) {
    const SafeTensor* t = mf.find(p.name);
    if (!t) throw FormatError(mf.path() + ": tensor " + p.name + " missing");
    if (t->shape != p.shape) throw FormatError(mf.path() + ": tensor " + p.name + " has the wrong shape");
    mf.copy_f32(p.name, model.params() + p.offset, p.numel);
  }
  if (opt) {
    const SafetensorsFile of = SafetensorsFile::open((fs::path(dir) / kOptimizerFile).string());
    const std::vector<float> m = of.to_f32("adamw.m"), v = of.to_f32("adamw.v");
    if (m.size() != opt->size() || v.size() != opt->size())
      throw FormatError(of.path() + ": optimizer state has " + std::to_string(m.size()) + " floats, expected " +
                        std::to_string(opt->size()));
    opt->set_state(info.optimizer_t, m.data(), v.data());
  }
  return info;
}

std::string resolve_checkpoint_path(const std::string& path) {
  if (fs::exists(fs::path(path) / kStateFile) || fs::exists(fs::path(path) / kShardManifestFile)) return path;
  std::vector<std::string> skipped;
  if (auto latest = latest_intact_checkpoint(path, &skipped)) return *latest;
  throw Error(no_intact_checkpoint_message(path, skipped));
}

VerifiedCheckpoint resolve_verified_checkpoint(const std::string& path) {
  if (fs::exists(fs::path(path) / kStateFile) || fs::exists(fs::path(path) / kShardManifestFile))
    return verify_checkpoint(path);
  std::vector<std::string> skipped;
  if (auto latest = latest_verified_checkpoint(path, &skipped)) return std::move(*latest);
  throw Error(no_intact_checkpoint_message(path, skipped));
}

}  // namespace teddy
