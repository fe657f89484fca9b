// Sharded checkpoints in one process: shards written as W ranks would write them
// load whole (load_checkpoint) and in any other split (read_shard_range) bit for
// bit; a torn, corrupted or missing shard and a missing or incomplete manifest are
// refused naming the file, and the newest intact checkpoint is found past them.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <fstream>
#include <string>
#include <vector>

#include "teddy/core/error.h"
#include "teddy/checkpoint/checkpoint.h"
#include "teddy/checkpoint/shards.h"
#include "model/tiny_models.h"
#include "checkpoint/expect_error.h"

namespace fs = std::filesystem;
using namespace teddy;
using test::expect_error;

namespace {

ModelConfig tiny() { return test::tiny_gpt2(); }

struct Fixture {
  Model model{tiny()};
  std::vector<float> m, v;
  Fixture() {
    model.init_weights(11);
    m.resize(model.flat_size());
    v.resize(model.flat_size());
    for (size_t i = 0; i < m.size(); ++i) {
      m[i] = 1e-3f * static_cast<float>(i % 97) - 0.05f;
      v[i] = 1e-6f * static_cast<float>(i % 89 + 1);
    }
  }
};

// What W ranks write, done in one process: uneven ranges, the last one empty when W
// exceeds the buffer's chunks.
std::string save_sharded(const std::string& run, const Fixture& f, int world, int64_t step, std::vector<uint64_t> cuts = {}) {
  const uint64_t n = f.model.flat_size();
  if (cuts.empty())
    for (int r = 0; r <= world; ++r) cuts.push_back(std::min<uint64_t>(n, (n + world - 1) / world * static_cast<uint64_t>(r)));
  const std::string tmp = checkpoint_temp_dir(run, step);
  begin_checkpoint_dir(tmp);
  ShardedManifest man;
  man.world_size = world;
  man.zero_stage = 1;
  man.flat_size = n;
  man.optimizer_t = step;
  man.state.step = step;
  man.state.tokens_processed = 100 * step;
  man.state.seed = 3;
  man.state.run_config = "[train]\nsteps = 9\n";
  man.model_config = f.model.config();
  man.layout = f.model.layout().params;
  for (int r = 0; r < world; ++r) {
    const uint64_t b = cuts[r], e = cuts[r + 1];
    man.shards.push_back(write_checkpoint_shard(tmp, r, world, b, e, f.model.params() + b, f.m.data() + b, f.v.data() + b));
  }
  return finish_sharded_checkpoint(run, tmp, man, 0);
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_text(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary | std::ios::trunc) << s; }
// A sealed manifest's text without its checksum field (what version 1 wrote, but for the version).
std::string unsealed(const std::string& text) {
  const size_t at = text.rfind(",\n \"manifest_xxh3_64\"");
  return at == std::string::npos ? text : text.substr(0, at) + "\n}\n";
}

class ShardedCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    run_ = (fs::temp_directory_path() / ("teddy_sharded_ckpt_" + std::to_string(::getpid()))).string();
    fs::remove_all(run_);
  }
  void TearDown() override { fs::remove_all(run_); }
  std::string run_;
};

}  // namespace

TEST_F(ShardedCheckpoint, ThreeShardsLoadWholeIntoOneProcessBitForBit) {
  Fixture f;
  const std::string dir = save_sharded(run_, f, 3, 7);
  EXPECT_TRUE(fs::exists(fs::path(dir) / "manifest.json"));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "shard_00002_of_00003.safetensors"));
  EXPECT_EQ(resolve_verified_checkpoint(run_).info.dir, dir);
  const CheckpointInfo info = inspect_checkpoint(dir);
  EXPECT_EQ(info.state.step, 7);
  EXPECT_EQ(info.state.tokens_processed, 700);
  EXPECT_EQ(info.optimizer_t, 7);
  EXPECT_EQ(info.state.run_config, "[train]\nsteps = 9\n");

  Model loaded(tiny());
  AdamW opt(loaded.layout(), AdamWConfig{});
  load_checkpoint(dir, loaded, &opt);
  EXPECT_EQ(opt.t(), 7);
  for (size_t i = 0; i < f.model.flat_size(); ++i) {
    ASSERT_EQ(loaded.params()[i], f.model.params()[i]) << i;
    ASSERT_EQ(opt.m()[i], f.m[i]) << i;
    ASSERT_EQ(opt.v()[i], f.v[i]) << i;
  }
  Model params_only(tiny());  // generate's path: no optimizer
  load_checkpoint(dir, params_only, nullptr);
  EXPECT_EQ(std::memcmp(params_only.params(), f.model.params(), f.model.param_bytes()), 0);
}

TEST_F(ShardedCheckpoint, AnyOtherSplitReadsTheSameBytes) {
  Fixture f;
  const uint64_t n = f.model.flat_size();
  // Uneven writer ranges, one empty.
  const std::string dir = save_sharded(run_, f, 4, 1, {0, n / 5, n / 5, n / 2 + 3, n});
  const ShardedManifest man = read_shard_manifest(dir);
  EXPECT_EQ(man.world_size, 4);
  for (int readers : {1, 2, 3, 7}) {
    std::vector<float> p(n), m(n), v(n);
    const uint64_t chunk = (n + readers - 1) / readers;
    for (int r = 0; r < readers; ++r) {
      const uint64_t b = std::min(n, chunk * r), e = std::min(n, chunk * (r + 1));
      read_shard_range(dir, man, b, e, p.data() + b, m.data() + b, v.data() + b);
    }
    EXPECT_EQ(std::memcmp(p.data(), f.model.params(), n * sizeof(float)), 0) << readers << " readers";
    EXPECT_EQ(std::memcmp(m.data(), f.m.data(), n * sizeof(float)), 0) << readers << " readers";
    EXPECT_EQ(std::memcmp(v.data(), f.v.data(), n * sizeof(float)), 0) << readers << " readers";
  }
}

TEST_F(ShardedCheckpoint, ACorruptedShardIsRefusedNamingItAndTheOlderOneIsUsed) {
  Fixture f;
  const std::string older = save_sharded(run_, f, 3, 5);
  const std::string newer = save_sharded(run_, f, 3, 10);
  const fs::path shard = fs::path(newer) / "shard_00001_of_00003.safetensors";
  {
    std::fstream io(shard, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(-5, std::ios::end);
    io.put('\x7f');
  }
  expect_error([&] { inspect_checkpoint(newer); }, shard.string() + ": checksum mismatch");
  Model m(tiny());
  expect_error([&] { load_checkpoint(newer, m, nullptr); }, "checksum mismatch");
  // Split verification: only the part that hashes shard 1 objects.
  EXPECT_NO_THROW(verify_checkpoint_part(newer, 0, 2));
  EXPECT_THROW(verify_checkpoint_part(newer, 1, 2), FormatError);
  std::vector<std::string> skipped;
  EXPECT_EQ(latest_intact_checkpoint(run_, &skipped), older);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_NE(skipped[0].find("shard_00001_of_00003.safetensors"), std::string::npos) << skipped[0];

  fs::resize_file(shard, 64);  // torn
  expect_error([&] { inspect_checkpoint(newer); }, shard.string() + ": size 64 bytes");
  fs::remove(shard);
  expect_error([&] { inspect_checkpoint(newer); }, shard.string() + ": missing");
}

TEST_F(ShardedCheckpoint, AMissingOrIncompleteManifestIsRefused) {
  Fixture f;
  const std::string dir = save_sharded(run_, f, 2, 3);
  const fs::path manifest = fs::path(dir) / "manifest.json";
  std::string text;
  {
    std::ifstream in(manifest);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  {
    std::string s = text;
    // world_size says 3 but only 2 shards are listed: the manifest's checksum catches
    // the edit; resealed (a manifest written wrong), the shard rule does.
    s.replace(s.find("\"world_size\": 2"), 15, "\"world_size\": 3");
    write_text(manifest, s);
    expect_error([&] { inspect_checkpoint(dir); }, manifest.string() + ": checksum mismatch");
    write_text(manifest, seal_manifest_text(unsealed(s)));
  }
  expect_error([&] { inspect_checkpoint(dir); }, "incomplete manifest");
  std::ofstream(manifest, std::ios::trunc) << text.substr(0, text.size() / 2);  // torn
  expect_error([&] { inspect_checkpoint(dir); }, manifest.string() + ": not valid JSON");
  fs::remove(manifest);
  expect_error([&] { inspect_checkpoint(dir); }, manifest.string() + ": missing");
  EXPECT_FALSE(latest_intact_checkpoint(run_).has_value());
}

TEST_F(ShardedCheckpoint, AModelOfAnotherShapeIsRefused) {
  Fixture f;
  const std::string dir = save_sharded(run_, f, 2, 3);
  ModelConfig c = tiny();
  c.d_ff = 32;
  Model other(c);
  expect_error([&] { load_checkpoint(dir, other, nullptr); }, "d_ff");
}

// A resume's path: the search verifies (hashes) every shard once and the load reuses
// its manifest, so the load does not hash again; what it still checks (each shard's
// size against the manifest) refuses a shard torn after the search.
TEST_F(ShardedCheckpoint, AVerifiedCheckpointLoadsWithoutHashingAgain) {
  Fixture f;
  const std::string older = save_sharded(run_, f, 3, 5);
  const std::string newer = save_sharded(run_, f, 3, 10);
  {
    std::fstream io(fs::path(newer) / "shard_00002_of_00003.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(-5, std::ios::end);
    io.put('\x7f');
  }
  std::vector<std::string> skipped;
  const std::optional<VerifiedCheckpoint> c = latest_verified_checkpoint(run_, &skipped);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->info.dir, older);
  ASSERT_NE(c->manifest, nullptr);
  EXPECT_EQ(skipped.size(), 1u);
  EXPECT_EQ(c->info.state.step, 5);

  Model loaded(tiny());
  AdamW opt(loaded.layout(), AdamWConfig{});
  const CheckpointInfo info = load_checkpoint(*c, loaded, &opt);
  EXPECT_EQ(info.state.step, 5);
  EXPECT_EQ(opt.t(), 5);
  EXPECT_EQ(std::memcmp(loaded.params(), f.model.params(), f.model.param_bytes()), 0);
  EXPECT_EQ(std::memcmp(opt.m(), f.m.data(), f.m.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(opt.v(), f.v.data(), f.v.size() * sizeof(float)), 0);

  // A byte changed after the search (same size) is the search's to catch: the
  // verified load does not hash again, the directory form (which verifies) refuses it.
  const fs::path shard = fs::path(older) / "shard_00000_of_00003.safetensors";
  {
    std::fstream io(shard, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(-5, std::ios::end);
    io.put('\x7f');
  }
  Model again(tiny());
  EXPECT_NO_THROW(load_checkpoint(*c, again, nullptr));
  expect_error([&] { load_checkpoint(older, again, nullptr); }, shard.string() + ": checksum mismatch");
  fs::resize_file(shard, 64);  // torn after the search: still refused
  expect_error([&] { load_checkpoint(*c, again, nullptr); }, shard.string() + ": missing or not the");
}

// The run state lives in manifest.json, which carries its own checksum: one flipped
// digit in "step" (or "optimizer_t") would otherwise load as a valid checkpoint of
// the wrong step, and the run would continue from there and diverge.
TEST_F(ShardedCheckpoint, AFlippedDigitInTheManifestIsCaughtAndTheSearchFallsBack) {
  Fixture f;
  const std::string older = save_sharded(run_, f, 2, 40);
  const std::string newer = save_sharded(run_, f, 2, 60);
  const fs::path manifest = fs::path(newer) / "manifest.json";
  const std::string text = read_text(manifest);
  ASSERT_NE(text.find("\"version\": 2"), std::string::npos);
  ASSERT_NE(text.find("\"manifest_xxh3_64\": \""), std::string::npos);
  std::string flipped = text;
  const size_t at = flipped.find("\"step\": 60");
  ASSERT_NE(at, std::string::npos);
  flipped[at + 8] ^= 0x01;  // '6' -> '7': still valid JSON, "step": 70
  ASSERT_NE(flipped.find("\"step\": 70"), std::string::npos);
  write_text(manifest, flipped);
  expect_error([&] { inspect_checkpoint(newer); }, manifest.string() + ": checksum mismatch");
  std::vector<std::string> skipped;
  const auto c = latest_verified_checkpoint(run_, &skipped);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->info.state.step, 40);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_EQ(c->skipped, skipped);
  EXPECT_NE(skipped[0].find(newer + ": " + manifest.string() + ": checksum mismatch"), std::string::npos) << skipped[0];
  // The same for resolve_verified_checkpoint (generate --checkpoint RUN, sft model.init=RUN).
  EXPECT_EQ(resolve_verified_checkpoint(run_).skipped, skipped);

  // A truncated manifest (the tail with the checksum cut off) and a lost checksum field.
  write_text(manifest, text.substr(0, text.size() - 10));
  expect_error([&] { inspect_checkpoint(newer); }, manifest.string() + ": damaged");
  write_text(manifest, unsealed(text));
  expect_error([&] { inspect_checkpoint(newer); }, "manifests end with their checksum");

  // A version 1 manifest (written before the checksum) still loads.
  std::string v1 = unsealed(text);
  v1.replace(v1.find("\"version\": 2"), 12, "\"version\": 1");
  write_text(manifest, v1);
  EXPECT_EQ(inspect_checkpoint(newer).state.step, 60);
  Model back(tiny());
  load_checkpoint(newer, back, nullptr);
  EXPECT_EQ(std::memcmp(back.params(), f.model.params(), f.model.flat_size() * sizeof(float)), 0);
}
