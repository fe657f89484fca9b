// LoRA configuration, the adapted sites and their parts, the adapters' layout and
// PEFT's initialisation (model/lora.h).
#include "teddy/model/lora.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "teddy/core/error.h"
#include "teddy/model/model.h"

namespace teddy {

float LoraConfig::scale() const {
  if (r <= 0) return 0.0f;
  return rslora ? alpha / std::sqrt(static_cast<float>(r)) : alpha / static_cast<float>(r);
}

void LoraConfig::validate_values() const {
  const std::string s = "lora";
  if (r < 1) throw ConfigError(s + ".r: must be >= 1 (got " + std::to_string(r) + ")");
  if (!(alpha > 0) || !std::isfinite(alpha))
    throw ConfigError(s + ".alpha: must be a positive finite number (got " + std::to_string(alpha) + ")");
  if (!(dropout >= 0 && dropout < 1))
    throw ConfigError(s + ".dropout: must be in [0, 1) (got " + std::to_string(dropout) + ")");
  if (quantize != "none" && quantize != "bf16" && quantize != "nf4")
    throw ConfigError(s + ".quantize: unknown '" + quantize + "' (known: none, bf16, nf4)");
  if (compute != "auto" && compute != "fp32" && compute != "bf16")
    throw ConfigError(s + ".compute: unknown '" + compute + "' (known: auto, fp32, bf16)");
}

void LoraConfig::validate(const ModelConfig& cfg) const {
  validate_values();
  const std::string s = "lora";
  const int min_width = std::min({cfg.d_model, cfg.d_ff});
  if (r > min_width)
    throw ConfigError(s + ".r: " + std::to_string(r) + " exceeds the narrowest adapted width (" +
                      std::to_string(min_width) + "): not low rank");
  (void)lora_sites(cfg, *this);  // unknown targets throw, naming the key
}

std::vector<int> LoraSite::part_cols() const {
  std::vector<int> v;
  for (const LoraPart& p : parts) v.insert(v.end(), {p.off, p.rows});
  return v;
}

int LoraSite::b_rows() const {
  int n = 0;
  for (const LoraPart& p : parts) n += p.rows;
  return n;
}

std::vector<LoraSite> lora_all_sites(const ModelConfig& cfg) {
  const int C = cfg.d_model, F = cfg.d_ff, HS = cfg.head_dim();
  const int q = cfg.n_head * HS, kv = cfg.n_kv_head * HS;
  std::vector<LoraSite> s(kLoraLinears);
  s[0] = {LoraLinear::qkv, "attn.qkv", C, cfg.qkv_dim(), {}};
  s[1] = {LoraLinear::proj, "attn.proj", q, C, {}};
  if (cfg.family == Family::gpt2) {
    s[2] = {LoraLinear::up, "mlp.up", C, F, {}};
    s[0].parts = {{"attn.c_attn", 0, cfg.qkv_dim()}};
    s[1].parts = {{"attn.c_proj", 0, C}};
    s[2].parts = {{"mlp.c_fc", 0, F}};
    s[3] = {LoraLinear::down, "mlp.down", F, C, {{"mlp.c_proj", 0, C}}};
  } else {
    s[2] = {LoraLinear::up, "mlp.up", C, 2 * F, {}};
    s[0].parts = {{"self_attn.q_proj", 0, q}, {"self_attn.k_proj", q, kv}, {"self_attn.v_proj", q + kv, kv}};
    s[1].parts = {{"self_attn.o_proj", 0, C}};
    s[2].parts = {{"mlp.gate_proj", 0, F}, {"mlp.up_proj", F, F}};
    s[3] = {LoraLinear::down, "mlp.down", F, C, {{"mlp.down_proj", 0, C}}};
  }
  return s;
}

namespace {

// Does target name `t` select part `p` of site `s`?
bool selects(const std::string& t, const LoraSite& s, const LoraPart& p) {
  if (t == "all" || t == "all-linear" || t == s.name) return true;
  if (t == p.hf_module) return true;  // "self_attn.q_proj", "mlp.c_proj"
  const size_t dot = p.hf_module.rfind('.');
  return t == p.hf_module.substr(dot + 1);  // "q_proj", "c_proj" (both GPT-2 c_proj's, as PEFT)
}

}  // namespace

std::vector<LoraSite> lora_sites(const ModelConfig& cfg, const LoraConfig& lora) {
  const std::vector<LoraSite> all = lora_all_sites(cfg);
  const std::vector<std::string> targets = lora.targets.empty() ? std::vector<std::string>{"all"} : lora.targets;
  for (const std::string& t : targets) {
    bool any = false;
    for (const LoraSite& s : all)
      for (const LoraPart& p : s.parts) any = any || selects(t, s, p);
    if (!any) {
      std::string known = "all, attn.qkv, attn.proj, mlp.up, mlp.down";
      for (const LoraSite& s : all)
        for (const LoraPart& p : s.parts) known += ", " + p.hf_module.substr(p.hf_module.rfind('.') + 1);
      throw ConfigError("lora.targets: unknown target '" + t + "' for a " + std::string(family_name(cfg.family)) +
                        " model (known: " + known + ")");
    }
  }
  std::vector<LoraSite> out;
  for (const LoraSite& s : all) {
    LoraSite k = s;
    k.parts.clear();
    for (const LoraPart& p : s.parts)
      if (std::any_of(targets.begin(), targets.end(), [&](const std::string& t) { return selects(t, s, p); }))
        k.parts.push_back(p);
    if (!k.parts.empty()) out.push_back(std::move(k));
  }
  return out;
}

ParamLayout make_lora_layout(const ModelConfig& cfg, const LoraConfig& lora) {
  lora.validate(cfg);
  const std::vector<LoraSite> sites = lora_sites(cfg, lora);
  ParamLayout out;
  constexpr size_t kAlign = kAlignBytes / sizeof(float);
  auto add = [&](std::string name, std::vector<int64_t> shape, int layer) {
    ParamInfo p;
    p.name = std::move(name);
    p.numel = static_cast<size_t>(shape[0] * shape[1]);
    p.shape = std::move(shape);
    p.offset = align_up(out.total, kAlign);
    p.decay = true;
    p.layer = layer;
    out.total = p.offset + p.numel;
    out.params.push_back(std::move(p));
  };
  for (int i = 0; i < cfg.n_layer; ++i)
    for (const LoraSite& s : sites) {
      const std::string n = "layers." + std::to_string(i) + "." + s.name;
      add(n + ".lora_A", {static_cast<int64_t>(s.parts.size()) * lora.r, s.in}, i);
      add(n + ".lora_B", {s.b_rows(), lora.r}, i);
    }
  out.total = align_up(out.total, kAlign);
  return out;
}

std::string peft_module_path(const ModelConfig& cfg, int layer, const LoraPart& part) {
  const std::string i = std::to_string(layer);
  return cfg.family == Family::gpt2 ? "transformer.h." + i + "." + part.hf_module
                                    : "model.layers." + i + "." + part.hf_module;
}

void lora_init(float* adapters, const ParamLayout& layout, uint64_t seed) {
  for (size_t t = 0; t < layout.params.size(); ++t) {
    const ParamInfo& p = layout.params[t];
    float* w = adapters + p.offset;
    if (p.name.size() > 7 && p.name.compare(p.name.size() - 7, 7, ".lora_B") == 0) {
      std::fill(w, w + p.numel, 0.0f);
      continue;
    }
    // kaiming_uniform_(a = sqrt(5)): gain sqrt(2 / (1 + a^2)) = sqrt(1/3), bound =
    // gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in), fan_in = the input width.
    const double bound = 1.0 / std::sqrt(static_cast<double>(p.shape[1]));
    std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + t + 1);
    for (size_t i = 0; i < p.numel; ++i)
      w[i] = static_cast<float>((static_cast<double>(rng() >> 11) * 0x1.0p-53 * 2.0 - 1.0) * bound);
  }
}

}  // namespace teddy
