// The backend registry and the table: ref, cpu and onednn are available in that order
// (onednn-bf16 after them exactly where bf16 is native), names look up, an unknown name
// lists the available ones, every table entry is filled, and a table entry is the
// backend namespace's function itself (no wrapper in between); the GEMM choice maps to
// the backends by its documented rule.
#include <gtest/gtest.h>
#include <omp.h>

#include <string>

#include "teddy/core/error.h"
#include "teddy/kernels/backend.h"
#include "teddy/kernels/blas_info.h"
#include "teddy/kernels/context.h"
#include "teddy/kernels/cpu_variant.h"
#include "teddy/kernels/kernels.h"
#include "teddy/kernels/onednn/matmul.h"
#include "teddy/kernels/onednn/onednn.h"

#include <oneapi/dnnl/dnnl.hpp>

namespace {

namespace k = teddy::kernels;

TEST(Backend, RefCpuAndOnednnAreAvailableInOrder) {
  const auto all = k::available_backends();
  ASSERT_EQ(all.size(), k::onednn::native_bf16() ? 4u : 3u);
  EXPECT_STREQ(all[0]->name, "ref");
  EXPECT_STREQ(all[1]->name, "cpu");
  EXPECT_STREQ(all[2]->name, "onednn");
  if (all.size() == 4) {
    EXPECT_STREQ(all[3]->name, "onednn-bf16");
  }
  for (const k::Backend* b : all) {
    SCOPED_TRACE(b->name);
    EXPECT_EQ(&k::backend(b->name), b);
    EXPECT_NE(std::string(b->summary), "");
  }
  EXPECT_EQ(&k::default_backend(), &k::backend("cpu"));
}

TEST(Backend, UnknownNameListsTheAvailableOnes) {
  try {
    k::backend("cuda-but-not-built");
    FAIL() << "no throw";
  } catch (const teddy::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("cuda-but-not-built"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("available: ref, cpu, onednn"), std::string::npos) << e.what();
  }
}

// Where bf16 is not native the bf16 table is refused with the reason, not "unknown".
TEST(Backend, Bf16TableNeedsNativeBf16) {
  if (k::onednn::native_bf16()) {
    EXPECT_EQ(k::backend("onednn-bf16").gemm_inputs, teddy::DType::bf16);
    return;
  }
  try {
    k::backend("onednn-bf16");
    FAIL() << "no throw";
  } catch (const teddy::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("AVX512_BF16 or AMX"), std::string::npos) << e.what();
  }
}

// openblas -> cpu; onednn -> onednn, or onednn-bf16 for bf16 where native (fp16 and
// fp32 stay on fp32 products); auto -> onednn-bf16 for bf16 where native, else onednn
// exactly where oneDNN's ISA has AVX-512 and OpenBLAS's kernels do not.
TEST(Backend, GemmChoiceFollowsItsRule) {
  using teddy::DType;
  for (DType p : {DType::f32, DType::bf16, DType::f16}) {
    EXPECT_EQ(&k::gemm_backend(k::Gemm::openblas, p), &k::cpu::table());
    const k::Backend& want = p == DType::bf16 && k::onednn::native_bf16() ? k::onednn::bf16_table() : k::onednn::table();
    EXPECT_EQ(&k::gemm_backend(k::Gemm::onednn, p), &want);
    const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
    const auto avx512 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core);
    const bool dnn = (p == DType::bf16 && k::onednn::native_bf16()) ||
                     ((isa & avx512) == avx512 && !k::blas_has_avx512_kernels());
    EXPECT_EQ(&k::gemm_backend(k::Gemm::automatic, p), dnn ? &want : &k::cpu::table());
  }
  for (const char* n : {"openblas", "onednn", "auto"}) EXPECT_EQ(k::gemm_name(k::gemm_from_name(n, "f")), n);
  try {
    k::gemm_from_name("mkl", "train.gemm");
    FAIL() << "no throw";
  } catch (const teddy::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("train.gemm: unknown GEMM library 'mkl'"), std::string::npos) << e.what();
  }
  EXPECT_NE(k::gemm_description(k::onednn::table()).find("oneDNN"), std::string::npos);
}

// cpu is the kernel variant this CPU runs (kernels/cpu_variant.h); the baseline variant,
// always first, is namespace cpu's functions (the avx512 one, cpu_avx512's).
TEST(Backend, TablesHoldTheNamespacesFunctions) {
  const k::Backend& ref = k::backend("ref");
  EXPECT_EQ(&k::backend("cpu"), k::cpu_variant().table);
  const k::Backend& cpu = *k::cpu_variants()[0].table;
#define TEDDY_OP(R, OP, ARGS)       \
  EXPECT_EQ(ref.OP, &k::ref::OP) << #OP; \
  EXPECT_EQ(cpu.OP, &k::cpu::OP) << #OP;
#include "teddy/kernels/ops.inc"
}

// The onednn tables are cpu's but for the linear entries: the two fp32-weight linears in
// both, and in onednn-bf16 also the two over a quantized base (bf16 products there).
TEST(Backend, OnednnTablesAreCpusButTheLinears) {
  const k::Backend& cpu = k::backend("cpu");
  const k::Backend* tables[] = {&k::onednn::table(), &k::onednn::bf16_table()};
  for (const k::Backend* t : tables) {
    SCOPED_TRACE(t->name);
    const bool bf16 = t == tables[1];
    EXPECT_EQ(t->linear_forward, bf16 ? &k::onednn::linear_forward_bf16 : &k::onednn::linear_forward);
    EXPECT_EQ(t->linear_backward, bf16 ? &k::onednn::linear_backward_bf16 : &k::onednn::linear_backward);
    EXPECT_EQ(t->linear_forward_q, bf16 ? &k::onednn::linear_forward_q_bf16 : cpu.linear_forward_q);
    EXPECT_EQ(t->linear_backward_q, bf16 ? &k::onednn::linear_backward_q_bf16 : cpu.linear_backward_q);
    // linear16: oneDNN's bf16 matmuls on bf16 operands, or (fp32 table) its fp32 ones on them widened.
    EXPECT_EQ(t->linear16_forward, bf16 ? &k::onednn::linear16_forward : &k::onednn::linear16_forward_f32);
    EXPECT_EQ(t->linear16_backward, bf16 ? &k::onednn::linear16_backward : &k::onednn::linear16_backward_f32);
#define TEDDY_OP(R, OP, ARGS) \
  if (std::string(#OP).rfind("linear", 0) != 0) {                   \
    EXPECT_EQ(t->OP, cpu.OP) << #OP;                                 \
  }
#include "teddy/kernels/ops.inc"
  }
}

// lora.compute: bf16 -> onednn-bf16 (or a ConfigError naming the field without native
// bf16 or with openblas); fp32 -> the plain rule; auto -> bf16 exactly for a quantized
// base where native and the library is not openblas.
TEST(Backend, LoraBaseProductsFollowLoraCompute) {
  using teddy::DType;
  const bool native = k::onednn::native_bf16();
  auto error_of = [](auto f) -> std::string {
    try {
      f();
    } catch (const teddy::ConfigError& e) {
      return e.what();
    }
    return "no throw";
  };
  for (k::Gemm g : {k::Gemm::openblas, k::Gemm::onednn, k::Gemm::automatic})
    for (bool quantized : {false, true}) {
      SCOPED_TRACE(std::string(k::gemm_name(g)) + (quantized ? " quantized" : " fp32 base"));
      const k::Backend& plain = k::gemm_backend(g, DType::f32);
      EXPECT_EQ(&k::lora_gemm_backend(g, DType::f32, "fp32", quantized, "lora.compute"), &plain);
      const bool want_auto = quantized && native && g != k::Gemm::openblas;
      EXPECT_EQ(&k::lora_gemm_backend(g, DType::f32, "auto", quantized, "lora.compute"),
                want_auto ? &k::onednn::bf16_table() : &plain);
      if (native && g != k::Gemm::openblas) {
        EXPECT_EQ(&k::lora_gemm_backend(g, DType::f32, "bf16", quantized, "lora.compute"), &k::onednn::bf16_table());
      } else {
        const std::string e = error_of([&] { k::lora_gemm_backend(g, DType::f32, "bf16", quantized, "lora.compute"); });
        EXPECT_EQ(e.rfind("lora.compute: bf16 products", 0), 0u) << e;
      }
    }
  EXPECT_NE(error_of([] { k::lora_gemm_backend(k::Gemm::onednn, DType::f32, "fp8", true, "lora.compute"); })
                .find("lora.compute: unknown 'fp8' (known: auto, fp32, bf16)"),
            std::string::npos);
}

TEST(Context, DefaultsToCpuAndTheCallersThreads) {
  const teddy::Context ctx;
  EXPECT_EQ(ctx.backend, &k::backend("cpu"));
  EXPECT_EQ(ctx.threads, 0);
  EXPECT_EQ(ctx.stream, nullptr);
}

TEST(Context, ThreadScopeSetsAndRestores) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(3);
  {
    const teddy::ThreadScope none(teddy::Context{});  // threads 0: leaves the setting alone
    EXPECT_EQ(omp_get_max_threads(), 3);
  }
  {
    const teddy::ThreadScope one(teddy::Context{.threads = 1});
    EXPECT_EQ(omp_get_max_threads(), 1);
  }
  EXPECT_EQ(omp_get_max_threads(), 3);
  omp_set_num_threads(saved);
}

}  // namespace
