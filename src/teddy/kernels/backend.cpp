// The registry of compiled-in backends: a constant list, no registration at run time.
#include "teddy/kernels/backend.h"

#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <vector>

#include "teddy/core/error.h"
#include "teddy/kernels/blas_info.h"
#include "teddy/kernels/cpu_variant.h"
#include "teddy/kernels/kernels.h"
#include "teddy/kernels/onednn/matmul.h"
#include "teddy/kernels/onednn/onednn.h"

namespace teddy::kernels {

std::span<const Backend* const> available_backends() {
  // onednn-bf16 only where bf16 products are native (fixed for the process: the ISA cap
  // is read from the environment once).
  static const std::vector<const Backend*> all = [] {
    std::vector<const Backend*> v{&ref::table(), &cpu::table(), &onednn::table()};
    if (onednn::native_bf16()) v.push_back(&onednn::bf16_table());
    return v;
  }();
  return all;
}

const Backend& backend(std::string_view name) {
  std::string known;
  for (const Backend* b : available_backends()) {
    if (name == b->name) return *b;
    known += (known.empty() ? "" : ", ") + std::string(b->name);
  }
  if (name == "onednn-bf16")
    throw ConfigError("backend: 'onednn-bf16' needs a CPU with AVX512_BF16 or AMX (oneDNN's ISA here: " +
                      std::string(onednn::describe()) + "; available: " + known + ")");
  throw ConfigError("backend: unknown '" + std::string(name) + "' (available: " + known + ")");
}

const Backend& default_backend() { return cpu::table(); }

Gemm gemm_from_name(std::string_view name, std::string_view field) {
  if (name == "openblas") return Gemm::openblas;
  if (name == "onednn") return Gemm::onednn;
  if (name == "auto") return Gemm::automatic;
  throw ConfigError(std::string(field) + ": unknown GEMM library '" + std::string(name) +
                    "' (expected \"openblas\", \"onednn\" or \"auto\")");
}

std::string_view gemm_name(Gemm g) {
  switch (g) {
    case Gemm::openblas: return "openblas";
    case Gemm::onednn: return "onednn";
    case Gemm::automatic: return "auto";
  }
  return "?";
}

const Backend& gemm_backend(Gemm g, DType precision) {
  if (g == Gemm::automatic) {
    // The measured rule (docs/TRAINING_OPTIMIZATIONS.md, "GEMM library"): bf16 products
    // (only oneDNN has them) where native; otherwise oneDNN only where it has AVX-512
    // and OpenBLAS does not (OpenBLAS's AVX-512 kernels and oneDNN's are at par or
    // OpenBLAS ahead; OpenBLAS's AVX2 kernels trail oneDNN's AVX-512 ones by 1.6-1.8x
    // and lead its AVX2 ones).
    const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
    const auto avx512 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core);
    const bool dnn512 = (isa & avx512) == avx512;
    g = (precision == DType::bf16 && onednn::native_bf16()) || (dnn512 && !blas_has_avx512_kernels()) ? Gemm::onednn
                                                                                                      : Gemm::openblas;
  }
  if (g == Gemm::openblas) return cpu::table();
  if (precision == DType::bf16 && onednn::native_bf16()) return onednn::bf16_table();
  return onednn::table();
}

const Backend& lora_gemm_backend(Gemm g, DType precision, std::string_view compute, bool quantized_base,
                                 std::string_view field) {
  const std::string f(field);
  bool bf16 = false;
  if (compute == "bf16") {
    if (!onednn::native_bf16())
      throw ConfigError(f + ": bf16 products need a CPU with native bf16 (AVX512_BF16 or AMX); oneDNN here: " +
                        onednn::describe() + " (use \"fp32\" or \"auto\")");
    if (g == Gemm::openblas)
      throw ConfigError(f + ": bf16 products run on oneDNN, and train.gemm is \"openblas\" (use gemm \"onednn\" or \"auto\")");
    bf16 = true;
  } else if (compute == "auto") {
    bf16 = quantized_base && g != Gemm::openblas && onednn::native_bf16();
  } else if (compute != "fp32") {
    throw ConfigError(f + ": unknown '" + std::string(compute) + "' (known: auto, fp32, bf16)");
  }
  return bf16 ? onednn::bf16_table() : gemm_backend(g, precision);
}

std::string gemm_description(const Backend& b) {
  for (const CpuVariant& v : cpu_variants())  // any ISA variant: the same OpenBLAS calls
    if (b.linear_forward == v.table->linear_forward) return blas_description();
  if (b.linear_forward == ref::table().linear_forward) return "plain loops (ref)";
  return std::string(onednn::describe()) + (b.gemm_inputs == DType::bf16 ? ", bf16 inputs" : ", fp32");
}

}  // namespace teddy::kernels
