#include "teddy/eval/generate_until.h"

#include <algorithm>

#include "teddy/core/error.h"

namespace teddy {

std::string cut_at_stop(const std::string& text, const std::vector<std::string>& stops) {
  size_t cut = text.size();
  for (const std::string& s : stops)
    if (!s.empty()) cut = std::min(cut, text.find(s));
  return text.substr(0, cut);
}

GenerateUntilResult generate_until(Model& model, const Tokenizer& tok, const std::string& prompt,
                                   const std::vector<std::string>& stops, int max_new_tokens,
                                   const SamplingOptions& sampling) {
  const std::vector<uint32_t> ids = tok.encode(prompt);
  if (ids.empty()) throw Error("generation: the prompt encodes to no tokens");
  const int L = model.config().max_seq_len;
  const int keep = std::min<int>(static_cast<int>(ids.size()), std::max(L - max_new_tokens, L / 2));
  GenerateUntilResult r;
  r.dropped_tokens = static_cast<int>(ids.size()) - keep;
  r.prompt_tokens = keep;
  std::vector<int32_t> in(ids.end() - keep, ids.end());
  SamplingOptions so = sampling;
  const std::optional<uint32_t> eot = tok.find_eot();
  if (eot) so.stop_tokens.push_back(static_cast<int32_t>(*eot));
  std::string text;
  generate(model, in, max_new_tokens, so, [&](int32_t t) {
    ++r.new_tokens;
    if (eot && static_cast<uint32_t>(t) == *eot) return false;
    const size_t before = text.size();
    text += tok.token_bytes(static_cast<uint32_t>(t));
    // A new stop sequence must end inside the bytes just added: search from there.
    for (const std::string& s : stops) {
      const size_t from = before >= s.size() ? before - s.size() + 1 : 0;
      if (!s.empty() && text.find(s, from) != std::string::npos) return false;
    }
    return true;
  });
  r.text = cut_at_stop(text, stops);
  return r;
}

}  // namespace teddy
