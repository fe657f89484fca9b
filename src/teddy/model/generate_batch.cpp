#include "teddy/model/generate_batch.h"

#include <algorithm>
#include <optional>
#include <string>

#include "teddy/core/error.h"
#include "teddy/model/batch_decoder.h"
#include "teddy/model/sampler.h"

namespace teddy {

std::vector<std::vector<int32_t>> generate_batch(
    Model& model, std::span<const GenerationRequest> requests, std::span<const float* const> adapters, int batch,
    const SamplingOptions& opts, const std::function<void(size_t, std::span<const int32_t>)>& on_done) {
  const ModelConfig& cfg = model.config();
  if (batch < 1) throw ConfigError("generate: batch must be >= 1 (got " + std::to_string(batch) + ")");
  { const Sampler check(opts, cfg.vocab_size); }  // validates the options before any work
  const int n_adapters = static_cast<int>(adapters.size());
  // Budgets, and the cache capacity and rows the longest request needs.
  std::vector<int> budget(requests.size(), 0);
  int capacity = 1, longest = 1;
  for (size_t i = 0; i < requests.size(); ++i) {
    const GenerationRequest& r = requests[i];
    const std::string who = "generate: request " + std::to_string(i) + ": ";
    const int P = static_cast<int>(r.prompt.size());
    budget[i] = generation_budget(cfg, r.prompt, r.max_new_tokens, who);
    if (r.adapter < -1 || r.adapter >= n_adapters)
      throw Error(who + "adapter " + std::to_string(r.adapter) + " outside [-1, " + std::to_string(n_adapters) + ")");
    for (int32_t t : r.prompt)
      if (t < 0 || t >= cfg.vocab_size)
        throw Error(who + "token " + std::to_string(t) + " outside [0, " + std::to_string(cfg.vocab_size) + ")");
    if (budget[i] > 0) {
      capacity = std::max(capacity, P + budget[i] - 1);  // positions ever fed
      longest = std::max(longest, P);
    }
  }
  std::vector<std::vector<int32_t>> out(requests.size());
  if (requests.empty()) return out;
  const int slots = static_cast<int>(std::min<size_t>(batch, requests.size()));
  BatchDecoder dec(model, slots, capacity, std::max(longest, slots),
                   std::vector<const float*>(adapters.begin(), adapters.end()));
  const size_t Vp = cfg.padded_vocab_size;
  std::vector<long> req_of(slots, -1);  // the request a slot decodes, -1: free
  std::vector<std::optional<Sampler>> sampler(slots);
  std::vector<int32_t> next(slots);     // the token a live slot feeds at the next step
  auto finish = [&](size_t i) {
    if (on_done) on_done(i, out[i]);
  };
  // Appends tok to slot s's request; false when that request is done.
  auto emit = [&](int s, int32_t tok) {
    const size_t i = static_cast<size_t>(req_of[s]);
    out[i].push_back(tok);
    if (std::find(opts.stop_tokens.begin(), opts.stop_tokens.end(), tok) != opts.stop_tokens.end()) return false;
    return static_cast<int>(out[i].size()) < budget[i];
  };
  size_t waiting = 0;  // the next request to admit
  std::vector<int> live, order;
  std::vector<int32_t> toks;
  for (;;) {
    // Admit waiting requests into free slots: prefill, then the first token.
    for (int s = 0; s < slots && waiting < requests.size(); ++s) {
      while (req_of[s] < 0 && waiting < requests.size()) {
        const size_t i = waiting++;
        if (budget[i] <= 0) {
          finish(i);
          continue;
        }
        const GenerationRequest& r = requests[i];
        req_of[s] = static_cast<long>(i);
        sampler[s].emplace(opts, cfg.vocab_size);
        dec.start(s, r.adapter);
        const float* logits = dec.feed(s, r.prompt.data(), static_cast<int>(r.prompt.size()));
        const int32_t tok = sampler[s]->sample(logits);
        if (emit(s, tok)) {
          next[s] = tok;
        } else {
          req_of[s] = -1;
          finish(i);
        }
      }
    }
    live.clear();
    for (int s = 0; s < slots; ++s)
      if (req_of[s] >= 0) live.push_back(s);
    if (live.empty()) break;
    // Rows ordered by adapter: each adapter's rows are adjacent, one LoRA call apiece.
    order = live;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return dec.adapter(a) < dec.adapter(b); });
    toks.clear();
    for (int s : order) toks.push_back(next[s]);
    const float* logits = dec.step(order.data(), toks.data(), static_cast<int>(order.size()));
    for (size_t j = 0; j < order.size(); ++j) {
      const int s = order[j];
      const int32_t tok = sampler[s]->sample(logits + j * Vp);
      if (emit(s, tok)) {
        next[s] = tok;
      } else {
        const size_t i = static_cast<size_t>(req_of[s]);
        req_of[s] = -1;
        finish(i);
      }
    }
  }
  return out;
}

}  // namespace teddy
