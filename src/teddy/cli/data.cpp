// `teddy data prepare` and `teddy data inspect`: the command-line face of data/.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "teddy/cli/commands.h"
#include "teddy/core/error.h"
#include "teddy/data/data_config.h"
#include "teddy/data/dataset_tokenizer.h"
#include "teddy/data/manifest.h"
#include "teddy/data/prepare.h"
#include "teddy/data/token_stream.h"

namespace teddy::cli {

namespace {

struct PrepareArgs {
  std::string config, tokenizer, out, field = "text", name, separator;
  std::vector<std::string> text, code, jsonl, ext;
  double val_fraction = -1;  // -1: keep the config's (or the default)
  int64_t shard_tokens = 0, split_seed = -1;
  int threads = 0;
  bool skip_bad = false, force = false;
};

std::string human(uint64_t n) {
  char buf[32];
  if (n >= 1'000'000'000ull) std::snprintf(buf, sizeof buf, "%.2fG", n / 1e9);
  else if (n >= 1'000'000ull) std::snprintf(buf, sizeof buf, "%.1fM", n / 1e6);
  else if (n >= 10'000ull) std::snprintf(buf, sizeof buf, "%.1fk", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(n));
  return buf;
}

PrepareConfig build_config(const PrepareArgs& a) {
  PrepareConfig cfg;
  if (!a.config.empty()) cfg = load_prepare_config(a.config);
  // One source per kind given on the command line; --name renames it when there is one.
  std::vector<SourceSpec> extra;
  auto add = [&](SourceKind kind, const std::vector<std::string>& paths) {
    if (paths.empty()) return;
    SourceSpec s;
    s.kind = kind;
    s.name = std::string(source_kind_name(kind));
    s.paths = paths;
    if (kind == SourceKind::code) s.extensions = a.ext;
    if (kind == SourceKind::jsonl) s.text_field = a.field;
    if (kind != SourceKind::jsonl) s.separator = a.separator;
    extra.push_back(std::move(s));
  };
  add(SourceKind::text, a.text);
  add(SourceKind::code, a.code);
  add(SourceKind::jsonl, a.jsonl);
  if (!a.name.empty()) {
    if (extra.size() != 1) throw ConfigError("--name: names the one source given by --text, --code or --jsonl");
    extra[0].name = a.name;
  }
  for (auto& e : extra)
    for (auto& x : e.extensions)
      if (!x.empty() && x[0] != '.') x = "." + x;
  cfg.sources.insert(cfg.sources.end(), extra.begin(), extra.end());
  if (!a.tokenizer.empty()) cfg.tokenizer = a.tokenizer;
  if (!a.out.empty()) cfg.out_dir = a.out;
  if (a.val_fraction >= 0) cfg.val_fraction = a.val_fraction;
  if (a.shard_tokens > 0) cfg.shard_tokens = static_cast<uint64_t>(a.shard_tokens);
  if (a.split_seed >= 0) cfg.split_seed = static_cast<uint64_t>(a.split_seed);
  if (a.threads > 0) cfg.threads = a.threads;
  cfg.skip_bad = cfg.skip_bad || a.skip_bad;
  cfg.overwrite = a.force;
  if (cfg.sources.empty()) throw ConfigError("data prepare: give --config FILE or at least one of --text, --code, --jsonl");
  if (cfg.out_dir.empty()) throw ConfigError("data prepare: --out DIR (or out = \"...\" in the config) is required");
  validate_prepare_config(cfg);
  return cfg;
}

int run_prepare(const PrepareArgs& a) {
  const PrepareConfig cfg = build_config(a);
  const auto t0 = std::chrono::steady_clock::now();
  std::printf("teddy data prepare: %zu source(s), tokenizer %s, val_fraction %g -> %s\n", cfg.sources.size(),
              cfg.tokenizer.c_str(), cfg.val_fraction, cfg.out_dir.c_str());
  std::fflush(stdout);
  const Manifest m = prepare_dataset(cfg, [](const SourceInfo& s) {
    std::printf("  %-14s %-5s %6llu files %8llu docs  train %8s tokens (%zu shards)  val %8s tokens", s.name.c_str(),
                s.kind.c_str(), static_cast<unsigned long long>(s.files), static_cast<unsigned long long>(s.documents),
                human(s.train_tokens).c_str(), s.train_shards.size(), human(s.val_tokens).c_str());
    if (s.skipped) std::printf("  (%llu bad lines skipped)", static_cast<unsigned long long>(s.skipped));
    std::printf("\n");
    for (const auto& e : s.skipped_examples) std::printf("      skipped %s\n", e.c_str());
    std::fflush(stdout);
  });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote %s: %s train + %s val tokens (vocab %lld, uint%u) in %.1f s\n", cfg.out_dir.c_str(),
              human(m.train_tokens()).c_str(), human(m.val_tokens()).c_str(),
              static_cast<long long>(m.tokenizer.vocab_size), m.token_bytes * 8, secs);
  return 0;
}

int run_inspect(const std::string& dir, bool verify) {
  const Manifest m = Manifest::load(dir);
  std::printf("dataset %s\n", dir.c_str());
  // The tokenizer is checked like the shards: its checksum and vocabulary against the manifest.
  load_dataset_tokenizer(dir, m);
  const std::string tok_path = dataset_tokenizer_path(dir, m);
  std::printf("  tokenizer %s (vocab %lld, eot %u%s%s; %s), tokens stored as uint%u\n", tok_path.c_str(),
              static_cast<long long>(m.tokenizer.vocab_size), m.tokenizer.eot_id,
              m.tokenizer.checksum.empty() ? "" : ", xxh3 ", m.tokenizer.checksum.c_str(),
              tok_path == "bytes"        ? "built in"
              : m.tokenizer.file.empty() ? "verified; found by the path prepare was given: prepare again to keep a copy"
                                         : "verified, the dataset's copy",
              m.token_bytes * 8);
  std::printf("  val_fraction %g, split_seed %llu\n", m.val_fraction, static_cast<unsigned long long>(m.split_seed));
  double wsum = 0;
  for (const auto& s : m.sources) wsum += s.weight;
  size_t shards = 0;
  for (const auto& s : m.sources) {
    std::printf("  %-14s %-5s weight %.3g  %llu docs (%llu skipped)  train %s tokens / %zu shards  val %s tokens / %zu shards\n",
                s.name.c_str(), s.kind.c_str(), s.weight / wsum, static_cast<unsigned long long>(s.documents),
                static_cast<unsigned long long>(s.skipped), human(s.train_tokens).c_str(), s.train_shards.size(),
                human(s.val_tokens).c_str(), s.val_shards.size());
    // Opening a stream checks every header against the manifest (and rehashes with verify).
    TokenStream(dir, s.train_shards, m.tokenizer.vocab_size, verify);
    TokenStream(dir, s.val_shards, m.tokenizer.vocab_size, verify);
    shards += s.train_shards.size() + s.val_shards.size();
  }
  std::printf("  total: train %s tokens, val %s tokens; %zu shards %s\n", human(m.train_tokens()).c_str(),
              human(m.val_tokens()).c_str(), shards, verify ? "verified (headers and checksums)" : "headers checked");
  return 0;
}

}  // namespace

void register_data(CLI::App& app, Run& run) {
  CLI::App* data = app.add_subcommand("data", "Prepare and inspect tokenized datasets");
  data->require_subcommand(1);

  auto a = std::make_shared<PrepareArgs>();
  CLI::App* prep = data->add_subcommand("prepare", "Tokenize text, code and JSONL sources into shards");
  prep->add_option("--config", a->config, "TOML file listing sources (see docs/DATA.md)");
  prep->add_option("--text", a->text, "Text file or directory (repeatable); one file = one document");
  prep->add_option("--code", a->code, "Directory of source code (repeatable), filtered by --ext");
  prep->add_option("--ext", a->ext, "Extensions for --code, e.g. .py,.c")->delimiter(',');
  prep->add_option("--jsonl", a->jsonl, "JSONL file or directory (repeatable)");
  prep->add_option("--field", a->field, "JSONL field holding the text")->capture_default_str();
  prep->add_option("--separator", a->separator, "Line that separates documents in --text/--code files (e.g. %)");
  prep->add_option("--name", a->name, "Name of the source given by --text/--code/--jsonl");
  prep->add_option("--tokenizer", a->tokenizer, "Tokenizer file, or 'bytes' (default)");
  prep->add_option("--out", a->out, "Output dataset directory");
  prep->add_option("--val-fraction", a->val_fraction, "Fraction of documents held out for validation (default 0.01)")
      ->check(CLI::Range(0.0, 1.0));
  prep->add_option("--shard-tokens", a->shard_tokens, "Tokens per shard file")->check(CLI::PositiveNumber);
  prep->add_option("--split-seed", a->split_seed, "Seed of the train/validation document hash")->check(CLI::NonNegativeNumber);
  prep->add_option("--threads", a->threads, "Tokenizer threads (default: OpenMP's)")->check(CLI::NonNegativeNumber);
  prep->add_flag("--skip-bad", a->skip_bad, "Count and skip bad JSONL lines instead of failing");
  prep->add_flag("--force", a->force, "Replace an existing dataset in --out");
  prep->callback([a, &run] { run = [a] { return run_prepare(*a); }; });

  auto dir = std::make_shared<std::string>();
  auto no_verify = std::make_shared<bool>(false);
  CLI::App* insp = data->add_subcommand("inspect", "Summarise a prepared dataset and verify its shards");
  insp->add_option("dir", *dir, "Dataset directory (holds manifest.json)")->required();
  insp->add_flag("--no-verify", *no_verify, "Check headers only, skip rehashing the tokens");
  insp->callback([dir, no_verify, &run] { run = [dir, no_verify] { return run_inspect(*dir, !*no_verify); }; });
}

}  // namespace teddy::cli
