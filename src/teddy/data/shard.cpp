#include "teddy/data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <bit>
#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "teddy/core/error.h"
#include "teddy/io/atomic_file.h"

namespace teddy {

static_assert(std::endian::native == std::endian::little, "shards are little-endian; add byte swaps for big-endian hosts");

namespace {

template <class T> void put(unsigned char* p, T v) { std::memcpy(p, &v, sizeof(T)); }
template <class T> T get(const unsigned char* p) { T v; std::memcpy(&v, p, sizeof(T)); return v; }

void encode_header(const ShardHeader& h, unsigned char* out) {
  std::memset(out, 0, kShardHeaderBytes);
  std::memcpy(out, kShardMagic, 8);
  put<uint32_t>(out + 8, h.version);
  put<uint32_t>(out + 12, h.token_bytes);
  put<uint64_t>(out + 16, h.token_count);
  put<uint64_t>(out + 24, h.checksum);
  put<uint32_t>(out + 32, h.vocab_size);
}

// Parses and validates a header against the file's size.
ShardHeader decode_header(const std::string& path, const unsigned char* in, uint64_t file_bytes) {
  if (std::memcmp(in, kShardMagic, 8) != 0)
    throw FormatError(path + ": not a teddy shard (bad magic; expected \"TEDDYSHD\")");
  ShardHeader h;
  h.version = get<uint32_t>(in + 8);
  h.token_bytes = get<uint32_t>(in + 12);
  h.token_count = get<uint64_t>(in + 16);
  h.checksum = get<uint64_t>(in + 24);
  h.vocab_size = get<uint32_t>(in + 32);
  if (h.version != kShardVersion)
    throw FormatError(path + ": unsupported shard format version " + std::to_string(h.version) +
                      " (this build reads version " + std::to_string(kShardVersion) + ")");
  if (h.token_bytes != 2 && h.token_bytes != 4)
    throw FormatError(path + ": header token width must be 2 or 4 bytes (got " + std::to_string(h.token_bytes) + ")");
  if (h.vocab_size == 0 || (h.token_bytes == 2 && h.vocab_size > 65536))
    throw FormatError(path + ": header vocab size " + std::to_string(h.vocab_size) +
                      " does not fit token width " + std::to_string(h.token_bytes));
  for (size_t i = 36; i < kShardHeaderBytes; ++i)
    if (in[i] != 0) throw FormatError(path + ": header reserved bytes are not zero (corrupt header?)");
  const uint64_t max_tokens = (UINT64_MAX - kShardHeaderBytes) / h.token_bytes;
  if (h.token_count > max_tokens || kShardHeaderBytes + h.token_count * h.token_bytes != file_bytes)
    throw FormatError(path + ": file is " + std::to_string(file_bytes) + " bytes but the header promises " +
                      std::to_string(h.token_count) + " tokens of " + std::to_string(h.token_bytes) +
                      " bytes (truncated or corrupt)");
  return h;
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

uint32_t shard_token_bytes(int64_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

ShardHeader write_shard(const std::string& path, std::span<const uint32_t> tokens, int64_t vocab_size) {
  if (vocab_size <= 0 || vocab_size > int64_t{UINT32_MAX})
    throw Error(path + ": vocab size must be in [1, 2^32) (got " + std::to_string(vocab_size) + ")");
  ShardHeader h;
  h.token_bytes = shard_token_bytes(vocab_size);
  h.token_count = tokens.size();
  h.vocab_size = static_cast<uint32_t>(vocab_size);
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] >= h.vocab_size)
      throw Error(path + ": token " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                  " is outside the vocabulary of " + std::to_string(vocab_size));

  const void* body = tokens.data();
  std::vector<uint16_t> narrow;
  if (h.token_bytes == 2) {
    narrow.resize(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) narrow[i] = static_cast<uint16_t>(tokens[i]);
    body = narrow.data();
  }
  const size_t body_bytes = tokens.size() * h.token_bytes;
  h.checksum = XXH3_64bits(body, body_bytes);

  unsigned char head[kShardHeaderBytes];
  encode_header(h, head);
  AtomicFile f(path);
  f.write(head, sizeof head);
  f.write(body, body_bytes);
  f.commit();
  return h;
}

ShardHeader read_shard_header(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw FormatError(path + ": cannot open shard: " + errno_text());
  struct stat st {};
  unsigned char head[kShardHeaderBytes];
  const bool ok_stat = ::fstat(fd, &st) == 0;
  const ssize_t n = ok_stat ? ::pread(fd, head, sizeof head, 0) : -1;
  ::close(fd);
  if (!ok_stat) throw FormatError(path + ": cannot stat shard");
  if (n != static_cast<ssize_t>(sizeof head))
    throw FormatError(path + ": too short for a shard header (" + std::to_string(st.st_size) + " bytes, need 64)");
  return decode_header(path, head, static_cast<uint64_t>(st.st_size));
}

ShardReader::ShardReader(const std::string& path, bool verify) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw FormatError(path + ": cannot open shard: " + errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw FormatError(path + ": cannot stat shard: " + errno_text());
  }
  const uint64_t file_bytes = static_cast<uint64_t>(st.st_size);
  if (file_bytes < kShardHeaderBytes) {
    ::close(fd);
    throw FormatError(path + ": too short for a shard header (" + std::to_string(file_bytes) + " bytes, need 64)");
  }
  void* m = ::mmap(nullptr, file_bytes, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);  // the mapping keeps the file alive
  if (m == MAP_FAILED) throw FormatError(path + ": mmap failed: " + errno_text());
  map_ = static_cast<const unsigned char*>(m);
  map_bytes_ = file_bytes;
  try {
    header_ = decode_header(path, map_, file_bytes);
    if (verify) this->verify();
  } catch (...) {
    close();
    throw;
  }
}

ShardReader::~ShardReader() { close(); }

ShardReader::ShardReader(ShardReader&& o) noexcept { *this = std::move(o); }

ShardReader& ShardReader::operator=(ShardReader&& o) noexcept {
  if (this != &o) {
    close();
    path_ = std::move(o.path_);
    header_ = o.header_;
    map_ = o.map_;
    map_bytes_ = o.map_bytes_;
    o.map_ = nullptr;
    o.map_bytes_ = 0;
  }
  return *this;
}

void ShardReader::close() {
  if (map_) ::munmap(const_cast<unsigned char*>(map_), map_bytes_);
  map_ = nullptr;
  map_bytes_ = 0;
}

void ShardReader::verify() const {
  const uint64_t got = XXH3_64bits(map_ + kShardHeaderBytes, header_.token_count * header_.token_bytes);
  if (got != header_.checksum) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "header says %016llx, tokens hash to %016llx",
                  static_cast<unsigned long long>(header_.checksum), static_cast<unsigned long long>(got));
    throw FormatError(path_ + ": checksum mismatch (" + buf + "): the shard is corrupt; re-run `teddy data prepare`");
  }
}

uint32_t ShardReader::at(uint64_t i) const {
  assert(i < header_.token_count);
  const unsigned char* p = map_ + kShardHeaderBytes + i * header_.token_bytes;
  return header_.token_bytes == 2 ? get<uint16_t>(p) : get<uint32_t>(p);
}

void ShardReader::read(uint64_t start, uint64_t n, int32_t* out) const {
  if (start > header_.token_count || n > header_.token_count - start)
    throw Error(path_ + ": read of tokens [" + std::to_string(start) + ", " + std::to_string(start + n) +
                ") past the end (" + std::to_string(header_.token_count) + " tokens)");
  const unsigned char* p = map_ + kShardHeaderBytes + start * header_.token_bytes;
  if (header_.token_bytes == 2) {
    for (uint64_t i = 0; i < n; ++i) out[i] = static_cast<int32_t>(get<uint16_t>(p + 2 * i));
  } else {
    for (uint64_t i = 0; i < n; ++i) out[i] = static_cast<int32_t>(get<uint32_t>(p + 4 * i));
  }
}

}  // namespace teddy
