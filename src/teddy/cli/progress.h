#pragma once
// Progress of training loops, suited to where it runs: on a terminal a bar redrawn in
// place; otherwise (Slurm logs, nohup, CI) one plain line every `every` steps and at
// the end, with no carriage returns or escape codes; --quiet: only the summary;
// --json-progress: one JSON object per event on stdout, for scripts.
#include <cstdint>
#include <cstdio>
#include <string>

namespace teddy {
struct TrainEvent;  // train/trainer.h
}

namespace CLI {
class App;
}

namespace teddy::cli {

struct ProgressOptions {
  int64_t every = 10;  // not on a terminal: a line every N steps
  bool quiet = false;
  bool json = false;
};
// --print-every, --quiet and --json-progress on a training subcommand.
void add_progress_options(CLI::App* sub, ProgressOptions& o);

std::string format_duration(double seconds);  // "1h02m", "3m05s", "42s"
std::string format_count(double n);           // "12.3k", "4.5M"

class ProgressLine {
 public:
  explicit ProgressLine(FILE* out, int64_t every = 10);
  ProgressLine(FILE* out, const ProgressOptions& o);
  bool quiet() const { return quiet_; }
  bool json() const { return json_; }
  // Draws the bar for step/total with a free-form status string.
  void update(int64_t step, int64_t total, const std::string& status);
  // Prints a full line (e.g. a validation result) without breaking the bar.
  void message(const std::string& line);
  void finish();

 private:
  FILE* out_;
  bool tty_;
  int64_t every_;
  bool quiet_ = false, json_ = false;
  bool drawn_ = false;
};

// Renders an event of `teddy pretrain` / `teddy sft` (rank 0's): the start report
// and the summary on stdout, steps on the bar (fp16: scale and skips), validation
// and checkpoint lines; quiet: the summary alone; json: one object per event on stdout
// ({"event": "start"|"step"|"eval"|"checkpoint"|"end", "step", ...}). `seen` names what tokens_seen counts ("tokens", SFT's
// "positions"); with per_source the summary ends with the tokens seen per source.
void print_train_event(const TrainEvent& e, ProgressLine& bar, const char* seen, bool per_source);

}  // namespace teddy::cli
