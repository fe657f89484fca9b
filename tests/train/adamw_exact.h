#pragma once
// One AdamW step of one element, in double from the fp32 kernel's inputs, with a bound
// on how far the fp32 kernel (kernels/cpu/adamw.cpp) may land from it in p, m and v.
// Shared by the tests that check an optimizer step element by element from a known
// state (tests/train/test_train_step.cpp, tests/distributed/mpi_zero.cpp).
//
// The error terms follow the kernel's operations (eps = 2^-23, unit roundoff eps/2):
// m and v each carry <= 2.5 / 3 eps of their terms (g times the clip scale, which may
// differ from the caller's double recomputation by one float ulp, two products and a
// sum; m can cancel, so its error is relative to beta1|m0| + (1-beta1)|g|, not to |m|),
// then the bias corrections' float casts (computed exactly here), sqrt, + eps, divide,
// decay and the update's roundings, each once.
#include <cmath>
#include <cstdint>

#include "kernels/kernel_check.h"
#include "teddy/train/optim/adamw.h"

namespace teddy::test {

// What depends on the step number only: the bias corrections and their float casts' errors.
struct AdamWStepConstants {
  double bc1 = 1, bc2 = 1;    // 1 / (1 - beta^t)
  double dbc1 = 0, dbc2 = 0;  // |float(bc) - bc|: the kernel folds them in as floats
  AdamWStepConstants(const AdamWConfig& ac, int64_t t) {
    const double b1 = ac.beta1, b2 = ac.beta2, td = static_cast<double>(t);
    bc1 = 1 / (1 - std::pow(b1, td));
    bc2 = 1 / (1 - std::pow(b2, td));
    dbc1 = std::fabs(static_cast<float>(bc1) - bc1);
    dbc2 = std::fabs(static_cast<float>(bc2) - bc2);
  }
};

struct AdamWElementStep {
  double p = 0, m = 0, v = 0;     // after the step, exactly
  double ep = 0, em = 0, ev = 0;  // bounds on the fp32 kernel's distance from them
};

// gs: the gradient times the clip scale, in double; wd: this element's weight decay.
inline AdamWElementStep adamw_element_step(double gs, double p0, double m0, double v0, const AdamWConfig& ac,
                                           double wd, float lr, const AdamWStepConstants& k) {
  const double eps = kEpsF32, b1 = ac.beta1, b2 = ac.beta2;
  AdamWElementStep s;
  s.m = b1 * m0 + (1 - b1) * gs;
  s.v = b2 * v0 + (1 - b2) * gs * gs;
  s.em = 2.5 * eps * (b1 * std::fabs(m0) + (1 - b1) * std::fabs(gs));
  s.ev = 3 * eps * (b2 * v0 + (1 - b2) * gs * gs);
  const double mh = s.m * k.bc1, vh = s.v * k.bc2, sq = std::sqrt(vh), den = sq + ac.eps, u = mh / den;
  const double emh = s.em * k.bc1 + std::fabs(s.m) * k.dbc1 + 0.5 * eps * std::fabs(mh);
  const double evh = s.ev * k.bc2 + s.v * k.dbc2 + 0.5 * eps * vh;
  const double esq = (vh > 0 ? evh / (2 * sq) : std::sqrt(evh)) + 0.5 * eps * sq;
  const double eu = emh / den + std::fabs(u) * (esq + 0.5 * eps * den) / den + 0.5 * eps * std::fabs(u);
  const double full = u + wd * p0;
  s.p = p0 - static_cast<double>(lr) * full;
  s.ep = lr * (eu + eps * (wd * std::fabs(p0) + std::fabs(full))) + 0.5 * eps * (lr * std::fabs(full) + std::fabs(s.p));
  return s;
}

}  // namespace teddy::test
