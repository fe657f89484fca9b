#pragma once
// GGUF v3 (ggml's model file; docs/INTEROP.md), writing side:
//   "GGUF", u32 version 3, u64 tensor count, u64 key-value count,
//   key-values: gguf string key (u64 length + bytes), u32 value type, value
//     (strings as u64 length + bytes; arrays as u32 element type, u64 count, elements),
//   tensor infos: name, u32 n_dims, u64 dims innermost first (ne[0] = row length),
//     u32 ggml type, u64 offset into the data section (a multiple of the alignment),
//   zero padding to general.alignment (32), then each tensor's bytes, padded to it.
// All little-endian. The file is written to a temporary next to the target, fsynced and
// renamed over it (io/atomic_file.h): a failed write leaves nothing under the name.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace teddy {

enum class GgufValueType : uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8, array = 9,
  u64 = 10, i64 = 11, f64 = 12
};
enum class GgmlType : uint32_t { f32 = 0, f16 = 1, q4_0 = 2, q8_0 = 8, bf16 = 30 };

inline constexpr uint64_t kGgufAlignment = 32;
inline constexpr int kQ8Block = 32;  // Q8_0: 32 weights per block: f16 scale + 32 int8
// Q4_0: also blocks of 32 (QK4_0 = QK8_0): f16 scale + 16 bytes of 4-bit codes.
inline constexpr int kQ4Block = 32;

// Bytes of `n` elements of `t` (n a multiple of kQ8Block for q8_0).
size_t ggml_type_bytes(GgmlType t, size_t n);
const char* ggml_type_name(GgmlType t);

// f32 -> the row-major bytes of type t (f16 / bf16 round to nearest even; q8_0 as
// ggml's quantize_row_q8_0_ref: per block of 32, d = max|x| / 127, q = roundf(x / d)
// (half away from zero), d stored as f16; q4_0 as quantize_row_q4_0_ref: per block of
// 32, m = the element of largest magnitude (its sign kept), d = m / -8, code =
// min(15, (int8)(x / d + 8.5)), byte j = code[j] | code[j + 16] << 4, d as f16).
// q8_0 and q4_0 need n % 32 == 0.
std::vector<std::byte> ggml_encode(GgmlType t, const float* x, size_t n);

class GgufWriter {
 public:
  void add_u32(const std::string& key, uint32_t v);
  void add_i32(const std::string& key, int32_t v);
  void add_u64(const std::string& key, uint64_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_string(const std::string& key, const std::string& v);
  void add_string_array(const std::string& key, const std::vector<std::string>& v);
  void add_i32_array(const std::string& key, const std::vector<int32_t>& v);

  // ne: dims innermost first (a PyTorch [out, in] weight is ne = {in, out}). `bytes`
  // is called once, while write() runs, and must return ggml_type_bytes(type, numel)
  // bytes (so a large model is never held twice in memory).
  void add_tensor(const std::string& name, std::vector<uint64_t> ne, GgmlType type,
                  std::function<std::vector<std::byte>()> bytes);

  // Throws Error naming the path (and the tensor whose bytes came back the wrong size).
  void write(const std::string& path) const;

  size_t tensor_count() const { return tensors_.size(); }

 private:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> ne;
    GgmlType type;
    std::function<std::vector<std::byte>()> bytes;
    uint64_t nbytes = 0;
  };
  std::string kv_;  // serialized key-values
  uint64_t kv_count_ = 0;
  std::vector<Tensor> tensors_;
  void key(const std::string& k, GgufValueType t);
};

}  // namespace teddy
