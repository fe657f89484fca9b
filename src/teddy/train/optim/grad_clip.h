#pragma once
// Global gradient-norm clipping (as torch.nn.utils.clip_grad_norm_): the L2 norm
// over all gradients, and the factor min(1, max_norm / (norm + 1e-6)) that the
// optimizer folds into its grad_scale instead of rewriting the gradients.
#include <cstddef>

#include "teddy/kernels/context.h"

namespace teddy {

// L2 norm of n floats (double accumulation: ctx's sum_squares). The flat gradient
// buffer's alignment padding is zero, so the whole buffer can be passed.
double grad_norm(const float* grads, size_t n, const Context& ctx = {});

// Scale that brings `norm` down to max_norm; 1 when norm <= max_norm or when
// max_norm <= 0 (clipping disabled). A non-finite norm gives 1 (the caller
// decides whether to skip the step).
float clip_scale(double norm, float max_norm);

}  // namespace teddy
