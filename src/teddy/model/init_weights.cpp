// GPT-2 initialisation (Radford et al. 2019; nanoGPT, llm.c): weights normal(0, 0.02),
// residual output projections (attn.proj, mlp.down) normal(0, 0.02/sqrt(2*n_layer)),
// biases 0, norm weights 1, padded vocabulary rows 0.
//
// Each tensor draws from its own std::mt19937_64 seeded from (seed, tensor index) and
// fills sequentially with Box-Muller, so the result depends on the seed alone (not on
// the thread count); tensors are filled in parallel.
#include <algorithm>
#include <cmath>
#include <random>
#include <string_view>

#include "teddy/model/model.h"

namespace teddy {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// n draws of normal(0, std), pairs from Box-Muller.
void fill_normal(float* out, size_t n, double stddev, uint64_t seed) {
  std::mt19937_64 rng(seed);
  constexpr double kTwoPi = 6.283185307179586;
  auto uniform = [&] { return static_cast<double>(rng() >> 11) * 0x1.0p-53; };  // [0, 1)
  for (size_t i = 0; i < n; i += 2) {
    const double u1 = 1.0 - uniform();  // (0, 1]: log is finite
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1)) * stddev;
    out[i] = static_cast<float>(r * std::cos(kTwoPi * u2));
    if (i + 1 < n) out[i + 1] = static_cast<float>(r * std::sin(kTwoPi * u2));
  }
}

}  // namespace

void Model::init_weights(uint64_t seed) {
  if (lora()) {
    lora_init(params(), layout_, seed);
    return;
  }
  const double std_base = 0.02;
  const double std_resid = 0.02 / std::sqrt(2.0 * cfg_.n_layer);
  const size_t C = cfg_.d_model, V = cfg_.vocab_size;
  float* P = params();
  const int n = static_cast<int>(layout_.params.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 0; i < n; ++i) {
    const ParamInfo& p = layout_.params[i];
    float* w = P + p.offset;
    const std::string_view name = p.name;
    if (ends_with(name, ".bias")) {
      std::fill(w, w + p.numel, 0.0f);
    } else if (ends_with(name, "norm1.weight") || ends_with(name, "norm2.weight") || name == "final_norm.weight") {
      std::fill(w, w + p.numel, 1.0f);
    } else {
      const bool resid = ends_with(name, "attn.proj.weight") || ends_with(name, "mlp.down.weight");
      const bool vocab = name == "tok_emb.weight" || name == "lm_head.weight";
      const size_t n_draw = vocab ? V * C : p.numel;  // padded rows stay 0
      fill_normal(w, n_draw, resid ? std_resid : std_base, splitmix64(seed ^ splitmix64(static_cast<uint64_t>(i) + 1)));
      std::fill(w + n_draw, w + p.numel, 0.0f);
    }
  }
}

}  // namespace teddy
