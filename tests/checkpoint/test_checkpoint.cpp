// One checkpoint format: a single process writes one shard and a manifest (the
// sharded writer, with the temporary directory and the atomic commit), and the
// single-file format teddy wrote before still loads: whole, in any split of ranges,
// as `teddy generate` and `teddy sft` resolve it, with its corruptions refused.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "checkpoint/expect_error.h"
#include "checkpoint/legacy_writer.h"
#include "model/tiny_models.h"
#include "teddy/checkpoint/checkpoint.h"
#include "teddy/checkpoint/group.h"
#include "teddy/checkpoint/shards.h"
#include "teddy/core/error.h"

namespace fs = std::filesystem;
using namespace teddy;
using test::expect_error;

namespace {

// A model and an optimizer state with distinct values everywhere.
struct Fixture {
  Model model{test::tiny_gpt2()};
  AdamW opt{model.layout(), AdamWConfig{}};
  Fixture() {
    model.init_weights(11);
    std::vector<float> m(model.flat_size()), v(model.flat_size());
    for (size_t i = 0; i < m.size(); ++i) {
      m[i] = 1e-3f * static_cast<float>(i % 97) - 0.05f;
      v[i] = 1e-6f * static_cast<float>(i % 89 + 1);
    }
    // Padding between tensors stays zero in parameters and moments, as training keeps it.
    std::vector<char> used(model.flat_size(), 0);
    for (const ParamInfo& p : model.layout().params) std::fill_n(used.begin() + static_cast<std::ptrdiff_t>(p.offset), p.numel, 1);
    for (size_t i = 0; i < m.size(); ++i)
      if (!used[i]) m[i] = v[i] = 0;
    opt.set_state(7, m.data(), v.data());
  }
  CheckpointState state(int64_t step) const {
    CheckpointState s;
    s.step = step;
    s.tokens_processed = 100 * step;
    s.seed = 3;
    s.loader_state = R"({"kind":"sft","rows":12})";
    s.run_config = "[train]\nsteps = 9\n";
    return s;
  }
};

class Checkpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    run_ = (fs::temp_directory_path() / ("teddy_checkpoint_" + std::to_string(::getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(run_);
  }
  void TearDown() override { fs::remove_all(run_); }
  std::string run_;
};

void expect_same(const Model& a, const AdamW& oa, const Model& b, const AdamW& ob) {
  EXPECT_EQ(std::memcmp(a.params(), b.params(), a.param_bytes()), 0);
  EXPECT_EQ(oa.t(), ob.t());
  EXPECT_EQ(std::memcmp(oa.m(), ob.m(), oa.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(oa.v(), ob.v(), oa.size() * sizeof(float)), 0);
}

}  // namespace

// Every save goes through the sharded writer: one process writes one shard (the
// whole buffer) and then the manifest, each durable before the next, into a
// temporary directory that is renamed into place.
TEST_F(Checkpoint, OneProcessWritesOneShardAndAManifest) {
  Fixture f;
  std::vector<std::string> order;
  const std::string dir = save_checkpoint(run_, f.model, f.opt, f.state(5), 0, [&](const std::string& file) {
    order.push_back(file);
    EXPECT_FALSE(fs::exists(checkpoint_dir(run_, 5))) << "renamed into place before " << file << " was written";
  });
  EXPECT_EQ(order, (std::vector<std::string>{"shard_00000_of_00001.safetensors", "manifest.json"}));
  EXPECT_EQ(dir, checkpoint_dir(run_, 5));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "state.json"));
  const ShardedManifest man = read_shard_manifest(dir);
  EXPECT_EQ(man.world_size, 1);
  EXPECT_EQ(man.zero_stage, 0);
  ASSERT_EQ(man.shards.size(), 1u);
  EXPECT_EQ(man.shards[0].begin, 0u);
  EXPECT_EQ(man.shards[0].end, f.model.flat_size());
  EXPECT_EQ(man.optimizer_t, 7);

  const CheckpointInfo info = inspect_checkpoint(dir);
  EXPECT_EQ(info.state.step, 5);
  EXPECT_EQ(info.state.tokens_processed, 500);
  EXPECT_EQ(info.state.loader_state, R"({"kind":"sft","rows":12})");
  Model loaded(test::tiny_gpt2());
  AdamW opt(loaded.layout(), AdamWConfig{});
  load_checkpoint(run_ + "/checkpoints/step_00000005", loaded, &opt);
  expect_same(loaded, opt, f.model, f.opt);
}

// What a checkpoint written by the old single-file writer holds, read back through
// every path: inspect and verify, load whole, any split of ranges (M readers),
// resolve a run directory, a model of another shape refused naming the field.
TEST_F(Checkpoint, TheSingleFileFormatStillLoads) {
  Fixture f;
  const std::string dir = test::save_single_file_checkpoint(run_, f.model, f.opt, f.state(3));
  ASSERT_TRUE(fs::exists(fs::path(dir) / "state.json"));
  ASSERT_TRUE(fs::exists(fs::path(dir) / "model.safetensors"));
  const VerifiedCheckpoint c = resolve_verified_checkpoint(run_);
  EXPECT_EQ(c.info.dir, dir);
  EXPECT_EQ(c.manifest, nullptr);
  EXPECT_EQ(c.info.state.step, 3);
  EXPECT_EQ(c.info.optimizer_t, 7);
  EXPECT_EQ(c.info.state.run_config, "[train]\nsteps = 9\n");

  Model loaded(test::tiny_gpt2());
  AdamW opt(loaded.layout(), AdamWConfig{});
  load_checkpoint(c, loaded, &opt);
  expect_same(loaded, opt, f.model, f.opt);

  const uint64_t n = f.model.flat_size();
  for (int readers : {1, 2, 3, 7}) {
    std::vector<float> p(n, -1.0f), m(n, -1.0f), v(n, -1.0f);
    const uint64_t chunk = (n + readers - 1) / readers;
    for (int r = 0; r < readers; ++r) {
      const uint64_t b = std::min(n, chunk * r), e = std::min(n, chunk * (r + 1));
      read_checkpoint_range(verify_checkpoint_part(dir, r % 2, 2), b, e, p.data() + b, m.data() + b, v.data() + b);
    }
    EXPECT_EQ(std::memcmp(p.data(), f.model.params(), n * sizeof(float)), 0) << readers << " readers";
    EXPECT_EQ(std::memcmp(m.data(), f.opt.m(), n * sizeof(float)), 0) << readers << " readers";
    EXPECT_EQ(std::memcmp(v.data(), f.opt.v(), n * sizeof(float)), 0) << readers << " readers";
  }

  ModelConfig other = test::tiny_gpt2();
  other.d_ff = 32;
  Model wrong(other);
  try {
    load_checkpoint(dir, wrong, nullptr);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("d_ff"), std::string::npos) << e.what();
  }
}

// The old format's integrity checks still hold: a corrupted data file is refused
// naming it, the search falls back to an older checkpoint of either format, and a
// checkpoint rewritten in the new format next to old ones is the newest.
TEST_F(Checkpoint, ACorruptedSingleFileCheckpointIsSkipped) {
  Fixture f;
  const std::string older = save_checkpoint(run_, f.model, f.opt, f.state(2), 0);
  const std::string newer = test::save_single_file_checkpoint(run_, f.model, f.opt, f.state(4));
  const fs::path model_file = fs::path(newer) / "model.safetensors";
  {
    std::fstream io(model_file, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(-5, std::ios::end);
    io.put('\x7f');
  }
  expect_error([&] { inspect_checkpoint(newer); }, model_file.string() + ": checksum mismatch");
  EXPECT_NO_THROW(verify_checkpoint_part(newer, 1, 2));  // the optimizer file's reader
  std::vector<std::string> skipped;
  EXPECT_EQ(latest_intact_checkpoint(run_, &skipped), older);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_NE(skipped[0].find("model.safetensors: checksum mismatch"), std::string::npos) << skipped[0];
  fs::remove(fs::path(newer) / "state.json");  // now an incomplete directory: no manifest, no state
  expect_error([&] { inspect_checkpoint(newer); }, "manifest.json: missing");
}

// The save protocol over a group whose collectives are the identity (one process):
// a failure while writing (after the shard, or after the manifest: a full disk) is
// reported with the protocol's prefix, leaves no step directory and removes its
// temporary directory (no litter holding the space whose lack made it fail); the
// previous checkpoint is untouched.
TEST_F(Checkpoint, AFailedSaveLeavesNoCheckpointAndNoTemporary) {
  Fixture f;
  const std::string previous = save_checkpoint(run_, f.model, f.opt, f.state(5), 0);
  CheckpointMeta meta;
  meta.state = f.state(9);
  const ShardPiece all{0, f.model.flat_size(), f.model.params(), f.opt.m(), f.opt.v()};
  for (const std::string fail_after : {"shard_00000_of_00001.safetensors", "manifest.json"}) {
    expect_error(
        [&] {
          save_sharded_checkpoint(CheckpointGroup::single(), run_, f.model, all, meta, 0, [&](const std::string& file) {
            if (file == fail_after) throw Error("disk full");
          });
        },
        "checkpoint: disk full; its temporary directory was removed");
    EXPECT_FALSE(fs::exists(checkpoint_dir(run_, 9)));
    for (const auto& e : fs::directory_iterator(fs::path(run_) / "checkpoints"))
      EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path() << " left behind";
    EXPECT_EQ(list_checkpoints(run_), std::vector<std::string>{previous});
    EXPECT_NO_THROW(verify_checkpoint(previous));
  }
}
