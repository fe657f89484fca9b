#pragma once
// safetensors (Hugging Face): u64 little-endian header size N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end)}, "__metadata__": {str: str}},
// padded with spaces to a multiple of 8, then the raw little-endian tensor bytes.
// See docs/FORMATS.md. The reader maps the file and validates every field before
// handing out views; the writer produces the same bytes as the reference Rust
// implementation (same tensor order, compact JSON) and replaces the target atomically.
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace teddy {

// Bytes per element of a safetensors dtype name ("F32", "BF16", ...); throws
// FormatError for an unknown name.
size_t safetensors_dtype_size(std::string_view dtype);
bool safetensors_dtype_known(std::string_view dtype);

// A view of one tensor inside an open file (valid while the file object lives).
struct SafeTensor {
  std::string name;
  std::string dtype;               // "F32", "BF16", "I32", ...
  std::vector<int64_t> shape;      // row-major, outermost first
  std::span<const std::byte> bytes;
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Maps `path` read-only and validates it; throws FormatError naming the file and
  // the tensor or field at fault, Error if the file cannot be opened.
  static SafetensorsFile open(const std::string& path);

  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  bool contains(std::string_view name) const;
  const SafeTensor* find(std::string_view name) const;  // nullptr if absent
  const SafeTensor& get(std::string_view name) const;   // throws Error if absent
  std::vector<std::string> names() const;               // in data-offset order
  size_t size() const { return tensors_.size(); }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Throws Error if the key is absent.
  const std::string& metadata(std::string_view key) const;
  size_t header_bytes() const { return header_bytes_; }  // N (without the 8-byte prefix)

  // Copies a tensor of dtype F32, F64, BF16 or F16 into floats (converting);
  // throws Error on another dtype or if `n` is not its element count.
  void copy_f32(std::string_view name, float* dst, size_t n) const;
  std::vector<float> to_f32(std::string_view name) const;

 private:
  SafetensorsFile() = default;
  void unmap();

  std::string path_;
  const std::byte* map_ = nullptr;
  size_t map_bytes_ = 0;
  size_t header_bytes_ = 0;
  std::vector<SafeTensor> tensors_;  // in data-offset order
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Collects tensors and writes one safetensors file. Tensors are ordered as the
// reference implementation orders them (wider dtype first, then by name), so
// the same input gives the same bytes.
class SafetensorsWriter {
 public:
  // Borrows `data`: it must stay valid until write() returns. `bytes` must equal
  // numel(shape) * dtype size. Throws Error on a duplicate or reserved name,
  // unknown dtype or size mismatch.
  void add(std::string name, std::string dtype, std::vector<int64_t> shape, const void* data,
           size_t bytes);
  // Same, but keeps its own copy of the bytes.
  void add_copy(std::string name, std::string dtype, std::vector<int64_t> shape, const void* data,
                size_t bytes);
  void add_f32(std::string name, std::vector<int64_t> shape, const float* data);
  void add_i32(std::string name, std::vector<int64_t> shape, const int32_t* data);

  void set_metadata(std::string key, std::string value);

  // The exact header (JSON plus padding) write() would emit.
  std::string header() const;
  // Writes to a temporary file in the same directory, fsyncs it, renames it over
  // `path` and fsyncs the directory: readers see the old file or the new one,
  // never a torn one. Throws Error with the path and the system error.
  void write(const std::string& path) const;

 private:
  struct Entry {
    std::string name, dtype;
    std::vector<int64_t> shape;
    const std::byte* data = nullptr;
    size_t bytes = 0;
    std::vector<std::byte> owned;  // set by add_copy
  };
  std::vector<const Entry*> ordered() const;

  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace teddy
