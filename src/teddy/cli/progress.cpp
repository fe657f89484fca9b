#include "teddy/cli/progress.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "teddy/core/stop_signal.h"
#include "teddy/train/trainer.h"

namespace teddy::cli {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  const long t = std::lround(s);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

std::string format_count(double n) {
  char buf[32];
  if (n >= 1e9) std::snprintf(buf, sizeof buf, "%.2fG", n / 1e9);
  else if (n >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  else if (n >= 1e3) std::snprintf(buf, sizeof buf, "%.1fk", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", n);
  return buf;
}

void add_progress_options(CLI::App* sub, ProgressOptions& o) {
  sub->add_option("--print-every", o.every, "When not on a terminal, print progress every N steps")
      ->check(CLI::PositiveNumber);
  CLI::Option* q = sub->add_flag("--quiet,-q", o.quiet, "Print no progress, only the final summary (and errors)");
  sub->add_flag("--json-progress", o.json,
                "Print one JSON object per event (start, step, eval, task_eval, checkpoint, end) on stdout instead of the bar")
      ->excludes(q);
}

ProgressLine::ProgressLine(FILE* out, int64_t every) : out_(out), tty_(isatty(fileno(out))), every_(every) {}

ProgressLine::ProgressLine(FILE* out, const ProgressOptions& o) : ProgressLine(out, o.every) {
  quiet_ = o.quiet;
  json_ = o.json;
}

namespace {
// --json-progress: what a script needs of each event, numbers as numbers.
void print_json_event(const TrainEvent& e) {
  static const char* kinds[] = {"start", "step", "eval", "task_eval", "checkpoint", "end"};
  nlohmann::ordered_json j{{"event", kinds[static_cast<int>(e.kind)]}, {"step", e.step}, {"total_steps", e.total_steps}};
  auto num = [](double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); };
  switch (e.kind) {
    case TrainEvent::Kind::step:
      j["loss"] = num(e.loss);
      j["lr"] = e.lr;
      j["grad_norm"] = num(e.grad_norm);
      j["tokens_per_s"] = e.tokens_per_s;
      j["mfu"] = e.mfu;
      j["elapsed_s"] = e.elapsed_s;
      j["eta_s"] = num(e.eta_s);
      j["tokens"] = e.tokens_seen;
      if (e.loss_scale > 0) {
        j["loss_scale"] = e.loss_scale;
        j["skipped"] = e.skipped;
        j["skipped_steps"] = e.skipped_steps;
      }
      break;
    case TrainEvent::Kind::eval:
      j["val_loss"] = num(e.loss);
      j["tokens"] = e.tokens_seen;
      break;
    case TrainEvent::Kind::task_eval:
      j["task"] = e.eval_task;
      j["tokens"] = e.tokens_seen;
      j["n"] = e.eval_n;
      for (const auto& [name, v] : e.eval_scores) j[name] = num(v);
      j["eval_s"] = e.eval_s;
      break;
    case TrainEvent::Kind::end:
      j["val_loss"] = num(e.loss);
      j["tokens"] = e.tokens_seen;
      j["elapsed_s"] = e.elapsed_s;
      if (!e.tokens_per_source.empty()) {
        nlohmann::ordered_json per;
        for (const auto& [name, n] : e.tokens_per_source) per[name] = n;
        j["tokens_per_source"] = per;
      }
      if (e.stop_signal) {  // a stop signal ended the run early, with this checkpoint (exit code 75)
        j["stop_signal"] = signal_name(e.stop_signal);
        j["checkpoint"] = e.checkpoint;
      }
      j["text"] = e.text;
      break;
    default:
      j["text"] = e.text;
  }
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
}
}  // namespace

void ProgressLine::update(int64_t step, int64_t total, const std::string& status) {
  constexpr int kWidth = 20;
  const int filled = total > 0 ? static_cast<int>(kWidth * step / total) : 0;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  if (tty_) {
    std::fprintf(out_, "\r\033[K[%s] %lld/%lld %s", bar.c_str(), static_cast<long long>(step),
                 static_cast<long long>(total), status.c_str());
    std::fflush(out_);
    drawn_ = true;
  } else if (step == 1 || step % every_ == 0 || step == total) {
    std::fprintf(out_, "[%s] %lld/%lld %s\n", bar.c_str(), static_cast<long long>(step),
                 static_cast<long long>(total), status.c_str());
    std::fflush(out_);
  }
}

void ProgressLine::message(const std::string& line) {
  if (tty_ && drawn_) std::fprintf(out_, "\r\033[K");
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
  drawn_ = false;
}

void ProgressLine::finish() {
  if (tty_ && drawn_) std::fprintf(out_, "\n");
  drawn_ = false;
}

void print_train_event(const TrainEvent& e, ProgressLine& bar, const char* seen, bool per_source) {
  if (bar.json()) return print_json_event(e);
  if (bar.quiet() && e.kind != TrainEvent::Kind::end) return;
  char buf[512];
  switch (e.kind) {
    case TrainEvent::Kind::start:
      std::printf("%s", e.text.c_str());
      std::fflush(stdout);
      break;
    case TrainEvent::Kind::step:
      std::snprintf(buf, sizeof buf, "loss %.4f | lr %.2e | norm %.3f | %s tok/s | MFU %.1f%% | ETA %s", e.loss, e.lr,
                    e.grad_norm, format_count(e.tokens_per_s).c_str(), 100 * e.mfu, format_duration(e.eta_s).c_str());
      if (e.loss_scale > 0) {  // fp16: the scale this step ran with and the overflow skips so far
        const size_t len = std::strlen(buf);
        std::snprintf(buf + len, sizeof buf - len, " | scale %g%s | skipped %lld", e.loss_scale,
                      e.skipped ? " (overflow, step skipped)" : "", static_cast<long long>(e.skipped_steps));
      }
      bar.update(e.step, e.total_steps, buf);
      break;
    case TrainEvent::Kind::eval:
      std::snprintf(buf, sizeof buf, "step %lld: validation loss %.4f (%s %s seen)", static_cast<long long>(e.step),
                    e.loss, format_count(static_cast<double>(e.tokens_seen)).c_str(), seen);
      bar.message(buf);
      break;
    case TrainEvent::Kind::task_eval: {
      // The scores without their standard errors, and the time it took (not in tokens/s).
      std::string line = "step " + std::to_string(e.step) + ": eval " + e.eval_task + " (n " + std::to_string(e.eval_n) + ")";
      for (const auto& [name, v] : e.eval_scores) {
        if (name.ends_with("_stderr")) continue;
        std::snprintf(buf, sizeof buf, " %s %.4f", name.c_str(), v);
        line += buf;
      }
      std::snprintf(buf, sizeof buf, " in %.2f s", e.eval_s);
      bar.message(line + buf);
      break;
    }
    case TrainEvent::Kind::checkpoint:
      bar.message("checkpoint: " + e.text);
      break;
    case TrainEvent::Kind::end:
      bar.finish();
      if (e.stop_signal)  // on stdout, where the summary goes, before it
        std::printf("stopped by %s after step %lld of %lld: checkpoint %s written; continue with --resume (exit code 75)\n",
                    signal_name(e.stop_signal).c_str(), static_cast<long long>(e.step),
                    static_cast<long long>(e.total_steps), e.checkpoint.c_str());
      std::printf("%s: %s", e.stop_signal ? "stopped" : "done", e.text.c_str());
      if (per_source) {
        std::printf("tokens seen per source:");
        for (const auto& [name, n] : e.tokens_per_source)
          std::printf(" %s=%s", name.c_str(), format_count(static_cast<double>(n)).c_str());
        std::printf("\n");
      }
      break;
  }
}

}  // namespace teddy::cli
