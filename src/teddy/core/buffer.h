#pragma once
// One allocation, many views (llm.c's malloc_and_point_parameters): parameters,
// gradients, AdamW moments and activations each live in one aligned buffer, and
// every tensor is an offset into it, so all-reduce, ZeRO sharding and checkpoints
// act on plain ranges.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace teddy {

constexpr size_t kAlignBytes = 64;  // one cache line / one AVX-512 register
constexpr size_t kHugePageBytes = size_t{2} << 20;  // buffers this large get huge pages

inline size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

// Owning, 64-byte aligned, zero-initialised byte buffer.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  // `what` names the buffer in the error an allocation that fails throws
  // ("out of memory allocating <what> (N bytes); ... available").
  explicit AlignedBuffer(size_t bytes, const std::string& what = {});
  AlignedBuffer(AlignedBuffer&&) noexcept = default;
  AlignedBuffer& operator=(AlignedBuffer&&) noexcept = default;

  void resize(size_t bytes, const std::string& what = {});  // reallocates and zeroes
  void zero();
  size_t bytes() const { return bytes_; }
  std::byte* data() { return ptr_.get(); }
  const std::byte* data() const { return ptr_.get(); }
  template <class T> T* as() { return reinterpret_cast<T*>(ptr_.get()); }
  template <class T> const T* as() const { return reinterpret_cast<const T*>(ptr_.get()); }

 private:
  struct Free { void operator()(std::byte* p) const; };
  std::unique_ptr<std::byte, Free> ptr_;
  size_t bytes_ = 0;
};

// Bump allocator over an AlignedBuffer. Sized once (per batch and sequence
// length): plan with a counting pass (take() on an unallocated arena only
// counts), then allocate() and take() the same sequence again for real.
class Arena {
 public:
  // Reserve n elements of T, aligned to kAlignBytes. Returns nullptr while counting.
  template <class T> T* take(size_t n) {
    const size_t off = used_;
    used_ = align_up(used_ + n * sizeof(T), kAlignBytes);
    if (used_ > peak_) peak_ = used_;
    if (buf_.bytes() == 0) return nullptr;
    if (used_ > buf_.bytes()) overflow();
    return reinterpret_cast<T*>(buf_.data() + off);
  }
  void allocate(size_t bytes, const std::string& what = {}) { buf_.resize(bytes, what); used_ = 0; peak_ = 0; }
  void allocate_counted(const std::string& what = {}) { allocate(peak_, what); }  // size to what the counting pass took
  void reset() { used_ = 0; }                    // reuse from the start
  size_t used() const { return used_; }
  size_t peak() const { return peak_; }
  size_t capacity() const { return buf_.bytes(); }
  bool allocated() const { return buf_.bytes() != 0; }
  void zero() { buf_.zero(); }

 private:
  [[noreturn]] void overflow() const;
  AlignedBuffer buf_;
  size_t used_ = 0, peak_ = 0;
};

}  // namespace teddy
