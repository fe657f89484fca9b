#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <numeric>
#include <vector>

#include "data/data_test_util.h"
#include "teddy/core/error.h"
#include "teddy/io/atomic_file.h"
#include "teddy/data/shard.h"

using namespace teddy;
using namespace teddy::test;

namespace {

std::vector<uint32_t> ramp(size_t n, uint32_t mod) {
  std::vector<uint32_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint32_t>((i * 7919u) % mod);
  return v;
}

// Overwrites bytes at `offset` of a file in place.
void patch(const std::string& path, size_t offset, const void* bytes, size_t n) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(static_cast<const char*>(bytes), static_cast<std::streamsize>(n));
}

}  // namespace

TEST(Shard, TokenWidthFollowsVocabSize) {
  EXPECT_EQ(shard_token_bytes(257), 2u);
  EXPECT_EQ(shard_token_bytes(50257), 2u);   // GPT-2
  EXPECT_EQ(shard_token_bytes(65536), 2u);   // ids 0..65535 still fit
  EXPECT_EQ(shard_token_bytes(65537), 4u);
  EXPECT_EQ(shard_token_bytes(128256), 4u);  // Llama 3
}

TEST(Shard, RoundTripUint16) {
  ScratchDir dir;
  const auto toks = ramp(10007, 50257);
  const std::string path = dir / "a.bin";
  const ShardHeader h = write_shard(path, toks, 50257);
  EXPECT_EQ(h.token_bytes, 2u);
  EXPECT_EQ(std::filesystem::file_size(path), 64u + 2 * toks.size());

  ShardReader r(path);
  EXPECT_EQ(r.size(), toks.size());
  EXPECT_EQ(r.header().vocab_size, 50257u);
  EXPECT_EQ(r.header().checksum, h.checksum);
  std::vector<int32_t> got(toks.size());
  r.read(0, toks.size(), got.data());
  for (size_t i = 0; i < toks.size(); ++i) ASSERT_EQ(static_cast<uint32_t>(got[i]), toks[i]) << i;
  EXPECT_EQ(r.at(1234), toks[1234]);
  // The first bytes on disk are the documented magic.
  EXPECT_EQ(read_bytes(path).substr(0, 8), "TEDDYSHD");
}

TEST(Shard, RoundTripUint32) {
  ScratchDir dir;
  auto toks = ramp(5000, 128256);
  toks[17] = 128255;  // the largest id must survive
  const std::string path = dir / "b.bin";
  EXPECT_EQ(write_shard(path, toks, 128256).token_bytes, 4u);
  EXPECT_EQ(std::filesystem::file_size(path), 64u + 4 * toks.size());
  ShardReader r(path);
  std::vector<int32_t> got(10);
  r.read(10, 10, got.data());
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(static_cast<uint32_t>(got[i]), toks[10 + i]);
  EXPECT_EQ(r.at(17), 128255u);
  EXPECT_EQ(read_shard_header(path).token_count, toks.size());
}

TEST(Shard, EmptyShardIsValid) {
  ScratchDir dir;
  write_shard(dir / "e.bin", {}, 257);
  ShardReader r(dir / "e.bin");
  EXPECT_EQ(r.size(), 0u);
}

TEST(Shard, ReadPastEndThrows) {
  ScratchDir dir;
  write_shard(dir / "s.bin", ramp(100, 257), 257);
  ShardReader r(dir / "s.bin");
  std::vector<int32_t> out(10);
  EXPECT_THROW(r.read(95, 10, out.data()), Error);
  EXPECT_NO_THROW(r.read(90, 10, out.data()));
}

TEST(Shard, TokenOutsideVocabIsRefusedAndOldFileKept) {
  ScratchDir dir;
  const std::string path = dir / "k.bin";
  write_shard(path, ramp(50, 257), 257);
  const std::string before = read_bytes(path);
  std::vector<uint32_t> bad = {1, 2, 257};
  EXPECT_THROW_WITH(write_shard(path, bad, 257), Error, "outside the vocabulary");
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"k.bin"});  // no temp file left behind
}

TEST(Shard, CorruptTokenByteFailsChecksum) {
  ScratchDir dir;
  const std::string path = dir / "c.bin";
  write_shard(path, ramp(1000, 257), 257);
  const unsigned char flip = 0xAB;
  patch(path, 64 + 501, &flip, 1);
  EXPECT_THROW_WITH(ShardReader r(path), FormatError, "checksum mismatch");
  EXPECT_THROW_WITH(ShardReader r(path), FormatError, path);
  // Lazy mode opens, and verify() still catches it.
  ShardReader lazy(path, /*verify=*/false);
  EXPECT_THROW_WITH(lazy.verify(), FormatError, "checksum");
}

TEST(Shard, BadMagicIsRefused) {
  ScratchDir dir;
  const std::string path = dir / "m.bin";
  write_shard(path, ramp(10, 257), 257);
  patch(path, 0, "NOTASHRD", 8);
  EXPECT_THROW_WITH(ShardReader r(path), FormatError, "bad magic");
  EXPECT_THROW_WITH(read_shard_header(path), FormatError, "bad magic");
}

TEST(Shard, WrongVersionIsRefused) {
  ScratchDir dir;
  const std::string path = dir / "v.bin";
  write_shard(path, ramp(10, 257), 257);
  const uint32_t v = 99;
  patch(path, 8, &v, 4);
  EXPECT_THROW_WITH(ShardReader r(path), FormatError, "version 99");
}

TEST(Shard, BadWidthAndVocabAreRefused) {
  ScratchDir dir;
  const std::string path = dir / "w.bin";
  write_shard(path, ramp(10, 257), 257);
  const uint32_t w = 3;
  patch(path, 12, &w, 4);
  EXPECT_THROW_WITH(ShardReader r(path), FormatError, "token width");

  write_shard(path, ramp(10, 257), 257);
  const uint32_t vocab = 70000;  // does not fit uint16 tokens
  patch(path, 32, &vocab, 4);
  EXPECT_THROW_WITH(ShardReader r(path), FormatError, "vocab size");
}

TEST(Shard, NonZeroReservedBytesAreRefused) {
  ScratchDir dir;
  const std::string path = dir / "r.bin";
  write_shard(path, ramp(10, 257), 257);
  const unsigned char one = 1;
  patch(path, 60, &one, 1);
  EXPECT_THROW_WITH(ShardReader r(path), FormatError, "reserved");
}

TEST(Shard, TruncatedOrOverlongFileIsRefused) {
  ScratchDir dir;
  const std::string path = dir / "t.bin";
  write_shard(path, ramp(100, 257), 257);
  std::filesystem::resize_file(path, 64 + 2 * 99);
  EXPECT_THROW_WITH(ShardReader r(path), FormatError, "truncated");

  write_shard(path, ramp(100, 257), 257);
  const uint64_t count = 101;  // header promises more than the file holds
  patch(path, 16, &count, 8);
  EXPECT_THROW_WITH(ShardReader r(path), FormatError, "truncated");

  write_text(path, "TEDDYSHD");  // shorter than a header
  EXPECT_THROW_WITH(ShardReader r(path), FormatError, "too short");
  EXPECT_THROW_WITH(ShardReader r(dir / "missing.bin"), FormatError, "missing.bin");
}

TEST(AtomicFile, UncommittedWriteLeavesOldContent) {
  ScratchDir dir;
  const std::string path = dir / "f.txt";
  write_file_atomic(path, "old");
  {
    AtomicFile f(path);
    f.write("new content");
    // destroyed without commit, as when an exception unwinds
  }
  EXPECT_EQ(read_bytes(path), "old");
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"f.txt"});
  write_file_atomic(path, "new");
  EXPECT_EQ(read_bytes(path), "new");
}

TEST(AtomicFile, MissingDirectoryIsAnError) {
  ScratchDir dir;
  EXPECT_THROW_WITH(write_file_atomic(dir / "no/such/dir/f.txt", "x"), Error, "cannot create temporary file");
}
