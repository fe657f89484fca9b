// Folding adapters into the base: W[part rows] += scale * B_p A_p (model/lora.h).
#include <cstring>

#include "teddy/core/error.h"
#include "teddy/model/model.h"

namespace teddy {

void lora_fold(float* W, int in, const float* A, const float* B, const LoraSite& site, int r, float scale) {
  for (size_t p = 0; p < site.parts.size(); ++p) {
    const LoraPart& part = site.parts[p];
    int brow = 0;
    for (size_t q = 0; q < p; ++q) brow += site.parts[q].rows;
    const float* Ap = A + p * static_cast<size_t>(r) * in;
#pragma omp parallel for schedule(static)
    for (int o = 0; o < part.rows; ++o) {
      const float* b = B + static_cast<size_t>(brow + o) * r;
      float* w = W + static_cast<size_t>(part.off + o) * in;
      for (int c = 0; c < in; ++c) {
        double acc = 0;  // r products, in double: the fold adds one rounding per weight
        for (int k = 0; k < r; ++k) acc += static_cast<double>(b[k]) * Ap[static_cast<size_t>(k) * in + c];
        w[c] = static_cast<float>(static_cast<double>(w[c]) + static_cast<double>(scale) * acc);
      }
    }
  }
}

Model merge_lora(const Model& m) {
  const LoraConfig* lora = m.lora();
  if (!lora) throw Error("merge_lora: the model has no LoRA adapters");
  Model out(m.config(), m.context());
  for (const ParamInfo& p : out.layout().params) m.base_weight(p.name, out.params() + p.offset);  // QLoRA: dequantized
  const ParamLayout& ad = m.layout();
  for (int l = 0; l < m.config().n_layer; ++l)
    for (const LoraSite& s : m.lora_sites()) {
      const std::string n = "layers." + std::to_string(l) + "." + s.name;
      lora_fold(out.param(n + ".weight"), s.in, m.params() + ad.find(n + ".lora_A").offset,
                m.params() + ad.find(n + ".lora_B").offset, s, lora->r, lora->scale());
    }
  return out;
}

}  // namespace teddy
