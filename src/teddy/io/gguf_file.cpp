#include "teddy/io/gguf_file.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "teddy/core/dtype.h"
#include "teddy/core/error.h"
#include "teddy/io/atomic_file.h"

namespace teddy {

namespace {

template <class T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // x86-64 and every target ggml runs on: little-endian
  out.append(b, sizeof(T));
}

void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

uint64_t pad_to(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

}  // namespace

size_t ggml_type_bytes(GgmlType t, size_t n) {
  switch (t) {
    case GgmlType::f32: return 4 * n;
    case GgmlType::f16:
    case GgmlType::bf16: return 2 * n;
    case GgmlType::q8_0: return n / kQ8Block * (2 + kQ8Block);
    case GgmlType::q4_0: return n / kQ4Block * (2 + kQ4Block / 2);
  }
  return 0;
}

const char* ggml_type_name(GgmlType t) {
  switch (t) {
    case GgmlType::f32: return "F32";
    case GgmlType::f16: return "F16";
    case GgmlType::bf16: return "BF16";
    case GgmlType::q8_0: return "Q8_0";
    case GgmlType::q4_0: return "Q4_0";
  }
  return "?";
}

std::vector<std::byte> ggml_encode(GgmlType t, const float* x, size_t n) {
  std::vector<std::byte> out(ggml_type_bytes(t, n));
  switch (t) {
    case GgmlType::f32: std::memcpy(out.data(), x, 4 * n); break;
    case GgmlType::f16: convert_f32_to_f16(reinterpret_cast<f16_t*>(out.data()), x, n); break;
    case GgmlType::bf16: convert_f32_to_bf16(reinterpret_cast<bf16_t*>(out.data()), x, n); break;
    case GgmlType::q8_0: {
      if (n % kQ8Block != 0) throw Error("q8_0: " + std::to_string(n) + " elements is not a multiple of 32");
      std::byte* o = out.data();
      for (size_t b = 0; b < n / kQ8Block; ++b, o += 2 + kQ8Block) {
        const float* xb = x + b * kQ8Block;
        float amax = 0.0f;
        for (int j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(xb[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const f16_t dh = f32_to_f16(d);
        std::memcpy(o, &dh, 2);
        for (int j = 0; j < kQ8Block; ++j) {
          const int8_t q = static_cast<int8_t>(std::roundf(xb[j] * id));
          std::memcpy(o + 2 + j, &q, 1);
        }
      }
      break;
    }
    case GgmlType::q4_0: {
      if (n % kQ4Block != 0) throw Error("q4_0: " + std::to_string(n) + " elements is not a multiple of 32");
      std::byte* o = out.data();
      for (size_t b = 0; b < n / kQ4Block; ++b, o += 2 + kQ4Block / 2) {
        const float* xb = x + b * kQ4Block;
        float amax = 0.0f, max = 0.0f;  // the largest magnitude, and that element with its sign
        for (int j = 0; j < kQ4Block; ++j)
          if (amax < std::fabs(xb[j])) {
            amax = std::fabs(xb[j]);
            max = xb[j];
          }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const f16_t dh = f32_to_f16(d);
        std::memcpy(o, &dh, 2);
        for (int j = 0; j < kQ4Block / 2; ++j) {
          // ggml's (int8_t) cast truncates toward zero; x * id + 8.5 lies in [0.5, 16.5].
          const uint8_t lo = static_cast<uint8_t>(std::min<int8_t>(15, static_cast<int8_t>(xb[j] * id + 8.5f)));
          const uint8_t hi =
              static_cast<uint8_t>(std::min<int8_t>(15, static_cast<int8_t>(xb[j + kQ4Block / 2] * id + 8.5f)));
          o[2 + j] = static_cast<std::byte>(lo | (hi << 4));
        }
      }
      break;
    }
  }
  return out;
}

void GgufWriter::key(const std::string& k, GgufValueType t) {
  put_string(kv_, k);
  put<uint32_t>(kv_, static_cast<uint32_t>(t));
  ++kv_count_;
}

void GgufWriter::add_u32(const std::string& k, uint32_t v) { key(k, GgufValueType::u32); put(kv_, v); }
void GgufWriter::add_i32(const std::string& k, int32_t v) { key(k, GgufValueType::i32); put(kv_, v); }
void GgufWriter::add_u64(const std::string& k, uint64_t v) { key(k, GgufValueType::u64); put(kv_, v); }
void GgufWriter::add_f32(const std::string& k, float v) { key(k, GgufValueType::f32); put(kv_, v); }
void GgufWriter::add_bool(const std::string& k, bool v) { key(k, GgufValueType::boolean); put<uint8_t>(kv_, v ? 1 : 0); }
void GgufWriter::add_string(const std::string& k, const std::string& v) { key(k, GgufValueType::string); put_string(kv_, v); }

void GgufWriter::add_string_array(const std::string& k, const std::vector<std::string>& v) {
  key(k, GgufValueType::array);
  put<uint32_t>(kv_, static_cast<uint32_t>(GgufValueType::string));
  put<uint64_t>(kv_, v.size());
  for (const std::string& s : v) put_string(kv_, s);
}

void GgufWriter::add_i32_array(const std::string& k, const std::vector<int32_t>& v) {
  key(k, GgufValueType::array);
  put<uint32_t>(kv_, static_cast<uint32_t>(GgufValueType::i32));
  put<uint64_t>(kv_, v.size());
  for (int32_t x : v) put(kv_, x);
}

void GgufWriter::add_tensor(const std::string& name, std::vector<uint64_t> ne, GgmlType type,
                            std::function<std::vector<std::byte>()> bytes) {
  uint64_t n = 1;
  for (uint64_t d : ne) n *= d;
  if ((type == GgmlType::q8_0 || type == GgmlType::q4_0) && (ne.empty() || ne[0] % kQ8Block != 0))
    throw Error("gguf: " + name + ": " + ggml_type_name(type) + " needs rows of a multiple of 32 elements");
  tensors_.push_back({name, std::move(ne), type, std::move(bytes), ggml_type_bytes(type, n)});
}

void GgufWriter::write(const std::string& path) const {
  std::string head;
  head += "GGUF";
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, kv_count_);
  head += kv_;
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    put_string(head, t.name);
    put<uint32_t>(head, static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) put<uint64_t>(head, d);
    put<uint32_t>(head, static_cast<uint32_t>(t.type));
    put<uint64_t>(head, offset);
    offset += pad_to(t.nbytes, kGgufAlignment);
  }
  head.resize(pad_to(head.size(), kGgufAlignment), '\0');
  AtomicFile f(path);
  f.write(head);
  static const char zeros[kGgufAlignment] = {};
  for (const Tensor& t : tensors_) {
    const std::vector<std::byte> b = t.bytes();
    if (b.size() != t.nbytes)
      throw Error(path + ": tensor " + t.name + ": " + std::to_string(b.size()) + " bytes, expected " +
                  std::to_string(t.nbytes));
    f.write(b.data(), b.size());
    f.write(zeros, pad_to(t.nbytes, kGgufAlignment) - t.nbytes);
  }
  f.commit();
}

}  // namespace teddy
