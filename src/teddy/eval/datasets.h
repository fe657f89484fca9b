#pragma once
// The four benchmarks' data, read in the forms they are published in:
//   MMLU          CSV folders data/{dev,val,test}/<subject>_<split>.csv, no header, rows
//                 question,A,B,C,D,answer(letter); or Hugging Face's JSONL export
//                 (cais/mmlu: question, subject, choices[4], answer 0-3)
//   ARC           AI2's JSONL (question.stem, question.choices[].text/label, answerKey) or
//                 Hugging Face's export (question, choices.text[]/label[], answerKey)
//   GSM8K         JSONL question, answer ("...#### 72"); the same in Hugging Face's export
//   HumanEval     JSONL or JSONL.gz task_id, prompt, canonical_solution, test, entry_point
// Every error names the file and line, and the field or rule broken.
#include <cstddef>
#include <string>
#include <vector>

namespace teddy {

// A multiple-choice question (MMLU, ARC).
struct McDoc {
  std::string id;       // ARC's id; MMLU: "<subject>/<row>"
  std::string subject;  // MMLU's subject ("abstract_algebra"); ARC: ""
  std::string question;
  std::vector<std::string> choices;
  int gold = 0;         // index into choices
  std::string file;
  size_t line = 0;
};

// `path`: an MMLU folder holding test/ (that split is read), a folder of
// <subject>_<split>.csv files, one such file, or a .jsonl export. Subjects come in
// file-name order, rows in file order.
std::vector<McDoc> read_mmlu(const std::string& path, const std::string& split = "test");
// Where MMLU's few-shot rows live for `path` (its dev/ split: <root>/dev, or the
// sibling folder dev/ of a split folder or file); "" when there is none.
std::string mmlu_dev_path(const std::string& path);

std::vector<McDoc> read_arc(const std::string& path);

struct Gsm8kDoc {
  std::string question, answer;  // answer: the worked solution ending in "#### N"
  std::string file;
  size_t line = 0;
};
std::vector<Gsm8kDoc> read_gsm8k(const std::string& path);

struct HumanEvalTask {
  std::string task_id, prompt, canonical_solution, test, entry_point;
  std::string file;
  size_t line = 0;
};
std::vector<HumanEvalTask> read_humaneval(const std::string& path);

}  // namespace teddy
