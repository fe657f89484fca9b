// SFT data: the three JSONL formats, the chat template's rendering and exactly which
// tokens carry loss (hand-checked on the byte tokenizer), bad lines, truncation.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "data/data_test_util.h"
#include "teddy/core/error.h"
#include "teddy/data/sft/chat_template.h"
#include "teddy/data/sft/dataset.h"
#include "teddy/data/sft/format.h"
#include "teddy/tokenizer/tokenizer.h"

using namespace teddy;
using teddy::test::ScratchDir;
using teddy::test::write_text;

namespace {

constexpr int32_t S = 257, E = 258;  // <|im_start|>, <|im_end|> on the byte tokenizer

Tokenizer chat_bytes() {
  Tokenizer t = Tokenizer::bytes();
  EXPECT_EQ(add_template_specials(t, ChatTemplate{}), 2);
  EXPECT_EQ(t.special_id("<|im_start|>"), 257u);
  EXPECT_EQ(t.special_id("<|im_end|>"), 258u);
  return t;
}

// Token ids of `s` on the byte tokenizer, each with the same loss flag.
struct Expect {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> loss;
  Expect& text(const std::string& s, bool l) {
    for (unsigned char c : s) tokens.push_back(c), loss.push_back(l);
    return *this;
  }
  Expect& id(int32_t t, bool l) {
    tokens.push_back(t), loss.push_back(l);
    return *this;
  }
};

SftExample parse(const std::string& line, SftFormat f = SftFormat::auto_detect) {
  return parse_sft_line(line, f, "x.jsonl", 7);
}

void expect_rendered(const SftExample& ex, const Expect& want, bool train_on_inputs = false) {
  const Tokenizer tok = chat_bytes();
  const ChatTokens got = render_chat(tok, ChatTemplate{}, ex.turns, train_on_inputs);
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_EQ(got.loss, want.loss);
}

}  // namespace

TEST(SftFormat, MessagesLossOnlyOnAssistantContentAndItsEndOfTurn) {
  const SftExample ex = parse(
      R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"},)"
      R"( {"role": "assistant", "content": "yo"}], "task": "greet"})");
  EXPECT_EQ(ex.format, SftFormat::messages);
  EXPECT_EQ(ex.task, "greet");
  ASSERT_EQ(ex.turns.size(), 3u);
  Expect w;
  w.id(S, 0).text("system\nS", 0).id(E, 0).text("\n", 0);
  w.id(S, 0).text("user\nhi", 0).id(E, 0).text("\n", 0);
  w.id(S, 0).text("assistant\n", 0).text("yo", 1).id(E, 1);
  expect_rendered(ex, w);
  EXPECT_EQ(ChatTemplate{}.render_text(ex.turns),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>");
}

TEST(SftFormat, MultiTurnEveryAssistantTurnCarriesLoss) {
  const SftExample ex = parse(
      R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},)"
      R"( {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]})");
  Expect w;
  w.id(S, 0).text("user\na", 0).id(E, 0).text("\n", 0);
  w.id(S, 0).text("assistant\n", 0).text("b", 1).id(E, 1).text("\n", 0);
  w.id(S, 0).text("user\nc", 0).id(E, 0).text("\n", 0);
  w.id(S, 0).text("assistant\n", 0).text("d", 1).id(E, 1);
  expect_rendered(ex, w);
}

TEST(SftFormat, PromptCompletionIsAUserThenAssistantTurn) {
  const SftExample ex = parse(R"({"prompt": "2+2", "completion": "4"})");
  EXPECT_EQ(ex.format, SftFormat::prompt_completion);
  Expect w;
  w.id(S, 0).text("user\n2+2", 0).id(E, 0).text("\n", 0);
  w.id(S, 0).text("assistant\n", 0).text("4", 1).id(E, 1);
  expect_rendered(ex, w);
}

TEST(SftFormat, AlpacaJoinsInstructionAndInput) {
  const SftExample ex = parse(R"({"instruction": "Add", "input": "1 2", "output": "3"})");
  EXPECT_EQ(ex.format, SftFormat::alpaca);
  Expect w;
  w.id(S, 0).text("user\nAdd\n\n1 2", 0).id(E, 0).text("\n", 0);
  w.id(S, 0).text("assistant\n", 0).text("3", 1).id(E, 1);
  expect_rendered(ex, w);
  // No input (or an empty one): the instruction alone.
  const SftExample ex2 = parse(R"({"instruction": "Add", "input": "", "output": "3"})");
  EXPECT_EQ(ex2.turns[0].content, "Add");
  EXPECT_EQ(parse(R"({"instruction": "Add", "output": "3"})").turns[0].content, "Add");
}

TEST(SftFormat, TrainOnInputsPutsLossOnEveryTokenButTheFirst) {
  const SftExample ex = parse(R"({"prompt": "q", "completion": "a"})");
  Expect w;
  w.id(S, 0).text("user\nq", 1).id(E, 1).text("\n", 1);
  w.id(S, 1).text("assistant\n", 1).text("a", 1).id(E, 1);
  expect_rendered(ex, w, true);
}

TEST(SftFormat, MarkerTextInsideContentIsPlainText) {
  // A user writing "<|im_end|>" must not end the turn: content is encoded as plain text.
  const SftExample ex = parse(R"({"prompt": "<|im_end|>", "completion": "a"})");
  Expect w;
  w.id(S, 0).text("user\n<|im_end|>", 0).id(E, 0).text("\n", 0);
  w.id(S, 0).text("assistant\n", 0).text("a", 1).id(E, 1);
  expect_rendered(ex, w);
}

TEST(SftFormat, Llama3TemplateAndGenerationPrompt) {
  Tokenizer tok = Tokenizer::bytes();
  const ChatTemplate t = ChatTemplate::named("llama3");
  EXPECT_EQ(add_template_specials(tok, t), 4);
  const int32_t bos = 257, sh = 258, eh = 259, eot = 260;
  const SftExample ex = parse(R"({"prompt": "q", "completion": "a"})");
  const ChatTokens got = render_chat(tok, t, ex.turns);
  Expect w;
  w.id(bos, 0).id(sh, 0).text("user", 0).id(eh, 0).text("\n\nq", 0).id(eot, 0);
  w.id(sh, 0).text("assistant", 0).id(eh, 0).text("\n\n", 0).text("a", 1).id(eot, 1);
  EXPECT_EQ(got.tokens, w.tokens);
  EXPECT_EQ(got.loss, w.loss);
  EXPECT_EQ(end_of_turn_id(tok, t), eot);
  // The generation prompt is the conversation so far plus the assistant header.
  const std::vector<ChatTurn> user_only(ex.turns.begin(), ex.turns.begin() + 1);
  Expect p;
  p.id(bos, 0).id(sh, 0).text("user", 0).id(eh, 0).text("\n\nq", 0).id(eot, 0);
  p.id(sh, 0).text("assistant", 0).id(eh, 0).text("\n\n", 0);
  EXPECT_EQ(render_generation_prompt(tok, t, user_only), p.tokens);
  // Without its specials the tokenizer cannot render the template.
  EXPECT_THROW(render_chat(Tokenizer::bytes(), t, ex.turns), Error);
}

TEST(SftFormat, TemplateJsonRoundTripAndValidation) {
  ScratchDir dir;
  ChatTemplate t = ChatTemplate::named("llama3");
  t.save(dir / "t.json");
  const ChatTemplate u = ChatTemplate::load(dir / "t.json");
  EXPECT_EQ(u.to_json(), t.to_json());
  t.end_of_turn = "<|nope|>";
  EXPECT_THROW(t.validate(), ConfigError);
  EXPECT_THROW(ChatTemplate::named("vicuna"), ConfigError);
}

TEST(SftFormat, BadLinesNameFileAndLineOrAreSkipped) {
  ScratchDir dir;
  const std::string path = dir / "bad.jsonl";
  write_text(path,
             R"({"prompt": "ok", "completion": "fine"})" "\n"                                    // 1 good
             "this is not json\n"                                                                // 2
             R"({"prompt": "no completion"})" "\n"                                               // 3
             R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]})" "\n"  // 4
             R"({"messages": [{"role": "robot", "content": "q"}, {"role": "assistant", "content": "a"}]})" "\n"  // 5
             "\n"                                                                                // 6 blank: ignored
             R"({"messages": [{"role": "user", "content": "q"}]})" "\n"                          // 7 no assistant
             R"({"instruction": "x", "output": 3})" "\n"                                         // 8 not a string
             R"({"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"},)"
             R"( {"role": "assistant", "content": "a"}]})" "\n"                                  // 9 system not first
             R"({"text": "pretraining line"})" "\n"                                              // 10 unknown shape
             R"([1, 2])" "\n"                                                                    // 11 not an object
             R"({"instruction": "Say hi", "output": "hi"})" "\n");                               // 12 good
  // Each bad line alone: the error names the file and the line.
  const std::vector<std::pair<int, std::string>> cases = {
      {2, "not JSON"},          {3, "missing field \"completion\""}, {4, "empty assistant turn"},
      {5, "unknown role \"robot\""}, {7, "no assistant turn"},      {8, "\"output\" must be a string"},
      {9, "system turn may only come first"}, {10, "cannot tell the format"}, {11, "expected a JSON object"}};
  try {
    read_sft_jsonl(path, SftFormat::auto_detect, false);
    FAIL() << "expected a FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":2: not JSON"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--skip-bad"), std::string::npos) << e.what();
  }
  for (const auto& [line, why] : cases) {
    const std::string one = dir / ("line" + std::to_string(line) + ".jsonl");
    // Same line number as in the big file: pad with blank lines.
    std::string text(static_cast<size_t>(line - 1), '\n');
    std::ifstream in(path);
    std::string l;
    for (int i = 1; i <= line; ++i) std::getline(in, l);
    write_text(one, text + l + "\n" + R"({"prompt": "a", "completion": "b"})" + "\n");
    EXPECT_THROW_WITH(read_sft_jsonl(one, SftFormat::auto_detect, false), FormatError,
                      one + ":" + std::to_string(line) + ": ");
    EXPECT_THROW_WITH(read_sft_jsonl(one, SftFormat::auto_detect, false), FormatError, why);
  }
  // --skip-bad: the good lines are kept, the bad ones counted.
  SftReadStats st;
  const auto ex = read_sft_jsonl(path, SftFormat::auto_detect, true, &st);
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_EQ(ex[0].line, 1u);
  EXPECT_EQ(ex[1].line, 12u);
  EXPECT_EQ(ex[1].turns[1].content, "hi");
  EXPECT_EQ(st.lines, 11u);
  EXPECT_EQ(st.skipped, 9u);
  EXPECT_EQ(st.by_format[static_cast<int>(SftFormat::prompt_completion)], 1u);
  EXPECT_EQ(st.by_format[static_cast<int>(SftFormat::alpaca)], 1u);
  EXPECT_EQ(st.skipped_examples.size(), 5u);  // the first few, for the report
  // A named format insists on its fields.
  EXPECT_THROW_WITH(parse(R"({"prompt": "a", "completion": "b"})", SftFormat::alpaca), FormatError,
                    "x.jsonl:7: missing field \"instruction\"");
  // A file of nothing but bad lines is an error even when skipping.
  write_text(dir / "allbad.jsonl", "nope\n");
  EXPECT_THROW_WITH(read_sft_jsonl(dir / "allbad.jsonl", SftFormat::auto_detect, true), Error, "no SFT examples");
}

TEST(SftDataset, TruncationPoliciesAreCounted) {
  const Tokenizer tok = chat_bytes();
  // Rendered lengths: header 12 tokens ("<s>user\n" = 6, content, <e>, "\n"), ...
  std::vector<SftExample> ex = {parse(R"({"prompt": "q", "completion": "a"})"),               // short
                                parse(R"({"prompt": "q", "completion": "abcdefghijklmnopqrstuvwxyz"})"),  // long answer
                                parse(R"({"prompt": "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", "completion": "a"})")};  // long prompt
  const size_t short_len = render_chat(tok, ChatTemplate{}, ex[0].turns).tokens.size();
  ASSERT_EQ(short_len, 1 + 5 + 1 + 1 + 1 + 1 + 10 + 1 + 1u);  // <s>user\nq<e>\n<s>assistant\na<e>
  SftDatasetOptions o;
  o.seq_len = 30;  // room for 31 tokens
  o.truncation = SftTruncation::right;
  {
    SftDataset ds(ex, tok, ChatTemplate{}, o);
    // right: the long answer keeps its first tokens; the long prompt loses the answer: dropped.
    EXPECT_EQ(ds.size(), 2u);
    EXPECT_EQ(ds.stats().truncated, 1u);
    EXPECT_EQ(ds.stats().dropped_no_loss, 1u);
    EXPECT_EQ(ds[1].tokens.size(), 31u);
    EXPECT_EQ(ds.positions(1), 30u);
    EXPECT_EQ(ds.source_index(1), 1u);
  }
  o.truncation = SftTruncation::left;
  {
    SftDataset ds(ex, tok, ChatTemplate{}, o);
    // left: both long ones keep their ends (and so their answers).
    EXPECT_EQ(ds.size(), 3u);
    EXPECT_EQ(ds.stats().truncated, 2u);
    EXPECT_EQ(ds[2].tokens.back(), E);
    EXPECT_EQ(ds[2].loss.back(), 1);
    EXPECT_EQ(ds[2].loss[0], 0);
  }
  o.truncation = SftTruncation::drop;
  {
    SftDataset ds(ex, tok, ChatTemplate{}, o);
    EXPECT_EQ(ds.size(), 1u);
    EXPECT_EQ(ds.stats().dropped_too_long, 2u);
    EXPECT_EQ(ds.stats().loss_tokens, 2u);  // "a" and <|im_end|>
  }
}

TEST(SftDataset, SplitIsDeterministicAndByContent) {
  std::vector<SftExample> all;
  for (int i = 0; i < 400; ++i)
    all.push_back(parse(R"({"prompt": "q)" + std::to_string(i) + R"(", "completion": "a"})"));
  auto [tr, va] = split_sft_examples(all, 0.1);
  EXPECT_EQ(tr.size() + va.size(), 400u);
  EXPECT_GT(va.size(), 20u);
  EXPECT_LT(va.size(), 60u);
  // Reversed input: the same examples are held out.
  std::vector<SftExample> rev(all.rbegin(), all.rend());
  auto [tr2, va2] = split_sft_examples(rev, 0.1);
  ASSERT_EQ(va2.size(), va.size());
  for (size_t i = 0; i < va.size(); ++i) EXPECT_EQ(va[i].turns[0].content, va2[va.size() - 1 - i].turns[0].content);
}
