#include "teddy/data/sft/dataset.h"

#include <algorithm>
#include <sstream>

#include "teddy/core/error.h"

namespace teddy {

std::string_view sft_truncation_name(SftTruncation t) {
  switch (t) {
    case SftTruncation::right: return "right";
    case SftTruncation::left: return "left";
    case SftTruncation::drop: return "drop";
  }
  return "?";
}

SftTruncation sft_truncation_from_name(std::string_view name, std::string_view field) {
  for (SftTruncation t : {SftTruncation::right, SftTruncation::left, SftTruncation::drop})
    if (name == sft_truncation_name(t)) return t;
  throw ConfigError(std::string(field) + ": must be one of right, left, drop (got \"" + std::string(name) + "\")");
}

std::string SftDatasetStats::summary() const {
  std::ostringstream os;
  os << examples << " examples, " << tokens << " tokens (" << loss_tokens << " carry loss), longest " << longest
     << " tokens; truncated " << truncated << ", dropped " << dropped_too_long << " too long + " << dropped_no_loss
     << " with no loss token left";
  return os.str();
}

SftDataset::SftDataset(std::span<const SftExample> examples, const Tokenizer& tok, const ChatTemplate& tmpl,
                       const SftDatasetOptions& opt)
    : opt_(opt) {
  if (opt.seq_len < 1) throw Error("SFT dataset: seq_len must be >= 1 (got " + std::to_string(opt.seq_len) + ")");
  const size_t max_tokens = static_cast<size_t>(opt.seq_len) + 1;
  for (size_t i = 0; i < examples.size(); ++i) {
    ChatTokens ct;
    try {
      ct = render_chat(tok, tmpl, examples[i].turns, opt.train_on_inputs);
    } catch (const Error& e) {  // a Jinja template refusing this conversation: say which one
      if (examples[i].file.empty()) throw;
      throw Error(examples[i].file + ":" + std::to_string(examples[i].line) + ": " + e.what());
    }
    stats_.longest = std::max<uint64_t>(stats_.longest, ct.tokens.size());
    if (ct.tokens.size() > max_tokens) {
      if (opt.truncation == SftTruncation::drop) {
        ++stats_.dropped_too_long;
        continue;
      }
      const size_t cut = ct.tokens.size() - max_tokens;
      if (opt.truncation == SftTruncation::right) {
        ct.tokens.resize(max_tokens);
        ct.loss.resize(max_tokens);
      } else {
        ct.tokens.erase(ct.tokens.begin(), ct.tokens.begin() + static_cast<std::ptrdiff_t>(cut));
        ct.loss.erase(ct.loss.begin(), ct.loss.begin() + static_cast<std::ptrdiff_t>(cut));
        ct.loss[0] = 0;  // now the first token: nothing predicts it
      }
      if (ct.loss_count() == 0) {
        ++stats_.dropped_no_loss;
        continue;
      }
      ++stats_.truncated;
    }
    if (ct.tokens.size() < 2 || ct.loss_count() == 0) {  // cannot happen with a valid example; be safe
      ++stats_.dropped_no_loss;
      continue;
    }
    stats_.tokens += ct.tokens.size();
    stats_.loss_tokens += ct.loss_count();
    seqs_.push_back(std::move(ct));
    source_.push_back(static_cast<uint32_t>(i));
  }
  stats_.examples = seqs_.size();
}

namespace {

// FNV-1a, 64 bit: stable across platforms and library versions (std::hash is not).
uint64_t fnv1a(uint64_t h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

std::pair<std::vector<SftExample>, std::vector<SftExample>> split_sft_examples(std::vector<SftExample> all,
                                                                               double fraction) {
  std::vector<SftExample> train, val;
  for (SftExample& ex : all) {
    uint64_t h = 14695981039346656037ull;
    for (const ChatTurn& t : ex.turns) {
      h = fnv1a(h, chat_role_name(t.role));
      h = fnv1a(h, std::string_view("\x1f", 1));
      h = fnv1a(h, t.content);
      h = fnv1a(h, std::string_view("\x1e", 1));
    }
    h ^= h >> 33;  // finalise: FNV's low bits mix poorly
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    const double u = static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0);
    (u < fraction ? val : train).push_back(std::move(ex));
  }
  return {std::move(train), std::move(val)};
}

}  // namespace teddy
