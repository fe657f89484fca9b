#pragma once
// Token shards: one binary file of tokens with a fixed 64-byte header.
//
//   offset  size  field
//        0     8  magic "TEDDYSHD"
//        8     4  format version (u32, currently 1)
//       12     4  token width in bytes (u32: 2 = uint16, 4 = uint32)
//       16     8  token count (u64)
//       24     8  XXH3-64 of the token bytes (u64)
//       32     4  vocabulary size (u32; every token is < this)
//       36    28  reserved, zero
//       64     …  tokens, little-endian, token width bytes each
//
// uint16 is chosen whenever the vocabulary fits (<= 65536 ids): half the disk and
// page-cache traffic of uint32. Writers are atomic (temp + fsync + rename).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace teddy {

inline constexpr char kShardMagic[8] = {'T', 'E', 'D', 'D', 'Y', 'S', 'H', 'D'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 64;

struct ShardHeader {
  uint32_t version = kShardVersion;
  uint32_t token_bytes = 2;  // 2 or 4
  uint64_t token_count = 0;
  uint64_t checksum = 0;     // XXH3-64 of the token bytes as stored
  uint32_t vocab_size = 0;
};

// 2 when every id of a vocab_size-token vocabulary fits in uint16, else 4.
uint32_t shard_token_bytes(int64_t vocab_size);

// Atomically writes `tokens` to `path`. Throws Error if a token is >= vocab_size
// or vocab_size is out of range, and on I/O failure (the old file, if any, stays).
// Returns the header that was written.
ShardHeader write_shard(const std::string& path, std::span<const uint32_t> tokens, int64_t vocab_size);

// Memory-mapped, read-only view of a shard. Opening validates magic, version,
// width, vocab size, reserved bytes and file size; with verify = true (default)
// it also recomputes the checksum. Every failure is a FormatError naming the file.
class ShardReader {
 public:
  ShardReader() = default;
  explicit ShardReader(const std::string& path, bool verify = true);
  ~ShardReader();
  ShardReader(ShardReader&& o) noexcept;
  ShardReader& operator=(ShardReader&& o) noexcept;
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  const std::string& path() const { return path_; }
  const ShardHeader& header() const { return header_; }
  uint64_t size() const { return header_.token_count; }

  // Recomputes the checksum; throws FormatError if it does not match the header.
  void verify() const;

  uint32_t at(uint64_t i) const;  // unchecked beyond a debug assert
  // Copies tokens [start, start + n) as int32 into out. Throws Error if out of range.
  void read(uint64_t start, uint64_t n, int32_t* out) const;

 private:
  void close();
  std::string path_;
  ShardHeader header_;
  const unsigned char* map_ = nullptr;  // whole file
  size_t map_bytes_ = 0;
};

// Reads only the header (and checks it against the file size); no mmap, no checksum.
ShardHeader read_shard_header(const std::string& path);

}  // namespace teddy
