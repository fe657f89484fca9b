#pragma once
// Prompts rendered byte for byte as lm-evaluation-harness (v0.4) renders them, so
// scores can sit next to published ones:
//   MMLU   description "The following are multiple choice questions (with answers)
//          about <subject, '_' as ' '>.\n\n", then each shot
//          "<question.strip()>\nA. ..\nB. ..\nC. ..\nD. ..\nAnswer: <letter>\n\n", then the
//          question ending in "Answer:"; the choices scored are " A" .. " D".
//   ARC    "Question: <question>\nAnswer:", shots end in " <answer text>\n\n"; the
//          choices scored are " <text>".
//   GSM8K  "Question: <question>\nAnswer:", shots end in " <worked answer>\n\n";
//          generation stops at "Question:", "</s>" or "<|im_end|>".
//   GSM8K-CoT (lm-eval's gsm8k_cot) "Q: <question>\nA:", shots the fixed 8
//          chain-of-thought exemplars of Wei et al. (2022) as lm-eval's gsm8k-cot.yaml
//          lists them, each "Q: <q>\nA: <reasoning ... The answer is N.>\n\n";
//          generation stops at "Q:", "</s>" or "<|im_end|>".
//   HumanEval  the task's prompt; generation stops at "\nclass", "\ndef", "\n#",
//          "\nif" or "\nprint" (the Codex paper's stop sequences).
// Few-shot rows are the first K of the few-shot split (lm-eval's first_n sampler).
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "teddy/eval/datasets.h"

namespace teddy {

std::string mmlu_description(const std::string& subject);
std::string mmlu_question(const McDoc& d);  // ends in "Answer:"
std::string mmlu_prompt(const McDoc& d, std::span<const McDoc> shots);
std::vector<std::string> mmlu_continuations(const McDoc& d);  // " A", " B", ...

std::string arc_question(const McDoc& d);
std::string arc_prompt(const McDoc& d, std::span<const McDoc> shots);
std::vector<std::string> arc_continuations(const McDoc& d);  // " <text>" per choice

std::string gsm8k_question(const Gsm8kDoc& d);
std::string gsm8k_prompt(const Gsm8kDoc& d, std::span<const Gsm8kDoc> shots);
const std::vector<std::string>& gsm8k_stop_sequences();

// gsm8k_cot: the exemplars (question, target), the prompt with the first `shots` of
// them (0..8), the stop sequences.
const std::vector<std::pair<std::string, std::string>>& gsm8k_cot_exemplars();
std::string gsm8k_cot_prompt(const Gsm8kDoc& d, int shots);
const std::vector<std::string>& gsm8k_cot_stop_sequences();

const std::vector<std::string>& humaneval_stop_sequences();
// The program HumanEval's reference harness runs for a completion:
// prompt + completion + "\n" + test + "\n" + "check(<entry_point>)".
std::string humaneval_program(const HumanEvalTask& t, const std::string& completion);

}  // namespace teddy
