// LoRA and dropout ops: the double reference against finite differences (through the
// base linear plus the adapter, dropout on the adapter's input), each backend against
// the float reference over odd sizes, several parts with gaps between them (LLaMA's
// q|k|v with only q and v adapted), += and Grad::set, nullptr dx; the dropout mask's
// rate and its independence of the thread count.
#include <cmath>
#include <numeric>
#include <tuple>
#include <vector>

#include "kernels/backend_test.h"
#include "kernels/kernel_check.h"
#include "teddy/kernels/dropout_mask.h"
#include "teddy/kernels/kernels.h"
#include "teddy/kernels/ref/linear.h"
#include "teddy/kernels/ref/lora.h"

namespace {

using namespace teddy::test;
namespace kr = teddy::kernels::ref;
using teddy::kernels::Grad;

class LoraBackend : public BackendTest {};
TEDDY_BACKEND_SUITE(LoraBackend);

// Parts over OC columns: {off, n} pairs.
struct Parts {
  std::vector<int> v;
  int P() const { return static_cast<int>(v.size() / 2); }
  int brows() const {
    int s = 0;
    for (int p = 0; p < P(); ++p) s += v[2 * p + 1];
    return s;
  }
};

TEST(Lora, ReferenceBackwardMatchesFiniteDifferences) {
  // y = x W^T + scale * sum_p (drop(x) A_p^T) B_p^T on part p's columns.
  for (auto [N, C, OC, r, parts, p] :
       {std::tuple{3, 5, 4, 2, Parts{{0, 4}}, 0.0f}, std::tuple{4, 6, 9, 3, Parts{{0, 3, 6, 3}}, 0.0f},
        std::tuple{5, 7, 8, 2, Parts{{0, 2, 2, 3, 5, 3}}, 0.3f}}) {
    SCOPED_TRACE(::testing::Message() << "N=" << N << " C=" << C << " OC=" << OC << " r=" << r << " P=" << parts.P());
    const int R = parts.P() * r;
    const float scale = 1.7f;
    const uint64_t seed = 99;
    auto x = randn<double>(N * C, 1), W = randn<double>(OC * C, 2);
    auto A = randn<double>(R * C, 3), B = randn<double>(parts.brows() * r, 4);
    const auto w = randn<double>(N * OC, 5);
    std::vector<double> out(N * OC), u(N * R), xd(N * C);
    auto loss = [&] {
      kr::linear_forward_t<double>(out.data(), x.data(), W.data(), nullptr, N, C, OC);
      kr::dropout_forward_t<double>(xd.data(), x.data(), N * C, p, seed);
      kr::lora_forward_t<double>(out.data(), u.data(), xd.data(), A.data(), B.data(), N, C, OC, r, parts.P(),
                                 parts.v.data(), scale);
      return dot_loss(out, w);
    };
    loss();
    std::vector<double> dx(N * C), dxd(N * C), dA(R * C), dB(parts.brows() * r), du(N * R);
    kr::linear_backward_t<double>(dx.data(), nullptr, nullptr, w.data(), x.data(), W.data(), N, C, OC);
    kr::lora_backward_t<double>(dxd.data(), dA.data(), dB.data(), du.data(), w.data(), xd.data(), u.data(), A.data(),
                                B.data(), N, C, OC, r, parts.P(), parts.v.data(), scale, true, true);
    kr::dropout_backward_t<double>(dx.data(), dxd.data(), N * C, p, seed, false);
    EXPECT_TRUE(fd_check(loss, x, dx, "dx"));
    EXPECT_TRUE(fd_check(loss, A, dA, "dA"));
    EXPECT_TRUE(fd_check(loss, B, dB, "dB"));
  }
}

// |got - want| <= rtol * bound[i] everywhere, bound = the reference run on absolute
// values (sum of |terms| of every dot product, the classic error bound's scale): a
// single output that cancels to near zero is judged against the size of its terms.
::testing::AssertionResult close_to_terms(const std::vector<float>& got, const std::vector<float>& want,
                                          const std::vector<float>& bound, double rtol) {
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(err <= rtol * bound[i] + 1e-30))
      return ::testing::AssertionFailure() << "element " << i << ": got " << got[i] << ", want " << want[i]
                                           << ", |terms| " << bound[i] << " (rtol " << rtol << ")";
  }
  return ::testing::AssertionSuccess();
}

std::vector<float> absv(std::vector<float> v) {
  for (float& x : v) x = std::fabs(x);
  return v;
}

TEST_P(LoraBackend, MatchesReference) {
  const int sizes[] = {1, 3, 17, 65};
  for (int N : sizes)
    for (int C : sizes)
      for (int OC : {1, 7, 66})
        for (int r : {1, 4})
          for (int np : {1, 2, 3}) {
            // np parts: equal thirds of OC; with 2 parts the middle third is left out (q and v only).
            Parts parts;
            const int third = OC / 3;
            if (np == 1) parts.v = {0, OC};
            if (np == 2) parts.v = {0, third, 2 * third, OC - 2 * third};
            if (np == 3) parts.v = {0, third, third, third, 2 * third, OC - 2 * third};
            SCOPED_TRACE(::testing::Message() << "N=" << N << " C=" << C << " OC=" << OC << " r=" << r << " P=" << np);
            const int R = np * r, BR = parts.brows();
            const uint64_t seed = 1000 + N * 1000 + C * 10 + OC + r;
            const auto x = randn(N * C, seed), A = randn(R * C, seed + 1, 0.5), B = randn(BR * r, seed + 2, 0.5);
            const auto out0 = randn(N * OC, seed + 3), dout = randn(N * OC, seed + 4);
            const auto dx0 = randn(N * C, seed + 5), dA0 = randn(R * C, seed + 6), dB0 = randn(BR * r, seed + 7);
            const float scale = 0.75f;
            const auto xa = absv(x), Aa = absv(A), Ba = absv(B), douta = absv(dout);
            std::vector<float> out_r = out0, u_r(N * R), out_a = absv(out0), u_a(N * R);
            kr::lora_forward(out_r.data(), u_r.data(), x.data(), A.data(), B.data(), N, C, OC, r, np, parts.v.data(), scale);
            kr::lora_forward(out_a.data(), u_a.data(), xa.data(), Aa.data(), Ba.data(), N, C, OC, r, np, parts.v.data(), scale);
            Misaligned out_c(out0), u_c(N * R), xm(x), Am(A), Bm(B);
            kb->lora_forward(out_c.p(), u_c.p(), xm.p(), Am.p(), Bm.p(), N, C, OC, r, np, parts.v.data(), scale);
            // u: C products; out: r products of u plus out0 (chain C + r + 1).
            EXPECT_TRUE(close_to_terms(u_c.vec(), u_r, u_a, rtol_for(kEpsF32, C)));
            EXPECT_TRUE(close_to_terms(out_c.vec(), out_r, out_a, rtol_for(kEpsF32, C + r + 1)));
            // Backward onto non-zero gradients (+=), from the reference's u.
            for (Grad mode : {Grad::add, Grad::set}) {
              std::vector<float> dx_r = dx0, dA_r = dA0, dB_r = dB0, du_r(N * R);
              kr::lora_backward(dx_r.data(), dA_r.data(), dB_r.data(), du_r.data(), dout.data(), x.data(), u_r.data(),
                                A.data(), B.data(), N, C, OC, r, np, parts.v.data(), scale, mode, mode);
              std::vector<float> dx_a = absv(dx0), dA_a = absv(dA0), dB_a = absv(dB0), du_a(N * R);
              kr::lora_backward(dx_a.data(), dA_a.data(), dB_a.data(), du_a.data(), douta.data(), xa.data(), u_a.data(),
                                Aa.data(), Ba.data(), N, C, OC, r, np, parts.v.data(), scale, mode, mode);
              Misaligned dx_c(dx0), dA_c(dA0), dB_c(dB0), du_c(N * R), doutm(dout), um(u_r);
              kb->lora_backward(dx_c.p(), dA_c.p(), dB_c.p(), du_c.p(), doutm.p(), xm.p(), um.p(), Am.p(), Bm.p(), N, C,
                                OC, r, np, parts.v.data(), scale, mode, mode);
              EXPECT_TRUE(close_to_terms(du_c.vec(), du_r, du_a, rtol_for(kEpsF32, OC)));
              EXPECT_TRUE(close_to_terms(dB_c.vec(), dB_r, dB_a, rtol_for(kEpsF32, N + 1)));
              EXPECT_TRUE(close_to_terms(dA_c.vec(), dA_r, dA_a, rtol_for(kEpsF32, OC + N + 1)));
              EXPECT_TRUE(close_to_terms(dx_c.vec(), dx_r, dx_a, rtol_for(kEpsF32, OC + R + 1)));
              // nullptr dx: the parameter gradients are the same.
              Misaligned dA_n(dA0), dB_n(dB0), du_n(N * R);
              kb->lora_backward(nullptr, dA_n.p(), dB_n.p(), du_n.p(), doutm.p(), xm.p(), um.p(), Am.p(), Bm.p(), N, C,
                                OC, r, np, parts.v.data(), scale, mode, mode);
              EXPECT_EQ(dA_n.vec(), dA_c.vec());
              EXPECT_EQ(dB_n.vec(), dB_c.vec());
            }
          }
}

TEST_P(LoraBackend, DropoutMatchesReferenceAndRate) {
  for (float p : {0.0f, 0.1f, 0.5f}) {
    const int64_t n = 200003;  // odd, above the parallel threshold
    const auto x = randn(static_cast<size_t>(n), 7), d0 = randn(static_cast<size_t>(n), 8);
    std::vector<float> want(n), got(n);
    kr::dropout_forward(want.data(), x.data(), n, p, 42);
    kb->dropout_forward(got.data(), x.data(), n, p, 42);
    // One multiplication each (ref: by 1/(1-p) in double, then rounded): within 2 eps.
    EXPECT_TRUE(close_scaled(got, want, 2 * kEpsF32));
    int64_t zeros = 0;
    for (int64_t i = 0; i < n; ++i) zeros += got[i] == 0.0f;
    // Binomial(n, p): 5 standard deviations.
    EXPECT_NEAR(static_cast<double>(zeros) / n, p, 5 * std::sqrt(p * (1 - p) / n) + 1e-9) << "p=" << p;
    for (Grad mode : {Grad::add, Grad::set}) {
      std::vector<float> dr = d0, dc = d0;
      kr::dropout_backward(dr.data(), x.data(), n, p, 42, mode);
      kb->dropout_backward(dc.data(), x.data(), n, p, 42, mode);
      EXPECT_TRUE(close_scaled(dc, dr, 4 * kEpsF32));
    }
    // The mask is a function of (seed, index) alone: any thread count gives it.
    auto runs = results_per_thread_count({1, 2, 3}, [&] {
      std::vector<float> o(n);
      kb->dropout_forward(o.data(), x.data(), n, p, 42);
      return o;
    });
    EXPECT_EQ(runs[0], runs[1]);
    EXPECT_EQ(runs[0], runs[2]);
  }
}

}  // namespace
