// Exactness against a real peer: teddy's ids must equal the npm `tiktoken`
// package's (OpenAI's tiktoken compiled to WASM) for gpt2 and for cl100k_base
// (which uses the LLaMA-3 regex). Needs node and npm: the setup script installs
// tiktoken into <build>/npm; without them these tests FAIL (they never skip).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "tokenizer/tokenizer_test_util.h"
#include "teddy/tokenizer/tokenizer.h"

namespace teddy {
namespace {

std::vector<uint32_t> parse_ids(const std::string& s) {
  std::vector<uint32_t> ids;
  std::istringstream in(s);
  for (uint32_t id; in >> id;) ids.push_back(id);
  return ids;
}

std::string describe_mismatch(const Tokenizer& tok, const std::vector<uint32_t>& ours,
                              const std::vector<uint32_t>& theirs) {
  size_t i = 0;
  while (i < ours.size() && i < theirs.size() && ours[i] == theirs[i]) ++i;
  std::ostringstream m;
  m << "first difference at token " << i << " of " << ours.size() << " (teddy) / " << theirs.size()
    << " (tiktoken): teddy " << (i < ours.size() ? std::to_string(ours[i]) : "end") << ", tiktoken "
    << (i < theirs.size() ? std::to_string(theirs[i]) : "end");
  std::vector<uint32_t> before(ours.begin() + (i > 8 ? i - 8 : 0), ours.begin() + i);
  m << "; text before: \"" << tok.decode(before) << "\"";
  return m.str();
}

class TiktokenPeer : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    dir_ = test::tiktoken_dir(error);
    ASSERT_FALSE(dir_.empty()) << error;
  }
  std::string node_encode(const std::string& encoding, const std::string& file) {
    std::string out;
    const int rc = test::run_command("node '" TEDDY_SOURCE_DIR "/tests/tokenizer/tiktoken_encode.js' '" + dir_ + "' " +
                                         encoding + " '" + file + "'",
                                     out);
    EXPECT_EQ(rc, 0) << "node tiktoken_encode.js failed";
    return out;
  }
  Tokenizer gpt2() { return Tokenizer::load(dir_ + "/gpt2.tiktoken"); }
  // load() infers cl100k_base's regex (LLaMA-3's) and specials from its 100256 ranks.
  Tokenizer cl100k() { return Tokenizer::load(dir_ + "/cl100k_base.tiktoken"); }
  void compare_random(const Tokenizer& tok, const std::string& encoding, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<std::string> texts;
    for (int i = 0; i < 400; ++i) texts.push_back(test::random_text(rng, 1 + static_cast<int>(rng() % 120)));
    const std::string file = test::temp_dir() + "/random_" + encoding + ".json";
    test::write_file(file, nlohmann::json(texts).dump());
    const nlohmann::json theirs = nlohmann::json::parse(node_encode(encoding, file));
    ASSERT_EQ(theirs.size(), texts.size());
    int failures = 0;
    for (size_t i = 0; i < texts.size() && failures < 5; ++i) {
      const std::vector<uint32_t> ours = tok.encode(texts[i]);
      const std::vector<uint32_t> ref = theirs[i].get<std::vector<uint32_t>>();
      if (ours != ref) {
        ++failures;
        ADD_FAILURE() << encoding << " text " << i << " " << nlohmann::json(texts[i]).dump() << ": "
                      << describe_mismatch(tok, ours, ref);
      }
    }
  }
  std::string dir_;
};

TEST_F(TiktokenPeer, Gpt2MixedTextIdsEqualTiktoken) {
  const std::string file = TEDDY_SOURCE_DIR "/tests/tokenizer/tokenizer_mixed.txt";
  const std::string text = test::read_file(file);
  ASSERT_GT(text.size(), 1000u);
  const Tokenizer tok = gpt2();
  EXPECT_EQ(tok.vocab_size(), 50257);
  EXPECT_EQ(tok.eot_id(), 50256u);
  const std::vector<uint32_t> ours = tok.encode(text);
  const std::vector<uint32_t> theirs = parse_ids(node_encode("gpt2", file));
  ASSERT_FALSE(theirs.empty());
  EXPECT_EQ(ours, theirs) << describe_mismatch(tok, ours, theirs);
  EXPECT_EQ(tok.decode(ours), text);
  EXPECT_EQ(tok.encode_parallel(text, 2), ours);
}

TEST_F(TiktokenPeer, Gpt2RandomTextsEqualTiktoken) { compare_random(gpt2(), "gpt2", 1234); }

TEST_F(TiktokenPeer, Cl100kLlama3PatternMixedTextIdsEqualTiktoken) {
  const std::string file = TEDDY_SOURCE_DIR "/tests/tokenizer/tokenizer_mixed.txt";
  const std::string text = test::read_file(file);
  const Tokenizer tok = cl100k();
  EXPECT_EQ(tok.pattern(), PretokenizerKind::llama3);
  EXPECT_EQ(tok.eot_id(), 100257u);
  EXPECT_EQ(tok.vocab_size(), 100277);
  const std::vector<uint32_t> ours = tok.encode(text);
  const std::vector<uint32_t> theirs = parse_ids(node_encode("cl100k_base", file));
  EXPECT_EQ(ours, theirs) << describe_mismatch(tok, ours, theirs);
}

TEST_F(TiktokenPeer, Cl100kRandomTextsEqualTiktoken) { compare_random(cl100k(), "cl100k_base", 99); }

TEST_F(TiktokenPeer, Gpt2ThroughHuggingFaceAndTeddyFormatsKeepsIds) {
  // tiktoken ranks -> tokenizer.json (merges recovered from the ranks) -> load: the
  // HF rule (listed merge pairs, whole words first) must still give tiktoken's ids.
  const std::string file = TEDDY_SOURCE_DIR "/tests/tokenizer/tokenizer_mixed.txt";
  const std::string text = test::read_file(file);
  const std::vector<uint32_t> theirs = parse_ids(node_encode("gpt2", file));
  const Tokenizer tok = gpt2();
  const std::string hf = test::temp_dir() + "/gpt2_tokenizer.json";
  tok.save_hf_json(hf);
  const std::string hf_text = test::read_file(hf);
  EXPECT_NE(hf_text.find("\"\u0120the\": 262"), std::string::npos)  // GPT-2's encoder.json spelling of " the"
      << "byte-level spelling of \" the\" missing";
  EXPECT_NE(hf_text.find("\"\u0120 t\""), std::string::npos);  // GPT-2's first merge "Ġ t"
  const Tokenizer from_hf = Tokenizer::load(hf);
  EXPECT_FALSE(from_hf.vocab().merges.empty());
  EXPECT_EQ(from_hf.merge_count(), 50000u);
  EXPECT_EQ(from_hf.eot_id(), 50256u);
  const std::vector<uint32_t> ours = from_hf.encode(text);
  EXPECT_EQ(ours, theirs) << describe_mismatch(from_hf, ours, theirs);

  const std::string own = test::temp_dir() + "/gpt2_teddy.json";
  from_hf.save(own);
  const Tokenizer from_own = Tokenizer::load(own);
  EXPECT_EQ(from_own.encode(text), theirs);
}

TEST_F(TiktokenPeer, Gpt2KnownIds) {
  // Spot checks independent of node: ids of GPT-2's encoder.json.
  const Tokenizer tok = gpt2();
  EXPECT_EQ(tok.encode("Hello world"), (std::vector<uint32_t>{15496, 995}));
  // Plain text by default: "<", "|", "end", "of", "text", "|", ">".
  EXPECT_EQ(tok.encode("<|endoftext|>"), (std::vector<uint32_t>{27, 91, 437, 1659, 5239, 91, 29}));
  EXPECT_EQ(tok.encode_with_special("<|endoftext|>"), (std::vector<uint32_t>{50256}));
}

TEST_F(TiktokenPeer, Gpt2RoundTripsRandomBytesAndLongPieces) {
  const Tokenizer tok = gpt2();
  std::mt19937 rng(7);
  for (int i = 0; i < 50; ++i) {
    const std::string bytes = test::random_bytes(rng, rng() % 3000);
    EXPECT_EQ(tok.decode(tok.encode(bytes)), bytes);
  }
  // Pieces far longer than the array merge loop handles (the heap path).
  std::string letters;
  for (int i = 0; i < 20000; ++i) letters += static_cast<char>('a' + rng() % 26);
  EXPECT_EQ(tok.decode(tok.encode(letters)), letters);
  const std::string spaces(100000, ' ');
  EXPECT_EQ(tok.decode(tok.encode(spaces)), spaces);
}

}  // namespace
}  // namespace teddy
