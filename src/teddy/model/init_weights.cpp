// GPT-2 initialisation (Radford et al. 2019; nanoGPT, llm.c): weights normal(0, 0.02),
// residual output projections (attn.proj, mlp.down) normal(0, 0.02/sqrt(2*n_layer)),
// biases 0, norm weights 1, padded vocabulary rows 0.
//
// Each tensor draws from its own std::mt19937_64 seeded from (seed, tensor index) and
// fills sequentially with Box-Muller, so the result depends on the seed alone (not on
// the thread count); tensors are filled in parallel.
#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <random>
#include <string_view>

#include "teddy/core/error.h"

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

// Draws of normal(0, stddev) in order, pairs from Box-Muller (cos, then sin), so any
// split of a tensor into consecutive chunks draws the same values.
class NormalStream {
 public:
  NormalStream(double stddev, uint64_t seed) : rng_(seed), stddev_(stddev) {}
  float next() {
    if (spare_) {
      spare_ = false;
      return sin_;
    }
    constexpr double kTwoPi = 6.283185307179586;
    auto uniform = [&] { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; };  // [0, 1)
    const double u1 = 1.0 - uniform();  // (0, 1]: log is finite
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1)) * stddev_;
    sin_ = static_cast<float>(r * std::sin(kTwoPi * u2));
    spare_ = true;
    return static_cast<float>(r * std::cos(kTwoPi * u2));
  }

 private:
  std::mt19937_64 rng_;
  double stddev_;
  bool spare_ = false;
  float sin_ = 0;
};

enum class InitKind { zeros, ones, normal };

// How tensor p starts: its kind, its normal's stddev, and how many leading elements
// are drawn (the padded vocabulary rows stay 0).
struct TensorInit {
  InitKind kind = InitKind::zeros;
  double stddev = 0;
  size_t drawn = 0;
  uint64_t seed = 0;
};

TensorInit tensor_init(const ModelConfig& cfg, const ParamInfo& p, size_t index, uint64_t seed) {
  const std::string_view name = p.name;
  TensorInit t;
  if (ends_with(name, ".bias")) return t;
  if (ends_with(name, "norm1.weight") || ends_with(name, "norm2.weight") || name == "final_norm.weight") {
    t.kind = InitKind::ones;
    return t;
  }
  const bool resid = ends_with(name, "attn.proj.weight") || ends_with(name, "mlp.down.weight");
  const bool vocab = name == "tok_emb.weight" || name == "lm_head.weight";
  t.kind = InitKind::normal;
  t.stddev = resid ? 0.02 / std::sqrt(2.0 * cfg.n_layer) : 0.02;
  t.drawn = vocab ? static_cast<size_t>(cfg.vocab_size) * cfg.d_model : p.numel;
  t.seed = splitmix64(seed ^ splitmix64(static_cast<uint64_t>(index) + 1));
  return t;
}

// Elements [begin, end) of a tensor that starts as `t`; `draw` is its stream, already
// advanced to `begin`.
void fill_range(const TensorInit& t, NormalStream* draw, size_t begin, size_t end, float* out) {
  for (size_t i = begin; i < end; ++i)
    out[i - begin] = t.kind == InitKind::ones ? 1.0f : (t.kind == InitKind::normal && i < t.drawn) ? draw->next() : 0.0f;
}

}  // namespace

void Model::init_weights(uint64_t seed) {
  if (lora()) {
    lora_init(params(), layout_, seed);
    return;
  }
  float* P = params();
  const int n = static_cast<int>(layout_.params.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 0; i < n; ++i) {
    const ParamInfo& p = layout_.params[i];
    const TensorInit t = tensor_init(cfg_, p, static_cast<size_t>(i), seed);
    NormalStream draw(t.stddev, t.seed);
    fill_range(t, &draw, 0, p.numel, P + p.offset);
  }
}

BaseFill Model::init_source(const ModelConfig& cfg, uint64_t seed) {
  // The source is called tensor by tensor in layout order with ascending rows: one
  // stream per tensor, restarted when a new tensor begins.
  struct State {
    ModelConfig cfg;
    uint64_t seed;
    ParamLayout layout;
    size_t index = static_cast<size_t>(-1);
    TensorInit t;
    std::optional<NormalStream> draw;
  };
  auto st = std::make_shared<State>(State{cfg, seed, make_param_layout(cfg), static_cast<size_t>(-1), {}, {}});
  return [st](const ParamInfo& p, int64_t row0, int64_t rows, float* out) {
    const size_t width = p.numel / static_cast<size_t>(p.shape[0]);
    const size_t begin = static_cast<size_t>(row0) * width, end = begin + static_cast<size_t>(rows) * width;
    if (begin == 0) {
      size_t i = 0;
      while (i < st->layout.params.size() && st->layout.params[i].name != p.name) ++i;
      if (i == st->layout.params.size()) throw Error("init_source: no tensor \"" + p.name + "\"");
      st->index = i;
      st->t = tensor_init(st->cfg, p, i, st->seed);
      st->draw.emplace(st->t.stddev, st->t.seed);
    } else if (st->index >= st->layout.params.size() || st->layout.params[st->index].name != p.name) {
      throw Error("init_source: rows of \"" + p.name + "\" asked out of order");
    }
    fill_range(st->t, &*st->draw, begin, end, out);
  };
}

}  // namespace teddy
