// Tokenizer behaviour that needs no outside peer: lossless round trips on arbitrary
// bytes (ill-formed UTF-8 included), hand-checked GPT-2 and LLaMA-3 splits, special
// tokens, parallel encoding.
#include <gtest/gtest.h>

#include <random>

#include "tokenizer/tokenizer_test_util.h"
#include "teddy/core/error.h"
#include "teddy/tokenizer/bpe_trainer.h"
#include "teddy/tokenizer/pretokenizer.h"
#include "teddy/tokenizer/tokenizer.h"

namespace teddy {
namespace {

std::vector<std::string> split(PretokenizerKind kind, std::string_view text) {
  std::vector<std::string> out;
  Pretokenizer(kind).split(text, [&](std::string_view p) { out.emplace_back(p); });
  return out;
}
using Pieces = std::vector<std::string>;

// A small trained tokenizer, shared by several tests (training is deterministic).
const Tokenizer& trained(PretokenizerKind kind) {
  static const Tokenizer gpt2 = [] {
    BpeTrainer t({.vocab_size = 1200, .pattern = PretokenizerKind::gpt2});
    t.add_text(test::read_file(TEDDY_SOURCE_DIR "/tests/tokenizer/tokenizer_mixed.txt"));
    return t.train();
  }();
  static const Tokenizer llama3 = [] {
    BpeTrainer t({.vocab_size = 1200, .pattern = PretokenizerKind::llama3, .specials = {"<|end_of_text|>", "<|x|>"}});
    t.add_text(test::read_file(TEDDY_SOURCE_DIR "/tests/tokenizer/tokenizer_mixed.txt"));
    return t.train();
  }();
  return kind == PretokenizerKind::gpt2 ? gpt2 : llama3;
}

const char* kIllFormed[] = {
    "\xff", "\xfe\xff", "\xc3", "abc\xc3", "\xe2\x82", "\xe2\x82z", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80",
    "\x80\x80\x80", "caf\xc3\xa9\xc3", "  \xff  x", "it\xff's", "\n\xa0\n", "\xf0\x9f\x98", "x \xf0\x9f\x98\x80\xff y"};

TEST(Tokenizer, BytesTokenizerIsIdentityOnBytes) {
  const Tokenizer tok = Tokenizer::bytes();
  EXPECT_EQ(tok.vocab_size(), 257);
  EXPECT_EQ(tok.eot_id(), 256u);
  std::mt19937 rng(1);
  const std::string bytes = test::random_bytes(rng, 5000);
  const std::vector<uint32_t> ids = tok.encode(bytes);
  ASSERT_EQ(ids.size(), bytes.size());
  for (size_t i = 0; i < ids.size(); ++i) ASSERT_EQ(ids[i], static_cast<unsigned char>(bytes[i]));
  EXPECT_EQ(tok.decode(ids), bytes);
}

TEST(Tokenizer, RoundTripsRandomBytesIncludingIllFormedUtf8) {
  for (PretokenizerKind kind : {PretokenizerKind::gpt2, PretokenizerKind::llama3}) {
    const Tokenizer& tok = trained(kind);
    std::mt19937 rng(42);
    for (int i = 0; i < 300; ++i) {
      const std::string bytes = test::random_bytes(rng, rng() % 400);
      ASSERT_EQ(tok.decode(tok.encode(bytes)), bytes) << "case " << i;
      ASSERT_EQ(tok.decode(tok.encode_with_special(bytes)), bytes) << "case " << i;
    }
    for (const char* s : kIllFormed) EXPECT_EQ(tok.decode(tok.encode(s)), s);
    // Text with bytes flipped at random: mostly valid UTF-8 with ill-formed islands.
    for (int i = 0; i < 100; ++i) {
      std::string text = test::random_text(rng, 200);
      for (int k = 0; k < 5; ++k) text[rng() % text.size()] = static_cast<char>(rng());
      ASSERT_EQ(tok.decode(tok.encode(text)), text);
    }
  }
}

TEST(Tokenizer, RoundTripsValidText) {
  const std::string mixed = test::read_file(TEDDY_SOURCE_DIR "/tests/tokenizer/tokenizer_mixed.txt");
  for (PretokenizerKind kind : {PretokenizerKind::gpt2, PretokenizerKind::llama3}) {
    const Tokenizer& tok = trained(kind);
    const std::vector<uint32_t> ids = tok.encode(mixed);
    EXPECT_EQ(tok.decode(ids), mixed);
    EXPECT_LT(ids.size(), mixed.size() / 2);  // trained on this text: merges must bite
  }
}

TEST(Pretokenizer, Gpt2SplitsLikeThePublishedRegex) {
  const auto k = PretokenizerKind::gpt2;
  EXPECT_EQ(split(k, "Hello world"), (Pieces{"Hello", " world"}));
  EXPECT_EQ(split(k, "it's we're they'll I'm you'd"),
            (Pieces{"it", "'s", " we", "'re", " they", "'ll", " I", "'m", " you", "'d"}));
  EXPECT_EQ(split(k, "IT'S"), (Pieces{"IT", "'", "S"}));  // GPT-2's contractions are case-sensitive
  EXPECT_EQ(split(k, "123456 7"), (Pieces{"123456", " 7"}));
  EXPECT_EQ(split(k, "a  \n b"), (Pieces{"a", "  \n", " b"}));  // \s+(?!\S) leaves one space for the word
  EXPECT_EQ(split(k, "x   y"), (Pieces{"x", "  ", " y"}));
  EXPECT_EQ(split(k, "end   "), (Pieces{"end", "   "}));
  EXPECT_EQ(split(k, "(a+b)!="), (Pieces{"(", "a", "+", "b", ")!="}));
  EXPECT_EQ(split(k, " ?!x"), (Pieces{" ?!", "x"}));
  EXPECT_EQ(split(k, "caf\xc3\xa9 na\xc3\xafve"), (Pieces{"caf\xc3\xa9", " na\xc3\xafve"}));
  // U+00A0 (no-break space) is \s; U+180E is not (tiktoken's Unicode White_Space).
  EXPECT_EQ(split(k, "a\xc2\xa0" "b"), (Pieces{"a", "\xc2\xa0", "b"}));
  EXPECT_EQ(split(k, "a\xe1\xa0\x8e" "b"), (Pieces{"a", "\xe1\xa0\x8e", "b"}));
  EXPECT_EQ(split(k, "a \xe1\xa0\x8e"), (Pieces{"a", " \xe1\xa0\x8e"}));
}

TEST(Pretokenizer, Llama3SplitsLikeThePublishedRegex) {
  const auto k = PretokenizerKind::llama3;
  EXPECT_EQ(split(k, "1234567"), (Pieces{"123", "456", "7"}));  // \p{N}{1,3}
  EXPECT_EQ(split(k, "IT'S I'm"), (Pieces{"IT", "'S", " I", "'m"}));  // (?i:...) contractions
  EXPECT_EQ(split(k, "Hello\n\nworld"), (Pieces{"Hello", "\n\n", "world"}));
  EXPECT_EQ(split(k, "x.\n\ny"), (Pieces{"x", ".\n\n", "y"}));  // punctuation keeps its newlines
  EXPECT_EQ(split(k, "\tfoo"), (Pieces{"\tfoo"}));  // one non-newline space joins the word
  EXPECT_EQ(split(k, "$100"), (Pieces{"$", "100"}));
  EXPECT_EQ(split(k, "hello   world"), (Pieces{"hello", "  ", " world"}));
  EXPECT_EQ(split(k, "a  \n\n b"), (Pieces{"a", "  \n\n", " b"}));  // \s*[\r\n]+
  EXPECT_EQ(split(k, "(x)"), (Pieces{"(x", ")"}));
  EXPECT_EQ(split(k, "don't"), (Pieces{"don", "'t"}));
}

TEST(Pretokenizer, IllFormedBytesBecomeTheirOwnPieces) {
  for (PretokenizerKind k : {PretokenizerKind::gpt2, PretokenizerKind::llama3}) {
    EXPECT_EQ(split(k, "ab\xff" "cd"), (Pieces{"ab", "\xff", "cd"}));
    EXPECT_EQ(split(k, "\xff\xfe"), (Pieces{"\xff\xfe"}));
    EXPECT_EQ(split(k, "x\xc3"), (Pieces{"x", "\xc3"}));
    for (const char* s : kIllFormed) {  // pieces always tile the input
      std::string joined;
      for (const auto& p : split(k, s)) {
        EXPECT_FALSE(p.empty());
        joined += p;
      }
      EXPECT_EQ(joined, s);
    }
  }
}

TEST(Pretokenizer, HandlesHugeRuns) {
  for (PretokenizerKind k : {PretokenizerKind::gpt2, PretokenizerKind::llama3}) {
    // Past PCRE2's default match limit of 10 million steps.
    EXPECT_EQ(split(k, std::string(12 << 20, ' ')).size(), 1u);
    EXPECT_EQ(split(k, std::string(1 << 20, 'a')).size(), 1u);
    EXPECT_EQ(split(k, std::string(1 << 20, ' ') + "x").size(), 2u);
  }
  EXPECT_EQ(split(PretokenizerKind::gpt2, std::string(1 << 20, '!')).size(), 1u);
}

TEST(Tokenizer, SpecialTokensAreTextUnlessAllowed) {
  const Tokenizer& tok = trained(PretokenizerKind::llama3);
  const uint32_t eot = tok.eot_id();
  EXPECT_EQ(eot, tok.special_id("<|end_of_text|>"));
  const uint32_t x = tok.special_id("<|x|>");
  EXPECT_EQ(x, eot + 1);
  EXPECT_EQ(tok.vocab_size(), static_cast<int>(x) + 1);
  const std::string text = "Hi<|end_of_text|><|x|>there<|end_of_text|";
  const std::vector<uint32_t> plain = tok.encode(text);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), eot), 0);
  const std::vector<uint32_t> special = tok.encode_with_special(text);
  EXPECT_EQ(std::count(special.begin(), special.end(), eot), 1);
  EXPECT_EQ(std::count(special.begin(), special.end(), x), 1);
  EXPECT_EQ(tok.decode(special), text);
  EXPECT_EQ(tok.decode(plain), text);
  std::vector<uint32_t> expect = tok.encode("Hi");
  expect.push_back(eot);
  expect.push_back(x);
  for (uint32_t id : tok.encode("there<|end_of_text|")) expect.push_back(id);
  EXPECT_EQ(special, expect);
  EXPECT_THROW(tok.special_id("<|nope|>"), Error);
}

TEST(Tokenizer, AddSpecialTakesTheNextId) {
  Tokenizer tok = Tokenizer::bytes();
  const uint32_t a = tok.add_special("<|im_start|>");
  EXPECT_EQ(a, 257u);
  EXPECT_EQ(tok.add_special("<|im_start|>"), a);
  EXPECT_EQ(tok.vocab_size(), 258);
  EXPECT_EQ(tok.encode_with_special("x<|im_start|>"), (std::vector<uint32_t>{'x', a}));
  EXPECT_EQ(tok.decode(std::vector<uint32_t>{a, 'y'}), "<|im_start|>y");
}

TEST(Tokenizer, LongestSpecialWinsAtTheSamePosition) {
  Tokenizer tok = Tokenizer::bytes();
  const uint32_t shortid = tok.add_special("<|a");
  const uint32_t longid = tok.add_special("<|ab|>");
  EXPECT_EQ(tok.encode_with_special("<|ab|><|a"), (std::vector<uint32_t>{longid, shortid}));
}

TEST(Tokenizer, DecodeRejectsUnknownIds) {
  const Tokenizer tok = Tokenizer::bytes();
  EXPECT_THROW(tok.decode(std::vector<uint32_t>{1, 257}), Error);
  EXPECT_THROW(tok.decode(std::vector<uint32_t>{UINT32_MAX}), Error);
}

TEST(Tokenizer, FromVocabRejectsMissingBytes) {
  BpeVocab v;
  for (int b = 0; b < 255; ++b) {
    v.tokens.emplace_back(1, static_cast<char>(b));
    v.ranks.push_back(static_cast<uint32_t>(b));
  }
  EXPECT_THROW(Tokenizer::from_vocab(v), Error);
}

std::string mixed_corpus(std::mt19937& rng, size_t bytes) {
  const std::string mixed = test::read_file(TEDDY_SOURCE_DIR "/tests/tokenizer/tokenizer_mixed.txt");
  std::string s;
  while (s.size() < bytes) {
    switch (rng() % 4) {
      case 0: s += mixed; break;
      case 1: s += test::random_text(rng, 300); break;
      case 2: s += "word" + std::to_string(rng() % 1000) + "\n"; break;
      default: s += test::random_bytes(rng, 50); break;
    }
  }
  return s;
}

TEST(Tokenizer, ParallelEncodingEqualsSerial) {
  std::mt19937 rng(5);
  const std::string text = mixed_corpus(rng, 1 << 20);
  for (PretokenizerKind kind : {PretokenizerKind::gpt2, PretokenizerKind::llama3}) {
    const Tokenizer& tok = trained(kind);
    const std::vector<uint32_t> serial = tok.encode(text);
    for (int threads : {2, 3, 8}) EXPECT_EQ(tok.encode_parallel(text, threads), serial) << threads;
    const std::vector<uint32_t> special = tok.encode_with_special(text);
    EXPECT_EQ(tok.encode_parallel(text, 2, true), special);
  }
}

TEST(Tokenizer, ParallelEncodingNeverCutsASpecial) {
  // A special that contains the only safe cut points ("a\n").
  Tokenizer tok = Tokenizer::bytes();
  const uint32_t sp = tok.add_special("a\nb");
  std::string text;
  while (text.size() < (1 << 20)) text += "xx a\nb yy ";
  const std::vector<uint32_t> serial = tok.encode_with_special(text);
  EXPECT_EQ(std::count(serial.begin(), serial.end(), sp), static_cast<long>(text.size() / 10));
  EXPECT_EQ(tok.encode_parallel(text, 2, true), serial);
}

TEST(Pretokenizer, SafeCutsSplitLikeTheWhole) {
  std::mt19937 rng(11);
  for (PretokenizerKind kind : {PretokenizerKind::gpt2, PretokenizerKind::llama3}) {
    for (int round = 0; round < 50; ++round) {
      std::string text = test::random_text(rng, 400);
      for (int k = 0; k < 5; ++k) text.insert(rng() % text.size(), "x\n");
      const Pieces whole = split(kind, text);
      for (size_t pos = 1; pos < text.size(); ++pos) {
        if (!Pretokenizer::is_safe_cut(text, pos)) continue;
        Pieces parts = split(kind, text.substr(0, pos));
        for (auto& p : split(kind, text.substr(pos))) parts.push_back(p);
        ASSERT_EQ(parts, whole) << "cut at " << pos;
      }
    }
  }
}

}  // namespace
}  // namespace teddy
