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

const std::vector<std::pair<std::string, std::string>>& gsm8k_cot_exemplars() {
  // lm-evaluation-harness lm_eval/tasks/gsm8k/gsm8k-cot.yaml, fewshot_config.samples
  // (question, target), as its YAML parses (folded lines joined by one space).
  static const std::vector<std::pair<std::string, std::string>> e{
      {"There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, there will be 21 trees. How many trees did the grove workers plant today?",
       "There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have been 21 - 15 = 6. The answer is 6."},
      {"If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?",
       "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5."},
      {"Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?",
       "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After eating 35, they had 74 - 35 = 39. The answer is 39."},
      {"Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops did Jason give to Denny?",
       "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 = 8. The answer is 8."},
      {"Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he have now?",
       "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. 5 + 4 = 9. The answer is 9."},
      {"There were nine computers in the server room. Five more computers were installed each day, from monday to thursday. How many computers are now in the server room?",
       "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 computers were added. 9 + 20 is 29. The answer is 29."},
      {"Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf balls did he have at the end of wednesday?",
       "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 more, he had 35 - 2 = 33 golf balls. The answer is 33."},
      {"Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
       "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars left. 23 - 15 is 8. The answer is 8."},
  };
  return e;
}

std::string gsm8k_cot_prompt(const Gsm8kDoc& d, int shots) {
  // doc_to_text "Q: {{question}}\nA:", target_delimiter " ", fewshot_delimiter "\n\n".
  std::string s;
  for (int i = 0; i < shots; ++i) s += "Q: " + gsm8k_cot_exemplars()[i].first + "\nA: " + gsm8k_cot_exemplars()[i].second + "\n\n";
  return s + "Q: " + d.question + "\nA:";
}

const std::vector<std::string>& gsm8k_cot_stop_sequences() {
  static const std::vector<std::string> s{"Q:", "</s>", "<|im_end|>"};
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
