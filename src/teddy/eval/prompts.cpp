#include "teddy/eval/prompts.h"

#include <algorithm>

namespace teddy {

namespace {

// Python's str.strip(): ASCII whitespace at both ends (MMLU's questions are ASCII
// at their ends; Unicode spaces inside stay).
std::string strip(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

}  // namespace

std::string mmlu_description(const std::string& subject) {
  std::string s = subject;
  std::replace(s.begin(), s.end(), '_', ' ');
  return "The following are multiple choice questions (with answers) about " + s + ".\n\n";
}

std::string mmlu_question(const McDoc& d) {
  std::string s = strip(d.question);
  for (size_t i = 0; i < d.choices.size(); ++i) s += "\n" + std::string(1, static_cast<char>('A' + i)) + ". " + d.choices[i];
  return s + "\nAnswer:";
}

std::string mmlu_prompt(const McDoc& d, std::span<const McDoc> shots) {
  std::string s = mmlu_description(d.subject);
  for (const McDoc& x : shots) s += mmlu_question(x) + " " + std::string(1, static_cast<char>('A' + x.gold)) + "\n\n";
  return s + mmlu_question(d);
}

std::vector<std::string> mmlu_continuations(const McDoc& d) {
  std::vector<std::string> c;
  for (size_t i = 0; i < d.choices.size(); ++i) c.push_back(" " + std::string(1, static_cast<char>('A' + i)));
  return c;
}

std::string arc_question(const McDoc& d) { return "Question: " + d.question + "\nAnswer:"; }

std::string arc_prompt(const McDoc& d, std::span<const McDoc> shots) {
  std::string s;
  for (const McDoc& x : shots) s += arc_question(x) + " " + x.choices[static_cast<size_t>(x.gold)] + "\n\n";
  return s + arc_question(d);
}

std::vector<std::string> arc_continuations(const McDoc& d) {
  std::vector<std::string> c;
  for (const std::string& t : d.choices) c.push_back(" " + t);
  return c;
}

std::string gsm8k_question(const Gsm8kDoc& d) { return "Question: " + d.question + "\nAnswer:"; }

std::string gsm8k_prompt(const Gsm8kDoc& d, std::span<const Gsm8kDoc> shots) {
  std::string s;
  for (const Gsm8kDoc& x : shots) s += gsm8k_question(x) + " " + x.answer + "\n\n";
  return s + gsm8k_question(d);
}

const std::vector<std::string>& gsm8k_stop_sequences() {
  static const std::vector<std::string> s{"Question:", "</s>", "<|im_end|>"};
  return s;
}

const std::vector<std::string>& humaneval_stop_sequences() {
  static const std::vector<std::string> s{"\nclass", "\ndef", "\n#", "\nif", "\nprint"};
  return s;
}

std::string humaneval_program(const HumanEvalTask& t, const std::string& completion) {
  return t.prompt + completion + "\n" + t.test + "\n" + "check(" + t.entry_point + ")";
}

}  // namespace teddy
