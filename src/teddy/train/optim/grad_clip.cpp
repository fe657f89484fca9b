#include "teddy/train/optim/grad_clip.h"

#include <cmath>
#include <cstdint>

#include "teddy/kernels/backend.h"

namespace teddy {

double grad_norm(const float* grads, size_t n, const Context& ctx) {
  const ThreadScope threads(ctx);
  return std::sqrt(ctx.ops().sum_squares(grads, static_cast<int64_t>(n)));
}

float clip_scale(double norm, float max_norm) {
  if (max_norm <= 0 || !std::isfinite(norm)) return 1.0f;
  const double s = static_cast<double>(max_norm) / (norm + 1e-6);
  return s < 1.0 ? static_cast<float>(s) : 1.0f;
}

}  // namespace teddy
