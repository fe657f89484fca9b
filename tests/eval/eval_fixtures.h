#pragma once
#include <unistd.h>
// Tiny data files in the forms the benchmarks are published in, written by the tests,
// and a small model run (checkpoint + byte-level tokenizer) to score them with.
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "teddy/checkpoint/checkpoint.h"
#include "teddy/model/model.h"
#include "teddy/tokenizer/tokenizer.h"
#include "teddy/train/optim/adamw.h"

namespace teddy::test {

namespace fs = std::filesystem;

inline void write_text(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << s;
}

inline void write_gz(const fs::path& p, const std::string& s) {
  gzFile f = gzopen(p.c_str(), "wb");
  gzwrite(f, s.data(), static_cast<unsigned>(s.size()));
  gzclose(f);
}

// MMLU's layout: <root>/dev and <root>/test, <subject>_<split>.csv, no header. The
// first test row of abstract_algebra quotes a comma, a doubled quote and a line break.
inline fs::path make_mmlu(const fs::path& root) {
  write_text(root / "dev" / "abstract_algebra_dev.csv",
             "Find 1+1.,1,2,3,4,B\n"
             "Find 2+2.,4,5,6,7,A\n");
  write_text(root / "dev" / "anatomy_dev.csv", "Which organ pumps blood?,heart,lung,liver,skin,A\n");
  write_text(root / "test" / "abstract_algebra_test.csv",
             "\"Is Z, under \"\"+\"\", a group?\nAnswer carefully.\",Yes,No,Maybe,Never,A\n"
             "Find 3+3.,5,6,7,8,B\n"
             "Find 4+4.,8,9,10,11,A\n");
  write_text(root / "test" / "anatomy_test.csv", "  Which bone is longest? ,femur,tibia,ulna,skull,A\n");
  return root;
}

// ARC-Challenge as AI2 publishes it (question.stem, question.choices[]), one row with
// numeric labels as some ARC rows have.
inline fs::path make_arc(const fs::path& p) {
  write_text(p,
             R"({"id": "Mercury_1", "question": {"stem": "Which is a gas at room temperature?", "choices": [{"text": "iron", "label": "A"}, {"text": "oxygen", "label": "B"}, {"text": "salt", "label": "C"}, {"text": "ice", "label": "D"}]}, "answerKey": "B"})"
             "\n"
             R"({"id": "Mercury_2", "question": {"stem": "What do plants need to make food?", "choices": [{"text": "sunlight", "label": "1"}, {"text": "sand", "label": "2"}, {"text": "noise", "label": "3"}]}, "answerKey": "1"})"
             "\n"
             R"({"id": "Mercury_3", "question": {"stem": "Which planet is closest to the Sun?", "choices": [{"text": "Mercury", "label": "A"}, {"text": "Venus", "label": "B"}, {"text": "Earth", "label": "C"}, {"text": "Mars", "label": "D"}]}, "answerKey": "A"})"
             "\n");
  return p;
}

inline fs::path make_gsm8k(const fs::path& p) {
  write_text(p,
             R"({"question": "Tom has 3 apples and buys 4 more. How many apples does he have?", "answer": "He has 3 + 4 = <<3+4=7>>7 apples.\n#### 7"})"
             "\n"
             R"({"question": "A book costs $1,200 and a pen $5. What do both cost?", "answer": "1200 + 5 = <<1200+5=1205>>1205\n#### 1,205"})"
             "\n"
             R"({"question": "It is 5 degrees and falls by 8. What is the temperature?", "answer": "5 - 8 = -3\n#### -3"})"
             "\n");
  return p;
}

// Three HumanEval tasks in its published form, gzip-compressed like HumanEval.jsonl.gz.
inline fs::path make_humaneval(const fs::path& p) {
  std::string s;
  s += R"({"task_id": "HumanEval/0", "prompt": "def add(a, b):\n    \"\"\"Return a + b.\"\"\"\n", "canonical_solution": "    return a + b\n", "test": "\n\nMETADATA = {}\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n", "entry_point": "add"})";
  s += "\n";
  s += R"({"task_id": "HumanEval/1", "prompt": "def is_even(n):\n", "canonical_solution": "    return n % 2 == 0\n", "test": "def check(candidate):\n    assert candidate(2)\n    assert not candidate(3)\n", "entry_point": "is_even"})";
  s += "\n";
  s += R"({"task_id": "HumanEval/2", "prompt": "from typing import List\n\n\ndef total(xs: List[int]) -> int:\n", "canonical_solution": "    return sum(xs)\n", "test": "def check(candidate):\n    assert candidate([1, 2, 3]) == 6\n    assert candidate([]) == 0\n", "entry_point": "total"})";
  s += "\n";
  fs::create_directories(p.parent_path());
  write_gz(p, s);
  return p;
}

// A run directory as `teddy pretrain` leaves it: a random gpt2 with a byte-level
// tokenizer (257 ids) and a 256-token context.
inline std::string make_run(const fs::path& root, uint64_t seed = 7) {
  const std::string run = (root / "run").string();
  ModelConfig c = ModelConfig::preset("gpt2-tiny");
  c.vocab_size = 257;
  c.padded_vocab_size = ModelConfig::pad_vocab(257);
  c.max_seq_len = 256;
  Model m(c);
  m.init_weights(seed);
  AdamW opt(m.layout(), AdamWConfig{});
  CheckpointState st;
  st.step = 1;
  save_checkpoint(run, m, opt, st, 0);
  Tokenizer::bytes().save((fs::path(run) / "tokenizer.json").string());
  return run;
}

// A fresh directory under the build tree for one test process. The pid keeps it
// private: ctest -j runs each test of a file as its own process, and a suite's
// SetUpTestSuite in one would otherwise wipe the files another is reading.
inline fs::path scratch_dir(const std::string& name) {
  const fs::path d = fs::path(TEDDY_BINARY_DIR) / "test_eval" / (name + "." + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

}  // namespace teddy::test
