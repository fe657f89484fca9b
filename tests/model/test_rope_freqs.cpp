// RoPE's inverse-frequency table (model/rope_freqs.h) against transformers' formula
// evaluated in float64 by the PyTorch reference (tests/reference/hf_reference.py
// --inv-freq: LlamaRotaryEmbedding's inv_freq and `_compute_llama3_parameters`, written
// from transformers' code, not from teddy's), for Llama 3.1-8B's and Llama 3.2-1B's
// settings and a small one whose frequencies fall in all three bands at a short
// original context. /usr/bin/python3 with torch is required (Debian: python3-torch).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <numbers>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/kernel_check.h"
#include "teddy/core/error.h"
#include "teddy/model/rope_freqs.h"

namespace teddy {
namespace {

struct FreqCase {
  const char* name;
  float theta;
  int head_dim;
  RopeScaling s;
};

RopeScaling llama3(float factor, float lo, float hi, int orig) {
  RopeScaling s;
  s.type = RopeScaling::Type::llama3;
  s.factor = factor;
  s.low_freq_factor = lo;
  s.high_freq_factor = hi;
  s.original_max_position_embeddings = orig;
  return s;
}

std::vector<double> python_table(const FreqCase& c) {
  std::ostringstream cfg;
  cfg.precision(17);
  cfg << "{\"rope_theta\": " << c.theta << ", \"head_dim\": " << c.head_dim;
  if (c.s.type == RopeScaling::Type::llama3)
    cfg << ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": " << c.s.factor
        << ", \"low_freq_factor\": " << c.s.low_freq_factor << ", \"high_freq_factor\": " << c.s.high_freq_factor
        << ", \"original_max_position_embeddings\": " << c.s.original_max_position_embeddings << "}";
  cfg << "}";
  const std::string cmd =
      "/usr/bin/python3 '" TEDDY_SOURCE_DIR "/tests/reference/hf_reference.py' --inv-freq '" + cfg.str() + "'";
  FILE* p = popen(cmd.c_str(), "r");
  std::vector<double> out;
  if (!p) return out;
  char line[128];
  while (std::fgets(line, sizeof line, p)) out.push_back(std::strtod(line, nullptr));
  EXPECT_EQ(pclose(p), 0) << cmd << " failed: it needs /usr/bin/python3 with torch (Debian: python3-torch)";
  return out;
}

TEST(RopeFreqs, MatchTransformersLlama3FormulaInFloat64) {
  const std::vector<FreqCase> cases = {
      {"Llama-3.1-8B", 500000.0f, 128, llama3(8.0f, 1.0f, 4.0f, 8192)},
      {"Llama-3.2-1B", 500000.0f, 64, llama3(32.0f, 1.0f, 4.0f, 8192)},
      {"small, three bands", 5000.0f, 8, llama3(4.0f, 0.5f, 4.0f, 32)},
      {"unscaled", 10000.0f, 16, RopeScaling{}},
  };
  for (const FreqCase& c : cases) {
    SCOPED_TRACE(c.name);
    const std::vector<double> ours = rope_inv_freq(c.theta, c.head_dim, c.s);
    const std::vector<double> want = python_table(c);
    ASSERT_EQ(ours.size(), static_cast<size_t>(c.head_dim / 2));
    ASSERT_EQ(want.size(), ours.size());
    // Both in double: theta^(-2j/d) by pow here, 1 / theta ** (2j/d) there. The
    // exponent's rounding is amplified by ln(theta) <= 13.2 in the result, plus a few
    // roundings of the division and of the smooth interpolation: 64 eps64 relative.
    for (size_t j = 0; j < ours.size(); ++j)
      EXPECT_LE(std::fabs(ours[j] - want[j]), 64 * test::kEpsF64 * std::fabs(want[j])) << "j=" << j;
    // The scaled cases hit every band (kept, interpolated, divided by factor), so each
    // branch of the formula is checked.
    if (c.s.type == RopeScaling::Type::none) continue;
    const std::vector<double> base = rope_inv_freq(c.theta, c.head_dim, RopeScaling{});
    int kept = 0, smooth = 0, divided = 0;
    for (size_t j = 0; j < base.size(); ++j) {
      const double wavelen = 2 * std::numbers::pi / base[j];
      if (wavelen < c.s.original_max_position_embeddings / c.s.high_freq_factor) {
        ++kept;
        EXPECT_EQ(ours[j], base[j]);
      } else if (wavelen > c.s.original_max_position_embeddings / c.s.low_freq_factor) {
        ++divided;
        EXPECT_DOUBLE_EQ(ours[j], base[j] / c.s.factor);
      } else {
        ++smooth;
        EXPECT_LT(ours[j], base[j]);
        EXPECT_GT(ours[j], base[j] / c.s.factor);
      }
    }
    EXPECT_GT(kept, 0);
    EXPECT_GT(smooth, 0);
    EXPECT_GT(divided, 0);
  }
}

TEST(RopeFreqs, ConfigRulesNameTheField) {
  ModelConfig c = ModelConfig::preset("llama-tiny");
  c.rope_scaling = llama3(8.0f, 4.0f, 1.0f, 8192);  // high <= low
  try {
    c.validate();
    ADD_FAILURE() << "accepted high_freq_factor <= low_freq_factor";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("rope_scaling.high_freq_factor"), std::string::npos) << e.what();
  }
  ModelConfig g = ModelConfig::preset("gpt2-tiny");
  g.rope_scaling = llama3(8.0f, 1.0f, 4.0f, 8192);
  EXPECT_THROW(g.validate(), ConfigError);
  ModelConfig q = ModelConfig::preset("llama-tiny");
  q.bias = true;
  q.qkv_bias = true;
  EXPECT_THROW(q.validate(), ConfigError);
}

}  // namespace
}  // namespace teddy
