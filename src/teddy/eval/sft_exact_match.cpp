#include "teddy/eval/sft_exact_match.h"

#include "teddy/core/error.h"
#include "teddy/model/generate.h"

namespace teddy {

std::string trim_whitespace(std::string_view s) {
  const char* ws = " \t\r\n\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return "";
  return std::string(s.substr(b, s.find_last_not_of(ws) - b + 1));
}

ExactMatchResult sft_exact_match(Model& model, const Tokenizer& tok, const ChatTemplate& tmpl,
                                 std::span<const SftExample> examples, const ExactMatchOptions& opt,
                                 const std::function<void(size_t, const ExactMatchSample&)>& on_done) {
  const int32_t eot = end_of_turn_id(tok, tmpl);
  SamplingOptions so;
  so.temperature = 0;  // greedy
  so.stop_tokens = {eot};
  ExactMatchResult res;
  const size_t n = opt.limit > 0 ? std::min(opt.limit, examples.size()) : examples.size();
  for (size_t i = 0; i < n; ++i) {
    const SftExample& ex = examples[i];
    size_t last = ex.turns.size();
    while (last > 0 && ex.turns[last - 1].role != ChatRole::assistant) --last;
    if (last == 0) throw Error(ex.file + ":" + std::to_string(ex.line) + ": no assistant turn to compare with");
    const std::span<const ChatTurn> context(ex.turns.data(), last - 1);
    const std::vector<int32_t> prompt = render_generation_prompt(tok, tmpl, context);
    if (prompt.size() >= static_cast<size_t>(model.config().max_seq_len))
      throw Error(ex.file + ":" + std::to_string(ex.line) + ": prompt of " + std::to_string(prompt.size()) +
                  " tokens does not fit the model's context of " + std::to_string(model.config().max_seq_len));
    std::vector<int32_t> out = generate(model, prompt, opt.max_new_tokens, so);
    if (!out.empty() && out.back() == eot) out.pop_back();
    std::vector<uint32_t> ids(out.begin(), out.end());
    ExactMatchSample smp;
    smp.task = ex.task;
    smp.prompt = context.empty() ? "" : context.back().content;
    smp.reference = ex.turns[last - 1].content;
    smp.reply = tok.decode(ids);
    smp.correct = trim_whitespace(smp.reply) == trim_whitespace(smp.reference);
    ++res.total;
    res.correct += smp.correct;
    auto& t = res.by_task[ex.task];
    t.first += smp.correct;
    ++t.second;
    if (on_done) on_done(i, smp);
    res.samples.push_back(std::move(smp));
  }
  return res;
}

}  // namespace teddy
