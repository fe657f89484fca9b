#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "data/data_test_util.h"
#include "teddy/core/error.h"
#include "teddy/data/data_config.h"
#include "teddy/data/dataset_tokenizer.h"
#include "teddy/data/loader.h"
#include "teddy/data/manifest.h"
#include "teddy/data/prepare.h"
#include "teddy/data/shard.h"
#include "teddy/tokenizer/bpe_trainer.h"
#include "teddy/tokenizer/tokenizer.h"
#include "teddy/train/pretrainer.h"

using namespace teddy;
using namespace teddy::test;
namespace fs = std::filesystem;

namespace {

// Documents of one split, recovered from the shards: the byte tokenizer maps byte b to
// id b, and every document ends with <|endoftext|> (256).
std::vector<std::string> split_docs(const std::string& dir, const std::vector<ShardInfo>& shards) {
  std::vector<std::string> docs;
  std::string cur;
  for (const auto& s : shards) {
    ShardReader r(dir + "/" + s.path);
    for (uint64_t i = 0; i < r.size(); ++i) {
      const uint32_t t = r.at(i);
      if (t == 256) {
        docs.push_back(cur);
        cur.clear();
      } else {
        cur += static_cast<char>(t);
      }
    }
  }
  EXPECT_TRUE(cur.empty()) << "the last document must end with <|endoftext|>";
  return docs;
}

// Every file under `dir`, recursively, with its bytes: a snapshot to compare against.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = read_bytes(e.path().string());
  return out;
}

class PrepareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_text(dir / "in/prose/a.txt", "The quick brown fox.\n");
    write_text(dir / "in/prose/b.txt", "Jumps over the lazy dog.\n");
    write_text(dir / "in/code/m.py", "def f():\n    return 1\n");
    write_text(dir / "in/code/n.c", "int main(void) { return 0; }\n");
    write_text(dir / "in/code/skip.md", "# not code\n");
    write_text(dir / "in/fortunes/de", "Erster Spruch\n%\nZweiter Spruch \xc3\xa4\n%\n");
    write_text(dir / "in/web.jsonl", "{\"text\": \"web one\"}\n{\"text\": \"web two\"}\n");
    cfg.out_dir = dir / "out";
    cfg.val_fraction = 0;
    cfg.sources = {source("prose", SourceKind::text, {dir / "in/prose"}),
                   source("code", SourceKind::code, {dir / "in/code"}),
                   source("fortune", SourceKind::text, {dir / "in/fortunes/de"}),
                   source("web", SourceKind::jsonl, {dir / "in/web.jsonl"})};
    cfg.sources[1].extensions = {".py", ".c"};
    cfg.sources[2].separator = "%";
  }
  static SourceSpec source(const std::string& name, SourceKind kind, std::vector<std::string> paths) {
    SourceSpec s;
    s.name = name;
    s.kind = kind;
    s.paths = std::move(paths);
    return s;
  }
  ScratchDir dir;
  PrepareConfig cfg;
};

}  // namespace

TEST_F(PrepareTest, WritesShardsAndManifestWithEveryDocument) {
  const Manifest m = prepare_dataset(cfg, Tokenizer::bytes());
  EXPECT_TRUE(fs::exists(dir / "out/manifest.json"));
  const Manifest loaded = Manifest::load(dir / "out");
  EXPECT_EQ(loaded.to_json(), m.to_json());
  EXPECT_EQ(m.tokenizer.path, "bytes");
  EXPECT_EQ(m.tokenizer.vocab_size, 257);
  EXPECT_EQ(m.tokenizer.eot_id, 256u);
  EXPECT_EQ(m.token_bytes, 2u);
  ASSERT_EQ(m.sources.size(), 4u);

  const std::string out = dir / "out";
  EXPECT_EQ(split_docs(out, m.source("prose").train_shards),
            (std::vector<std::string>{"The quick brown fox.\n", "Jumps over the lazy dog.\n"}));
  EXPECT_EQ(split_docs(out, m.source("code").train_shards),
            (std::vector<std::string>{"def f():\n    return 1\n", "int main(void) { return 0; }\n"}));
  EXPECT_EQ(split_docs(out, m.source("fortune").train_shards),
            (std::vector<std::string>{"Erster Spruch\n", "Zweiter Spruch \xc3\xa4\n"}));
  EXPECT_EQ(split_docs(out, m.source("web").train_shards), (std::vector<std::string>{"web one", "web two"}));

  const SourceInfo& p = m.source("prose");
  EXPECT_EQ(p.documents, 2u);
  EXPECT_EQ(p.files, 2u);
  EXPECT_EQ(p.train_tokens, 21u + 25u + 2u);  // bytes plus one <|endoftext|> per document
  EXPECT_EQ(p.val_tokens, 0u);
  EXPECT_EQ(p.train_shards.at(0).path, "prose/train_000.bin");
  EXPECT_EQ(m.source("code").files, 2u);  // skip.md filtered out
  // No staging directories are left next to the output.
  EXPECT_EQ(list_dir(dir.path()), (std::vector<std::string>{"in", "out"}));
}

TEST_F(PrepareTest, ShardSizeLimitSplitsTheStream) {
  std::string big;
  for (int i = 0; i < 50; ++i) big += "line " + std::to_string(i) + " of a longer document\n";
  write_text(dir / "in/big.txt", big);
  cfg.sources = {source("big", SourceKind::text, {dir / "in/big.txt"})};
  cfg.shard_tokens = 100;
  const Manifest m = prepare_dataset(cfg, Tokenizer::bytes());
  const SourceInfo& s = m.source("big");
  ASSERT_EQ(s.train_tokens, big.size() + 1);
  ASSERT_EQ(s.train_shards.size(), (big.size() + 1 + 99) / 100);
  for (size_t i = 0; i + 1 < s.train_shards.size(); ++i) EXPECT_EQ(s.train_shards[i].tokens, 100u);
  EXPECT_EQ(split_docs(dir / "out", s.train_shards), std::vector<std::string>{big});
}

TEST_F(PrepareTest, SplitIsByDocumentHashAndReproducible) {
  std::string jsonl;
  const int n = 2000;
  for (int i = 0; i < n; ++i) jsonl += "{\"text\": \"document number " + std::to_string(i) + "\"}\n";
  write_text(dir / "in/many.jsonl", jsonl);
  cfg.sources = {source("many", SourceKind::jsonl, {dir / "in/many.jsonl"})};
  cfg.val_fraction = 0.2;
  cfg.batch_bytes = 1000;  // many parallel rounds
  const Manifest a = prepare_dataset(cfg, Tokenizer::bytes());
  const SourceInfo& s = a.source("many");
  EXPECT_EQ(s.train_documents + s.val_documents, static_cast<uint64_t>(n));
  const double sigma = std::sqrt(n * 0.2 * 0.8);
  EXPECT_LE(std::abs(static_cast<double>(s.val_documents) - n * 0.2), 4 * sigma) << s.val_documents;

  const auto train = split_docs(dir / "out", s.train_shards), val = split_docs(dir / "out", s.val_shards);
  std::set<std::string> all(train.begin(), train.end());
  for (const auto& d : val) EXPECT_TRUE(all.insert(d).second) << "document in both splits: " << d;
  EXPECT_EQ(all.size(), static_cast<size_t>(n));

  // Same input, different thread count: byte-identical shards.
  cfg.out_dir = dir / "out2";
  cfg.threads = 1;
  const Manifest b = prepare_dataset(cfg, Tokenizer::bytes());
  EXPECT_EQ(b.source("many").train_shards.at(0).checksum, s.train_shards.at(0).checksum);
  EXPECT_EQ(b.source("many").val_shards.at(0).checksum, s.val_shards.at(0).checksum);
}

TEST_F(PrepareTest, FailuresLeaveTheExistingDatasetIntact) {
  prepare_dataset(cfg, Tokenizer::bytes());
  const auto before = snapshot(dir / "out");

  // Without --force an existing dataset is not replaced.
  EXPECT_THROW_WITH(prepare_dataset(cfg, Tokenizer::bytes()), ConfigError, "--force");

  // With --force, a bad JSONL line fails the run (file and line named); nothing changes.
  cfg.overwrite = true;
  write_text(dir / "in/web.jsonl", "{\"text\": \"web one\"}\n{\"txt\": \"typo\"}\n");
  EXPECT_THROW_WITH(prepare_dataset(cfg, Tokenizer::bytes()), FormatError, "web.jsonl:2:");
  EXPECT_EQ(snapshot(dir / "out"), before);
  EXPECT_EQ(list_dir(dir.path()), (std::vector<std::string>{"in", "out"}));

  // A missing input path fails before anything is written.
  cfg.sources.push_back(source("gone", SourceKind::text, {dir / "in/gone.txt"}));
  EXPECT_THROW_WITH(prepare_dataset(cfg, Tokenizer::bytes()), Error, "gone.txt");
  EXPECT_EQ(snapshot(dir / "out"), before);
  cfg.sources.pop_back();

  // --skip-bad counts the bad line, and the forced run replaces the dataset.
  cfg.skip_bad = true;
  const Manifest m = prepare_dataset(cfg, Tokenizer::bytes());
  EXPECT_EQ(m.source("web").skipped, 1u);
  EXPECT_EQ(m.source("web").documents, 1u);
  EXPECT_EQ(Manifest::load(dir / "out").source("web").skipped, 1u);
  EXPECT_EQ(list_dir(dir.path()), (std::vector<std::string>{"in", "out"}));
}

TEST_F(PrepareTest, RefusesToReplaceADirectoryThatIsNotADataset) {
  write_text(dir / "out/precious.txt", "keep me");
  cfg.overwrite = true;
  EXPECT_THROW_WITH(prepare_dataset(cfg, Tokenizer::bytes()), ConfigError, "refusing");
  EXPECT_EQ(read_bytes(dir / "out/precious.txt"), "keep me");
  // An empty directory is fine.
  fs::remove(dir / "out/precious.txt");
  EXPECT_NO_THROW(prepare_dataset(cfg, Tokenizer::bytes()));
}

TEST_F(PrepareTest, BadConfigValuesAreRefused) {
  cfg.val_fraction = 1.0;
  EXPECT_THROW_WITH(prepare_dataset(cfg, Tokenizer::bytes()), ConfigError, "val_fraction");
  cfg.val_fraction = 0;
  cfg.sources[1].name = "prose";
  EXPECT_THROW_WITH(prepare_dataset(cfg, Tokenizer::bytes()), ConfigError, "used twice");
  cfg.sources[1].name = "code";
  cfg.sources[0].weight = 0;
  EXPECT_THROW_WITH(prepare_dataset(cfg, Tokenizer::bytes()), ConfigError, "weight");
  EXPECT_FALSE(fs::exists(dir / "out"));
}

TEST_F(PrepareTest, PreparedDatasetFeedsTheLoader) {
  cfg.sources[0].weight = 3;
  prepare_dataset(cfg, Tokenizer::bytes());
  DataLoader dl(dir / "out", Mixture::parse("prose=0.5,code=0.5"), LoaderOptions{});
  std::vector<int32_t> x(4 * 16), y(4 * 16);
  dl.next_batch(x.data(), y.data(), 4, 16);
  for (int32_t t : x) EXPECT_LE(t, 256);
  DataLoader defaults(dir / "out", Mixture(), LoaderOptions{});
  EXPECT_DOUBLE_EQ(defaults.mixture().weight(0), 0.5);  // 3 / (3 + 1 + 1 + 1)
}

TEST(DataConfig, ParsesTheDocumentedSchema) {
  const std::string text = R"(
out = "prepared/demo"
val_fraction = 0.05
shard_tokens = 1000000
skip_bad = true

[tokenizer]
path = "bytes"

[[source]]
name = "prose"
kind = "text"
paths = ["corpus/prose"]
weight = 0.6

[[source]]
name = "code"
kind = "code"
dir = "/abs/code"
extensions = ["py", ".c"]
weight = 0.3

[[source]]
name = "multilingual"
kind = "fortune"
paths = ["corpus/fortunes"]
weight = 0.1

[[source]]
name = "web"
kind = "jsonl"
path = "web.jsonl"
text_field = "content"
)";
  const PrepareConfig c = parse_prepare_config(text, "/base", "demo.toml");
  EXPECT_EQ(c.out_dir, "/base/prepared/demo");
  EXPECT_DOUBLE_EQ(c.val_fraction, 0.05);
  EXPECT_EQ(c.shard_tokens, 1000000u);
  EXPECT_TRUE(c.skip_bad);
  EXPECT_EQ(c.tokenizer, "bytes");
  ASSERT_EQ(c.sources.size(), 4u);
  EXPECT_EQ(c.sources[0].paths, std::vector<std::string>{"/base/corpus/prose"});
  EXPECT_EQ(c.sources[1].kind, SourceKind::code);
  EXPECT_EQ(c.sources[1].paths, std::vector<std::string>{"/abs/code"});
  EXPECT_EQ(c.sources[1].extensions, (std::vector<std::string>{".py", ".c"}));
  EXPECT_EQ(c.sources[2].kind, SourceKind::text);
  EXPECT_EQ(c.sources[2].separator, "%");
  EXPECT_EQ(c.sources[3].text_field, "content");
  EXPECT_DOUBLE_EQ(c.sources[3].weight, 1.0);
}

TEST(DataConfig, ErrorsNameTheFileAndField) {
  const auto parse = [](const std::string& t) { return parse_prepare_config(t, "/b", "bad.toml"); };
  EXPECT_THROW_WITH(parse("out = \"x\"\n"), ConfigError, "bad.toml: source");
  EXPECT_THROW_WITH(parse("[[source]]\nname = \"a\"\npaths = [\"p\"]\nweight = -1\n"), ConfigError, "weight");
  EXPECT_THROW_WITH(parse("[[source]]\nname = \"a\"\npaths = [\"p\"]\nwieght = 1\n"), ConfigError,
                    "bad.toml: source[0].wieght: unknown key");
  EXPECT_THROW_WITH(parse("[[source]]\nname = \"a\"\nkind = \"pdf\"\npaths = [\"p\"]\n"), ConfigError, "source[0].kind");
  EXPECT_THROW_WITH(parse("val_fraction = 2\n[[source]]\nname = \"a\"\npaths = [\"p\"]\n"), ConfigError, "val_fraction");
  EXPECT_THROW_WITH(parse("[[source]]\nname = \"a\"\npaths = [\"p\"]\n[[source]]\nname = \"a\"\npaths = [\"q\"]\n"),
                    ConfigError, "used twice");
  EXPECT_THROW_WITH(parse("this is not toml"), ConfigError, "bad.toml:1:");
  EXPECT_THROW_WITH(load_prepare_config("/no/such/config.toml"), ConfigError, "no such config file");
}

namespace {

// A BPE tokenizer of `vocab` ids learned from the prose fixture, saved at `path`.
void write_tokenizer(const std::string& path, int vocab) {
  BpeTrainOptions o;
  o.vocab_size = vocab;
  BpeTrainer t(o);
  t.add_text("The quick brown fox. Jumps over the lazy dog. the the quick quick fox fox dog dog over over");
  fs::create_directories(fs::path(path).parent_path());
  t.train().save(path);
}

// Runs f with the working directory at `dir` (old datasets resolve a relative path from it).
template <class F>
void in_directory(const fs::path& dir, F f) {
  const fs::path old = fs::current_path();
  fs::current_path(dir);
  try {
    f();
  } catch (...) {
    fs::current_path(old);
    throw;
  }
  fs::current_path(old);
}

}  // namespace

// The dataset owns its tokenizer: prepare keeps a copy (tokenizer/<name>, its checksum
// recorded), so the dataset loads from any directory after a move, whatever the
// original file became; a copy swapped for another tokenizer is refused naming the
// file, both checksums and both vocabularies; so is pretraining on it.
TEST_F(PrepareTest, TheDatasetKeepsAndVerifiesItsTokenizer) {
  write_tokenizer(dir / "corpus/tok.json", 270);
  cfg.tokenizer = dir / "corpus/tok.json";
  cfg.sources.resize(1);
  const Manifest m = prepare_dataset(cfg);
  EXPECT_EQ(m.tokenizer.file, "tokenizer/tok.json");
  EXPECT_EQ(read_bytes(dir / "out/tokenizer/tok.json"), read_bytes(dir / "corpus/tok.json"));
  // Moved, the original replaced by a different tokenizer, read from elsewhere.
  fs::rename(dir / "out", dir / "moved");
  write_tokenizer(dir / "corpus/tok.json", 262);
  const std::string moved = dir / "moved";
  in_directory(fs::temp_directory_path(), [&] {
    const Manifest back = Manifest::load(moved);
    EXPECT_EQ(load_dataset_tokenizer(moved, back).vocab_size(), 270);
    EXPECT_EQ(dataset_tokenizer_path(moved, back), moved + "/tokenizer/tok.json");
  });
  // The copy swapped: refused with both checksums and vocabularies.
  const std::string theirs = tokenizer_file_checksum(dir / "corpus/tok.json");
  fs::copy_file(dir / "corpus/tok.json", dir / "moved/tokenizer/tok.json", fs::copy_options::overwrite_existing);
  EXPECT_THROW_WITH(load_dataset_tokenizer(moved, Manifest::load(moved)), FormatError,
                    moved + "/tokenizer/tok.json: not the tokenizer this dataset was tokenized with: xxh3 " + theirs +
                        " (vocabulary 262), " + moved + "/manifest.json records " + m.tokenizer.checksum + " (vocabulary 270)");
  PretrainConfig pc = PretrainConfig::parse("[model]\npreset = \"gpt2-tiny\"\n[train]\nseq_len = 8\nsteps = 2\n[optim]\nwarmup_steps = 1\n",
                                            "t.toml", {"data.dataset=" + moved, "run.dir=" + (dir / "run")});
  EXPECT_THROW_WITH(Pretrainer(pc, Resume::no), FormatError, "not the tokenizer this dataset was tokenized with");
  EXPECT_FALSE(fs::exists(dir / "run/checkpoints"));
}

// A dataset prepared before datasets kept a copy (no tokenizer.file): its path is
// relative to where prepare ran. Found from there or next to the dataset directory;
// from elsewhere the error says what was tried and how to fix it; another file at
// that path (another corpus/tok.json) is refused by its checksum, never used silently.
TEST_F(PrepareTest, AnOldDatasetFindsItsTokenizerByPathAndVerifiesIt) {
  write_tokenizer(dir / "work/corpus/tok.json", 270);
  cfg.sources.resize(1);
  cfg.out_dir = dir / "work/old";
  in_directory(dir / "work", [&] {
    cfg.tokenizer = "corpus/tok.json";
    prepare_dataset(cfg);
  });
  // What an older teddy wrote: no copy, no "file".
  Manifest m = Manifest::load(dir / "work/old");
  fs::remove_all(dir / "work/old/tokenizer");
  m.tokenizer.file.clear();
  m.save(dir / "work/old");
  ASSERT_EQ(read_bytes(dir / "work/old/manifest.json").find("\"file\""), std::string::npos);
  const std::string old = dir / "work/old";
  in_directory(dir / "work", [&] { EXPECT_EQ(load_dataset_tokenizer(old, Manifest::load(old)).vocab_size(), 270); });
  // From / the relative path is not there, but it is next to the dataset directory.
  in_directory("/", [&] { EXPECT_EQ(dataset_tokenizer_path(old, Manifest::load(old)), dir / "work/corpus/tok.json"); });
  // Moved away from both: named, with the fix.
  fs::rename(dir / "work/old", dir / "old");
  in_directory("/", [&] {
    EXPECT_THROW_WITH(load_dataset_tokenizer(dir / "old", Manifest::load(dir / "old")), Error,
                      "tokenizer \"corpus/tok.json\" not found (tried it from here and from ");
  });
  // Another corpus/tok.json where the path leads: refused by its checksum.
  write_tokenizer(dir / "elsewhere/corpus/tok.json", 262);
  in_directory(dir / "elsewhere", [&] {
    EXPECT_THROW_WITH(load_dataset_tokenizer(dir / "old", Manifest::load(dir / "old")), FormatError,
                      "corpus/tok.json: not the tokenizer this dataset was tokenized with");
  });
}
