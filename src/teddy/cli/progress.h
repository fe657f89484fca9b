#pragma once
// Terminal progress line for training loops: redrawn in place on a TTY, printed
// every `every` steps (and at the end) otherwise, so logs stay readable.
#include <cstdint>
#include <cstdio>
#include <string>

namespace teddy {
struct TrainEvent;  // train/trainer.h
}

namespace teddy::cli {

std::string format_duration(double seconds);  // "1h02m", "3m05s", "42s"
std::string format_count(double n);           // "12.3k", "4.5M"

class ProgressLine {
 public:
  explicit ProgressLine(FILE* out, int64_t every = 10);
  // Draws the bar for step/total with a free-form status string.
  void update(int64_t step, int64_t total, const std::string& status);
  // Prints a full line (e.g. a validation result) without breaking the bar.
  void message(const std::string& line);
  void finish();

 private:
  FILE* out_;
  bool tty_;
  int64_t every_;
  bool drawn_ = false;
};

// Renders an event of `teddy pretrain` / `teddy sft` (rank 0's): the start report
// and the summary on stdout, steps on the bar (fp16: scale and skips), validation
// and checkpoint lines. `seen` names what tokens_seen counts ("tokens", SFT's
// "positions"); with per_source the summary ends with the tokens seen per source.
void print_train_event(const TrainEvent& e, ProgressLine& bar, const char* seen, bool per_source);

}  // namespace teddy::cli
