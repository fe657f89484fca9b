#pragma once
// Evaluation during training: the Trainer's TaskEvaluator (train/trainer.h) for a run's
// [eval.<task>] tables. Each evaluation scores the snapshot with run_eval_task and
// eval_options, the path `teddy eval` takes, with the run's tokenizer.json (what
// `teddy eval --checkpoint` of the run loads), so a record in metrics.jsonl equals
// `teddy eval` of the checkpoint at that step.
#include <string>
#include <vector>

#include "teddy/eval/tasks.h"
#include "teddy/train/trainer.h"

namespace teddy {

// The numeric metrics of r under lm-eval's names, as the run logs them.
TaskScores task_scores(const EvalResult& r, double seconds);

// `run_dir`: the run's directory (its tokenizer.json is read at the first evaluation,
// after the trainer has written it).
TaskEvaluator make_task_evaluator(std::vector<EvalTaskConfig> tasks, std::string run_dir);

}  // namespace teddy
