// Linear over a quantized frozen weight (NF4 with double quantization, bf16): each
// backend equals the plain linear on the dequantized weight (the float reference), over
// odd sizes, with and without bias, add and set; several tiles (OC large enough that
// the cpu backend splits W into row tiles) included.
#include <algorithm>
#include <vector>

#include "kernels/backend_test.h"
#include "kernels/kernel_check.h"
#include "teddy/core/dtype.h"
#include "teddy/core/nf4.h"
#include "teddy/kernels/kernels.h"
#include "teddy/kernels/ref/linear.h"

namespace {

using namespace teddy;
using namespace teddy::test;
namespace kr = teddy::kernels::ref;
using teddy::kernels::Grad;
using teddy::kernels::QuantWeight;

class LinearQBackend : public BackendTest {};
TEDDY_BACKEND_SUITE(LinearQBackend);

TEST_P(LinearQBackend, EqualsLinearOnTheDequantizedWeight) {
  for (auto [N, C, OC] : {std::tuple{1, 1, 1}, std::tuple{3, 17, 65}, std::tuple{7, 130, 33}, std::tuple{5, 64, 5000}}) {
    for (bool nf4 : {true, false}) {
      SCOPED_TRACE(::testing::Message() << "N=" << N << " C=" << C << " OC=" << OC << (nf4 ? " nf4" : " bf16"));
      const uint64_t seed = N * 1000 + C * 10 + OC;
      const std::vector<float> W = randn(static_cast<size_t>(OC) * C, seed, 0.1);
      std::vector<kernels::Nf4Part> q;
      std::vector<uint16_t> b16(W.size());
      QuantWeight qw;
      if (nf4) {
        // Two parts when there are rows enough (a fused weight's HF modules), else one.
        const int split = OC > 2 ? OC / 3 : OC;
        for (auto [r0, R] : {std::pair{0, split}, std::pair{split, OC - split}})
          if (R > 0)
            q.push_back({r0, R, nf4_quantize(W.data() + static_cast<size_t>(r0) * C, static_cast<int64_t>(R) * C, true)});
        qw.kind = QuantWeight::Kind::nf4;
        qw.nf4 = q.data();
        qw.nf4_parts = static_cast<int>(q.size());
      } else {
        convert_f32_to_bf16(b16.data(), W.data(), W.size());
        qw.kind = QuantWeight::Kind::bf16;
        qw.bf16 = b16.data();
      }
      std::vector<float> Wd(W.size());
      kernels::dequantize_rows(qw, C, 0, OC, Wd.data());
      if (nf4) {  // the parts in place, and a range of rows that crosses a part boundary
        std::vector<float> want(W.size());
        for (const kernels::Nf4Part& p : q)
          nf4_dequantize(p.q, 0, p.q.numel, want.data() + static_cast<size_t>(p.row0) * C);
        EXPECT_EQ(Wd, want);
        if (OC > 2) {
          std::vector<float> mid(static_cast<size_t>(OC - 2) * C);
          kernels::dequantize_rows(qw, C, 1, OC - 2, mid.data());
          EXPECT_TRUE(std::equal(mid.begin(), mid.end(), Wd.begin() + C));
        }
      }
      const auto x = randn(static_cast<size_t>(N) * C, seed + 1), bias = randn(OC, seed + 2);
      const auto dout = randn(static_cast<size_t>(N) * OC, seed + 3), dx0 = randn(static_cast<size_t>(N) * C, seed + 4);
      for (bool with_bias : {true, false}) {
        std::vector<float> want(static_cast<size_t>(N) * OC), got(want.size());
        kr::linear_forward(want.data(), x.data(), Wd.data(), with_bias ? bias.data() : nullptr, N, C, OC);
        kb->linear_forward_q(got.data(), x.data(), &qw, with_bias ? bias.data() : nullptr, N, C, OC);
        EXPECT_TRUE(close_scaled(got, want, rtol_for(kEpsF32, C)));
      }
      for (Grad mode : {Grad::add, Grad::set}) {
        std::vector<float> want = dx0, got = dx0;
        kr::linear_backward(want.data(), nullptr, nullptr, dout.data(), x.data(), Wd.data(), N, C, OC, mode, Grad::add);
        kb->linear_backward_q(got.data(), dout.data(), &qw, N, C, OC, mode);
        EXPECT_TRUE(close_scaled(got, want, rtol_for(kEpsF32, OC + 1)));
      }
    }
  }
}

}  // namespace
