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
//   HumanEval  the task's prompt; generation stops at "\nclass", "\ndef", "\n#",
//          "\nif" or "\nprint" (the Codex paper's stop sequences).
// Few-shot rows are the first K of the few-shot split (lm-eval's first_n sampler).
#include <span>
#include <string>
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

const std::vector<std::string>& humaneval_stop_sequences();
// The program HumanEval's reference harness runs for a completion:
// prompt + completion + "\n" + test + "\n" + "check(<entry_point>)".
std::string humaneval_program(const HumanEvalTask& t, const std::string& completion);

}  // namespace teddy
