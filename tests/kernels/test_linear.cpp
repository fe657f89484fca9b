// Linear trio: double reference vs finite differences, each backend (cpu: sgemm;
// onednn: oneDNN matmuls, fp32 and, where native, bf16 inputs) vs the float reference
// over odd sizes with and without bias and with nullptr gradients, += accumulation,
// forward overwrite, dbias determinism across thread counts.
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "kernels/backend_test.h"
#include "kernels/kernel_check.h"
#include "teddy/kernels/kernels.h"
#include "teddy/kernels/ref/linear.h"

namespace {

using namespace teddy::test;
namespace kr = teddy::kernels::ref;
using teddy::kernels::Grad;

class LinearBackend : public BackendTest {
 protected:
  // kernel_check.h's product_close, with the bf16 term where this backend's GEMMs round to bf16.
  ::testing::AssertionResult product_close(const std::vector<float>& got, const std::vector<float>& want,
                                           const std::vector<float>& mag, int K) const {
    return teddy::test::product_close(kb->gemm_inputs != teddy::DType::f32, got, want, mag, K);
  }
};
TEDDY_BACKEND_SUITE(LinearBackend);

TEST(Linear, ReferenceBackwardMatchesFiniteDifferences) {
  for (auto [N, C, OC] : {std::tuple{3, 5, 4}, std::tuple{1, 1, 1}, std::tuple{4, 7, 9}}) {
    SCOPED_TRACE(::testing::Message() << "N=" << N << " C=" << C << " OC=" << OC);
    auto x = randn<double>(N * C, 1);
    auto weight = randn<double>(OC * C, 2);
    auto bias = randn<double>(OC, 3);
    const auto w = randn<double>(N * OC, 4);  // dL/dout
    std::vector<double> out(N * OC);
    auto loss = [&] {
      kr::linear_forward_t<double>(out.data(), x.data(), weight.data(), bias.data(), N, C, OC);
      return dot_loss(out, w);
    };
    std::vector<double> dx(N * C), dweight(OC * C), dbias(OC);
    kr::linear_backward_t<double>(dx.data(), dweight.data(), dbias.data(), w.data(), x.data(), weight.data(),
                                  N, C, OC);
    EXPECT_TRUE(fd_check(loss, x, dx, "dinp"));
    EXPECT_TRUE(fd_check(loss, weight, dweight, "dweight"));
    EXPECT_TRUE(fd_check(loss, bias, dbias, "dbias"));
  }
}

TEST_P(LinearBackend, MatchesReference) {
  const int sizes[] = {1, 3, 17, 65, 130};
  for (int N : sizes) {
    for (int C : sizes) {
      for (int OC : sizes) {
        for (bool with_bias : {true, false}) {
          SCOPED_TRACE(::testing::Message() << "N=" << N << " C=" << C << " OC=" << OC << " bias=" << with_bias);
          const uint64_t seed = 100 + N * 10000 + C * 100 + OC;
          const auto x = randn(N * C, seed), weight = randn(OC * C, seed + 1, 0.5);
          const auto bias = randn(OC, seed + 2), dout = randn(N * OC, seed + 3);
          const auto dinp0 = randn(N * C, seed + 4), dweight0 = randn(OC * C, seed + 5);
          const auto dbias0 = randn(OC, seed + 6);

          std::vector<float> out_r(N * OC);
          kr::linear_forward(out_r.data(), x.data(), weight.data(), with_bias ? bias.data() : nullptr, N, C, OC);
          Misaligned out_c(std::vector<float>(N * OC)), xm(x), wm(weight), bm(bias);
          kb->linear_forward(out_c.p(), xm.p(), wm.p(), with_bias ? bm.p() : nullptr, N, C, OC);
          // The magnitudes sum_k |a_k||b_k| of the three products (bf16 bounds).
          const auto ax = abs_of(x), aw = abs_of(weight), ad = abs_of(dout);
          std::vector<float> out_m(N * OC), dinp_m(N * C), dweight_m(OC * C);
          kr::linear_forward(out_m.data(), ax.data(), aw.data(), nullptr, N, C, OC);
          kr::linear_backward(dinp_m.data(), dweight_m.data(), nullptr, ad.data(), ax.data(), aw.data(), N, C, OC,
                              Grad::set, Grad::set);
          EXPECT_TRUE(product_close(out_c.vec(), out_r, out_m, C));

          // Backward onto non-zero gradients (+=); no bias also means no dbias.
          std::vector<float> dinp_r = dinp0, dweight_r = dweight0, dbias_r = dbias0;
          kr::linear_backward(dinp_r.data(), dweight_r.data(), with_bias ? dbias_r.data() : nullptr, dout.data(),
                              x.data(), weight.data(), N, C, OC, Grad::add, Grad::add);
          Misaligned dinp_c(dinp0), dweight_c(dweight0), dbias_c(dbias0), doutm(dout);
          kb->linear_backward(dinp_c.p(), dweight_c.p(), with_bias ? dbias_c.p() : nullptr, doutm.p(), xm.p(),
                              wm.p(), N, C, OC, Grad::add, Grad::add);
          EXPECT_TRUE(product_close(dinp_c.vec(), dinp_r, dinp_m, OC));
          EXPECT_TRUE(product_close(dweight_c.vec(), dweight_r, dweight_m, N));
          EXPECT_TRUE(close_scaled(dbias_c.vec(), dbias_r, rtol_for(kEpsF32, N)));  // fp32 column sums
          if (!with_bias) {
            EXPECT_EQ(dbias_c.vec(), dbias0);
          }

          // nullptr dinp (first layer): the other gradients are unchanged by its absence.
          Misaligned dweight_c2(dweight0), dbias_c2(dbias0);
          kb->linear_backward(nullptr, dweight_c2.p(), dbias_c2.p(), doutm.p(), xm.p(), wm.p(), N, C, OC, Grad::add,
                              Grad::add);
          EXPECT_TRUE(product_close(dweight_c2.vec(), dweight_r, dweight_m, N));
          if (with_bias) {
            EXPECT_TRUE(close_scaled(dbias_c2.vec(), dbias_r, rtol_for(kEpsF32, N)));
          }
        }
      }
    }
  }
}

TEST_P(LinearBackend, BackwardAccumulates) {
  const int N = 17, C = 33, OC = 65;
  const auto x = randn(N * C, 20), weight = randn(OC * C, 21), dout = randn(N * OC, 22);
  auto run = [&](int times) {
    std::vector<float> dinp(N * C), dweight(OC * C), dbias(OC);
    for (int k = 0; k < times; ++k)
      kb->linear_backward(dinp.data(), dweight.data(), dbias.data(), dout.data(), x.data(), weight.data(), N, C, OC,
                          teddy::kernels::Grad::add, teddy::kernels::Grad::add);
    return std::vector<std::vector<float>>{dinp, dweight, dbias};
  };
  const auto once = run(1), twice = run(2);
  expect_doubled(once, twice, 4 * kEpsF32);
}

// Grad::set: dinp is overwritten (NaN garbage in it must not survive) with what adding
// onto zeros gives; dweight and dbias still accumulate.
TEST_P(LinearBackend, BackwardSetOverwritesDinpOnly) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (auto [N, C, OC] : {std::tuple{17, 33, 65}, std::tuple{5, 1, 3}, std::tuple{4, 6, 0}}) {
    SCOPED_TRACE(::testing::Message() << "N=" << N << " C=" << C << " OC=" << OC);
    const auto x = randn(N * C, 60), weight = randn(OC * C, 61), dout = randn(N * OC, 62);
    const auto dweight0 = randn(OC * C, 63), dbias0 = randn(OC, 64);
    std::vector<float> dinp_add(N * C, 0.0f), dw_add = dweight0, db_add = dbias0;
    kb->linear_backward(dinp_add.data(), dw_add.data(), db_add.data(), dout.data(), x.data(), weight.data(), N, C, OC,
                        Grad::add, Grad::add);
    std::vector<float> dinp_set(N * C, nan), dw_set = dweight0, db_set = dbias0;
    kb->linear_backward(dinp_set.data(), dw_set.data(), db_set.data(), dout.data(), x.data(), weight.data(), N, C, OC,
                        Grad::set, Grad::add);
    EXPECT_TRUE(close_scaled(dinp_set, dinp_add, rtol_for(kEpsF32, OC)));
    EXPECT_EQ(dw_set, dw_add);
    EXPECT_EQ(db_set, db_add);
  }
}

// Grad::set for the parameter gradients: dweight and dbias are overwritten (NaN garbage
// does not survive) with what adding onto zeros gives, bit for bit; dinp still adds.
TEST_P(LinearBackend, BackwardSetParamsOverwritesDweightAndDbias) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (auto [N, C, OC] : {std::tuple{17, 33, 65}, std::tuple{5, 1, 3}, std::tuple{0, 6, 4}}) {
    SCOPED_TRACE(::testing::Message() << "N=" << N << " C=" << C << " OC=" << OC);
    const auto x = randn(N * C, 70), weight = randn(OC * C, 71), dout = randn(N * OC, 72);
    const auto dinp0 = randn(N * C, 73);
    std::vector<float> dinp_add = dinp0, dw_add(OC * C, 0.0f), db_add(OC, 0.0f);
    kb->linear_backward(dinp_add.data(), dw_add.data(), db_add.data(), dout.data(), x.data(), weight.data(), N, C, OC,
                        Grad::add, Grad::add);
    std::vector<float> dinp_set = dinp0, dw_set(OC * C, nan), db_set(OC, nan);
    kb->linear_backward(dinp_set.data(), dw_set.data(), db_set.data(), dout.data(), x.data(), weight.data(), N, C, OC,
                        Grad::add, Grad::set);
    EXPECT_EQ(dinp_set, dinp_add);
    EXPECT_EQ(dw_set, dw_add);
    EXPECT_EQ(db_set, db_add);
  }
}

TEST_P(LinearBackend, ForwardOverwritesOutput) {
  // out starts as NaN: the forward must set it, with or without bias.
  const int N = 5, C = 9, OC = 7;
  const auto x = randn(N * C, 40), weight = randn(OC * C, 41), bias = randn(OC, 42);
  for (const float* b : {bias.data(), static_cast<const float*>(nullptr)}) {
    std::vector<float> want(N * OC), got(N * OC, std::numeric_limits<float>::quiet_NaN());
    kr::linear_forward(want.data(), x.data(), weight.data(), b, N, C, OC);
    kb->linear_forward(got.data(), x.data(), weight.data(), b, N, C, OC);
    std::vector<float> mag(N * OC);
    kr::linear_forward(mag.data(), abs_of(x).data(), abs_of(weight).data(), nullptr, N, C, OC);
    EXPECT_TRUE(product_close(got, want, mag, C));
  }
}

// Every column's sum runs over the rows in order in double whatever the split (column
// ranges per thread, 2048-column chunks), so dbias is the serial double sum, bit for bit,
// at any thread count; OC = 5000 spans several chunks, OC = 7 leaves threads idle.
TEST_P(LinearBackend, DbiasIsDeterministicAcrossThreadCounts) {
  for (const int OC : {1000, 5000, 7}) {
    SCOPED_TRACE(::testing::Message() << "OC " << OC);
    const int N = 257, C = 3;
    const auto x = randn(N * C, 50), weight = randn(OC * C, 51), dout = randn(N * OC, 52);
    const auto init = randn(OC, 53);
    std::vector<float> want_set(OC), want_add(OC);
    for (int o = 0; o < OC; ++o) {
      double acc = 0;
      for (int n = 0; n < N; ++n) acc += static_cast<double>(dout[static_cast<size_t>(n) * OC + o]);
      want_set[o] = static_cast<float>(acc);
      want_add[o] = static_cast<float>(static_cast<double>(init[o]) + acc);
    }
    const auto results = results_per_thread_count({1, 2, 3}, [&] {
      std::vector<float> set(OC, std::nanf("")), add = init;
      kb->linear_backward(nullptr, nullptr, set.data(), dout.data(), x.data(), weight.data(), N, C, OC,
                          teddy::kernels::Grad::set, teddy::kernels::Grad::set);
      kb->linear_backward(nullptr, nullptr, add.data(), dout.data(), x.data(), weight.data(), N, C, OC, Grad::add,
                          Grad::add);
      set.insert(set.end(), add.begin(), add.end());
      return set;
    });
    std::vector<float> want = want_set;
    want.insert(want.end(), want_add.begin(), want_add.end());
    for (const auto& r : results) EXPECT_EQ(r, want);
  }
}

}  // namespace

namespace {

// A backend with bf16 GEMM inputs computes exactly the reference's products of the
// bf16-rounded inputs (so only fp32 accumulation error remains: the fp32 bound), and
// those differ from the unrounded products by more than that bound (so the bf16
// bounds above are not met by an fp32 product by accident, and the rounding happens).
TEST_P(LinearBackend, GemmInputsAreRoundedAsDeclared) {
  const int N = 33, C = 130, OC = 65;
  const auto x = randn(N * C, 80), weight = randn(OC * C, 81), dout = randn(N * OC, 82);
  auto rounded = [&](const std::vector<float>& v) {
    std::vector<float> r(v);
    if (kb->gemm_inputs != teddy::DType::f32) teddy::round_through(kb->gemm_inputs, r.data(), nullptr, r.size());
    return r;
  };
  const auto xr = rounded(x), wr = rounded(weight), dr = rounded(dout);
  std::vector<float> out(N * OC), dinp(N * C), dweight(OC * C);
  kb->linear_forward(out.data(), x.data(), weight.data(), nullptr, N, C, OC);
  kb->linear_backward(dinp.data(), dweight.data(), nullptr, dout.data(), x.data(), weight.data(), N, C, OC,
                      Grad::set, Grad::set);
  std::vector<float> out_r(N * OC), dinp_r(N * C), dweight_r(OC * C);
  kr::linear_forward(out_r.data(), xr.data(), wr.data(), nullptr, N, C, OC);
  kr::linear_backward(dinp_r.data(), dweight_r.data(), nullptr, dr.data(), xr.data(), wr.data(), N, C, OC, Grad::set,
                      Grad::set);
  EXPECT_TRUE(close_scaled(out, out_r, rtol_for(kEpsF32, C)));
  EXPECT_TRUE(close_scaled(dinp, dinp_r, rtol_for(kEpsF32, OC)));
  EXPECT_TRUE(close_scaled(dweight, dweight_r, rtol_for(kEpsF32, N)));
  if (kb->gemm_inputs == teddy::DType::f32) return;
  std::vector<float> out_f(N * OC);
  kr::linear_forward(out_f.data(), x.data(), weight.data(), nullptr, N, C, OC);
  EXPECT_FALSE(close_scaled(out, out_f, rtol_for(kEpsF32, C))) << "bf16 products indistinguishable from fp32";
}

}  // namespace
