#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "data/data_test_util.h"
#include "teddy/core/error.h"
#include "teddy/data/loader.h"
#include "teddy/data/manifest.h"
#include "teddy/data/shard.h"

using namespace teddy;
using namespace teddy::test;

namespace {

constexpr int64_t kVocab = 4000;

// Source s holds tokens base_s + (i mod period_s): a window's source and offset can be
// read off its tokens, and consecutive tokens of one window differ by exactly 1 mod period.
struct FakeSource {
  std::string name;
  uint32_t base, period;
  uint64_t train_tokens, val_tokens;
  uint64_t shard_tokens;
  double weight;
};

std::vector<uint32_t> pattern(const FakeSource& s, uint64_t from, uint64_t n) {
  std::vector<uint32_t> v(n);
  for (uint64_t i = 0; i < n; ++i) v[i] = s.base + static_cast<uint32_t>((from + i) % s.period);
  return v;
}

std::vector<ShardInfo> write_split(const std::string& dir, const FakeSource& s, const std::string& split,
                                   uint64_t from, uint64_t n) {
  std::vector<ShardInfo> out;
  std::filesystem::create_directories(std::filesystem::path(dir) / s.name);
  for (uint64_t off = 0, k = 0; off < n; off += s.shard_tokens, ++k) {
    const uint64_t len = std::min(s.shard_tokens, n - off);
    const std::string rel = s.name + "/" + split + "_" + std::to_string(k) + ".bin";
    const auto h = write_shard(dir + "/" + rel, pattern(s, from + off, len), kVocab);
    out.push_back(ShardInfo{rel, h.token_count, h.checksum});
  }
  return out;
}

void make_dataset(const std::string& dir, const std::vector<FakeSource>& sources) {
  Manifest m;
  m.tokenizer = TokenizerInfo{"fake", "", kVocab, 0};
  m.token_bytes = shard_token_bytes(kVocab);
  for (const auto& s : sources) {
    SourceInfo info;
    info.name = s.name;
    info.kind = "text";
    info.weight = s.weight;
    info.train_shards = write_split(dir, s, "train", 0, s.train_tokens);
    // Validation tokens continue the pattern after the training ones.
    info.val_shards = write_split(dir, s, "val", s.train_tokens, s.val_tokens);
    info.train_tokens = s.train_tokens;
    info.val_tokens = s.val_tokens;
    m.sources.push_back(info);
  }
  m.save(dir);
}

const std::vector<FakeSource> kSources = {
    {"prose", 0, 997, 20000, 3000, 4096, 0.6},
    {"code", 1000, 499, 9000, 1000, 1000, 0.3},   // small shards: windows cross boundaries
    {"multilingual", 2000, 983, 5000, 777, 5000, 0.1},
};

int source_of(int32_t token) { return token / 1000; }

struct Batch {
  std::vector<int32_t> x, y;
  bool operator==(const Batch&) const = default;
};

Batch next(DataLoader& dl, int B, int T) {
  Batch b{std::vector<int32_t>(B * T), std::vector<int32_t>(B * T)};
  dl.next_batch(b.x.data(), b.y.data(), B, T);
  return b;
}

LoaderOptions opts(uint64_t seed, int rank = 0, int world = 1, int grad_accum = 1) {
  LoaderOptions o;
  o.seed = seed;
  o.rank = rank;
  o.world = world;
  o.grad_accum = grad_accum;
  return o;
}

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override { make_dataset(dir.str(), kSources); }
  ScratchDir dir;
};

}  // namespace

TEST_F(LoaderTest, WindowsAreContiguousAndTargetsShiftByOne) {
  DataLoader dl(dir.str(), Mixture(), opts(7));
  EXPECT_EQ(dl.mixture().to_string(), "prose=0.6,code=0.3,multilingual=0.1");  // manifest weights
  const int B = 16, T = 64;
  for (int step = 0; step < 20; ++step) {
    const Batch b = next(dl, B, T);
    for (int r = 0; r < B; ++r) {
      const int s = source_of(b.x[r * T]);
      ASSERT_TRUE(s >= 0 && s < 3) << "token " << b.x[r * T] << " row " << r << " step " << step;
      const auto& src = kSources[s];
      for (int t = 0; t < T; ++t) {
        const int32_t x = b.x[r * T + t], y = b.y[r * T + t];
        ASSERT_EQ(source_of(x), s);
        ASSERT_EQ(static_cast<uint32_t>(y - src.base), (x - src.base + 1) % src.period);
        if (t + 1 < T) {
          ASSERT_EQ(b.x[r * T + t + 1], y);
        }
      }
    }
  }
  EXPECT_EQ(dl.state().step, 20u);
}

TEST_F(LoaderTest, SameSeedSameBatchesDifferentSeedDifferentBatches) {
  DataLoader a(dir.str(), Mixture(), opts(42)), b(dir.str(), Mixture(), opts(42)), c(dir.str(), Mixture(), opts(43));
  bool any_diff = false;
  for (int i = 0; i < 10; ++i) {
    const Batch ba = next(a, 8, 32), bb = next(b, 8, 32), bc = next(c, 8, 32);
    EXPECT_EQ(ba, bb) << "step " << i;
    any_diff = any_diff || !(ba == bc);
  }
  EXPECT_TRUE(any_diff);
}

TEST_F(LoaderTest, RanksTakeDistinctRowsOfTheGlobalBatch) {
  const int B = 4, T = 32, W = 3;
  DataLoader single(dir.str(), Mixture(), opts(5, 0, 1));
  std::vector<DataLoader> ranks;
  for (int r = 0; r < W; ++r) ranks.emplace_back(dir.str(), Mixture(), opts(5, r, W));
  for (int step = 0; step < 5; ++step) {
    const Batch global = next(single, W * B, T);
    std::vector<Batch> locals;
    for (int r = 0; r < W; ++r) {
      const Batch local = next(ranks[r], B, T);
      // Rank r's rows are rows r*B .. r*B+B-1 of the single-process batch of W*B rows.
      EXPECT_TRUE(std::equal(local.x.begin(), local.x.end(), global.x.begin() + r * B * T)) << "rank " << r;
      EXPECT_TRUE(std::equal(local.y.begin(), local.y.end(), global.y.begin() + r * B * T)) << "rank " << r;
      locals.push_back(local);
    }
    EXPECT_FALSE(locals[0] == locals[1]);  // ranks do not duplicate each other's work
  }
  // Every rank counts the same global tokens per source.
  for (int r = 0; r < W; ++r) EXPECT_EQ(ranks[r].state().tokens_seen, ranks[0].state().tokens_seen);
}

// A step's rows depend on the global batch only: micro_batch x grad_accum x ranks
// = 8 x 1 x 1, 4 x 2 x 1, 2 x 2 x 2, 1 x 4 x 2 and 1 x 1 x 8 all train on the same 8
// rows, rank r's micro-batch j holding rows r*(A*B) + j*B .. + B-1.
TEST_F(LoaderTest, AStepsRowsDoNotDependOnHowTheGlobalBatchIsSplit) {
  const int G = 8, T = 32, steps = 4;
  DataLoader whole(dir.str(), Mixture(), opts(11));
  std::vector<Batch> want;
  for (int k = 0; k < steps; ++k) want.push_back(next(whole, G, T));
  for (const auto& [B, A, W] : std::vector<std::tuple<int, int, int>>{{4, 2, 1}, {2, 2, 2}, {1, 4, 2}, {1, 1, 8}}) {
    SCOPED_TRACE("micro_batch " + std::to_string(B) + " x grad_accum " + std::to_string(A) + " x ranks " + std::to_string(W));
    std::vector<DataLoader> ranks;
    for (int r = 0; r < W; ++r) ranks.emplace_back(dir.str(), Mixture(), opts(11, r, W, A));
    for (int k = 0; k < steps; ++k) {
      Batch got{std::vector<int32_t>(G * T), std::vector<int32_t>(G * T)};
      for (int r = 0; r < W; ++r)
        for (int j = 0; j < A; ++j)
          ranks[r].next_batch(got.x.data() + (r * A + j) * B * T, got.y.data() + (r * A + j) * B * T, B, T);
      EXPECT_EQ(got, want[k]) << "step " << k;
    }
    for (int r = 0; r < W; ++r) {
      EXPECT_EQ(ranks[r].state().step, static_cast<uint64_t>(steps));
      EXPECT_EQ(ranks[r].state().micro, 0u);
      EXPECT_EQ(ranks[r].state().tokens_seen, whole.state().tokens_seen);
    }
  }
}

// A checkpoint written before batch-split invariance counted micro-batches in "step"
// (no "version" key): it resumes at the step it was written at.
TEST_F(LoaderTest, LegacyStateCountingMicroBatchesIsConverted) {
  DataLoader dl(dir.str(), Mixture(), opts(3, 0, 1, 2));
  dl.restore(LoaderState::from_json(
      R"({"seed":3,"step":10,"sources":["prose","code","multilingual"],"tokens_seen":[1,2,3]})"));
  EXPECT_EQ(dl.state().step, 5u);
  EXPECT_EQ(dl.state().micro, 0u);
  EXPECT_NE(dl.state().to_json().find("\"version\":2"), std::string::npos);
  DataLoader mid(dir.str(), Mixture(), opts(3, 0, 1, 2));
  EXPECT_THROW(mid.restore(LoaderState::from_json(
                   R"({"version":2,"seed":3,"step":1,"micro":2,"sources":["prose","code","multilingual"],"tokens_seen":[1,2,3]})")),
               ConfigError);
}

TEST_F(LoaderTest, RestoredStateContinuesWithTheSameBatches) {
  const int B = 8, T = 48;
  DataLoader a(dir.str(), Mixture(), opts(99));
  for (int i = 0; i < 7; ++i) next(a, B, T);
  const std::string saved = a.state().to_json();
  std::vector<Batch> expected;
  for (int i = 0; i < 5; ++i) expected.push_back(next(a, B, T));

  // A fresh loader (even with a different seed in its options) adopts the checkpoint.
  DataLoader b(dir.str(), Mixture(), opts(12345));
  b.restore(LoaderState::from_json(saved));
  EXPECT_EQ(b.state().step, 7u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(next(b, B, T), expected[i]) << "batch " << i;
  EXPECT_EQ(b.state().tokens_seen, a.state().tokens_seen);
}

TEST_F(LoaderTest, RestoreRefusesADifferentMixture) {
  DataLoader a(dir.str(), Mixture(), opts(1));
  DataLoader b(dir.str(), Mixture({{"prose", 1.0}}), opts(1));
  EXPECT_THROW(b.restore(a.state()), ConfigError);
  EXPECT_THROW(LoaderState::from_json("{\"seed\": 1}"), FormatError);
}

// Tokens per source follow the weights within a 4-sigma binomial bound.
TEST_F(LoaderTest, TokensPerSourceFollowTheMixture) {
  const Mixture mix({{"prose", 0.5}, {"code", 0.3}, {"multilingual", 0.2}});
  DataLoader dl(dir.str(), mix, opts(2024));
  const int B = 64, T = 8, steps = 500;
  std::vector<uint64_t> rows(3);
  for (int i = 0; i < steps; ++i) {
    const Batch b = next(dl, B, T);
    for (int r = 0; r < B; ++r) rows[source_of(b.x[r * T])]++;
  }
  const double n = static_cast<double>(B) * steps;
  for (size_t s = 0; s < 3; ++s) {
    const double p = mix.weight(s);
    EXPECT_LE(std::abs(rows[s] - n * p), 4 * std::sqrt(n * p * (1 - p))) << mix.name(s) << ": " << rows[s];
    EXPECT_EQ(dl.state().tokens_seen[s], rows[s] * T);  // world = 1: counters are this rank's rows
  }
}

TEST_F(LoaderTest, BadMixturesAndShapesAreRefused) {
  EXPECT_THROW_WITH(DataLoader(dir.str(), Mixture({{"wiki", 1.0}}), opts(0)), ConfigError, "no source \"wiki\"");
  EXPECT_THROW(DataLoader(dir.str(), Mixture(), opts(0, 2, 2)), ConfigError);
  DataLoader dl(dir.str(), Mixture({{"multilingual", 1.0}}), opts(0));
  std::vector<int32_t> x(5001), y(5001);
  EXPECT_THROW_WITH(dl.next_batch(x.data(), y.data(), 1, 5000), Error, "fewer than one window");
  EXPECT_NO_THROW(dl.next_batch(x.data(), y.data(), 1, 4999));  // exactly one window fits
  EXPECT_THROW(DataLoader(dir.str() + "/nowhere", Mixture(), opts(0)), Error);
}

TEST_F(LoaderTest, CorruptShardIsCaughtOnOpen) {
  const std::string shard = dir / "code/train_3.bin";
  {
    std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  EXPECT_THROW_WITH(DataLoader(dir.str(), Mixture(), opts(0)), FormatError, "code/train_3.bin");
  // A source not in the mixture is not opened.
  EXPECT_NO_THROW(DataLoader(dir.str(), Mixture({{"prose", 1.0}}), opts(0)));

  // A shard replaced by another valid one disagrees with the manifest.
  write_shard(shard, std::vector<uint32_t>(1000, 1000), kVocab);
  EXPECT_THROW_WITH(DataLoader(dir.str(), Mixture(), opts(0)), FormatError, "disagrees with the manifest");
}

TEST_F(LoaderTest, ValidationWindowsAreFixedAndPartitionedAcrossRanks) {
  const int B = 5, T = 100;
  ValidationLoader all(dir.str(), opts(0));
  // (3000-1)/100 + (1000-1)/100 + (777-1)/100 = 29 + 9 + 7 windows.
  EXPECT_EQ(all.windows(T), 45u);
  std::vector<std::vector<int32_t>> seen;
  std::vector<int> srcs;
  std::vector<int32_t> x(B * T), y(B * T);
  std::vector<int> rs(B);
  int n;
  while ((n = all.next_batch(x.data(), y.data(), B, T, rs.data())) > 0)
    for (int r = 0; r < n; ++r) {
      seen.emplace_back(x.begin() + r * T, x.begin() + (r + 1) * T);
      srcs.push_back(rs[r]);
      EXPECT_EQ(source_of(x[r * T]), rs[r]);
      const auto& src = kSources[rs[r]];
      EXPECT_EQ(static_cast<uint32_t>(y[r * T + T - 1]) - src.base,
                (static_cast<uint32_t>(x[r * T + T - 1]) - src.base + 1) % src.period);
    }
  ASSERT_EQ(seen.size(), 45u);
  // First window of prose validation starts right after its 20000 training tokens.
  EXPECT_EQ(seen[0][0], static_cast<int32_t>(20000 % 997));
  EXPECT_EQ(seen[1][0], static_cast<int32_t>((20000 + 100) % 997));  // consecutive, non-overlapping
  EXPECT_EQ(srcs[29], 1);
  all.reset();
  ASSERT_EQ(all.next_batch(x.data(), y.data(), B, T), B);
  EXPECT_EQ(std::vector<int32_t>(x.begin(), x.begin() + T), seen[0]);  // same order again

  // Two ranks: rank r takes windows r, r+2, ...; 45 is truncated to 22 each.
  for (int r = 0; r < 2; ++r) {
    ValidationLoader v(dir.str(), opts(0, r, 2));
    EXPECT_EQ(v.windows(T), 22u);
    uint64_t k = 0;
    while ((n = v.next_batch(x.data(), y.data(), B, T)) > 0)
      for (int i = 0; i < n; ++i, ++k)
        EXPECT_EQ(std::vector<int32_t>(x.begin() + i * T, x.begin() + (i + 1) * T), seen[2 * k + r]);
    EXPECT_EQ(k, 22u);
  }

  ValidationLoader one(dir.str(), opts(0), {"code"});
  EXPECT_EQ(one.windows(T), 9u);
}
