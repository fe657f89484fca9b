// Token + position embedding trio: double reference vs finite differences, cpu vs
// float reference (bitwise: both add rows in order) over odd sizes, repeated tokens,
// wpe == nullptr and misaligned pointers; += accumulation; thread-count determinism.
#include <vector>

#include "kernels/backend_test.h"
#include "kernels/kernel_check.h"
#include "teddy/kernels/kernels.h"
#include "teddy/kernels/ref/encoder.h"

namespace {

using namespace teddy::test;
namespace kr = teddy::kernels::ref;

class EncoderBackend : public BackendTest {};
TEDDY_BACKEND_SUITE(EncoderBackend);

TEST(Encoder, ReferenceBackwardMatchesFiniteDifferences) {
  const int N = 6, C = 5, V = 4, T = 3;
  const std::vector<int32_t> tokens = {1, 3, 1, 1, 0, 3}, pos = {0, 1, 2, 0, 1, 2};
  auto wte = randn<double>(V * C, 1), wpe = randn<double>(T * C, 2);
  const auto w = randn<double>(N * C, 3);
  std::vector<double> out(N * C);
  for (bool with_pos : {true, false}) {
    SCOPED_TRACE(with_pos ? "with wpe" : "wpe == nullptr");
    auto loss = [&] {
      kr::encoder_forward_t<double>(out.data(), tokens.data(), pos.data(), wte.data(),
                                    with_pos ? wpe.data() : nullptr, N, C);
      return dot_loss(out, w);
    };
    std::vector<double> dwte(V * C), dwpe(T * C);
    kr::encoder_backward_t<double>(dwte.data(), with_pos ? dwpe.data() : nullptr, w.data(), tokens.data(),
                                   pos.data(), N, C);
    EXPECT_TRUE(fd_check(loss, wte, dwte, "dwte"));
    if (with_pos) {
      EXPECT_TRUE(fd_check(loss, wpe, dwpe, "dwpe"));
    }
  }
}

TEST_P(EncoderBackend, MatchesReferenceBitwise) {
  const int V = 13, T = 16;  // tiny vocabulary: tokens repeat many times
  for (int N : {1, 3, 17, 64, 1000}) {
    for (int C : {1, 7, 33, 768}) {
      for (bool with_pos : {true, false}) {
        SCOPED_TRACE(::testing::Message() << "N=" << N << " C=" << C << (with_pos ? " wpe" : " no wpe"));
        const auto tokens = randint(N, 0, V, 100 + N);
        std::vector<int32_t> pos(N);
        for (int i = 0; i < N; ++i) pos[i] = i % T;
        const auto wte = randn(V * C, 101), wpe = randn(T * C, 102), dout = randn(N * C, 103);
        const auto dwte0 = randn(V * C, 104), dwpe0 = randn(T * C, 105);

        std::vector<float> out_r(N * C), dwte_r = dwte0, dwpe_r = dwpe0;
        kr::encoder_forward(out_r.data(), tokens.data(), pos.data(), wte.data(), with_pos ? wpe.data() : nullptr,
                            N, C);
        kr::encoder_backward(dwte_r.data(), with_pos ? dwpe_r.data() : nullptr, dout.data(), tokens.data(),
                             pos.data(), N, C);
        Misaligned out_c(N * C), dwte_c(dwte0), dwpe_c(dwpe0), wtem(wte), wpem(wpe), doutm(dout);
        kb->encoder_forward(out_c.p(), tokens.data(), with_pos ? pos.data() : nullptr, wtem.p(),
                            with_pos ? wpem.p() : nullptr, N, C);
        kb->encoder_backward(dwte_c.p(), with_pos ? dwpe_c.p() : nullptr, doutm.p(), tokens.data(),
                             with_pos ? pos.data() : nullptr, N, C);
        EXPECT_EQ(out_c.vec(), out_r);
        EXPECT_EQ(dwte_c.vec(), dwte_r);
        EXPECT_EQ(dwpe_c.vec(), dwpe_r);  // untouched without wpe
      }
    }
  }
}

TEST_P(EncoderBackend, AllRowsOneToken) {
  // Every row hits the same wte row: the worst case for races.
  const int N = 256, C = 768, V = 3;
  const std::vector<int32_t> tokens(N, 2);
  const auto dout = randn(N * C, 110);
  std::vector<float> dwte(V * C);
  kb->encoder_backward(dwte.data(), nullptr, dout.data(), tokens.data(), nullptr, N, C);
  std::vector<double> want(C);
  for (int i = 0; i < N; ++i)
    for (int c = 0; c < C; ++c) want[c] += dout[i * C + c];
  EXPECT_TRUE(all_close(dwte.data() + 2 * C, want.data(), C, rtol_for(kEpsF32, N), rtol_for(kEpsF32, N)));
  for (int k = 0; k < 2 * C; ++k) ASSERT_EQ(dwte[k], 0.0f) << k;
}

TEST_P(EncoderBackend, BackwardAccumulates) {
  const int N = 40, C = 48, V = 5, T = 8;
  const auto tokens = randint(N, 0, V, 120), pos = randint(N, 0, T, 121);
  const auto dout = randn(N * C, 122);
  std::vector<float> dwte1(V * C), dwpe1(T * C), dwte2(V * C), dwpe2(T * C);
  kb->encoder_backward(dwte1.data(), dwpe1.data(), dout.data(), tokens.data(), pos.data(), N, C);
  kb->encoder_backward(dwte2.data(), dwpe2.data(), dout.data(), tokens.data(), pos.data(), N, C);
  kb->encoder_backward(dwte2.data(), dwpe2.data(), dout.data(), tokens.data(), pos.data(), N, C);
  for (float& v : dwte1) v *= 2;
  for (float& v : dwpe1) v *= 2;
  // Up to N roundings per element, relative to the summed magnitudes.
  const double tol = rtol_for(kEpsF32, N);
  EXPECT_TRUE(all_close(dwte2, dwte1, tol, tol * 2 * N));
  EXPECT_TRUE(all_close(dwpe2, dwpe1, tol, tol * 2 * N));
}

TEST_P(EncoderBackend, BackwardIsDeterministicAcrossThreadCounts) {
  const int N = 512, C = 200, V = 7, T = 64;  // C not a multiple of the 16-float chunk
  const auto tokens = randint(N, 0, V, 130), pos = randint(N, 0, T, 131);
  const auto dout = randn(N * C, 132);
  const auto results = results_per_thread_count({1, 3, 5}, [&] {
    std::vector<float> dwte(V * C), dwpe(T * C);
    kb->encoder_backward(dwte.data(), dwpe.data(), dout.data(), tokens.data(), pos.data(), N, C);
    return concat({dwte, dwpe});
  });
  EXPECT_EQ(results[0], results[1]);
  EXPECT_EQ(results[0], results[2]);
}

}  // namespace
