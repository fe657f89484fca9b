// BPE training: the textbook example's merges, agreement with a from-scratch
// reference trainer (recount every pair every step) on corpora full of ties, and
// special tokens.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "tokenizer/tokenizer_test_util.h"
#include "teddy/core/error.h"
#include "teddy/tokenizer/bpe_trainer.h"
#include "teddy/tokenizer/pretokenizer.h"

namespace teddy {
namespace {

std::vector<std::string> merged_strings(const BpeTrainer& t, const Tokenizer& tok) {
  std::vector<std::string> out;
  for (const BpeMerge& m : t.merges()) out.emplace_back(tok.token_bytes(m.id));
  return out;
}

TEST(BpeTrainer, TextbookExampleMerges) {
  // Sennrich et al.'s low/lower/newest/widest, GPT-2 style (words carry their space).
  // Pieces: "low" x1, " low" x4, " lower" x2, " newest" x6, " widest" x3.
  BpeTrainer t({.vocab_size = 1000, .specials = {"<|endoftext|>"}});
  t.add_text("low low low low low lower lower newest newest newest newest newest newest widest widest widest");
  const Tokenizer tok = t.train();
  // Worked by hand: highest count first, ties to the smallest (left id, right id).
  const std::vector<std::string> expected = {"es",   "est",     "lo",    "low",    " n",
                                             " low", "ew",      " new",  " newest", " w",
                                             "dest", "idest",   " widest", "er",   " lower"};
  EXPECT_EQ(merged_strings(t, tok), expected);
  const std::vector<int64_t> counts = {9, 9, 7, 7, 6, 6, 6, 6, 6, 3, 3, 3, 3, 2, 2};
  for (size_t i = 0; i < t.merges().size() && i < counts.size(); ++i) EXPECT_EQ(t.merges()[i].count, counts[i]) << i;
  // Ran out of pairs: 256 bytes + 15 merges, then the special.
  EXPECT_EQ(tok.vocab_size(), 256 + 15 + 1);
  EXPECT_EQ(tok.eot_id(), 271u);
  EXPECT_EQ(t.merges()[0].left, 'e');
  EXPECT_EQ(t.merges()[0].right, 's');
  EXPECT_EQ(t.merges()[0].id, 256u);
  // " lowest" was never seen: BPE builds " low" + "est".
  EXPECT_EQ(tok.encode(" lowest"), (std::vector<uint32_t>{261, 257}));
  EXPECT_EQ(tok.encode(" newest"), (std::vector<uint32_t>{264}));
}

TEST(BpeTrainer, StopsAtTheRequestedVocabularySize) {
  BpeTrainer t({.vocab_size = 256 + 4 + 1});
  t.add_text("low low low low low lower lower newest newest newest newest newest newest widest widest widest");
  const Tokenizer tok = t.train();
  EXPECT_EQ(tok.vocab_size(), 261);
  EXPECT_EQ(merged_strings(t, tok), (std::vector<std::string>{"es", "est", "lo", "low"}));
}

// The obvious algorithm: recount all pairs of all words at every step.
std::vector<std::pair<std::string, std::string>> reference_merges(const std::map<std::string, int64_t>& words,
                                                                  size_t max_tokens) {
  std::vector<std::string> bytes_of(256);
  std::map<std::string, uint32_t> id_of;
  for (int b = 0; b < 256; ++b) {
    bytes_of[b] = std::string(1, static_cast<char>(b));
    id_of[bytes_of[b]] = b;
  }
  std::vector<std::pair<std::vector<uint32_t>, int64_t>> w;
  for (const auto& [s, c] : words) {
    std::vector<uint32_t> syms;
    for (unsigned char ch : s) syms.push_back(ch);
    w.emplace_back(syms, c);
  }
  std::vector<std::pair<std::string, std::string>> merges;
  while (bytes_of.size() < max_tokens) {
    std::map<std::pair<uint32_t, uint32_t>, int64_t> counts;
    for (const auto& [syms, c] : w)
      for (size_t i = 0; i + 1 < syms.size(); ++i) counts[{syms[i], syms[i + 1]}] += c;
    if (counts.empty()) break;
    auto best = counts.begin();  // map order = smallest (left, right) first
    for (auto it = counts.begin(); it != counts.end(); ++it)
      if (it->second > best->second) best = it;
    const auto [a, b] = best->first;
    const std::string joined = bytes_of[a] + bytes_of[b];
    uint32_t id;
    if (auto f = id_of.find(joined); f != id_of.end()) {
      id = f->second;
    } else {
      id = static_cast<uint32_t>(bytes_of.size());
      bytes_of.push_back(joined);
      id_of[joined] = id;
    }
    merges.emplace_back(bytes_of[a], bytes_of[b]);
    for (auto& [syms, c] : w) {
      std::vector<uint32_t> next;
      for (size_t i = 0; i < syms.size();) {
        if (i + 1 < syms.size() && syms[i] == a && syms[i + 1] == b) {
          next.push_back(id);
          i += 2;
        } else {
          next.push_back(syms[i++]);
        }
      }
      syms = next;
    }
  }
  return merges;
}

TEST(BpeTrainer, MatchesAReferenceTrainerOnCorporaFullOfTies) {
  std::mt19937 rng(3);
  for (int round = 0; round < 4; ++round) {
    // Few letters, so repeated pairs ("aaaa"), ties and re-made tokens abound.
    std::string text;
    for (int i = 0; i < 3000; ++i) {
      text += ' ';
      const int len = 1 + static_cast<int>(rng() % 9);
      for (int k = 0; k < len; ++k) text += "abcab"[rng() % (3 + round % 3)];
    }
    BpeTrainer t({.vocab_size = 256 + 300, .specials = {}});
    t.add_text(text);
    const Tokenizer tok = t.train();
    std::map<std::string, int64_t> words;
    Pretokenizer(PretokenizerKind::gpt2).split(text, [&](std::string_view p) { ++words[std::string(p)]; });
    const auto ref = reference_merges(words, 256 + 300);
    ASSERT_EQ(t.merges().size(), ref.size()) << "round " << round;
    for (size_t i = 0; i < ref.size(); ++i) {
      ASSERT_EQ(tok.token_bytes(t.merges()[i].left), ref[i].first) << "round " << round << " merge " << i;
      ASSERT_EQ(tok.token_bytes(t.merges()[i].right), ref[i].second) << "round " << round << " merge " << i;
    }
    EXPECT_EQ(tok.decode(tok.encode(text)), text);
  }
}

TEST(BpeTrainer, SpecialTextIsNeverMergedAcross) {
  BpeTrainer t({.vocab_size = 400, .specials = {"<|endoftext|>", "<|pad|>"}});
  std::string text;
  for (int i = 0; i < 50; ++i) text += "ab<|endoftext|>cd<|pad|>";
  t.add_text(text);
  const Tokenizer tok = t.train();
  for (const BpeMerge& m : t.merges()) {
    const std::string_view b = tok.token_bytes(m.id);
    EXPECT_EQ(b.find_first_of("<|>"), std::string_view::npos) << b;
  }
  EXPECT_EQ(t.merges().size(), 2u);  // "ab" and "cd" only
  EXPECT_EQ(tok.special_id("<|endoftext|>"), 258u);
  EXPECT_EQ(tok.special_id("<|pad|>"), 259u);
  EXPECT_EQ(tok.encode_with_special("ab<|pad|>"), (std::vector<uint32_t>{256, 259}));
}

TEST(BpeTrainer, RejectsTooSmallVocabularies) {
  EXPECT_THROW(BpeTrainer({.vocab_size = 256}), ConfigError);  // no room for <|endoftext|>
  EXPECT_NO_THROW(BpeTrainer({.vocab_size = 256, .specials = {}}));
  EXPECT_THROW(BpeTrainer({.vocab_size = 300, .specials = {"<|a|>", "<|a|>"}}), ConfigError);
}

TEST(BpeTrainer, TrainsOnMixedTextAndRoundTrips) {
  const std::string text = test::read_file(TEDDY_SOURCE_DIR "/tests/tokenizer/tokenizer_mixed.txt");
  for (PretokenizerKind kind : {PretokenizerKind::gpt2, PretokenizerKind::llama3}) {
    BpeTrainer t({.vocab_size = 700, .pattern = kind});
    t.add_text(text);
    const Tokenizer tok = t.train();
    EXPECT_EQ(tok.pattern(), kind);
    EXPECT_EQ(tok.vocab_size(), 700);
    EXPECT_EQ(tok.merge_count(), 700u - 257u);
    const auto ids = tok.encode(text);
    EXPECT_EQ(tok.decode(ids), text);
    // Encoding a training piece gives what training made of it: apply the merges in order.
    int checked = 0;
    Pretokenizer(kind).split(text, [&](std::string_view piece) {
      std::vector<uint32_t> syms(piece.begin(), piece.end());
      for (auto& s : syms) s &= 0xff;
      for (const BpeMerge& m : t.merges()) {
        std::vector<uint32_t> next;
        for (size_t i = 0; i < syms.size();) {
          if (i + 1 < syms.size() && syms[i] == m.left && syms[i + 1] == m.right) {
            next.push_back(m.id);
            i += 2;
          } else {
            next.push_back(syms[i++]);
          }
        }
        syms.swap(next);
      }
      EXPECT_EQ(tok.encode(piece), syms) << "piece \"" << piece << "\"";
      ++checked;
    });
    EXPECT_GT(checked, 400);
  }
}

}  // namespace
}  // namespace teddy
