// Autoregressive generation. The context is bounded by max_seq_len: generation stops
// once prompt + generated tokens reach it (the last token produced sits at position
// max_seq_len-1 and is never fed back), so at most max_seq_len - prompt tokens come out.
#include "teddy/model/generate.h"

#include <algorithm>
#include <string>

#include "teddy/core/error.h"
#include "teddy/model/kv_decoder.h"
#include "teddy/model/sampler.h"

namespace teddy {

int generation_budget(const ModelConfig& cfg, std::span<const int32_t> prompt, int max_new_tokens,
                      const std::string& who) {
  if (prompt.empty()) throw Error(who + "the prompt must hold at least one token");
  if (max_new_tokens < 0) throw Error(who + "max_new_tokens must be >= 0");
  if (prompt.size() > static_cast<size_t>(cfg.max_seq_len))
    throw Error(who + "prompt of " + std::to_string(prompt.size()) + " tokens exceeds max_seq_len=" +
                std::to_string(cfg.max_seq_len));
  return std::min(max_new_tokens, cfg.max_seq_len - static_cast<int>(prompt.size()));
}

std::vector<int32_t> generate(Model& model, std::span<const int32_t> prompt, int max_new_tokens,
                              const SamplingOptions& opts, const std::function<bool(int32_t)>& on_token,
                              bool use_kv_cache) {
  const ModelConfig& cfg = model.config();
  const int P = static_cast<int>(prompt.size());
  const int budget = generation_budget(cfg, prompt, max_new_tokens, "generate: ");
  Sampler sampler(opts, cfg.vocab_size);
  std::vector<int32_t> out;
  if (budget <= 0) return out;
  out.reserve(budget);
  // Appends tok; false when generation should stop.
  auto emit = [&](int32_t tok) {
    out.push_back(tok);
    if (on_token && !on_token(tok)) return false;
    if (std::find(opts.stop_tokens.begin(), opts.stop_tokens.end(), tok) != opts.stop_tokens.end()) return false;
    return static_cast<int>(out.size()) < budget;
  };
  const int fed_max = P + budget - 1;  // positions ever fed to the model
  if (use_kv_cache) {
    KvDecoder dec(model, fed_max, P);
    const float* logits = dec.feed(prompt.data(), P);  // prefill
    for (;;) {
      const int32_t tok = sampler.sample(logits);
      if (!emit(tok)) break;
      logits = dec.feed(&tok, 1);
    }
  } else {
    // Reference path: the whole prefix through forward() at every step.
    const size_t Vp = cfg.padded_vocab_size;
    std::vector<int32_t> seq(prompt.begin(), prompt.end());
    seq.reserve(fed_max);
    std::vector<float> logits(static_cast<size_t>(fed_max) * Vp);
    model.reserve_activations(1, fed_max);
    for (;;) {
      Batch b;
      b.tokens = seq.data();
      b.B = 1;
      b.T = static_cast<int>(seq.size());
      model.forward(b, logits.data());
      const int32_t tok = sampler.sample(logits.data() + (seq.size() - 1) * Vp);
      if (!emit(tok)) break;
      seq.push_back(tok);
    }
  }
  return out;
}

}  // namespace teddy
