#pragma once
// Which BLAS the cpu kernels' GEMMs run on, as the library reports itself at run time:
// OpenBLAS's build configuration and the kernel family it picked for this CPU
// (OPENBLAS_CORETYPE overrides the pick). Results that depend on summation order can
// differ between kernel families, so test logs and benchmark records name it.
#include <string>

namespace teddy::kernels {

std::string blas_description();  // "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64; kernels SkylakeX"
// Whether the kernel family OpenBLAS runs here is an AVX-512 one (SkylakeX, Cooperlake,
// SapphireRapids). An OpenBLAS older than its CPU (0.3.21 on Zen 4/5) falls back to AVX2
// kernels (Haswell, Zen) even where the CPU has AVX-512.
bool blas_has_avx512_kernels();

}  // namespace teddy::kernels
