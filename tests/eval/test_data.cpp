// Dataset readers on the published forms and their errors; prompts byte for byte.
#include <gtest/gtest.h>

#include "eval/eval_fixtures.h"
#include "teddy/core/error.h"
#include "teddy/eval/csv.h"
#include "teddy/eval/datasets.h"
#include "teddy/eval/prompts.h"

namespace teddy {
namespace {

using test::scratch_dir;
using test::write_text;

// The message of the FormatError f throws (fails the test if it throws none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const FormatError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no FormatError thrown";
  return "";
}

TEST(EvalCsv, QuotesCommasLineBreaksAndErrors) {
  const auto rows = parse_csv("a,\"b,c\",\"say \"\"hi\"\"\nthere\"\r\n\nx,y\n", "f.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].fields, (std::vector<std::string>{"a", "b,c", "say \"hi\"\nthere"}));
  EXPECT_EQ(rows[1].line, 4u);  // after a record spanning lines 1-2 and a blank line 3
  EXPECT_EQ(rows[1].fields, (std::vector<std::string>{"x", "y"}));
  EXPECT_NE(error_of([] { parse_csv("a,\"open\n", "f.csv"); }).find("f.csv:1: unterminated quoted field"), std::string::npos);
  EXPECT_NE(error_of([] { parse_csv("ok\n\"q\"x,1\n", "f.csv"); }).find("f.csv:2: unexpected character 'x'"), std::string::npos);
}

TEST(EvalData, MmluFolderAndPromptByteForByte) {
  const auto root = test::make_mmlu(scratch_dir("mmlu") / "data");
  const std::vector<McDoc> docs = read_mmlu(root.string());
  ASSERT_EQ(docs.size(), 4u);  // subjects in file-name order, rows in file order
  EXPECT_EQ(docs[0].subject, "abstract_algebra");
  EXPECT_EQ(docs[0].question, "Is Z, under \"+\", a group?\nAnswer carefully.");
  EXPECT_EQ(docs[1].gold, 1);
  EXPECT_EQ(docs[3].subject, "anatomy");
  EXPECT_EQ(mmlu_dev_path(root.string()), (root / "dev").string());
  EXPECT_EQ(mmlu_dev_path((root / "test").string()), (root / "dev").string());
  const std::vector<McDoc> dev = read_mmlu((root / "dev").string(), "dev");
  ASSERT_EQ(dev.size(), 3u);
  const std::vector<McDoc> shots(dev.begin(), dev.begin() + 2);
  EXPECT_EQ(mmlu_prompt(docs[0], shots),
            "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
            "Find 1+1.\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: B\n\n"
            "Find 2+2.\nA. 4\nB. 5\nC. 6\nD. 7\nAnswer: A\n\n"
            "Is Z, under \"+\", a group?\nAnswer carefully.\nA. Yes\nB. No\nC. Maybe\nD. Never\nAnswer:");
  // Zero-shot: the description, then the question stripped of surrounding spaces.
  EXPECT_EQ(mmlu_prompt(docs[3], {}),
            "The following are multiple choice questions (with answers) about anatomy.\n\n"
            "Which bone is longest?\nA. femur\nB. tibia\nC. ulna\nD. skull\nAnswer:");
  EXPECT_EQ(mmlu_continuations(docs[3]), (std::vector<std::string>{" A", " B", " C", " D"}));
}

TEST(EvalData, MmluHuggingFaceExport) {
  const auto p = scratch_dir("mmlu_hf") / "mmlu.jsonl";
  write_text(p, R"({"question": "Q?", "subject": "virology", "choices": ["a", "b", "c", "d"], "answer": 2})" "\n");
  const auto d = read_mmlu(p.string());
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].subject, "virology");
  EXPECT_EQ(d[0].gold, 2);
}

TEST(EvalData, MmluErrorsNameFileLineAndField) {
  const auto dir = scratch_dir("mmlu_bad");
  write_text(dir / "x_test.csv", "q,a,b,c,d,A\nq,a,b,c,d\n");
  EXPECT_NE(error_of([&] { read_mmlu((dir / "x_test.csv").string()); }).find("x_test.csv:2: expected 6 fields"), std::string::npos);
  write_text(dir / "y_test.csv", "q,a,b,c,d,E\n");
  EXPECT_NE(error_of([&] { read_mmlu((dir / "y_test.csv").string()); }).find("y_test.csv:1: answer (field 6) must be one of A, B, C, D"),
            std::string::npos);
  write_text(dir / "z.jsonl", R"({"question": "Q?", "choices": ["a", "b", "c", "d"]})" "\n");
  EXPECT_NE(error_of([&] { read_mmlu((dir / "z.jsonl").string()); }).find("z.jsonl:1: missing field \"answer\""), std::string::npos);
}

TEST(EvalData, ArcBothFormsAndPrompt) {
  const auto dir = scratch_dir("arc");
  const auto ai2 = read_arc(test::make_arc(dir / "ARC-Challenge-Test.jsonl").string());
  ASSERT_EQ(ai2.size(), 3u);
  EXPECT_EQ(ai2[0].gold, 1);
  EXPECT_EQ(ai2[1].gold, 0);  // label "1"
  EXPECT_EQ(ai2[1].choices.size(), 3u);
  write_text(dir / "hf.jsonl",
             R"({"id": "x", "question": "Which is a gas at room temperature?", "choices": {"text": ["iron", "oxygen", "salt", "ice"], "label": ["A", "B", "C", "D"]}, "answerKey": "B"})" "\n");
  const auto hf = read_arc((dir / "hf.jsonl").string());
  ASSERT_EQ(hf.size(), 1u);
  EXPECT_EQ(hf[0].choices, ai2[0].choices);
  EXPECT_EQ(hf[0].gold, ai2[0].gold);
  const std::vector<McDoc> shots(ai2.begin() + 1, ai2.begin() + 2);
  EXPECT_EQ(arc_prompt(ai2[0], shots),
            "Question: What do plants need to make food?\nAnswer: sunlight\n\n"
            "Question: Which is a gas at room temperature?\nAnswer:");
  EXPECT_EQ(arc_continuations(ai2[0]), (std::vector<std::string>{" iron", " oxygen", " salt", " ice"}));
  write_text(dir / "bad.jsonl", R"({"question": {"stem": "q", "choices": [{"text": "a", "label": "A"}, {"text": "b", "label": "B"}]}, "answerKey": "C"})" "\n");
  EXPECT_NE(error_of([&] { read_arc((dir / "bad.jsonl").string()); }).find("bad.jsonl:1: answerKey \"C\" is not one of the choice labels"),
            std::string::npos);
  write_text(dir / "bad2.jsonl", "\n{\"question\": \n");
  EXPECT_NE(error_of([&] { read_arc((dir / "bad2.jsonl").string()); }).find("bad2.jsonl:2: invalid JSON at column"), std::string::npos);
}

TEST(EvalData, Gsm8kAndHumanEvalGz) {
  const auto dir = scratch_dir("gen");
  const auto g = read_gsm8k(test::make_gsm8k(dir / "test.jsonl").string());
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(gsm8k_prompt(g[2], std::vector<Gsm8kDoc>(g.begin(), g.begin() + 1)),
            "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer: He has 3 + 4 = "
            "<<3+4=7>>7 apples.\n#### 7\n\nQuestion: It is 5 degrees and falls by 8. What is the temperature?\nAnswer:");
  const auto h = read_humaneval(test::make_humaneval(dir / "HumanEval.jsonl.gz").string());
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[1].entry_point, "is_even");
  EXPECT_EQ(humaneval_program(h[1], "    return True\n"),
            "def is_even(n):\n    return True\n\ndef check(candidate):\n    assert candidate(2)\n    assert not candidate(3)\n\ncheck(is_even)");
  write_text(dir / "bad.jsonl", R"({"task_id": "T/0", "prompt": "p", "test": 3, "entry_point": "f"})" "\n");
  EXPECT_NE(error_of([&] { read_humaneval((dir / "bad.jsonl").string()); }).find("bad.jsonl:1: field \"test\" must be a string (got number)"),
            std::string::npos);
  write_text(dir / "notgz.jsonl.gz", "\x1f\x8b\x08garbage");
  EXPECT_NE(error_of([&] { read_humaneval((dir / "notgz.jsonl.gz").string()); }).find("notgz.jsonl.gz"), std::string::npos);
}

}  // namespace
}  // namespace teddy
