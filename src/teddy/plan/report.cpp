#include "teddy/plan/report.h"

#include "teddy/plan/lora.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "teddy/core/error.h"
#include "teddy/plan/units.h"

namespace teddy::plan {
namespace {

using nlohmann::json;

// A titled block of "label  value  note" lines with aligned columns.
class Block {
 public:
  explicit Block(std::string title) : title_(std::move(title)) {}
  void row(std::string label, std::string value, std::string note = "") {
    rows_.push_back({std::move(label), std::move(value), std::move(note)});
  }
  std::string str() const {
    size_t lw = 0, vw = 0;
    for (const Row& r : rows_) {
      lw = std::max(lw, r.label.size());
      vw = std::max(vw, r.value.size());
    }
    std::string out = title_ + "\n";
    for (const Row& r : rows_) {
      std::string line = "  " + r.label + std::string(lw - r.label.size() + 2, ' ');
      line += std::string(vw - r.value.size(), ' ') + r.value;  // numbers right-aligned
      if (!r.note.empty()) line += "  " + r.note;
      out += line + "\n";
    }
    return out + "\n";
  }

 private:
  struct Row { std::string label, value, note; };
  std::string title_;
  std::vector<Row> rows_;
};

std::string fmt(const char* f, double v) {
  char buf[96];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string with_commas(int64_t n) {
  std::string s = std::to_string(n), out;
  int k = 0;
  for (auto it = s.rbegin(); it != s.rend(); ++it) {
    if (k && k % 3 == 0 && *it != '-') out.push_back(',');
    out.push_back(*it);
    ++k;
  }
  return {out.rbegin(), out.rend()};
}

std::string precision_label(DType p) {
  return p == DType::f32 ? "fp32" : (p == DType::bf16 ? "bf16 mixed" : "fp16 mixed");
}

std::string flop_str(double f) { return format_flops(f); }

json model_json(const Plan& p) {
  const ModelConfig& c = p.input.cfg;
  return {{"name", p.input.model_name},   {"family", std::string(family_name(c.family))},
          {"n_layer", c.n_layer},         {"d_model", c.d_model},
          {"n_head", c.n_head},           {"n_kv_head", c.n_kv_head},
          {"d_ff", c.d_ff},               {"vocab_size", c.vocab_size},
          {"padded_vocab_size", c.padded_vocab_size}, {"max_seq_len", c.max_seq_len},
          {"tie_embeddings", c.tie_embeddings}};
}

json params_json(const ParamCount& c, int lora_rank) {
  return {{"total", c.total},
          {"allocated_floats", c.allocated_floats},
          {"token_embedding", c.token_embedding},
          {"position_embedding", c.position_embedding},
          {"lm_head", c.lm_head},
          {"per_layer", c.per_layer},
          {"blocks", c.blocks},
          {"non_embedding", c.non_embedding},
          {"matmul", c.matmul},
          {"total_real_vocab", c.total_real_vocab},
          {"non_embedding_real_vocab", c.non_embedding_real_vocab},
          {"lora_rank", lora_rank},
          {"lora", c.lora},
          {"trainable", c.trainable}};
}

json flops_json(const Plan& p) {
  const FlopsPerToken& f = p.flops;
  const ForwardFlops& fw = f.forward;
  return {{"seq_len", f.seq_len},
          {"per_token",
           {{"six_n", f.six_n},
            {"attention_dense", f.attention_dense},
            {"attention_causal", f.attention_causal},
            {"approx", f.approx()},
            {"approx_causal", f.approx_causal()},
            {"exact_dense", f.exact_dense()},
            {"exact_causal", f.exact_causal()},
            {"forward_dense", fw.dense()},
            {"forward_causal", fw.causal()},
            {"recompute_extra", p.recompute_flops_per_token}}},
          {"forward_per_layer",
           {{"qkv", fw.qkv}, {"attn_dense", fw.attn_dense}, {"attn_causal", fw.attn_causal},
            {"proj", fw.proj}, {"mlp", fw.mlp}}},
          {"forward_lm_head", fw.lm_head}};
}

json training_json(const Plan& p) {
  json j = {{"tokens", p.tokens},
            {"tokens_source", p.tokens_from_chinchilla ? "chinchilla" : "given"},
            {"tokens_per_param", p.tokens / static_cast<double>(p.params.total)},
            {"flops_per_token", p.flops.approx()},
            {"flops", p.train_flops},
            {"device", p.input.device.name},
            {"peak_flops", p.input.device.peak_flops},
            {"mfu", p.input.mfu},
            {"n_devices", p.input.setup.dp * p.input.setup.tp * p.input.setup.pp}};
  if (p.time) {
    j["gpu_hours"] = p.time->gpu_hours;
    j["wall_seconds"] = p.time->wall_seconds;
  } else {
    j["gpu_hours"] = nullptr;
    j["wall_seconds"] = nullptr;
  }
  return j;
}

json memory_json(const Plan& p) {
  const MemoryEstimate& m = p.memory;
  const TrainSetup& s = m.setup;
  const ActivationBytes& a = m.activations;
  json j = {{"setup",
             {{"micro_batch", s.micro_batch}, {"seq_len", s.seq_len},
              {"precision", std::string(dtype_name(s.precision))}, {"zero_stage", s.zero_stage},
              {"dp", s.dp}, {"tp", s.tp}, {"pp", s.pp},
              {"recompute", std::string(recompute_name(s.recompute))}}},
            {"params_on_device", m.states.params_on_device},
            {"params_bytes", m.states.params},
            {"grads_bytes", m.states.grads},
            {"optimizer_bytes", m.states.optimizer},
            {"base_bytes", m.states.base},
            {"model_states_bytes", m.states.total()},
            {"activations",
             {{"per_layer_bytes", a.per_layer}, {"layers_bytes", a.layers}, {"outside_bytes", a.outside},
              {"scratch_bytes", a.scratch}, {"lora_bytes", a.lora}, {"total_bytes", a.total()},
              {"korthikanti_per_layer_bytes", a.korthikanti_per_layer},
              {"korthikanti_layers_bytes", a.korthikanti_layers}}},
            {"total_bytes", m.total()}};
  if (s.lora.enabled()) {
    const LoraBaseBytes base = lora_base_bytes(p.input.cfg);
    j["lora"] = {{"r", s.lora.r},
                 {"quantize", s.lora.quantize},
                 {"dropout", s.lora.dropout},
                 {"trainable_params", p.params.lora},
                 {"adapter_floats", m.states.params_on_device},
                 {"base_bytes",
                  {{"fp32", base.fp32}, {"bf16", base.bf16}, {"nf4", base.nf4}, {"nf4_no_double_quant", base.nf4_no_dq}}}};
  }
  if (p.fit_checked) {
    j["device_memory_bytes"] = p.input.device_memory;
    j["fits"] = p.fits;
    j["max_micro_batch"] = p.max_micro_batch;
    if (!p.fit_error.empty()) j["fit_error"] = p.fit_error;
  }
  return j;
}

json scaling_json(const Plan& p) {
  return {{"chinchilla_loss", p.chinchilla_loss},
          {"kaplan_loss_params", p.kaplan_loss_params},
          {"kaplan_loss_tokens", p.kaplan_loss_tokens},
          {"chinchilla_optimal_tokens", p.optimal.tokens},
          {"chinchilla_optimal_flops", p.optimal.flops}};
}

std::string model_text(const Plan& p) {
  const ModelConfig& c = p.input.cfg;
  std::string s = "Model " + p.input.model_name + " (" + std::string(family_name(c.family)) + ": " +
                  std::to_string(c.n_layer) + " layers, d_model " + std::to_string(c.d_model) + ", " +
                  std::to_string(c.n_head) + " heads";
  if (c.n_kv_head != c.n_head) s += " / " + std::to_string(c.n_kv_head) + " kv";
  s += ", d_ff " + std::to_string(c.d_ff) + ", vocab " + std::to_string(c.vocab_size);
  if (c.padded_vocab_size != c.vocab_size) s += " (padded " + std::to_string(c.padded_vocab_size) + ")";
  s += ", max seq " + std::to_string(c.max_seq_len) + (c.tie_embeddings ? ", tied head" : ", untied head") + ")\n\n";
  return s;
}

std::string params_text(const Plan& p) {
  const ParamCount& c = p.params;
  Block b("Parameters");
  b.row("total (as allocated, padded vocab)", format_count(static_cast<double>(c.total)), with_commas(c.total));
  b.row("token embedding", format_count(static_cast<double>(c.token_embedding)));
  if (c.position_embedding) b.row("position embedding", format_count(static_cast<double>(c.position_embedding)));
  b.row("lm head", c.lm_head ? format_count(static_cast<double>(c.lm_head)) : "tied");
  b.row("per block", format_count(static_cast<double>(c.per_layer)));
  b.row("non-embedding (Kaplan's N)", format_count(static_cast<double>(c.non_embedding)));
  b.row("N for 6N (blocks + head matrix)", format_count(static_cast<double>(c.matmul)));
  b.row("total with real vocab", format_count(static_cast<double>(c.total_real_vocab)),
        with_commas(c.total_real_vocab));
  if (c.lora) b.row("LoRA trainable", format_count(static_cast<double>(c.lora)),
                    "rank " + std::to_string(p.input.lora.rank) +
                        fmt(", %.3g%% of total", 100.0 * static_cast<double>(c.lora) / c.total));
  return b.str();
}

std::string flops_text(const Plan& p) {
  const FlopsPerToken& f = p.flops;
  Block b("Training FLOPs per token (seq " + std::to_string(f.seq_len) + ", forward + backward = 3x forward)");
  b.row("6N", flop_str(f.six_n));
  b.row("attention 12*L*T*C (dense)", flop_str(f.attention_dense), "causal half: " + flop_str(f.attention_causal));
  b.row("6N + attention (used below)", flop_str(f.approx()), "causal: " + flop_str(f.approx_causal()));
  b.row("exact GEMM count, dense", flop_str(f.exact_dense()), "causal: " + flop_str(f.exact_causal()));
  if (p.recompute_flops_per_token > 0)
    b.row("recompute adds (hardware only)", flop_str(p.recompute_flops_per_token), "not counted in MFU");
  return b.str();
}

std::string training_text(const Plan& p) {
  Block b(std::string("Training") + (p.tokens_from_chinchilla ? " (Chinchilla-optimal tokens)" : ""));
  b.row("tokens", format_count(p.tokens), fmt("%.1f per parameter", p.tokens / static_cast<double>(p.params.total)));
  b.row("FLOPs", format_sci(p.train_flops));
  const Device& d = p.input.device;
  const int n = p.input.setup.dp * p.input.setup.tp * p.input.setup.pp;
  if (p.time) {
    b.row("device", d.name, fmt("%.0f TFLOP/s peak", d.peak_flops / 1e12) + fmt(" at %.0f%% MFU", p.input.mfu * 100));
    b.row("GPU-hours", fmt("%.4g", p.time->gpu_hours), format_duration(p.time->device_seconds) + " on one device");
    b.row("wall clock on " + std::to_string(n) + " device" + (n > 1 ? "s" : ""), format_duration(p.time->wall_seconds));
  } else {
    b.row("time", "-", "device " + d.name + " has no known peak: give --peak-tflops");
  }
  return b.str();
}

std::string memory_text(const Plan& p) {
  const MemoryEstimate& m = p.memory;
  const TrainSetup& s = m.setup;
  const ActivationBytes& a = m.activations;
  std::string title = "Memory per device (" + precision_label(s.precision) + ", ZeRO-" +
                      std::to_string(s.zero_stage) + ", dp " + std::to_string(s.dp);
  if (s.tp > 1) title += ", tp " + std::to_string(s.tp);
  if (s.pp > 1) title += ", pp " + std::to_string(s.pp);
  title += ", micro-batch " + std::to_string(s.micro_batch) + ", seq " + std::to_string(s.seq_len) +
           ", recompute " + std::string(recompute_name(s.recompute)) + ")";
  Block b(title);
  if (s.lora.enabled()) {
    const LoraBaseBytes base = lora_base_bytes(p.input.cfg);
    const std::string q = s.lora.quantize;
    b.row("frozen base (" + std::string(q == "none" ? "fp32" : q) + ")", format_bytes(m.states.base),
          "fp32 " + format_bytes(base.fp32) + ", bf16 " + format_bytes(base.bf16) + ", NF4 " + format_bytes(base.nf4) +
              " (" + format_bytes(base.nf4_no_dq) + " without double quantization)");
    b.row("LoRA adapters (rank " + std::to_string(s.lora.r) + ")", format_bytes(m.states.params),
          format_count(static_cast<double>(p.params.lora)) + " trainable parameters");
  } else {
    b.row("parameters", format_bytes(m.states.params));
  }
  b.row("gradients", format_bytes(m.states.grads));
  b.row(s.precision == DType::f32 ? "optimizer (Adam m, v)" : "optimizer (fp32 master, m, v)",
        format_bytes(m.states.optimizer));
  b.row("activations, per block", format_bytes(a.per_layer),
        "Korthikanti reference: " + format_bytes(a.korthikanti_per_layer));
  b.row("activations, all blocks", format_bytes(a.layers), "Korthikanti: " + format_bytes(a.korthikanti_layers));
  b.row("activations, outside blocks", format_bytes(a.outside), "embeddings, final norm, one logits chunk");
  b.row("backward scratch", format_bytes(a.scratch));
  if (s.lora.enabled()) b.row("LoRA activations", format_bytes(a.lora), "saved x A^T per layer, adapter scratch");
  b.row("total", format_bytes(m.total()));
  if (p.fit_checked) {
    const std::string dev = "device memory " + format_bytes(p.input.device_memory);
    b.row(dev, p.fits ? "fits" : "does NOT fit");
    if (p.max_micro_batch > 0)
      b.row("largest micro-batch that fits", std::to_string(p.max_micro_batch));
    else
      b.row("largest micro-batch that fits", "none", p.fit_error);
  }
  return b.str();
}

std::string scaling_text(const Plan& p) {
  Block b("Scaling laws (loss in nats per token)");
  b.row("Chinchilla L(N, D)", fmt("%.3f", p.chinchilla_loss),
        "N = " + format_count(static_cast<double>(p.params.total)) + ", D = " + format_count(p.tokens));
  b.row("Kaplan L(N)", fmt("%.3f", p.kaplan_loss_params), "non-embedding N");
  b.row("Kaplan L(D)", fmt("%.3f", p.kaplan_loss_tokens));
  b.row("Chinchilla-optimal tokens", format_count(p.optimal.tokens),
        "for N = " + format_count(static_cast<double>(p.params.total)) + ", C = 6ND = " + format_sci(p.optimal.flops));
  return b.str();
}

}  // namespace

json to_json(const Plan& p, unsigned sections) {
  json j = json::object();
  if (sections & kSectionModel) j["model"] = model_json(p);
  if (sections & kSectionParams) j["params"] = params_json(p.params, p.input.lora.rank);
  if (sections & kSectionFlops) j["flops"] = flops_json(p);
  if (sections & kSectionTraining) j["training"] = training_json(p);
  if (sections & kSectionMemory) j["memory"] = memory_json(p);
  if (sections & kSectionScaling) j["scaling"] = scaling_json(p);
  return j;
}

std::string render_text(const Plan& p, unsigned sections) {
  std::string s;
  if (sections & kSectionModel) s += model_text(p);
  if (sections & kSectionParams) s += params_text(p);
  if (sections & kSectionFlops) s += flops_text(p);
  if (sections & kSectionTraining) s += training_text(p);
  if (sections & kSectionMemory) s += memory_text(p);
  if (sections & kSectionScaling) s += scaling_text(p);
  while (s.size() > 1 && s[s.size() - 1] == '\n' && s[s.size() - 2] == '\n') s.pop_back();
  return s;
}

json chinchilla_table_json(const std::vector<ChinchillaTableRow>& rows) {
  json out = json::array();
  for (const ChinchillaTableRow& r : rows)
    out.push_back({{"params", r.ours.params},
                   {"flops", r.ours.flops},
                   {"tokens", r.ours.tokens},
                   {"tokens_per_param", r.ours.tokens / r.ours.params},
                   {"loss", r.ours.loss},
                   {"paper_flops", r.paper.flops},
                   {"paper_tokens", r.paper.tokens},
                   {"parametric_params", r.parametric.params},
                   {"parametric_tokens", r.parametric.tokens}});
  return out;
}

std::string render_chinchilla_table(const std::vector<ChinchillaTableRow>& rows) {
  std::string s =
      "Chinchilla compute-optimal training (Hoffmann et al. 2022, Table 3; C = 6ND)\n"
      "   params      FLOPs     tokens  tok/param  L(N,D) |  paper FLOPs  paper tokens | Approach 3 at same C\n";
  char buf[256];
  for (const ChinchillaTableRow& r : rows) {
    std::snprintf(buf, sizeof buf, "%9s  %9s  %9s  %9.1f  %6.3f |  %11s  %12s | %s params, %s tokens\n",
                  format_count(r.ours.params).c_str(), format_sci(r.ours.flops).c_str(),
                  format_count(r.ours.tokens).c_str(), r.ours.tokens / r.ours.params, r.ours.loss,
                  format_sci(r.paper.flops).c_str(), format_count(r.paper.tokens).c_str(),
                  format_count(r.parametric.params).c_str(), format_count(r.parametric.tokens).c_str());
    s += buf;
  }
  s += "(paper's 67B row prints 1.5T tokens, but its 5.76e23 FLOPs give 1.43T by C = 6ND; see docs/PLAN.md)\n";
  return s;
}

ChinchillaAnswer chinchilla_answer(double flops, double params) {
  if ((flops > 0) == (params > 0)) throw ConfigError("chinchilla: give exactly one of --flops or --params");
  ChinchillaAnswer a;
  if (flops > 0) {
    a.table = chinchilla_for_flops(flops, ChinchillaApproach::table);
    a.parametric = chinchilla_for_flops(flops, ChinchillaApproach::parametric);
  } else {
    a.table = chinchilla_for_params(params, ChinchillaApproach::table);
    a.parametric = chinchilla_for_params(params, ChinchillaApproach::parametric);
  }
  a.kaplan_loss_params = kaplan_loss_params(a.table.params);
  a.kaplan_loss_tokens = kaplan_loss_tokens(a.table.tokens);
  return a;
}

json to_json(const ChinchillaAnswer& a) {
  auto one = [](const ComputeOptimal& c) {
    return json{{"params", c.params}, {"tokens", c.tokens}, {"flops", c.flops}, {"loss", c.loss}};
  };
  return {{"table", one(a.table)},
          {"parametric", one(a.parametric)},
          {"params", a.table.params},
          {"tokens", a.table.tokens},
          {"flops", a.table.flops},
          {"kaplan_loss_params", a.kaplan_loss_params},
          {"kaplan_loss_tokens", a.kaplan_loss_tokens}};
}

std::string render_text(const ChinchillaAnswer& a) {
  Block b("Chinchilla compute-optimal (C = 6ND)");
  auto one = [&](const std::string& name, const ComputeOptimal& c) {
    b.row(name, format_count(c.params) + " params",
          format_count(c.tokens) + " tokens, " + format_sci(c.flops) + " FLOPs, " +
              fmt("%.1f tokens/param, ", c.tokens / c.params) + fmt("L(N,D) = %.3f", c.loss));
  };
  one("Table 3 (Approach 1)", a.table);
  one("Approach 3 (fitted L(N,D))", a.parametric);
  b.row("Kaplan L(N)", fmt("%.3f", a.kaplan_loss_params), "at the Table 3 N (as non-embedding)");
  b.row("Kaplan L(D)", fmt("%.3f", a.kaplan_loss_tokens), "at the Table 3 D");
  std::string s = b.str();
  s.pop_back();
  return s;
}

}  // namespace teddy::plan
