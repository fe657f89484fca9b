#include "teddy/data/loader.h"

#include <nlohmann/json.hpp>

#include "teddy/core/error.h"

namespace teddy {

namespace {

// SplitMix64 finaliser: a good 64-bit mixer, so (seed, step, row) -> independent bits.
uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t row_key(uint64_t seed, uint64_t step, uint64_t row) { return mix64(mix64(mix64(seed) ^ step) ^ row); }

// Uniform integer in [0, n) from 64 random bits (Lemire's multiply; bias < n / 2^64).
uint64_t below(uint64_t bits, uint64_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(bits) * n) >> 64);
}

void check_dims(int rank, int world, int grad_accum = 1) {
  if (grad_accum < 1) throw ConfigError("grad_accum must be >= 1 (got " + std::to_string(grad_accum) + ")");
  if (world < 1) throw ConfigError("data-parallel world size must be >= 1 (got " + std::to_string(world) + ")");
  if (rank < 0 || rank >= world)
    throw ConfigError("data-parallel rank must be in [0, " + std::to_string(world) + ") (got " + std::to_string(rank) + ")");
}

void check_shape(int B, int T) {
  if (B <= 0 || T <= 0)
    throw ConfigError("batch shape must be positive (got B=" + std::to_string(B) + ", T=" + std::to_string(T) + ")");
}

void split_window(const int32_t* window, int T, int32_t* tokens, int32_t* targets) {
  for (int t = 0; t < T; ++t) {
    tokens[t] = window[t];
    targets[t] = window[t + 1];
  }
}

}  // namespace

std::string LoaderState::to_json() const {
  nlohmann::json j = {{"version", 2},     {"seed", seed},       {"step", step},
                      {"micro", micro},   {"sources", sources}, {"tokens_seen", tokens_seen}};
  return j.dump();
}

LoaderState LoaderState::from_json(const std::string& text) {
  try {
    const auto j = nlohmann::json::parse(text);
    LoaderState s;
    s.seed = j.at("seed").get<uint64_t>();
    s.step = j.at("step").get<uint64_t>();
    s.legacy_step = !j.contains("version");
    if (!s.legacy_step) {
      if (j.at("version").get<int>() != 2) throw FormatError("loader state: unknown version " + j.at("version").dump());
      s.micro = j.at("micro").get<uint64_t>();
    }
    s.sources = j.at("sources").get<std::vector<std::string>>();
    s.tokens_seen = j.at("tokens_seen").get<std::vector<uint64_t>>();
    if (s.sources.size() != s.tokens_seen.size())
      throw FormatError("loader state: sources and tokens_seen differ in length");
    return s;
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(std::string("loader state: ") + e.what());
  }
}

DataLoader::DataLoader(const std::string& dir, const Mixture& mixture, const LoaderOptions& opt)
    : dir_(dir), manifest_(Manifest::load(dir)), opt_(opt) {
  check_dims(opt.rank, opt.world, opt.grad_accum);
  if (mixture.empty()) {
    std::vector<std::pair<std::string, double>> w;
    for (const auto& s : manifest_.sources) w.emplace_back(s.name, s.weight);
    mixture_ = Mixture(std::move(w));
  } else {
    mixture_ = mixture;
  }
  for (size_t i = 0; i < mixture_.size(); ++i) {
    const SourceInfo& src = manifest_.source(mixture_.name(i));
    streams_.emplace_back(dir, src.train_shards, manifest_.tokenizer.vocab_size, opt.verify_checksums);
  }
  state_.seed = opt.seed;
  state_.sources = mixture_.names();
  state_.tokens_seen.assign(mixture_.size(), 0);
}

size_t DataLoader::row_source(uint64_t step, uint64_t row) const {
  return mixture_.sample(mix64(row_key(state_.seed, step, row) ^ 1));
}

void DataLoader::next_batch(int32_t* tokens, int32_t* targets, int B, int T) {
  check_shape(B, T);
  for (size_t i = 0; i < streams_.size(); ++i)
    if (streams_[i].size() < static_cast<uint64_t>(T) + 1)
      throw Error("source \"" + mixture_.name(i) + "\" has " + std::to_string(streams_[i].size()) +
                  " training tokens, fewer than one window of T+1 = " + std::to_string(T + 1));
  const uint64_t step = state_.step, A = static_cast<uint64_t>(opt_.grad_accum), j = state_.micro;
  const uint64_t first = static_cast<uint64_t>(opt_.rank) * A * B + j * B;
  std::vector<int32_t> window(static_cast<size_t>(T) + 1);
  for (int b = 0; b < B; ++b) {
    const uint64_t row = first + b;
    const uint64_t key = row_key(state_.seed, step, row);
    const size_t s = mixture_.sample(mix64(key ^ 1));
    const uint64_t start = below(mix64(key ^ 2), streams_[s].size() - T);  // windows [start, start+T]
    streams_[s].read(start, static_cast<uint64_t>(T) + 1, window.data());
    split_window(window.data(), T, tokens + static_cast<size_t>(b) * T, targets + static_cast<size_t>(b) * T);
  }
  // Every rank counts micro-batch j of every rank (only the source draw, no reads), so
  // the per-source totals agree across ranks without communication.
  for (uint64_t r = 0; r < static_cast<uint64_t>(opt_.world); ++r)
    for (uint64_t b = 0; b < static_cast<uint64_t>(B); ++b) state_.tokens_seen[row_source(step, r * A * B + j * B + b)] += T;
  if (++state_.micro == A) {
    state_.micro = 0;
    state_.step++;
  }
}

void DataLoader::restore(const LoaderState& s) {
  if (s.sources != mixture_.names())
    throw ConfigError("loader state: the checkpoint's mixture sources (" + std::to_string(s.sources.size()) +
                      ") differ from this run's mixture " + mixture_.to_string());
  state_ = s;
  if (s.legacy_step) {  // counted micro-batches: checkpoints fall on step boundaries
    const uint64_t A = static_cast<uint64_t>(opt_.grad_accum);
    state_.step = s.step / A;
    state_.micro = s.step % A;
    state_.legacy_step = false;
  }
  if (state_.micro >= static_cast<uint64_t>(opt_.grad_accum))
    throw ConfigError("loader state: micro-batch " + std::to_string(state_.micro) + " of a step, but grad_accum is " +
                      std::to_string(opt_.grad_accum));
}

ValidationLoader::ValidationLoader(const std::string& dir, const LoaderOptions& opt,
                                   const std::vector<std::string>& sources)
    : opt_(opt) {
  check_dims(opt.rank, opt.world);
  const Manifest m = Manifest::load(dir);
  if (sources.empty()) {
    for (const auto& s : m.sources) names_.push_back(s.name);
  } else {
    names_ = sources;
  }
  for (const auto& n : names_)
    streams_.emplace_back(dir, m.source(n).val_shards, m.tokenizer.vocab_size, opt.verify_checksums);
}

uint64_t ValidationLoader::windows(int T) const {
  check_shape(1, T);
  uint64_t total = 0;
  for (const auto& s : streams_) total += s.size() > static_cast<uint64_t>(T) ? (s.size() - 1) / T : 0;
  return total / static_cast<uint64_t>(opt_.world);
}

int ValidationLoader::next_batch(int32_t* tokens, int32_t* targets, int B, int T, int* row_source) {
  check_shape(B, T);
  const uint64_t mine = windows(T);
  std::vector<int32_t> window(static_cast<size_t>(T) + 1);
  int filled = 0;
  for (; filled < B && next_ < mine; ++filled, ++next_) {
    uint64_t g = next_ * static_cast<uint64_t>(opt_.world) + static_cast<uint64_t>(opt_.rank);
    size_t s = 0;
    for (;; ++s) {  // find the source holding global window g
      const uint64_t n = streams_[s].size() > static_cast<uint64_t>(T) ? (streams_[s].size() - 1) / T : 0;
      if (g < n) break;
      g -= n;
    }
    streams_[s].read(g * T, static_cast<uint64_t>(T) + 1, window.data());
    split_window(window.data(), T, tokens + static_cast<size_t>(filled) * T, targets + static_cast<size_t>(filled) * T);
    if (row_source) row_source[filled] = static_cast<int>(s);
  }
  return filled;
}

}  // namespace teddy
