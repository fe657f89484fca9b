// Tokenizer files: save/load round trips of teddy's format, tiktoken rank files and
// Hugging Face tokenizer.json; malformed files fail with a FormatError that names
// the file and the line or field.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "tokenizer/tokenizer_test_util.h"
#include "teddy/core/error.h"
#include "teddy/tokenizer/bpe_trainer.h"
#include "teddy/tokenizer/tokenizer.h"
#include "teddy/tokenizer/tokenizer_file.h"

namespace teddy {
namespace {

Tokenizer train(PretokenizerKind kind, std::vector<std::string> specials = {"<|endoftext|>"}) {
  BpeTrainer t({.vocab_size = 600, .pattern = kind, .specials = std::move(specials)});
  t.add_text(test::read_file(TEDDY_SOURCE_DIR "/tests/tokenizer/tokenizer_mixed.txt"));
  return t.train();
}

std::string path_for(const std::string& name) { return test::temp_dir() + "/" + name; }

// Same ids, bytes and specials, and the same encodings of varied text.
void expect_same(const Tokenizer& a, const Tokenizer& b) {
  ASSERT_EQ(a.vocab_size(), b.vocab_size());
  EXPECT_EQ(a.pattern(), b.pattern());
  for (uint32_t id = 0; id < static_cast<uint32_t>(a.vocab_size()); ++id) {
    ASSERT_EQ(a.token_bytes(id), b.token_bytes(id)) << "id " << id;
  }
  auto sa = a.vocab().specials, sb = b.vocab().specials;
  std::sort(sa.begin(), sa.end());
  std::sort(sb.begin(), sb.end());
  EXPECT_EQ(sa, sb);
  std::mt19937 rng(8);
  std::string text = test::read_file(TEDDY_SOURCE_DIR "/tests/tokenizer/tokenizer_mixed.txt");
  for (int i = 0; i < 20; ++i) text += test::random_text(rng, 200) + test::random_bytes(rng, 20);
  EXPECT_EQ(a.encode_with_special(text), b.encode_with_special(text));
}

// Runs fn and returns the FormatError message ("" plus a failure if none was thrown).
template <class Fn> std::string format_error(Fn&& fn) {
  try {
    fn();
  } catch (const FormatError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected FormatError, got: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected FormatError, nothing thrown";
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(TokenizerFile, TeddyFormatRoundTrip) {
  for (PretokenizerKind kind : {PretokenizerKind::gpt2, PretokenizerKind::llama3}) {
    Tokenizer tok = train(kind, {"<|endoftext|>", "<|pad|>"});
    tok.add_special("<|im_start|>");
    const std::string path = path_for("teddy.json");
    tok.save(path);
    EXPECT_EQ(detect_tokenizer_file(test::read_file(path)), TokenizerFileKind::teddy);
    expect_same(tok, Tokenizer::load(path));
  }
  const std::string path = path_for("bytes.json");
  Tokenizer::bytes().save(path);
  expect_same(Tokenizer::bytes(), Tokenizer::load(path));
}

TEST(TokenizerFile, TiktokenFormatRoundTrip) {
  const Tokenizer tok = train(PretokenizerKind::llama3, {"<|a|>", "<|b|>"});
  const std::string path = path_for("ranks.tiktoken");
  tok.save_tiktoken(path);
  EXPECT_EQ(detect_tokenizer_file(test::read_file(path)), TokenizerFileKind::tiktoken);
  const Tokenizer back = Tokenizer::load_tiktoken(path, PretokenizerKind::llama3, tok.vocab().specials);
  // The rank file drops the merge rules, so tiktoken's byte rule applies after loading.
  BpeVocab by_rank = tok.vocab();
  by_rank.merges.clear();
  expect_same(Tokenizer::from_vocab(by_rank), back);
  EXPECT_TRUE(back.vocab().merges.empty());
  // load() infers gpt2 and <|endoftext|> at the next id for an unknown size.
  const Tokenizer guessed = Tokenizer::load(path);
  EXPECT_EQ(guessed.pattern(), PretokenizerKind::gpt2);
  EXPECT_EQ(guessed.eot_id(), static_cast<uint32_t>(tok.vocab_size() - 2));
}

TEST(TokenizerFile, HuggingFaceFormatRoundTrip) {
  for (PretokenizerKind kind : {PretokenizerKind::gpt2, PretokenizerKind::llama3}) {
    const Tokenizer tok = train(kind, {"<|endoftext|>", "<|pad|>"});
    const std::string path = path_for("tokenizer.json");
    tok.save_hf_json(path);
    EXPECT_EQ(detect_tokenizer_file(test::read_file(path)), TokenizerFileKind::hf_json);
    const Tokenizer back = Tokenizer::load(path);
    expect_same(tok, back);
    // And on through teddy's format (ranks are renumbered by the HF reader).
    back.save(path_for("from_hf.json"));
    expect_same(tok, Tokenizer::load(path_for("from_hf.json")));
  }
}

TEST(TokenizerFile, ByteLevelAlphabetIsGpt2s) {
  EXPECT_EQ(byte_to_unicode(' '), 0x120u);   // 'Ġ'
  EXPECT_EQ(byte_to_unicode('\n'), 0x10Au);  // 'Ċ'
  EXPECT_EQ(byte_to_unicode(0x00), 0x100u);
  EXPECT_EQ(byte_to_unicode(0xAD), 0x143u);  // soft hyphen, the last unprintable byte
  EXPECT_EQ(byte_to_unicode('A'), static_cast<uint32_t>('A'));
  EXPECT_EQ(byte_to_unicode(0xE9), 0xE9u);
}

TEST(TokenizerFile, HuggingFaceByteFallbackVocabIsRejected) {
  // SentencePiece-style BPE (LLaMA-2): tokens spelled with U+2581, not byte-level.
  const std::string path = path_for("sp.json");
  test::write_file(path, R"({"model": {"type": "BPE", "vocab": {"\u2581the": 0}, "merges": []},
                             "pre_tokenizer": {"type": "ByteLevel"}})");
  const std::string msg = format_error([&] { Tokenizer::load(path); });
  EXPECT_TRUE(contains(msg, path) && contains(msg, "model.vocab")) << msg;
}

TEST(TokenizerFile, MissingFileIsAnError) {
  const std::string path = path_for("does_not_exist.json");
  try {
    Tokenizer::load(path);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), path) && contains(e.what(), "cannot open")) << e.what();
  }
}

TEST(TokenizerFile, MalformedTiktokenNamesFileAndLine) {
  const std::string path = path_for("bad.tiktoken");
  const std::string good = "IQ== 0\nIg== 1\n";
  test::write_file(path, good + "not*base64 2\n");
  std::string msg = format_error([&] { Tokenizer::load(path); });
  EXPECT_TRUE(contains(msg, path + ":3:") && contains(msg, "base64")) << msg;

  test::write_file(path, good + "Iw==\n");
  msg = format_error([&] { Tokenizer::load(path); });
  EXPECT_TRUE(contains(msg, path + ":3:") && contains(msg, "expected")) << msg;

  test::write_file(path, good + "Iw== x7\n");
  msg = format_error([&] { Tokenizer::load(path); });
  EXPECT_TRUE(contains(msg, path + ":3:") && contains(msg, "rank")) << msg;

  test::write_file(path, good + "\nIw== 1\n");
  msg = format_error([&] { Tokenizer::load(path); });
  EXPECT_TRUE(contains(msg, path + ":4:") && contains(msg, "twice")) << msg;

  test::write_file(path, "");
  msg = format_error([&] { Tokenizer::load(path); });
  EXPECT_TRUE(contains(msg, path) && contains(msg, "no tokens")) << msg;

  // Well-formed lines, but bytes missing: named, with the file.
  test::write_file(path, good);
  msg = format_error([&] { Tokenizer::load(path); });
  EXPECT_TRUE(contains(msg, path) && contains(msg, "no token for byte")) << msg;
}

TEST(TokenizerFile, MalformedHuggingFaceNamesFileAndField) {
  const Tokenizer tok = train(PretokenizerKind::gpt2);
  const std::string good_path = path_for("good_tokenizer.json");
  tok.save_hf_json(good_path);
  const nlohmann::json good = nlohmann::json::parse(test::read_file(good_path));
  const std::string path = path_for("bad_tokenizer.json");

  nlohmann::json j = good;
  j["model"].erase("vocab");
  test::write_file(path, j.dump(2));
  std::string msg = format_error([&] { Tokenizer::load(path); });
  EXPECT_TRUE(contains(msg, path) && contains(msg, "model.vocab") && contains(msg, "missing")) << msg;

  j = good;
  j["model"]["merges"][3] = "Ġzzqq Ġxxyy";
  test::write_file(path, j.dump(2));
  msg = format_error([&] { Tokenizer::load(path); });
  EXPECT_TRUE(contains(msg, path) && contains(msg, "model.merges[3]") && contains(msg, "not in model.vocab")) << msg;

  j = good;
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  test::write_file(path, j.dump(2));
  msg = format_error([&] { Tokenizer::load(path); });
  EXPECT_TRUE(contains(msg, path) && contains(msg, "pre_tokenizer")) << msg;

  j = good;
  j["normalizer"] = {{"type", "NFC"}};
  test::write_file(path, j.dump(2));
  msg = format_error([&] { Tokenizer::load(path); });
  EXPECT_TRUE(contains(msg, path) && contains(msg, "normalizer") && contains(msg, "NFC")) << msg;

  j = good;
  j["pre_tokenizer"]["add_prefix_space"] = true;
  test::write_file(path, j.dump(2));
  msg = format_error([&] { Tokenizer::load(path); });
  EXPECT_TRUE(contains(msg, path) && contains(msg, "add_prefix_space")) << msg;

  j = good;
  j["model"]["type"] = "WordPiece";
  test::write_file(path, j.dump(2));
  msg = format_error([&] { Tokenizer::load(path); });
  EXPECT_TRUE(contains(msg, "model.type")) << msg;

  // Broken JSON syntax: line and column.
  std::string text = good.dump(2);
  const size_t at = text.find("\"merges\"");
  text = text.substr(0, at) + "@" + text.substr(at);  // (insert() trips a GCC 12 -Wrestrict false positive)
  test::write_file(path, text);
  const size_t line = 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + static_cast<long>(at), '\n'));
  msg = format_error([&] { Tokenizer::load(path); });
  EXPECT_TRUE(contains(msg, path + ":" + std::to_string(line) + ":") && contains(msg, "invalid JSON")) << msg;

  // A number that overflows a double (found by fuzzing): nlohmann throws out_of_range,
  // not parse_error; still a FormatError naming the file, in a field or anywhere else.
  for (const std::string& where : {std::string("\"added_tokens\""), std::string("\"merges\"")}) {
    text = good.dump(2);
    const size_t key = text.find(where);
    ASSERT_NE(key, std::string::npos);
    text = text.substr(0, key) + "\"overflow\": 7638008e63205777, " + text.substr(key);
    test::write_file(path, text);
    msg = format_error([&] { Tokenizer::load(path); });
    EXPECT_TRUE(contains(msg, path) && contains(msg, "invalid JSON") && contains(msg, "7638008e63205777")) << msg;
  }
}

TEST(TokenizerFile, MalformedTeddyFormatNamesFileAndField) {
  const Tokenizer tok = train(PretokenizerKind::gpt2);
  const std::string good_path = path_for("good_teddy.json");
  tok.save(good_path);
  const nlohmann::json good = nlohmann::json::parse(test::read_file(good_path));
  const std::string path = path_for("bad_teddy.json");
  auto check = [&](const nlohmann::json& j, const std::string& field) {
    test::write_file(path, j.dump(1));
    const std::string msg = format_error([&] { Tokenizer::load(path); });
    EXPECT_TRUE(contains(msg, path) && contains(msg, field)) << msg;
  };
  nlohmann::json j = good;
  j.erase("tokens");
  check(j, "tokens");
  j = good;
  j["tokens"][5] = "@@@";
  check(j, "tokens[5]");
  j = good;
  j["version"] = 99;
  check(j, "version");
  j = good;
  j["pattern"] = "gpt5";
  check(j, "pattern");
  j = good;
  j["specials"]["<|endoftext|>"] = 3;  // collides with byte 3
  check(j, "reuses id 3");
  j = good;
  j["ranks"] = {1, 2};
  check(j, "ranks");
  std::string text = good.dump(1);
  text = text.substr(0, text.rfind('}')) + ", \"x\": -7638008e63205777}";
  test::write_file(path, text);
  const std::string msg = format_error([&] { Tokenizer::load(path); });
  EXPECT_TRUE(contains(msg, path) && contains(msg, "invalid JSON")) << msg;
}

}  // namespace
}  // namespace teddy
