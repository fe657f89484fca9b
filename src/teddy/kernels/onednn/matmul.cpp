// The cached oneDNN matmul (matmul.h).
#include "teddy/kernels/onednn/matmul.h"

#include <omp.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <tuple>
#include <unordered_map>

#include "teddy/core/buffer.h"
#include "teddy/core/dtype.h"
#include "teddy/core/error.h"

namespace teddy::kernels::onednn {

namespace {

using dt = dnnl::memory::data_type;

// What a primitive depends on. threads: oneDNN's OpenMP runtime fixes its work split
// for the team size at creation, so a ThreadScope that changes the count gets its own.
struct Key {
  int64_t M, N, K, a_sm, a_sk, b_sk, b_sn, ldc;
  bool bias, accumulate, bf16;
  int threads;
  auto tie() const { return std::tie(M, N, K, a_sm, a_sk, b_sk, b_sn, ldc, bias, accumulate, bf16, threads); }
  bool operator<(const Key& o) const { return tie() < o.tie(); }
};

// A primitive and the memory objects it runs on; a call only swaps their data pointers.
struct Entry {
  dnnl::matmul prim;
  dnnl::memory a, b, c, bias, scratch;
  size_t scratch_bytes = 0;
  std::unordered_map<int, dnnl::memory> args;
};

// Grows, never shrinks: once every shape has run, no call allocates.
struct Growing {
  std::unique_ptr<void, void (*)(void*)> p{nullptr, [](void* q) { std::free(q); }};
  size_t bytes = 0;
  void* get(size_t want) {
    if (want > bytes) {
      const size_t n = (want + 63) / 64 * 64;
      void* q = std::aligned_alloc(64, n);
      if (!q) throw Error("oneDNN matmul: cannot allocate " + std::to_string(n) + " bytes of scratch");
      p.reset(q);
      bytes = n;
    }
    return p.get();
  }
};

struct ThreadState {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  std::map<Key, Entry> cache;
  Growing scratch, a16, b16, shared16;
};

ThreadState& state() {
  thread_local ThreadState s;
  return s;
}

Entry make_entry(ThreadState& s, const Key& k) {
  const dt in = k.bf16 ? dt::bf16 : dt::f32;
  const dnnl::memory::desc a_md({k.M, k.K}, in, dnnl::memory::dims{k.a_sm, k.a_sk});
  const dnnl::memory::desc b_md({k.K, k.N}, in, dnnl::memory::dims{k.b_sk, k.b_sn});
  const dnnl::memory::desc c_md({k.M, k.N}, dt::f32, dnnl::memory::dims{k.ldc, 1});
  const dnnl::memory::desc bias_md({1, k.N}, dt::f32, dnnl::memory::dims{k.N, 1});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (k.accumulate) {
    dnnl::post_ops po;
    po.append_sum(1.0f);
    attr.set_post_ops(po);
  }
  const auto desc = k.bias ? dnnl::matmul::desc(a_md, b_md, bias_md, c_md) : dnnl::matmul::desc(a_md, b_md, c_md);
  dnnl::matmul::primitive_desc pd;
  try {
    pd = dnnl::matmul::primitive_desc(desc, attr, s.eng);
  } catch (const dnnl::error& e) {
    throw Error(std::string("oneDNN matmul: no implementation for ") + (k.bf16 ? "bf16" : "f32") + " M=" +
                std::to_string(k.M) + " N=" + std::to_string(k.N) + " K=" + std::to_string(k.K) + " (" + e.what() +
                ")");
  }
  Entry e;
  e.prim = dnnl::matmul(pd);
  e.a = dnnl::memory(a_md, s.eng, DNNL_MEMORY_NONE);
  e.b = dnnl::memory(b_md, s.eng, DNNL_MEMORY_NONE);
  e.c = dnnl::memory(c_md, s.eng, DNNL_MEMORY_NONE);
  if (k.bias) e.bias = dnnl::memory(bias_md, s.eng, DNNL_MEMORY_NONE);
  e.scratch_bytes = pd.scratchpad_desc().get_size();
  e.args = {{DNNL_ARG_SRC, e.a}, {DNNL_ARG_WEIGHTS, e.b}, {DNNL_ARG_DST, e.c}};
  if (k.bias) e.args.emplace(DNNL_ARG_BIAS, e.bias);
  if (e.scratch_bytes) {
    e.scratch = dnnl::memory(pd.scratchpad_desc(), s.eng, DNNL_MEMORY_NONE);
    e.args.emplace(DNNL_ARG_SCRATCHPAD, e.scratch);
  }
  return e;
}

}  // namespace

void matmul(const MatmulArgs& m) {
  ThreadState& s = state();
  const Key k{m.M,        m.N,          m.K,    m.a_sm, m.a_sk, m.b_sk, m.b_sn, m.ldc ? m.ldc : m.N, m.bias != nullptr,
              m.accumulate, m.bf16, omp_get_max_threads()};
  auto it = s.cache.find(k);
  if (it == s.cache.end()) it = s.cache.emplace(k, make_entry(s, k)).first;
  Entry& e = it->second;
  // The extent each operand spans: its last element's offset + 1.
  const size_t a_n = static_cast<size_t>((m.M - 1) * m.a_sm + (m.K - 1) * m.a_sk + 1);
  const size_t b_n = static_cast<size_t>((m.K - 1) * m.b_sk + (m.N - 1) * m.b_sn + 1);
  if (m.bf16) {
    const bf16_t* a16 = m.a16;
    const bf16_t* b16 = m.b16;
    if (!a16) {
      auto* r = static_cast<bf16_t*>(s.a16.get(a_n * sizeof(bf16_t)));
      convert_f32_to_bf16(r, m.a, a_n);
      a16 = r;
    }
    if (!b16) {
      auto* r = static_cast<bf16_t*>(s.b16.get(b_n * sizeof(bf16_t)));
      convert_f32_to_bf16(r, m.b, b_n);
      b16 = r;
    }
    e.a.set_data_handle(const_cast<bf16_t*>(a16));
    e.b.set_data_handle(const_cast<bf16_t*>(b16));
  } else {
    e.a.set_data_handle(const_cast<float*>(m.a));
    e.b.set_data_handle(const_cast<float*>(m.b));
  }
  e.c.set_data_handle(m.c);
  if (m.bias) e.bias.set_data_handle(const_cast<float*>(m.bias));
  // The thread's one scratch buffer (grown to the largest shape's need so far).
  if (e.scratch_bytes) e.scratch.set_data_handle(s.scratch.get(e.scratch_bytes));
  e.prim.execute(s.strm, e.args);
  s.strm.wait();
}

const uint16_t* round_shared(const float* x, size_t n) {
  auto* t = static_cast<bf16_t*>(state().shared16.get(n * sizeof(bf16_t)));
  convert_f32_to_bf16(t, x, n);
  return t;
}

bool native_bf16() {
  const auto isa = dnnl::get_effective_cpu_isa();
  return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
}

const char* describe() {
  static const std::string d = [] {
    const dnnl_version_t* v = dnnl_version();
    std::string isa;
    switch (dnnl::get_effective_cpu_isa()) {
      case dnnl::cpu_isa::avx2: isa = "avx2"; break;
      case dnnl::cpu_isa::avx2_vnni: isa = "avx2_vnni"; break;
      case dnnl::cpu_isa::avx512_core: isa = "avx512_core"; break;
      case dnnl::cpu_isa::avx512_core_vnni: isa = "avx512_core_vnni"; break;
      case dnnl::cpu_isa::avx512_core_bf16: isa = "avx512_core_bf16"; break;
      case dnnl::cpu_isa::avx512_core_amx: isa = "avx512_core_amx"; break;
      default: isa = "other"; break;
    }
    return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) +
           ", ISA " + isa;
  }();
  return d.c_str();
}

}  // namespace teddy::kernels::onednn
