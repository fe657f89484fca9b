#pragma once
// Which BLAS the cpu kernels' GEMMs run on, as the library reports itself at run time:
// OpenBLAS's build configuration and the kernel family it picked for this CPU
// (OPENBLAS_CORETYPE overrides the pick). Results that depend on summation order can
// differ between kernel families, so test logs and benchmark records name it.
#include <string>

namespace teddy::kernels {

std::string blas_description();  // "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64; kernels SkylakeX"

}  // namespace teddy::kernels
