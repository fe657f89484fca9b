#include "teddy/kernels/blas_info.h"

#include <cblas.h>

namespace teddy::kernels {

std::string blas_description() {
  std::string s = openblas_get_config();
  s += "; kernels ";
  s += openblas_get_corename();
  return s;
}

}  // namespace teddy::kernels
