// The cpu backend's kernel variants (kernels/cpu_variant.h): the dispatcher picks the
// highest variant this CPU runs, capped by TEDDY_CPU_ISA; the variants compute the same
// results (bit for bit where the code is the same math); and AVX-512 instructions
// exist only in the dispatched variant, so the binary runs on an AVX2-only CPU.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/kernel_check.h"
#include "teddy/core/cpu_info.h"
#include "teddy/core/error.h"
#include "teddy/kernels/backend.h"
#include "teddy/kernels/cpu_variant.h"

namespace {

namespace k = teddy::kernels;
using teddy::KernelIsa;
using namespace teddy::test;

bool compiled(std::string_view isa) {
  for (std::string_view v : k::compiled_cpu_variants())
    if (v == isa) return true;
  return false;
}

TEST(CpuVariant, ChoosesTheHighestTheCpuRunsUnderTheCap) {
  const std::vector<KernelIsa> both{KernelIsa::avx2, KernelIsa::avx512}, base{KernelIsa::avx2};
  EXPECT_EQ(teddy::choose_kernel_isa(both, true, std::nullopt), KernelIsa::avx512);
  EXPECT_EQ(teddy::choose_kernel_isa(both, false, std::nullopt), KernelIsa::avx2);  // Zen 3, Haswell
  EXPECT_EQ(teddy::choose_kernel_isa(both, true, KernelIsa::avx2), KernelIsa::avx2);
  EXPECT_EQ(teddy::choose_kernel_isa(both, true, KernelIsa::avx512), KernelIsa::avx512);
  EXPECT_EQ(teddy::choose_kernel_isa(both, false, KernelIsa::avx512), KernelIsa::avx2);  // a cap is no promise
  EXPECT_EQ(teddy::choose_kernel_isa(base, true, std::nullopt), KernelIsa::avx2);        // not compiled in
}

TEST(CpuVariant, TheCapIsCheckedAndNamesItsVariable) {
  EXPECT_EQ(teddy::kernel_isa_cap(nullptr), std::nullopt);
  EXPECT_EQ(teddy::kernel_isa_cap(""), std::nullopt);
  EXPECT_EQ(teddy::kernel_isa_cap("avx2"), KernelIsa::avx2);
  EXPECT_EQ(teddy::kernel_isa_cap("avx512"), KernelIsa::avx512);
  try {
    teddy::kernel_isa_cap("AVX512_CORE");
    FAIL() << "no throw";
  } catch (const teddy::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("TEDDY_CPU_ISA: unknown 'AVX512_CORE' (expected \"avx2\" or \"avx512\")"),
              std::string::npos)
        << e.what();
  }
}

// What this process runs: the CPU's best (CPUID), unless TEDDY_CPU_ISA caps it (the
// suite run with TEDDY_CPU_ISA=avx2 checks the cap end to end).
TEST(CpuVariant, TheDispatcherPicksWhatThisCpuSupports) {
  const k::CpuVariant& v = k::cpu_variant();
  EXPECT_EQ(&k::backend("cpu"), v.table);
  EXPECT_EQ(k::backend("onednn").gelu_forward, v.table->gelu_forward);  // onednn's tables are cpu's
  if (compiled("native")) {
    EXPECT_EQ(v.isa, "native");
    return;
  }
  const char* cap = std::getenv("TEDDY_CPU_ISA");
  const bool capped = cap && std::string_view(cap) == "avx2";
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  EXPECT_EQ(v.isa, avx512 && !capped ? "avx512" : "avx2") << "TEDDY_CPU_ISA=" << (cap ? cap : "(unset)");
  EXPECT_EQ(k::cpu_variants().size(), avx512 ? 2u : 1u);
  std::printf("kernel variant: %s (cpu: %s)\n", std::string(v.isa).c_str(), teddy::cpu_info().model.c_str());
}

// One op's outputs from one table.
using Run = std::function<std::vector<std::vector<float>>(const k::Backend&)>;

struct OpCase {
  const char* name;
  Run run;
  // 0: the variants must agree bit for bit (elementwise code: the same operations in
  // the same order, only the vector width differs, and GCC contracts a*b+c into an FMA
  // alike at both widths in these loops).
  // > 0: a float reduction of this length (`#pragma omp simd reduction`): 8 lanes or
  // 16 sum in different orders. Each variant is within rtol_for(eps, K) of the float64
  // reference (the op's own test, tests/kernels/test_<op>.cpp), so they are within
  // twice that of each other.
  // -1: one a*b+c that GCC fuses in one variant only (C++ defaults to
  // -ffp-contract=fast): they differ by the product's rounding and the sum's, at most
  // eps (|a*b| + |result|); atol = eps max|a*b|, rtol = eps.
  int reduction_len;
  double product_scale = 0;  // for -1: max |a*b|
};

std::vector<OpCase> op_cases() {
  constexpr int N = 7, C = 771, H = 389, NH = 4, HS = 32, T = 37, V = 1003;
  constexpr int64_t n = 10007;
  const auto x = randn(n, 1), y = randn(n, 2), z = randn(n, 3);
  const auto w = randn(C, 4, 0.5, 1.0), b = randn(C, 5);
  const auto rows = randn(static_cast<size_t>(N) * C, 6), drows = randn(static_cast<size_t>(N) * C, 7);
  const auto gate_up = randn(static_cast<size_t>(N) * 2 * H, 8), dgu = randn(static_cast<size_t>(N) * H, 9);
  std::vector<double> inv_freq(HS / 2);
  for (int i = 0; i < HS / 2; ++i) inv_freq[i] = std::pow(10000.0, -2.0 * i / HS);
  const auto pos = randint(N, 0, 5000, 10);
  const auto tokens = randint(N, 0, 50, 11);
  const auto wte = randn(50 * C, 12), wpe = randn(5000 * C, 13);
  const auto logits = randn(static_cast<size_t>(N) * V, 14, 3.0);
  const auto targets = randint(N, 0, V, 15);
  const auto qkv = randn(static_cast<size_t>(T) * 3 * NH * HS, 16), dout_att = randn(static_cast<size_t>(T) * NH * HS, 17);
  std::vector<OpCase> cases;
  auto add = [&](const char* name, int red, Run r) { cases.push_back({name, std::move(r), red}); };
  add("gelu", 0, [=](const k::Backend& kb) {
    std::vector<float> out(n), d = z;
    kb.gelu_forward(out.data(), x.data(), n);
    kb.gelu_backward(d.data(), y.data(), x.data(), n, k::Grad::add);
    return std::vector{out, d};
  });
  add("swiglu", 0, [=](const k::Backend& kb) {
    std::vector<float> out(static_cast<size_t>(N) * H), d(gate_up.size(), 0.5f);
    kb.swiglu_forward(out.data(), gate_up.data(), N, H);
    kb.swiglu_backward(d.data(), dgu.data(), gate_up.data(), N, H, k::Grad::add);
    return std::vector{out, d};
  });
  add("residual+accumulate", 0, [=](const k::Backend& kb) {
    std::vector<float> out(n), acc = z;
    kb.residual_forward(out.data(), x.data(), y.data(), n);
    kb.accumulate(acc.data(), x.data(), n);
    return std::vector{out, acc};
  });
  add("dropout", 0, [=](const k::Backend& kb) {
    std::vector<float> out(n), d(n);
    kb.dropout_forward(out.data(), x.data(), n, 0.1f, 42);
    kb.dropout_backward(d.data(), y.data(), n, 0.1f, 42, k::Grad::set);
    return std::vector{out, d};
  });
  add("dropout_backward add", -1, [=](const k::Backend& kb) {  // dinp + dout * keep_scale
    std::vector<float> d = z;
    kb.dropout_backward(d.data(), y.data(), n, 0.1f, 42, k::Grad::add);
    return std::vector<std::vector<float>>{d};
  });
  cases.back().product_scale = max_abs(y) / 0.9;
  add("rope", 0, [=](const k::Backend& kb) {
    std::vector<float> out(rows.size()), d(rows.size());
    const int heads = C / HS;  // 24 heads of 32 in each 771-float row
    kb.rope_forward(out.data(), rows.data(), pos.data(), N, C, heads, HS, inv_freq.data());
    kb.rope_backward(d.data(), drows.data(), pos.data(), N, C, heads, HS, inv_freq.data());
    return std::vector{out, d};
  });
  add("encoder", 0, [=](const k::Backend& kb) {
    std::vector<float> out(rows.size()), dwte(wte.size()), dwpe(wpe.size());
    kb.encoder_forward(out.data(), tokens.data(), pos.data(), wte.data(), wpe.data(), N, C);
    kb.encoder_backward(dwte.data(), dwpe.data(), drows.data(), tokens.data(), pos.data(), N, C);
    return std::vector{out, dwte, dwpe};
  });
  add("adamw", 0, [=](const k::Backend& kb) {
    std::vector<float> p = x, m(n, 0.01f), v(n, 0.02f);
    kb.adamw_update(p.data(), y.data(), m.data(), v.data(), n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 3, 0.5f);
    return std::vector{p, m, v};
  });
  add("precision", 0, [=](const k::Backend& kb) {
    std::vector<float> r = x, c(n), wd(n);
    std::vector<uint16_t> bits(n);
    kb.round_through(teddy::DType::bf16, r.data(), bits.data(), n);
    kb.round_copy(teddy::DType::f16, c.data(), x.data(), n);
    kb.widen_to_f32(teddy::DType::bf16, wd.data(), bits.data(), n);
    return std::vector{r, c, wd};
  });
  add("attention", 0, [=](const k::Backend& kb) {
    // The tiles are 16-float GCC vectors with fused multiply-adds on both variants
    // (cpu/attention_tile.h): the same math at either width.
    std::vector<float> out(dout_att.size()), lse(static_cast<size_t>(T) * NH), dqkv(qkv.size());
    kb.attention_forward(out.data(), lse.data(), qkv.data(), nullptr, 1, T, NH, NH, HS, {});
    kb.attention_backward(dqkv.data(), dout_att.data(), qkv.data(), out.data(), lse.data(), nullptr, 1, T, NH, NH, HS,
                          k::Grad::set, {});
    return std::vector{out, lse, dqkv};
  });
  add("layernorm", C, [=](const k::Backend& kb) {
    std::vector<float> out(rows.size()), mean(N), rstd(N), d(rows.size()), dw(C), db(C);
    kb.layernorm_forward(out.data(), mean.data(), rstd.data(), rows.data(), w.data(), b.data(), N, C, 1e-5f);
    kb.layernorm_backward(d.data(), dw.data(), db.data(), drows.data(), rows.data(), w.data(), mean.data(),
                          rstd.data(), N, C);
    return std::vector{out, mean, rstd, d, dw, db};
  });
  add("rmsnorm", C, [=](const k::Backend& kb) {
    std::vector<float> out(rows.size()), rstd(N), d(rows.size()), dw(C);
    kb.rmsnorm_forward(out.data(), rstd.data(), rows.data(), w.data(), N, C, 1e-5f);
    kb.rmsnorm_backward(d.data(), dw.data(), drows.data(), rows.data(), w.data(), rstd.data(), N, C);
    return std::vector{out, rstd, d, dw};
  });
  add("crossentropy", V, [=](const k::Backend& kb) {
    std::vector<float> losses(N), dlogits(logits.size());
    const double mean = kb.crossentropy_forward_backward(losses.data(), dlogits.data(), logits.data(),
                                                         targets.data(), N, V, V, -100, 1.0f / N);
    return std::vector{losses, dlogits, std::vector<float>{static_cast<float>(mean)}};
  });
  add("sum_squares", static_cast<int>(n), [=](const k::Backend& kb) {
    return std::vector<std::vector<float>>{{static_cast<float>(kb.sum_squares(x.data(), n))}};
  });
  return cases;
}

TEST(CpuVariant, TheVariantsAgree) {
  const auto variants = k::cpu_variants();
  if (variants.size() < 2)
    GTEST_SKIP() << "one kernel variant runs on this CPU (" << variants[0].isa << "): nothing to compare";
  for (const OpCase& op : op_cases()) {
    SCOPED_TRACE(op.name);
    const auto base = op.run(*variants[0].table);
    for (size_t v = 1; v < variants.size(); ++v) {
      const auto got = op.run(*variants[v].table);
      ASSERT_EQ(got.size(), base.size());
      for (size_t t = 0; t < got.size(); ++t) {
        SCOPED_TRACE("output " + std::to_string(t) + ", " + std::string(variants[v].isa) + " vs " +
                     std::string(variants[0].isa));
        if (op.reduction_len == 0) {
          ASSERT_EQ(got[t].size(), base[t].size());
          size_t diff = 0;
          for (size_t i = 0; i < got[t].size(); ++i)
            diff += std::memcmp(&got[t][i], &base[t][i], sizeof(float)) != 0;
          EXPECT_EQ(diff, 0u) << "elements that differ in their bits, of " << got[t].size();
        } else if (op.reduction_len < 0) {
          EXPECT_TRUE(all_close(got[t], base[t], kEpsF32, kEpsF32 * op.product_scale));
        } else {
          EXPECT_TRUE(close_scaled(got[t], base[t], 2 * rtol_for(kEpsF32, op.reduction_len)));
        }
      }
    }
  }
}

// Every function of the `teddy` binary with an AVX-512 (EVEX-encoded) instruction must
// be one that runs only where the CPU has AVX-512: the dispatched variant (namespace
// cpu_avx512) and the peak probe's loops (bench/peak_flops.cpp, behind
// __builtin_cpu_supports). Anything else would die with SIGILL on an AVX2-only CPU.
// TEDDY_ISA_CHECK_BINARY=path checks another binary (an installed one; or a
// -march=native build's, which fails: AVX-512 everywhere).
TEST(CpuVariant, Avx512InstructionsOnlyInTheDispatchedVariant) {
  const char* other = std::getenv("TEDDY_ISA_CHECK_BINARY");
  if (!compiled("avx512") && !other) GTEST_SKIP() << "a -march=native build: one variant, for this CPU only";
  const std::string bin = other ? std::string(other) : std::string(TEDDY_BINARY_DIR) + "/teddy";
  const std::string cmd = "objdump -d -C --insn-width=15 --no-addresses '" + bin + "' 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  ASSERT_TRUE(pipe) << cmd;
  std::map<std::string, int> evex;  // function -> its EVEX instructions
  std::string fn;
  size_t lines = 0;
  char buf[8192];
  while (std::fgets(buf, sizeof buf, pipe.get())) {
    const std::string line(buf);
    ++lines;
    if (line.size() > 2 && line[0] == '<') {  // "<name>:" (no addresses)
      fn = line.substr(1, line.rfind('>') - 1);
      continue;
    }
    if (line.empty() || line[0] != '\t') continue;
    // "\t62 f1 7c 48 58 c1 \tvaddps ...": the first byte after address-size and segment
    // prefixes is 0x62 only for EVEX (AVX-512) in 64-bit mode.
    std::istringstream bytes(line);
    std::string byte;
    while (bytes >> byte && (byte == "67" || byte == "2e" || byte == "3e" || byte == "26" || byte == "36" ||
                             byte == "64" || byte == "65")) {
    }
    if (byte == "62") ++evex[fn];
  }
  ASSERT_GT(lines, 10000u) << "objdump printed too little: " << cmd;
  int in_variant = 0;
  std::string stray;
  for (const auto& [name, count] : evex) {
    if (name.find("cpu_avx512::") != std::string::npos) {
      in_variant += count;
    } else if (name.find("fma_avx512") == std::string::npos && name.find("dpbf16_avx512") == std::string::npos) {
      stray += "\n  " + std::to_string(count) + " in " + name;
    }
  }
  EXPECT_TRUE(stray.empty()) << "AVX-512 instructions outside the dispatched variant:" << stray;
  // How many depends on the optimization level (873 at -O1 in the sanitizer build, more at
  // -O3); none at all means the variant lost its -march=x86-64-v4.
  EXPECT_GT(in_variant, 0) << "the avx512 variant should be AVX-512 code";
  std::printf("EVEX instructions: %d in namespace cpu_avx512, %zu functions in all\n", in_variant, evex.size());
}

}  // namespace
