#include "teddy/data/prepare.h"

#include <omp.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <new>
#include <set>

#include "teddy/core/error.h"
#include "teddy/core/memory_usage.h"
#include "teddy/io/atomic_file.h"
#include "teddy/data/shard.h"
#include "teddy/tokenizer/tokenizer.h"
#include "teddy/data/dataset_tokenizer.h"

namespace fs = std::filesystem;

namespace teddy {

namespace {

// Buffers tokens of one split and cuts them into shards of exactly shard_tokens.
class ShardSink {
 public:
  ShardSink(fs::path dir, std::string rel_dir, std::string split, uint64_t shard_tokens, int64_t vocab)
      : dir_(std::move(dir)), rel_dir_(std::move(rel_dir)), split_(std::move(split)),
        shard_tokens_(shard_tokens), vocab_(vocab) {}

  void append(const std::vector<uint32_t>& toks) {
    buf_.insert(buf_.end(), toks.begin(), toks.end());
    total_ += toks.size();
    while (buf_.size() >= shard_tokens_) {
      write(std::span<const uint32_t>(buf_.data(), shard_tokens_));
      buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(shard_tokens_));
    }
  }
  void finish() {
    if (!buf_.empty()) write(buf_);
    buf_.clear();
  }
  uint64_t total() const { return total_; }
  std::vector<ShardInfo>& shards() { return shards_; }

 private:
  void write(std::span<const uint32_t> toks) {
    char name[32];
    std::snprintf(name, sizeof name, "%s_%03zu.bin", split_.c_str(), shards_.size());
    const ShardHeader h = write_shard((dir_ / name).string(), toks, vocab_);
    shards_.push_back(ShardInfo{rel_dir_ + "/" + name, h.token_count, h.checksum});
  }
  fs::path dir_;
  std::string rel_dir_, split_;
  uint64_t shard_tokens_;
  int64_t vocab_;
  std::vector<uint32_t> buf_;
  uint64_t total_ = 0;
  std::vector<ShardInfo> shards_;
};

struct PendingDoc {
  std::string text;
  bool val = false;
};

// Tokenizes one source into <stage>/<name>/, in parallel over batches of documents.
SourceInfo prepare_source(const PrepareConfig& cfg, const SourceSpec& spec, const Tokenizer& tok,
                          const fs::path& stage) {
  SourceInfo info;
  info.name = spec.name;
  info.kind = std::string(source_kind_name(spec.kind));
  info.paths = spec.paths;
  info.extensions = spec.extensions;
  info.text_field = spec.kind == SourceKind::jsonl ? spec.text_field : "";
  info.separator = spec.separator;
  info.weight = spec.weight;

  const fs::path dir = stage / spec.name;
  fs::create_directories(dir);
  const int64_t vocab = tok.vocab_size();
  const uint32_t eot = tok.eot_id();
  ShardSink train(dir, spec.name, "train", cfg.shard_tokens, vocab);
  ShardSink val(dir, spec.name, "val", cfg.shard_tokens, vocab);

  std::vector<PendingDoc> batch;
  uint64_t batch_bytes = 0;
  std::vector<std::vector<uint32_t>> encoded;
  auto flush = [&]() {
    encoded.assign(batch.size(), {});
    const int n = static_cast<int>(batch.size());
    const int threads = cfg.threads > 0 ? cfg.threads : omp_get_max_threads();
    // Exceptions must not escape an OpenMP region: keep the first one and rethrow.
    // A big document (a whole-file text source) would serialise the round on one
    // thread, so it is split inside the tokenizer instead (same ids either way).
    constexpr size_t kBigDocument = size_t{1} << 20;
    for (int i = 0; i < n; ++i)
      if (batch[i].text.size() >= kBigDocument) {
        encoded[i] = tok.encode_parallel(batch[i].text, threads);
        encoded[i].push_back(eot);
      }
    std::exception_ptr err;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int i = 0; i < n; ++i) {
      if (batch[i].text.size() >= kBigDocument) continue;
      try {
        encoded[i] = tok.encode(batch[i].text);
        encoded[i].push_back(eot);
      } catch (...) {
#pragma omp critical(teddy_prepare_error)
        if (!err) err = std::current_exception();
      }
    }
    if (err) std::rethrow_exception(err);
    // Appending in document order keeps the shards independent of thread timing.
    for (int i = 0; i < n; ++i) {
      if (batch[i].val) {
        val.append(encoded[i]);
        info.val_documents++;
      } else {
        train.append(encoded[i]);
        info.train_documents++;
      }
    }
    batch.clear();
    batch_bytes = 0;
  };

  const SourceReadStats st = read_source(spec, cfg.skip_bad, [&](const Document& d) {
    const uint64_t h = XXH3_64bits_withSeed(d.text.data(), d.text.size(), cfg.split_seed);
    const bool is_val = static_cast<double>(h >> 11) * 0x1.0p-53 < cfg.val_fraction;
    batch.push_back(PendingDoc{std::string(d.text), is_val});
    batch_bytes += d.text.size();
    if (batch_bytes >= cfg.batch_bytes) flush();
  });
  flush();
  train.finish();
  val.finish();

  info.files = st.files;
  info.documents = st.documents;
  info.skipped = st.skipped;
  info.skipped_examples = st.skipped_examples;
  info.bytes = st.bytes;
  info.train_tokens = train.total();
  info.val_tokens = val.total();
  info.train_shards = std::move(train.shards());
  info.val_shards = std::move(val.shards());
  if (info.train_tokens == 0)
    throw Error("source \"" + spec.name + "\": all " + std::to_string(info.documents) +
                " document(s) landed in the validation split; lower val_fraction or add data");
  return info;
}

// What is at `out` decides whether we may replace it: nothing, an empty directory or
// (with overwrite) a previous dataset. Anything else is refused so no data is lost.
void check_output_dir(const PrepareConfig& cfg) {
  const fs::path out(cfg.out_dir);
  std::error_code ec;
  if (!fs::exists(out, ec)) return;
  if (!fs::is_directory(out)) throw ConfigError("out: " + cfg.out_dir + " exists and is not a directory");
  if (fs::is_empty(out, ec)) return;
  if (!fs::exists(out / "manifest.json"))
    throw ConfigError("out: " + cfg.out_dir + " is a non-empty directory without a dataset manifest; refusing to replace it");
  if (!cfg.overwrite)
    throw ConfigError("out: " + cfg.out_dir + " already holds a dataset; pass --force (overwrite = true) to replace it");
}

fs::path make_temp_dir(const fs::path& next_to, const char* tag) {
  std::string tmpl = next_to.string() + tag + "XXXXXX";
  if (!::mkdtemp(tmpl.data())) throw Error(next_to.string() + ": cannot create a staging directory next to it");
  ::chmod(tmpl.c_str(), 0755);  // mkdtemp makes 0700; the dataset should be as readable as a mkdir'd one
  return tmpl;
}

// Removes a directory tree on scope exit unless released.
struct TreeGuard {
  fs::path path;
  ~TreeGuard() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

}  // namespace

Tokenizer load_tokenizer_by_name(const std::string& name) {
  return name == "bytes" ? Tokenizer::bytes() : Tokenizer::load(name);
}

void validate_prepare_config(const PrepareConfig& cfg) {
  if (cfg.sources.empty()) throw ConfigError("source: at least one source is required");
  if (cfg.out_dir.empty()) throw ConfigError("out: an output directory is required");
  if (!(cfg.val_fraction >= 0 && cfg.val_fraction < 1))
    throw ConfigError("val_fraction: must be in [0, 1) (got " + format_number(cfg.val_fraction) + ")");
  if (cfg.shard_tokens == 0) throw ConfigError("shard_tokens: must be > 0");
  if (cfg.tokenizer.empty()) throw ConfigError("tokenizer: a tokenizer file or \"bytes\" is required");
  std::set<std::string> names;
  for (const auto& s : cfg.sources) {
    validate_source_spec(s);
    if (!names.insert(s.name).second) throw ConfigError("source \"" + s.name + "\": name used twice");
  }
}

Manifest prepare_dataset(const PrepareConfig& cfg, const PrepareProgress& progress) {
  validate_prepare_config(cfg);
  return prepare_dataset(cfg, load_tokenizer_by_name(cfg.tokenizer), progress);
}

namespace {

Manifest prepare_dataset_impl(const PrepareConfig& cfg, const Tokenizer& tok, const PrepareProgress& progress) {
  validate_prepare_config(cfg);

  check_output_dir(cfg);
  // Fail on a missing path before any tokenizing.
  for (const auto& s : cfg.sources) list_source_files(s);

  Manifest m;
  m.tokenizer.path = cfg.tokenizer;
  m.tokenizer.checksum = cfg.tokenizer == "bytes" ? "" : tokenizer_file_checksum(cfg.tokenizer);
  m.tokenizer.vocab_size = tok.vocab_size();
  m.tokenizer.eot_id = tok.eot_id();
  m.token_bytes = shard_token_bytes(tok.vocab_size());
  m.val_fraction = cfg.val_fraction;
  m.split_seed = cfg.split_seed;

  fs::path out = fs::absolute(cfg.out_dir).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();  // "dir/" -> "dir"
  fs::create_directories(out.parent_path());
  TreeGuard stage{make_temp_dir(out, ".staging.")};
  for (const auto& spec : cfg.sources) {
    try {
      m.sources.push_back(prepare_source(cfg, spec, tok, stage.path));
    } catch (const std::bad_alloc&) {
      // Named here, where the source is known; nothing was written outside the staging directory.
      const MemoryBudget b = available_memory();
      throw Error("data prepare: out of memory while tokenizing source \"" + spec.name + "\" (" +
                  (std::isfinite(b.bytes) ? human_bytes(b.bytes) + " available now, " + b.source : std::string("available memory unknown")) +
                  "; each round holds up to " + human_bytes(static_cast<double>(cfg.batch_bytes)) +
                  " of text and its tokens, and a whole-file document at once): use fewer threads, split very large "
                  "files or documents, or free memory; the output directory was left as it was");
    }
    if (progress) progress(m.sources.back());
  }
  if (cfg.tokenizer != "bytes") {
    // The dataset keeps its tokenizer (data/dataset_tokenizer.h): found wherever the
    // dataset goes, and the copy's checksum is the one recorded.
    const fs::path rel = fs::path("tokenizer") / fs::path(cfg.tokenizer).filename();
    fs::create_directories(stage.path / "tokenizer");
    fs::copy_file(cfg.tokenizer, stage.path / rel);
    m.tokenizer.file = rel.string();
    if (tokenizer_file_checksum((stage.path / rel).string()) != m.tokenizer.checksum)
      throw Error(cfg.tokenizer + ": the tokenizer file changed while the dataset was prepared; prepare it again");
  }
  m.save(stage.path.string());

  // Swap into place: an old dataset (or empty dir) moves aside, the new one moves in.
  std::error_code ec;
  TreeGuard old;
  if (fs::exists(out, ec)) {
    old.path = make_temp_dir(out, ".old.");
    fs::rename(out, old.path);  // replaces the empty temp dir
  }
  try {
    fs::rename(stage.path, out);
  } catch (...) {
    if (!old.path.empty()) fs::rename(old.path, out, ec);  // put the old dataset back
    old.path.clear();
    throw;
  }
  stage.path.clear();
  fsync_directory(out.parent_path().string());
  return m;
}

}  // namespace

Manifest prepare_dataset(const PrepareConfig& cfg, const Tokenizer& tok, const PrepareProgress& progress) {
  try {
    return prepare_dataset_impl(cfg, tok, progress);
  } catch (const fs::filesystem_error& e) {
    throw Error(std::string("data prepare: ") + e.what());
  } catch (const std::bad_alloc&) {  // outside a source: the tokenizer, the file list
    const MemoryBudget b = available_memory();
    throw Error("data prepare: out of memory (" +
                (std::isfinite(b.bytes) ? human_bytes(b.bytes) + " available now, " + b.source : std::string("available memory unknown")) +
                "); the output directory was left as it was");
  }
}

}  // namespace teddy
