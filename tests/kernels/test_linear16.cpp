// linear16 (linear with bf16 operands, ops.inc), on every backend: against the float
// reference run on the widened bf16 values (input, weight and dout rounded to nearest
// even first), odd sizes, bias or none, the input as fp32 or as bf16 bits (at a
// 2-byte-misaligned address), set vs add, nullptr gradients; and, bit for bit, against
// the same backend's linear_forward / linear_backward on the widened values (what
// makes the model's bf16 fast path give the old path's numbers exactly).
#include <cstring>
#include <tuple>
#include <vector>

#include "kernels/backend_test.h"
#include "kernels/kernel_check.h"
#include "teddy/core/dtype.h"
#include "teddy/kernels/kernels.h"

namespace {

using namespace teddy::test;
namespace kr = teddy::kernels::ref;
using teddy::kernels::Grad;

class Linear16Backend : public BackendTest {};
TEDDY_BACKEND_SUITE(Linear16Backend);

// v rounded to bf16: the bits, and their widening.
std::vector<uint16_t> bits_of(const std::vector<float>& v) {
  std::vector<uint16_t> b(v.size());
  teddy::convert_f32_to_bf16(b.data(), v.data(), v.size());
  return b;
}
std::vector<float> widened(const std::vector<uint16_t>& b) {
  std::vector<float> v(b.size());
  teddy::convert_bf16_to_f32(v.data(), b.data(), b.size());
  return v;
}
// A copy at an odd 2-byte offset from the allocation (not 4-, 32- or 64-byte aligned).
struct Misaligned16 {
  std::vector<uint16_t> store;
  explicit Misaligned16(const std::vector<uint16_t>& v) : store(v.size() + 1) {
    std::copy(v.begin(), v.end(), store.begin() + 1);
  }
  const uint16_t* p() const { return store.data() + 1; }
};

// The products are of bf16 values, exact in fp32 (8-bit significands: 16-bit
// products), so only the fp32 accumulation error remains against ref's double sums:
// rtol_for(fp32, K). An implementation that skipped rounding an fp32 operand (input,
// dout) would be off by up to 2^-8 relative per term: far outside it
// (RoundingIsNotSkipped below shows the gap at these sizes).
TEST_P(Linear16Backend, MatchesReferenceOnBf16Values) {
  for (auto [N, C, OC] : {std::tuple{33, 130, 65}, std::tuple{1, 1, 1}, std::tuple{7, 17, 5}}) {
    for (bool bias_on : {false, true}) {
      for (bool given16 : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "N=" << N << " C=" << C << " OC=" << OC << " bias=" << bias_on
                                          << " input given as bf16=" << given16);
        const auto x = randn(N * C, 90), weight = randn(OC * C, 91), bias = randn(OC, 92), dout = randn(N * OC, 93);
        const auto x16 = bits_of(x), w16 = bits_of(weight), d16 = bits_of(dout);
        const auto xr = widened(x16), wr = widened(w16), dr = widened(d16);
        const Misaligned16 xm(x16), wm(w16);
        const float* b = bias_on ? bias.data() : nullptr;
        const float* inp = given16 ? nullptr : x.data();
        const uint16_t* inp16 = given16 ? xm.p() : nullptr;

        std::vector<float> out(N * OC, 7.0f), out_r(N * OC);
        kb->linear16_forward(out.data(), inp, inp16, wm.p(), b, N, C, OC);
        kr::linear_forward(out_r.data(), xr.data(), wr.data(), b, N, C, OC);
        EXPECT_TRUE(close_scaled(out, out_r, rtol_for(kEpsF32, C))) << "forward";

        // set, then add on top of it: twice the products (dbias: twice the fp32 colsum).
        std::vector<float> dinp(N * C, 5.0f), dweight(OC * C, 5.0f), dbias(OC, 5.0f);
        for (Grad mode : {Grad::set, Grad::add})
          kb->linear16_backward(dinp.data(), dweight.data(), bias_on ? dbias.data() : nullptr, dout.data(), inp, inp16,
                                wm.p(), N, C, OC, mode, mode);
        std::vector<float> dinp_r(N * C), dweight_r(OC * C), dbias_r(OC);
        kr::linear_backward(dinp_r.data(), dweight_r.data(), nullptr, dr.data(), xr.data(), wr.data(), N, C, OC,
                            Grad::set, Grad::set);
        kr::linear_backward(nullptr, nullptr, dbias_r.data(), dout.data(), nullptr, nullptr, N, C, OC, Grad::set,
                            Grad::set);  // the bias gradient: of the unrounded dout
        for (auto* v : {&dinp_r, &dweight_r, &dbias_r})
          for (float& e : *v) e *= 2;
        EXPECT_TRUE(close_scaled(dinp, dinp_r, rtol_for(kEpsF32, OC))) << "dinp";
        EXPECT_TRUE(close_scaled(dweight, dweight_r, rtol_for(kEpsF32, N))) << "dweight";
        if (bias_on) EXPECT_TRUE(close_scaled(dbias, dbias_r, rtol_for(kEpsF32, N))) << "dbias";

        // Not needed: nullptr dinp leaves only the parameter gradients (set).
        std::vector<float> dw2(OC * C, 3.0f);
        kb->linear16_backward(nullptr, dw2.data(), nullptr, dout.data(), inp, inp16, wm.p(), N, C, OC, Grad::set,
                              Grad::set);
        for (float& e : dweight_r) e /= 2;
        EXPECT_TRUE(close_scaled(dw2, dweight_r, rtol_for(kEpsF32, N))) << "dweight alone";
      }
    }
  }
}

// linear16 on bf16 bits gives exactly what the same backend's fp32-signature linear
// gives on the widened values: for onednn-bf16 the same primitive on the same bf16
// operands (its own rounding of a rounded value is the identity), elsewhere the very
// same call. dout is rounded here for linear_backward as linear16 rounds it itself.
TEST_P(Linear16Backend, BitIdenticalToLinearOnTheWidenedValues) {
  const int N = 64, C = 96, OC = 80;
  const auto x = randn(N * C, 94), weight = randn(OC * C, 95), bias = randn(OC, 96), dout = randn(N * OC, 97);
  const auto x16 = bits_of(x), w16 = bits_of(weight), d16 = bits_of(dout);
  const auto xr = widened(x16), wr = widened(w16), dr = widened(d16);
  std::vector<float> out(N * OC), out_w(N * OC), out_f(N * OC);
  kb->linear16_forward(out.data(), nullptr, x16.data(), w16.data(), bias.data(), N, C, OC);
  kb->linear16_forward(out_f.data(), x.data(), nullptr, w16.data(), bias.data(), N, C, OC);
  kb->linear_forward(out_w.data(), xr.data(), wr.data(), bias.data(), N, C, OC);
  EXPECT_EQ(0, std::memcmp(out.data(), out_w.data(), out.size() * 4));
  EXPECT_EQ(0, std::memcmp(out_f.data(), out_w.data(), out.size() * 4)) << "fp32 input rounded by the op";
  std::vector<float> dinp(N * C), dw(OC * C), dinp_w(N * C), dw_w(OC * C);
  kb->linear16_backward(dinp.data(), dw.data(), nullptr, dout.data(), nullptr, x16.data(), w16.data(), N, C, OC,
                        Grad::set, Grad::set);
  kb->linear_backward(dinp_w.data(), dw_w.data(), nullptr, dr.data(), xr.data(), wr.data(), N, C, OC, Grad::set,
                      Grad::set);
  EXPECT_EQ(0, std::memcmp(dinp.data(), dinp_w.data(), dinp.size() * 4));
  EXPECT_EQ(0, std::memcmp(dw.data(), dw_w.data(), dw.size() * 4));
}

// The test above would not notice an op that skipped rounding the fp32 input or dout
// on a backend computing fp32 products: this one does. The reference on the unrounded
// values is outside the fp32 bound the products of bf16 values meet.
TEST_P(Linear16Backend, RoundingIsNotSkipped) {
  const int N = 33, C = 130, OC = 65;
  const auto x = randn(N * C, 98), weight = randn(OC * C, 99), dout = randn(N * OC, 100);
  const auto w16 = bits_of(weight);
  const auto wr = widened(w16);
  std::vector<float> out(N * OC), out_f(N * OC), dinp(N * C), dinp_f(N * C);
  kb->linear16_forward(out.data(), x.data(), nullptr, w16.data(), nullptr, N, C, OC);
  kr::linear_forward(out_f.data(), x.data(), wr.data(), nullptr, N, C, OC);
  EXPECT_FALSE(close_scaled(out, out_f, rtol_for(kEpsF32, C))) << "the fp32 input was not rounded";
  kb->linear16_backward(dinp.data(), nullptr, nullptr, dout.data(), x.data(), nullptr, w16.data(), N, C, OC,
                        Grad::set, Grad::set);
  kr::linear_backward(dinp_f.data(), nullptr, nullptr, dout.data(), nullptr, wr.data(), N, C, OC, Grad::set,
                      Grad::set);
  EXPECT_FALSE(close_scaled(dinp, dinp_f, rtol_for(kEpsF32, OC))) << "dout was not rounded";
}

}  // namespace
