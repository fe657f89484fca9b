#include "teddy/train/trainer.h"

#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "teddy/core/error.h"
#include "teddy/core/memory_usage.h"
#include "teddy/core/stop_signal.h"
#include "teddy/io/tensorboard_events.h"
#include "teddy/train/metrics_file.h"

namespace fs = std::filesystem;

namespace teddy {

Trainer::Trainer(std::unique_ptr<TrainTask> task, const CommonConfig& common, const TrainerSettings& settings,
                 const dist::ParallelLayout& layout, dist::Communicator* comm, Resume resume)
    : task_(std::move(task)), common_(common), settings_(settings), layout_(layout) {
  if (!comm) own_comm_ = std::make_unique<dist::SelfCommunicator>();
  comm_ = comm ? comm : own_comm_.get();
  layout_.validate(comm_->size());
  Model& model = task_->model();
  // One process is a world of one at stage 0, whatever [dist] says (it applies under mpirun).
  const int stage = comm_->size() > 1 ? layout_.zero : 0;
  engine_ = std::make_unique<dist::ZeroTrainer>(model, common_.adamw(), *comm_, stage, size_t{8} << 20,
                                                common_.overlap);
  if (settings_.loss_scaling) engine_->enable_loss_scaling(*settings_.loss_scaling);
  schedule_ = common_.lr_schedule(settings_.total_steps);

  const bool writer = rank() == 0;  // only rank 0 writes run files
  const std::string& run_dir = common_.run_dir;
  // One writer per run.dir, before anything in it is touched; a refusal on rank 0
  // reaches every rank (all_or_none), so none waits in the barrier below.
  engine_->checkpoint_group().all_or_none("", [&] {
    if (writer) lock_ = RunLock::acquire(run_dir);
  });
  if (lock_) notes_ += lock_->note();
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec) throw Error(run_dir + ": cannot create run directory: " + ec.message());
  metrics_path_ = (fs::path(run_dir) / "metrics.jsonl").string();

  if (writer) notes_ += remove_stale_checkpoint_temps(run_dir).summary();
  if (comm_->size() > 1) comm_->barrier();  // no rank lists checkpoints/ while rank 0 removes from it
  // The search hashes the checkpoint's files (each rank its share) and the load
  // reuses what it verified. Every checkpoint it passes over is in `skipped`, so
  // none found and none skipped means run.dir holds no checkpoint at all.
  std::vector<std::string> skipped;
  std::optional<VerifiedCheckpoint> latest;
  if (resume != Resume::no) latest = engine_->latest_checkpoint(run_dir, &skipped);
  if (resume != Resume::no && !latest) {
    if (!skipped.empty()) {
      std::string msg = run_dir + ": --resume found no intact checkpoint";
      for (auto& sk : skipped) msg += "\n  skipped " + sk;
      throw Error(msg);
    }
    if (resume == Resume::require) throw Error(run_dir + ": --resume=require: no checkpoint to resume from");
    notes_ += "# --resume: no checkpoint in " + run_dir + " yet, starting from scratch\n";
  }
  if (latest) {
    // The newer checkpoints the search passed over are named with the reason, so a
    // fallback to an older step is never silent.
    for (const std::string& sk : skipped) notes_ += "# --resume: skipped damaged checkpoint " + sk + "\n";
    const CheckpointInfo info = engine_->load_checkpoint(*latest);
    step_ = start_step_ = info.state.step;
    tokens_ = info.state.tokens_processed;
    task_->restore(info);
    if (writer) notes_ += truncate_metrics(metrics_path_, step_);  // a torn last line is dropped and said
  } else if (writer) {
    std::ofstream(metrics_path_, std::ios::trunc);  // a fresh run starts a fresh metrics file
  }
  if (writer) task_->write_run_files(run_dir);
}

Trainer::~Trainer() = default;

int Trainer::rank() const { return comm_->rank(); }
int Trainer::world() const { return layout_.dp; }
void Trainer::set_peak_probe(std::function<double(int threads)> probe) { peak_probe_ = std::move(probe); }
void Trainer::set_task_evaluator(TaskEvaluator evaluator) { task_evaluator_ = std::move(evaluator); }

std::string task_eval_summary(const TrainReport& r) {
  if (r.task_evals == 0) return "";
  char b[160];
  std::snprintf(b, sizeof b, "benchmark evaluation ([eval] tasks): %d evaluations, %.2f s (not counted in tokens/s)\n",
                r.task_evals, r.task_eval_s);
  return b;
}

Model eval_snapshot(const Model& m) {
  if (m.lora()) return merge_lora(m);
  Model snap(m.config());
  std::memcpy(snap.params(), m.params(), m.flat_size() * sizeof(float));
  return snap;
}

void Trainer::wait_for_rank0() {
  if (comm_->size() == 1) return;
  float token = 0;
  const dist::CommRequest r = comm_->start_all_reduce_sum(&token, 1);
  if (rank() == 0) {
    comm_->wait(r);
    return;
  }
  while (!comm_->test(r)) std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

std::vector<TaskScores> Trainer::evaluate_tasks() {
  std::vector<TaskScores> scores;
  {
    // ZeRO-3 keeps only each rank's range of the parameters: gather them (every rank)
    // for the snapshot, then free them again before the evaluation.
    const bool gather = comm_->size() > 1 && engine_->stage() == 3;
    if (gather) engine_->gather_all_params();
    std::optional<Model> snap;
    if (rank() == 0) snap.emplace(eval_snapshot(task_->model()));
    if (gather) engine_->release_params();
    if (rank() == 0) scores = task_evaluator_(*snap, step_);
  }
  wait_for_rank0();
  return scores;
}

double Trainer::validation_loss() {
  const LossSum mine = task_->validate();
  double v[2] = {mine.sum, static_cast<double>(mine.count)};
  if (comm_->size() > 1) comm_->all_reduce_sum(v, 2);  // every rank evaluated its own share
  return v[1] > 0 ? v[0] / v[1] : std::nan("");
}

int Trainer::agreed_stop_signal() {
  const int mine = stop_requested();
  if (comm_->size() == 1) return mine;
  // One count per signal number: a sum, so ranks that saw different signals (or
  // none) all end up with the same answer.
  constexpr int kSignals = 65;
  int64_t seen[kSignals] = {};
  if (mine > 0 && mine < kSignals) seen[mine] = 1;
  comm_->all_reduce_sum(seen, kSignals);
  for (int s = 1; s < kSignals; ++s)
    if (seen[s] > 0) return s;
  return 0;
}

TrainResult Trainer::run(const std::function<void(const TrainEvent&)>& on_event, int64_t stop_after) {
  Model& model = task_->model();
  const int64_t total = settings_.total_steps;
  const ModelConfig& mc = model.config();
  const double fpt = 6.0 * static_cast<double>(model.layout().count()) +
                     12.0 * mc.n_layer * mc.d_model * static_cast<double>(settings_.seq_len);
  const double peak =
      common_.peak_gflops > 0 ? common_.peak_gflops : peak_probe_ ? peak_probe_(settings_.threads) : 0.0;
  const bool writer = rank() == 0;
  const int W = world();
  std::ofstream metrics;
  if (writer) {
    metrics.open(metrics_path_, std::ios::app);
    if (!metrics) throw Error(metrics_path_ + ": cannot open for writing: " + std::strerror(errno));
  }
  std::string last_checkpoint;
  // A failed metrics write (a full disk) stops the run: training on would produce
  // steps that neither metrics.jsonl nor, most likely, the next checkpoint can keep.
  auto write_metrics = [&](const std::string& line) {
    metrics << line << '\n' << std::flush;
    if (!metrics)
      throw Error(metrics_path_ + ": write failed at step " + std::to_string(step_) + " (" + std::strerror(errno) +
                  "); the newest checkpoint is " +
                  (!last_checkpoint.empty() ? last_checkpoint
                   : start_step_ > 0        ? checkpoint_dir(common_.run_dir, start_step_)
                                            : std::string("none yet")) +
                  ": free space and continue with --resume");
  };
  // TensorBoard: a new event file per run or resume; its first record tells TensorBoard
  // to drop earlier files' events from step_ + 1 on, as metrics.jsonl was truncated.
  std::unique_ptr<EventFileWriter> tb;
  if (writer && common_.tensorboard) {
    tb = std::make_unique<EventFileWriter>((std::filesystem::path(common_.run_dir) / "tensorboard").string());
    tb->session_start(step_ + 1);
  }
  const LossScaler* scaler = engine_->loss_scaler();
  if (!common_.eval_tasks.empty() && !task_evaluator_)
    throw Error("[eval." + common_.eval_tasks.front().task +
                "]: benchmark tasks are configured but this caller gives the trainer no task evaluator");

  auto emit = [&](TrainEvent e) {
    e.total_steps = total;
    task_->decorate(e);
    if (on_event) on_event(e);
  };

  TrainReport report;
  report.world = W;
  report.threads = settings_.threads;
  report.peak_gflops = peak;
  report.peak_given = common_.peak_gflops > 0;
  report.flops_per_token = fpt;
  report.optimizer_bytes = engine_->optimizer_bytes();
  report.notes = notes_;
  report.start_step = step_;
  report.scaler = scaler;
  if (W > 1) report.engine_report = engine_->report(layout_);  // collective
  {
    TrainEvent e;
    e.kind = TrainEvent::Kind::start;
    e.step = step_;
    e.text = task_->start_text(report);
    emit(e);
  }

  double last_val = std::nan("");
  auto evaluate = [&] {
    last_val = validation_loss();
    TrainEvent ev;
    ev.kind = TrainEvent::Kind::eval;
    ev.step = step_;
    ev.loss = last_val;
    ev.tokens_seen = tokens_;
    if (writer) write_metrics(nlohmann::ordered_json{{"step", step_}, {"val_loss", last_val}}.dump());
    if (tb) tb->add_scalars(step_, {{"loss/val", static_cast<float>(last_val)}});
    emit(ev);
  };
  // The [eval.<task>] tasks: one metrics.jsonl record and one TensorBoard scalar per
  // metric for each task, at this step. Their time is reported, and kept out of
  // tokens/s (each step's throughput is timed around the step alone).
  double task_eval_s = 0;
  int task_evals = 0;
  auto evaluate_tasks_now = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<TaskScores> scores = evaluate_tasks();
    task_eval_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++task_evals;
    for (const TaskScores& sc : scores) {
      if (writer) {
        nlohmann::ordered_json j{{"step", step_}, {"tokens", tokens_}, {"eval", sc.task}, {"n", sc.n}};
        for (const auto& [name, v] : sc.metrics) j[name] = v;
        j["eval_s"] = sc.seconds;
        write_metrics(j.dump());
      }
      if (tb) {
        std::vector<std::pair<std::string, float>> tags;
        for (const auto& [name, v] : sc.metrics) tags.emplace_back("eval/" + sc.task + "/" + name, static_cast<float>(v));
        tb->add_scalars(step_, tags);
      }
      TrainEvent ev;
      ev.kind = TrainEvent::Kind::task_eval;
      ev.step = step_;
      ev.tokens_seen = tokens_;
      ev.eval_task = sc.task;
      ev.eval_scores = sc.metrics;
      ev.eval_n = sc.n;
      ev.eval_s = sc.seconds;
      emit(ev);
    }
  };
  const int64_t task_interval = common_.task_interval();
  auto checkpoint = [&] {
    CheckpointState cs;
    cs.step = step_;
    cs.tokens_processed = tokens_;
    cs.seed = settings_.seed;
    cs.loader_state = task_->loader_state();
    cs.run_config = task_->run_config();
    TrainEvent e;
    e.kind = TrainEvent::Kind::checkpoint;
    e.step = step_;
    try {
      e.text = engine_->save_checkpoint(common_.run_dir, cs, common_.keep_checkpoints);  // fills the loss scaler's state
    } catch (const Error& err) {
      // A save that fails (a full disk) stops the run: the steps after it could not be
      // kept either. The save removed its temporary directory; the previous checkpoint
      // was never touched (a checkpoint is renamed into place only when complete).
      throw Error("checkpoint of step " + std::to_string(step_) + " could not be written: " + err.what() +
                  "; the run stops at step " + std::to_string(step_) + ", the newest checkpoint is " +
                  (!last_checkpoint.empty() ? last_checkpoint
                   : start_step_ > 0        ? checkpoint_dir(common_.run_dir, start_step_)
                                            : std::string("none yet")) +
                  " (intact): free space and continue with --resume");
    }
    last_checkpoint = e.text;
    emit(e);
  };

  if (step_ == 0 && task_->validate_before_first_step() && task_->has_validation()) evaluate();  // the starting point
  const auto t_start = std::chrono::steady_clock::now();
  const int64_t first = step_;
  int64_t run_tokens = 0;
  std::vector<Batch> micro;
  const int64_t stop = stop_after > 0 ? std::min(stop_after, total) : total;
  int stop_signal = 0;
  while (step_ < stop) {
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t step_tokens = task_->next_step(micro);
    const float lr = schedule_.at(step_);
    const StepStats st = engine_->step(micro, lr, common_.grad_clip);
    if (!std::isfinite(st.loss))
      throw Error(task_->name() + " diverged: loss is " + std::to_string(st.loss) + " at step " +
                  std::to_string(step_ + 1) + " (lower optim.lr?)");
    ++step_;
    tokens_ += step_tokens;
    run_tokens += step_tokens;
    losses_.push_back(st.loss);
    const auto now = std::chrono::steady_clock::now();
    const double dt = std::chrono::duration<double>(now - t0).count();
    const double elapsed = std::chrono::duration<double>(now - t_start).count();
    const double tps = static_cast<double>(step_tokens) / dt;

    TrainEvent e;
    e.kind = TrainEvent::Kind::step;
    e.step = step_;
    e.loss = st.loss;
    e.lr = lr;
    e.grad_norm = st.grad_norm;
    e.tokens_per_s = tps;
    e.mfu = peak > 0 ? tps * fpt / (peak * 1e9 * W) : 0.0;  // per-rank peak times ranks
    e.elapsed_s = elapsed;
    e.eta_s = elapsed / static_cast<double>(step_ - first) * static_cast<double>(total - step_);
    e.tokens_seen = tokens_;
    if (scaler) {
      e.loss_scale = st.loss_scale;
      e.skipped = st.skipped;
      e.skipped_steps = scaler->skipped();
    }
    const size_t rss = writer ? peak_rss_bytes() : 0;
    TrainEvent per_source;  // the task's tokens seen per data source (pretraining), if any
    if (writer) task_->decorate(per_source);
    if (writer) {
      nlohmann::ordered_json j{{"step", step_}, {"loss", st.loss}, {"lr", lr}, {"grad_norm", st.grad_norm}};
      if (task_->metrics_loss_tokens()) j["loss_tokens"] = st.tokens;
      j["tokens"] = tokens_;
      j["tokens_per_s"] = tps;
      j["mfu"] = e.mfu;
      j["step_s"] = dt;
      j["peak_rss_bytes"] = rss;
      if (!per_source.tokens_per_source.empty()) {
        nlohmann::ordered_json ps;
        for (const auto& [name, n] : per_source.tokens_per_source) ps[name] = n;
        j["tokens_per_source"] = ps;
      }
      if (scaler) {
        j["loss_scale"] = st.loss_scale;
        j["skipped"] = st.skipped;
        j["skipped_steps"] = scaler->skipped();
      }
      if (comm_->size() > 1) {
        j["comm_bytes"] = engine_->last_step_bytes();                  // rank 0's, ring model
        j["comm_payload_bytes"] = engine_->last_step_payload_bytes();  // rank 0's, measured
        j["comm_s"] = engine_->last_step_comm_seconds();
      }
      write_metrics(j.dump());
    }
    if (tb) {
      // Tags as TensorBoard users group them; values as metrics.jsonl has them, in float.
      std::vector<std::pair<std::string, float>> sc{
          {"loss/train", st.loss},
          {"lr", lr},
          {"grad_norm", st.grad_norm},
          {"throughput/tokens_per_s", static_cast<float>(tps)},
          {"throughput/mfu", static_cast<float>(e.mfu)},
          {"tokens/seen", static_cast<float>(tokens_)},
          {"memory/peak_rss_bytes", static_cast<float>(rss)}};
      for (const auto& [name, n] : per_source.tokens_per_source)
        sc.emplace_back("tokens/" + name, static_cast<float>(n));
      if (scaler) {
        sc.emplace_back("precision/loss_scale", st.loss_scale);
        sc.emplace_back("precision/skipped_steps", static_cast<float>(scaler->skipped()));
      }
      tb->add_scalars(step_, sc);
    }
    emit(e);

    const bool last = step_ == stop;
    // A stop signal on the last step changes nothing: the run completes as planned.
    if (!last) stop_signal = agreed_stop_signal();  // every rank, every step: the same answer everywhere
    if (task_->has_validation() && !stop_signal &&
        ((common_.eval_interval > 0 && step_ % common_.eval_interval == 0) || last))
      evaluate();
    if (!common_.eval_tasks.empty() && !stop_signal && ((task_interval > 0 && step_ % task_interval == 0) || last))
      evaluate_tasks_now();
    if ((common_.checkpoint_interval > 0 && step_ % common_.checkpoint_interval == 0) || last || stop_signal)
      checkpoint();
    if (stop_signal) break;
  }

  TrainEvent end;
  end.kind = TrainEvent::Kind::end;
  end.step = step_;
  end.loss = last_val;
  end.tokens_seen = tokens_;
  end.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  report.first_step = first;
  report.step = step_;
  report.run_tokens = run_tokens;
  report.elapsed_s = end.elapsed_s;
  report.last_val = last_val;
  report.task_eval_s = task_eval_s;
  report.task_evals = task_evals;
  if (W > 1) report.engine_summary = engine_->summary();  // collective
  end.text = task_->end_text(report);
  // No litter at the end either: temporary checkpoint directories whose writers are
  // gone (left at the start because their pid was alive then) go now, said in one line.
  if (writer) end.text += remove_stale_checkpoint_temps(common_.run_dir).summary();
  end.stop_signal = stop_signal;
  end.checkpoint = last_checkpoint;
  emit(end);
  return TrainResult{step_, stop_signal, last_checkpoint};
}

}  // namespace teddy
