#pragma once
// The CLI side of a training job (train/job.h): `teddy pretrain` and `teddy sft` hand
// this observer to run_pretrain_job / run_sft_job. It renders rank 0's progress
// (print_train_event) and the job's notes, and decides how a job of several ranks
// ends when one rank fails: it prints "teddy: error on rank R of W: ..." (an error,
// or a collective the watchdog found hung past [dist] timeout_s) and picks the exit
// code (1 for an error, 3 for a hang) every rank then ends with. In one process
// errors are thrown to main, which prints them and picks the exit code.
#include <cstdint>
#include <string>

#include "teddy/cli/progress.h"
#include "teddy/train/job.h"

namespace teddy::cli {

class TrainJobView final : public JobObserver {
 public:
  // seen, per_source: as print_train_event's. progress: --print-every, --quiet, --json-progress.
  TrainJobView(const ProgressOptions& progress, const char* seen, bool per_source);
  void on_event(const TrainEvent& e) override;
  void on_note(const std::string& line) override;
  int on_rank_failure(const RankFailure& f) override;

 private:
  ProgressLine bar_;
  const char* seen_;
  bool per_source_;
};

}  // namespace teddy::cli
