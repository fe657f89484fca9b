#include "teddy/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "teddy/core/dtype.h"
#include "teddy/core/error.h"

namespace teddy {
namespace {

// The reference implementation refuses headers above 100 MB; so do we (a corrupt
// size field must not make us parse gigabytes).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DtypeInfo {
  std::string_view name;
  size_t size;
  int rank;  // position in the reference's Dtype enum (increasing alignment)
};
constexpr DtypeInfo kDtypes[] = {
    {"BOOL", 1, 0}, {"U8", 1, 1},  {"I8", 1, 2},   {"F8_E5M2", 1, 3}, {"F8_E4M3", 1, 4},
    {"I16", 2, 5},  {"U16", 2, 6}, {"F16", 2, 7},  {"BF16", 2, 8},    {"I32", 4, 9},
    {"U32", 4, 10}, {"F32", 4, 11}, {"F64", 8, 12}, {"I64", 8, 13},   {"U64", 8, 14},
};

const DtypeInfo* dtype_info(std::string_view name) {
  for (const auto& d : kDtypes)
    if (d.name == name) return &d;
  return nullptr;
}

std::string sys_error(const std::string& what, const std::string& path) {
  return path + ": " + what + ": " + std::strerror(errno);
}

// numel * elem_size with overflow detection; false on overflow or negative dims.
bool checked_nbytes(const std::vector<int64_t>& shape, size_t elem, uint64_t& out) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return false;
    const auto ud = static_cast<uint64_t>(d);
    if (ud != 0 && n > std::numeric_limits<uint64_t>::max() / ud) return false;
    n *= ud;
  }
  if (elem != 0 && n > std::numeric_limits<uint64_t>::max() / elem) return false;
  out = n * elem;
  return true;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

// A non-negative JSON integer that fits u64, or throw naming the field.
uint64_t json_u64(const nlohmann::json& j, const std::string& where) {
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  if (j.is_number_integer() && j.get<int64_t>() >= 0) return static_cast<uint64_t>(j.get<int64_t>());
  throw FormatError(where + ": expected a non-negative integer (got " + j.dump() + ")");
}

void write_all(int fd, const void* data, size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const size_t chunk = std::min<size_t>(n, size_t{1} << 30);
    const ssize_t w = ::write(fd, p, chunk);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(sys_error("write failed", path));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

size_t safetensors_dtype_size(std::string_view dtype) {
  if (const DtypeInfo* d = dtype_info(dtype)) return d->size;
  throw FormatError("safetensors: unknown dtype \"" + std::string(dtype) + "\"");
}

bool safetensors_dtype_known(std::string_view dtype) { return dtype_info(dtype) != nullptr; }

int64_t SafeTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---- reader -------------------------------------------------------------------

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept { *this = std::move(o); }

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    unmap();
    path_ = std::move(o.path_);
    map_ = std::exchange(o.map_, nullptr);
    map_bytes_ = std::exchange(o.map_bytes_, 0);
    header_bytes_ = o.header_bytes_;
    tensors_ = std::move(o.tensors_);
    index_ = std::move(o.index_);
    metadata_ = std::move(o.metadata_);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() { unmap(); }

void SafetensorsFile::unmap() {
  if (map_) ::munmap(const_cast<std::byte*>(map_), map_bytes_);
  map_ = nullptr;
  map_bytes_ = 0;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(sys_error("cannot open", path));
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw Error(sys_error("cannot stat", path));
  }
  const auto file_bytes = static_cast<uint64_t>(st.st_size);
  if (file_bytes < 8) {
    ::close(fd);
    throw FormatError(path + ": file is " + std::to_string(file_bytes) +
                      " bytes, too short for the 8-byte header size");
  }
  void* m = ::mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);  // the mapping keeps the file alive
  if (m == MAP_FAILED) throw Error(sys_error("mmap failed", path));
  f.map_ = static_cast<const std::byte*>(m);
  f.map_bytes_ = file_bytes;

  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(f.map_[i]);  // little-endian
  if (n > kMaxHeaderBytes)
    throw FormatError(path + ": header size " + std::to_string(n) + " exceeds the 100 MB limit");
  if (n + 8 > file_bytes)
    throw FormatError(path + ": header size " + std::to_string(n) + " runs past the end of the " +
                      std::to_string(file_bytes) + "-byte file");
  f.header_bytes_ = n;
  const std::string_view text(reinterpret_cast<const char*>(f.map_ + 8), n);
  if (text.empty() || text.front() != '{')
    throw FormatError(path + ": header must be a JSON object starting with '{'");

  // Duplicate keys would silently hide a tensor: catch them while parsing.
  std::string dup;
  std::unordered_set<std::string> seen;
  nlohmann::json::parser_callback_t cb = [&](int depth, nlohmann::json::parse_event_t ev,
                                             nlohmann::json& parsed) {
    if (ev == nlohmann::json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      auto k = parsed.get<std::string>();
      if (!seen.insert(k).second && dup.empty()) dup = k;
    }
    return true;
  };
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text.begin(), text.end(), cb);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path + ": header is not valid JSON: " + e.what());
  }
  if (!dup.empty()) throw FormatError(path + ": header names \"" + dup + "\" twice");
  if (!header.is_object()) throw FormatError(path + ": header must be a JSON object");

  const uint64_t data_bytes = file_bytes - 8 - n;
  const std::byte* data = f.map_ + 8 + n;
  struct Span { uint64_t begin, end; size_t idx; };
  std::vector<Span> spans;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) throw FormatError(path + ": __metadata__ must be an object of strings");
      for (auto m2 = v.begin(); m2 != v.end(); ++m2) {
        if (!m2.value().is_string())
          throw FormatError(path + ": __metadata__." + m2.key() + ": value must be a string (got " +
                            m2.value().dump() + ")");
        f.metadata_[m2.key()] = m2.value().get<std::string>();
      }
      continue;
    }
    const std::string where = path + ": tensor \"" + name + "\"";
    if (!v.is_object()) throw FormatError(where + ": entry must be an object");
    for (auto k = v.begin(); k != v.end(); ++k)
      if (k.key() != "dtype" && k.key() != "shape" && k.key() != "data_offsets")
        throw FormatError(where + ": unknown field \"" + k.key() + "\"");
    if (!v.contains("dtype") || !v["dtype"].is_string())
      throw FormatError(where + ": dtype: missing or not a string");
    const std::string dtype = v["dtype"].get<std::string>();
    const DtypeInfo* di = dtype_info(dtype);
    if (!di) throw FormatError(where + ": dtype: unknown \"" + dtype + "\"");
    if (!v.contains("shape") || !v["shape"].is_array())
      throw FormatError(where + ": shape: missing or not an array");
    std::vector<int64_t> shape;
    for (const auto& d : v["shape"]) {
      const uint64_t u = json_u64(d, where + ": shape");
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw FormatError(where + ": shape: dimension too large");
      shape.push_back(static_cast<int64_t>(u));
    }
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      throw FormatError(where + ": data_offsets: must be an array [begin, end]");
    const uint64_t b = json_u64(v["data_offsets"][0], where + ": data_offsets");
    const uint64_t e = json_u64(v["data_offsets"][1], where + ": data_offsets");
    if (e < b)
      throw FormatError(where + ": data_offsets: end " + std::to_string(e) + " before begin " +
                        std::to_string(b));
    if (e > data_bytes)
      throw FormatError(where + ": data_offsets: [" + std::to_string(b) + ", " + std::to_string(e) +
                        ") out of range (data section is " + std::to_string(data_bytes) + " bytes)");
    uint64_t nbytes = 0;
    if (!checked_nbytes(shape, di->size, nbytes))
      throw FormatError(where + ": shape " + shape_str(shape) + " overflows");
    if (nbytes != e - b)
      throw FormatError(where + ": shape " + shape_str(shape) + " of " + dtype + " needs " +
                        std::to_string(nbytes) + " bytes but data_offsets span " +
                        std::to_string(e - b));
    spans.push_back({b, e, f.tensors_.size()});
    f.tensors_.push_back(SafeTensor{name, dtype, std::move(shape),
                                    std::span<const std::byte>(data + b, static_cast<size_t>(e - b))});
  }

  // Data must be covered exactly once, in order, with no gaps and nothing left over.
  std::stable_sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  const std::string* prev = nullptr;
  for (const Span& s : spans) {
    const std::string& name = f.tensors_[s.idx].name;
    if (s.begin < pos)
      throw FormatError(path + ": tensor \"" + name + "\": data_offsets overlap tensor \"" + *prev +
                        "\"");
    if (s.begin > pos)
      throw FormatError(path + ": tensor \"" + name + "\": gap of " + std::to_string(s.begin - pos) +
                        " bytes before its data_offsets begin " + std::to_string(s.begin));
    pos = s.end;
    prev = &name;
  }
  if (pos != data_bytes)
    throw FormatError(path + ": tensors cover " + std::to_string(pos) + " of the " +
                      std::to_string(data_bytes) + " data bytes (trailing bytes not described)");

  // Store in offset order so names() is deterministic and matches the file.
  std::vector<SafeTensor> ordered;
  ordered.reserve(spans.size());
  for (const Span& s : spans) ordered.push_back(std::move(f.tensors_[s.idx]));
  f.tensors_ = std::move(ordered);
  for (size_t i = 0; i < f.tensors_.size(); ++i) f.index_.emplace(f.tensors_[i].name, i);
  return f;
}

bool SafetensorsFile::contains(std::string_view name) const { return find(name) != nullptr; }

const SafeTensor* SafetensorsFile::find(std::string_view name) const {
  const auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const SafeTensor& SafetensorsFile::get(std::string_view name) const {
  if (const SafeTensor* t = find(name)) return *t;
  throw Error(path_ + ": no tensor named \"" + std::string(name) + "\"");
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> r;
  r.reserve(tensors_.size());
  for (const auto& t : tensors_) r.push_back(t.name);
  return r;
}

const std::string& SafetensorsFile::metadata(std::string_view key) const {
  const auto it = metadata_.find(std::string(key));
  if (it == metadata_.end()) throw Error(path_ + ": no __metadata__ key \"" + std::string(key) + "\"");
  return it->second;
}

void SafetensorsFile::copy_f32(std::string_view name, float* dst, size_t n) const {
  const SafeTensor& t = get(name);
  const std::string where = path_ + ": tensor \"" + t.name + "\"";
  if (static_cast<size_t>(t.numel()) != n)
    throw Error(where + ": has " + std::to_string(t.numel()) + " elements, expected " +
                std::to_string(n));
  const std::byte* src = t.bytes.data();
  // memcpy element by element: the data may be unaligned in files from other writers.
  if (t.dtype == "F32") {
    std::memcpy(dst, src, n * 4);
  } else if (t.dtype == "F64") {
    for (size_t i = 0; i < n; ++i) {
      double d;
      std::memcpy(&d, src + 8 * i, 8);
      dst[i] = static_cast<float>(d);
    }
  } else if (t.dtype == "BF16" || t.dtype == "F16") {
    const bool bf = t.dtype == "BF16";
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      dst[i] = bf ? bf16_to_f32(h) : f16_to_f32(h);
    }
  } else {
    throw Error(where + ": dtype " + t.dtype + " is not a float type");
  }
}

std::vector<float> SafetensorsFile::to_f32(std::string_view name) const {
  const SafeTensor& t = get(name);
  std::vector<float> r(static_cast<size_t>(t.numel()));
  copy_f32(name, r.data(), r.size());
  return r;
}

// ---- writer -------------------------------------------------------------------

void SafetensorsWriter::add(std::string name, std::string dtype, std::vector<int64_t> shape,
                            const void* data, size_t bytes) {
  const DtypeInfo* di = dtype_info(dtype);
  if (!di) throw Error("safetensors writer: tensor \"" + name + "\": unknown dtype \"" + dtype + "\"");
  if (name == "__metadata__") throw Error("safetensors writer: \"__metadata__\" is a reserved name");
  if (index_.count(name)) throw Error("safetensors writer: tensor \"" + name + "\" added twice");
  uint64_t need = 0;
  if (!checked_nbytes(shape, di->size, need) || need != bytes)
    throw Error("safetensors writer: tensor \"" + name + "\": shape " + shape_str(shape) + " of " +
                dtype + " needs " + std::to_string(need) + " bytes, got " + std::to_string(bytes));
  if (bytes > 0 && data == nullptr)
    throw Error("safetensors writer: tensor \"" + name + "\": null data");
  index_.emplace(name, entries_.size());
  entries_.push_back(Entry{std::move(name), std::move(dtype), std::move(shape),
                           static_cast<const std::byte*>(data), bytes, {}});
}

void SafetensorsWriter::add_copy(std::string name, std::string dtype, std::vector<int64_t> shape,
                                 const void* data, size_t bytes) {
  std::vector<std::byte> owned(bytes);
  if (bytes) std::memcpy(owned.data(), data, bytes);
  add(std::move(name), std::move(dtype), std::move(shape), owned.data(), bytes);
  // Moving the vector keeps its heap block, so the borrowed pointer stays valid.
  entries_.back().owned = std::move(owned);
}

void SafetensorsWriter::add_f32(std::string name, std::vector<int64_t> shape, const float* data) {
  uint64_t n = 0;
  checked_nbytes(shape, 4, n);
  add(std::move(name), "F32", std::move(shape), data, n);
}

void SafetensorsWriter::add_i32(std::string name, std::vector<int64_t> shape, const int32_t* data) {
  uint64_t n = 0;
  checked_nbytes(shape, 4, n);
  add(std::move(name), "I32", std::move(shape), data, n);
}

void SafetensorsWriter::set_metadata(std::string key, std::string value) {
  metadata_[std::move(key)] = std::move(value);
}

std::vector<const SafetensorsWriter::Entry*> SafetensorsWriter::ordered() const {
  std::vector<const Entry*> r;
  for (const auto& e : entries_) r.push_back(&e);
  // The reference order: descending dtype alignment rank, then name (bytewise).
  std::sort(r.begin(), r.end(), [](const Entry* a, const Entry* b) {
    const int ra = dtype_info(a->dtype)->rank, rb = dtype_info(b->dtype)->rank;
    return ra != rb ? ra > rb : a->name < b->name;
  });
  return r;
}

std::string SafetensorsWriter::header() const {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata_) m[k] = v;
    h["__metadata__"] = std::move(m);
  }
  uint64_t offset = 0;
  for (const Entry* e : ordered()) {
    nlohmann::ordered_json t = nlohmann::ordered_json::object();
    t["dtype"] = e->dtype;
    t["shape"] = e->shape;
    t["data_offsets"] = {offset, offset + e->bytes};
    offset += e->bytes;
    h[e->name] = std::move(t);
  }
  std::string s;
  try {
    s = h.dump();  // compact, like serde_json::to_string
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("safetensors writer: a name or metadata value is not valid UTF-8: ") +
                e.what());
  }
  s.append((8 - s.size() % 8) % 8, ' ');  // keep the data section 8-byte aligned
  return s;
}

void SafetensorsWriter::write(const std::string& path) const {
  const std::string head = header();
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmp_name = ".";  // hidden, and unique per call thanks to mkstemp
  tmp_name += target.filename().string();
  tmp_name += ".tmp.XXXXXX";
  std::string tmp = (dir / tmp_name).string();
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) throw Error(sys_error("cannot create a temporary file next to it", path));
  bool closed = false;
  try {
    ::fchmod(fd, 0644);  // mkstemp makes 0600; checkpoints should be readable like other files
    uint8_t n8[8];
    uint64_t n = head.size();
    for (int i = 0; i < 8; ++i) n8[i] = static_cast<uint8_t>(n >> (8 * i));
    write_all(fd, n8, 8, tmp);
    write_all(fd, head.data(), head.size(), tmp);
    for (const Entry* e : ordered()) write_all(fd, e->data, e->bytes, tmp);
    if (::fsync(fd) != 0) throw Error(sys_error("fsync failed", tmp));
    closed = true;
    if (::close(fd) != 0) throw Error(sys_error("close failed", tmp));
  } catch (...) {
    if (!closed) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string msg = sys_error("rename from " + tmp + " failed", path);
    ::unlink(tmp.c_str());
    throw Error(msg);
  }
  // Make the rename itself durable.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace teddy
