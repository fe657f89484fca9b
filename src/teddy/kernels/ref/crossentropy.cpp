// kernels::ref crossentropy: the float instantiation of ref/crossentropy.h.
#include "teddy/kernels/ref/crossentropy.h"

#include "teddy/kernels/kernels.h"

namespace teddy::kernels::ref {

double crossentropy_forward_backward(float* losses, float* dlogits, const float* logits,
                                     const int32_t* targets, int N, int V, int Vp, int ignore_index,
                                     float dloss) {
  return crossentropy_forward_backward_t<float>(losses, dlogits, logits, targets, N, V, Vp, ignore_index,
                                                dloss);
}

}  // namespace teddy::kernels::ref
