// The tasks' few-shot selection: deterministic first rows, taken from the few-shot
// split when given (MMLU: per subject, Hugging Face exports too), else from the data
// and then not scored; --limit per subject for MMLU.
#include <gtest/gtest.h>

#include "eval/eval_fixtures.h"
#include "teddy/eval/tasks.h"

namespace teddy {
namespace {

struct Fixture {
  Model model;
  Tokenizer tok = Tokenizer::bytes();
  Fixture() : model([] {
    ModelConfig c = ModelConfig::preset("gpt2-tiny");
    c.vocab_size = 257;
    c.padded_vocab_size = ModelConfig::pad_vocab(257);
    c.max_seq_len = 256;
    return c;
  }()) {
    model.init_weights(1);
  }
};

TEST(EvalTasks, ArcShotsFromTheDataAreNotScored) {
  Fixture f;
  const auto data = test::make_arc(test::scratch_dir("tasks_arc") / "arc.jsonl");
  EvalOptions o;
  o.shots = 1;
  const EvalResult r = eval_arc(f.model, f.tok, data.string(), o);
  ASSERT_EQ(r.n, 2u);
  EXPECT_EQ(r.samples[0]["doc_id"], "Mercury_2");
  EXPECT_EQ(r.samples[1]["doc_id"], "Mercury_3");
  const std::string shot = "Question: Which is a gas at room temperature?\nAnswer: oxygen\n\n";
  for (const auto& s : r.samples) EXPECT_EQ(s["prompt"].get<std::string>().rfind(shot, 0), 0u);
  // From a few-shot file instead: every row is scored.
  o.fewshot_path = data.string();
  EXPECT_EQ(eval_arc(f.model, f.tok, data.string(), o).n, 3u);
}

TEST(EvalTasks, MmluHuggingFaceExportWithDevFileAndPerSubjectLimit) {
  Fixture f;
  const auto dir = test::scratch_dir("tasks_mmlu");
  std::string test, dev;
  for (const char* subject : {"virology", "astronomy"})
    for (int i = 0; i < 3; ++i) {
      test += nlohmann::json({{"question", std::string(subject) + " test " + std::to_string(i)}, {"subject", subject},
                              {"choices", {"a", "b", "c", "d"}}, {"answer", i}}).dump() + "\n";
      dev += nlohmann::json({{"question", std::string(subject) + " dev " + std::to_string(i)}, {"subject", subject},
                             {"choices", {"a", "b", "c", "d"}}, {"answer", "B"}}).dump() + "\n";
    }
  test::write_text(dir / "test.jsonl", test);
  test::write_text(dir / "dev.jsonl", dev);
  EvalOptions o;
  o.shots = 2;
  o.limit = 2;  // per subject
  o.fewshot_path = (dir / "dev.jsonl").string();
  const EvalResult r = eval_mmlu(f.model, f.tok, (dir / "test.jsonl").string(), o);
  ASSERT_EQ(r.n, 4u);
  EXPECT_EQ(r.groups.size(), 2u);
  // Each prompt: its own subject's first two dev rows, then the question.
  for (const auto& s : r.samples) {
    const std::string subject = s["subject"], p = s["prompt"];
    const std::string want = "The following are multiple choice questions (with answers) about " + subject + ".\n\n" +
                             subject + " dev 0\nA. a\nB. b\nC. c\nD. d\nAnswer: B\n\n" + subject +
                             " dev 1\nA. a\nB. b\nC. c\nD. d\nAnswer: B\n\n" + subject + " test ";
    EXPECT_EQ(p.rfind(want, 0), 0u) << p;
  }
}

}  // namespace
}  // namespace teddy
