#include "teddy/kernels/blas_info.h"

#include <cblas.h>

#include <cctype>

namespace teddy::kernels {

std::string blas_description() {
  std::string s = openblas_get_config();
  s += "; kernels ";
  s += openblas_get_corename();
  return s;
}

bool blas_has_avx512_kernels() {
  std::string core = openblas_get_corename();
  for (char& c : core) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return core == "skylakex" || core == "cooperlake" || core == "sapphirerapids";
}

}  // namespace teddy::kernels
