// How the training commands show a job and end it on a failure under mpirun (job.h).
#include "teddy/cli/job.h"

#include <nlohmann/json.hpp>

#include <cstdio>

namespace teddy::cli {

TrainJobView::TrainJobView(const ProgressOptions& progress, const char* seen, bool per_source)
    : bar_(stderr, progress), seen_(seen), per_source_(per_source) {}

void TrainJobView::on_event(const TrainEvent& e) { print_train_event(e, bar_, seen_, per_source_); }

void TrainJobView::on_note(const std::string& line) {
  if (bar_.json())  // --json-progress: stdout holds JSON lines only
    std::printf("%s\n", nlohmann::json{{"event", "note"}, {"text", line}}.dump().c_str());
  else  // also under --quiet: notes are what a user must not miss (a fresh start on --resume)
    std::printf("# %s\n", line.c_str());
  std::fflush(stdout);  // before the start report and the progress lines on stderr
}

int TrainJobView::on_rank_failure(const RankFailure& f) {
  // Say which rank failed and why; the job then ends every rank with this code, so
  // none waits forever in a collective. A hang is reported by the watchdog thread
  // while this rank is still blocked in the call.
  std::fprintf(stderr, "teddy: error on rank %d of %d: %s%s\n", f.rank, f.size, f.what.c_str(),
               f.hang ? ", ending the job" : "");
  std::fflush(stderr);
  return f.hang ? dist::kHangExitCode : 1;
}

}  // namespace teddy::cli
