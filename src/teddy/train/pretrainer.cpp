#include "teddy/train/pretrainer.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "teddy/core/error.h"
#include "teddy/core/memory_usage.h"
#include "teddy/data/loader.h"
#include "teddy/data/manifest.h"
#include "teddy/data/tokenizer.h"
#include "teddy/model/model.h"
#include "teddy/train/adamw.h"
#include "teddy/train/checkpoint.h"
#include "teddy/train/loss_scaler.h"
#include "teddy/train/lr_schedule.h"
#include "teddy/train/metrics_file.h"
#include "teddy/train/train_step.h"

namespace fs = std::filesystem;

namespace teddy {

struct Pretrainer::State {
  PretrainConfig cfg;
  Manifest manifest;
  std::unique_ptr<DataLoader> loader;
  std::unique_ptr<ValidationLoader> val;
  std::unique_ptr<Model> model;
  std::unique_ptr<AdamW> opt;          // single process
  std::unique_ptr<LossScaler> scaler;  // fp16 only
  std::shared_ptr<DataParallel> dp;    // data parallel (owns the optimizer), or null
  LrSchedule schedule;
  int64_t step = 0;  // completed optimizer steps
  int64_t tokens_processed = 0;
  std::vector<double> losses;
  std::vector<int32_t> tokens, targets;  // (grad_accum, B, T)
  std::string metrics_path;
  std::string notes;  // "# ..." lines for the start report (stale temporaries removed, fresh start on --resume)
  int threads = 1;
  std::function<double(int)> peak_probe;  // MFU denominator (GFLOP/s) when the config gives none
};

namespace {

double flops_per_token(const Model& m, int T) {
  const ModelConfig& c = m.config();
  return 6.0 * static_cast<double>(m.layout().count()) + 12.0 * c.n_layer * c.d_model * static_cast<double>(T);
}

}  // namespace

Pretrainer::Pretrainer(PretrainConfig cfg, Resume resume, std::shared_ptr<DataParallel> dp)
    : s_(std::make_unique<State>()) {
  State& s = *s_;
  s.dp = std::move(dp);
  const bool writer = !s.dp || s.dp->rank() == 0;  // only rank 0 writes run files
  if (s.dp) cfg.data_parallel = s.dp->world();  // train.tokens counts the global batch
  // A bad value is reported before the dataset is read: every rule but the vocabulary
  // (the preset's stands in for it here); finalize() checks again with the dataset's.
  cfg.validate();
  s.manifest = Manifest::load(cfg.dataset);
  cfg.finalize(static_cast<int>(s.manifest.tokenizer.vocab_size));
  s.cfg = cfg;
  s.threads = cfg.threads > 0 ? cfg.threads : omp_get_max_threads();
  omp_set_num_threads(s.threads);

  const Mixture mix = cfg.mix.empty() ? Mixture() : Mixture::parse(cfg.mix);
  LoaderOptions lo;
  lo.seed = cfg.seed;
  if (s.dp) {
    lo.rank = s.dp->rank();
    lo.world = s.dp->world();
  }
  s.val = std::make_unique<ValidationLoader>(cfg.dataset, lo);
  lo.grad_accum = cfg.grad_accum;  // a step's rows depend on the global batch only, not on its split
  s.loader = std::make_unique<DataLoader>(cfg.dataset, mix, lo);

  s.model = std::make_unique<Model>(cfg.model);  // default context: the cpu backend
  s.model->init_weights(cfg.seed);
  s.model->set_recompute(recompute_from_name(cfg.recompute));
  const Precision precision = precision_from_name(cfg.precision, "train.precision");
  s.model->set_precision(precision);
  if (precision == Precision::fp16) {
    if (s.dp)
      throw ConfigError("train.precision: fp16 needs the dynamic loss scaler, which the data-parallel engine does not "
                        "run yet; use bf16 (no scaler needed) or a single process");
    s.scaler = std::make_unique<LossScaler>(cfg.loss_scaler_config());
  }
  s.model->reserve_activations(cfg.micro_batch, cfg.seq_len);
  AdamWConfig ac;
  ac.lr = cfg.lr;
  ac.beta1 = cfg.beta1;
  ac.beta2 = cfg.beta2;
  ac.eps = cfg.eps;
  ac.weight_decay = cfg.weight_decay;
  ac.validate();
  if (s.dp)
    s.dp->attach(*s.model, ac);
  else
    s.opt = std::make_unique<AdamW>(s.model->layout(), ac, s.model->context());
  s.schedule.lr = cfg.lr;
  s.schedule.warmup_steps = cfg.warmup_steps;
  s.schedule.total_steps = cfg.total_steps();
  s.schedule.min_lr_ratio = cfg.min_lr_ratio;
  s.schedule.validate();

  const size_t rows = static_cast<size_t>(cfg.grad_accum) * cfg.micro_batch * cfg.seq_len;
  s.tokens.resize(rows);
  s.targets.resize(rows);

  std::error_code ec;
  fs::create_directories(cfg.run_dir, ec);
  if (ec) throw Error(cfg.run_dir + ": cannot create run directory: " + ec.message());
  s.metrics_path = (fs::path(cfg.run_dir) / "metrics.jsonl").string();

  if (writer) s.notes += remove_stale_checkpoint_temps(cfg.run_dir).summary();
  if (resume != Resume::no && list_checkpoints(cfg.run_dir).empty()) {
    if (resume == Resume::require) throw Error(cfg.run_dir + ": --resume=require: no checkpoint to resume from");
    s.notes += "# --resume: no checkpoint in " + cfg.run_dir + " yet, starting from scratch\n";
    resume = Resume::no;
  }
  if (resume != Resume::no) {
    std::vector<std::string> skipped;
    // One process: the search hashes the checkpoint's files and the load reuses what it verified.
    std::optional<VerifiedCheckpoint> verified;
    std::optional<std::string> latest;
    if (s.dp)
      latest = s.dp->latest_intact_checkpoint(cfg.run_dir, &skipped);
    else if ((verified = latest_verified_checkpoint(cfg.run_dir, &skipped)))
      latest = verified->info.dir;
    if (!latest) {
      std::string msg = cfg.run_dir + ": --resume found no intact checkpoint";
      for (auto& sk : skipped) msg += "\n  skipped " + sk;
      throw Error(msg);
    }
    const CheckpointInfo info = s.dp ? s.dp->load_checkpoint(*latest) : load_checkpoint(*verified, *s.model, s.opt.get());
    s.step = info.state.step;
    s.tokens_processed = info.state.tokens_processed;
    if (!info.state.loader_state.empty()) s.loader->restore(LoaderState::from_json(info.state.loader_state));
    if (s.scaler && !info.state.loss_scaler.empty()) {  // the scale, streak and skip count carry over exactly
      try {
        const auto j = nlohmann::json::parse(info.state.loss_scaler);
        s.scaler->set_state(j.at("scale").get<float>(), j.at("streak").get<int64_t>(), j.at("skipped").get<int64_t>());
      } catch (const nlohmann::json::exception& e) {
        throw FormatError(*latest + ": bad loss_scaler state (" + e.what() + ")");
      }
    }
    if (writer) truncate_metrics(s.metrics_path, s.step);
  } else if (writer) {
    std::ofstream(s.metrics_path, std::ios::trunc);  // a fresh run starts a fresh metrics file
  }
  if (!writer) return;

  // The run directory carries what `teddy generate` needs: the resolved config and the tokenizer.
  const std::string tok_path = s.manifest.tokenizer.path;
  Tokenizer tok = (tok_path == "bytes" || tok_path.empty()) ? Tokenizer::bytes() : Tokenizer::load(tok_path);
  tok.save((fs::path(cfg.run_dir) / "tokenizer.json").string());
  std::ofstream((fs::path(cfg.run_dir) / "config.toml").string(), std::ios::trunc) << cfg.to_toml();
}

Pretrainer::~Pretrainer() = default;

const PretrainConfig& Pretrainer::config() const { return s_->cfg; }
void Pretrainer::set_peak_probe(std::function<double(int threads)> probe) { s_->peak_probe = std::move(probe); }
const std::vector<double>& Pretrainer::step_losses() const { return s_->losses; }
int64_t Pretrainer::start_step() const { return s_->step; }

PretrainMemory Pretrainer::memory() const {
  PretrainMemory m;
  m.params = s_->model->param_bytes();
  m.grads = s_->model->grad_bytes();
  m.optimizer = s_->opt ? 2 * s_->opt->size() * sizeof(float) : 0;  // data parallel: see DataParallel::report
  m.activations = s_->model->activation_bytes();
  m.saved_activations = s_->model->saved_activation_bytes();
  m.weight_scratch = s_->model->weight_scratch_bytes();
  return m;
}

void Pretrainer::run(const std::function<void(const PretrainEvent&)>& on_event, int64_t stop_after) {
  State& s = *s_;
  const PretrainConfig& cfg = s.cfg;
  const int64_t total = cfg.total_steps();
  const int B = cfg.micro_batch, T = cfg.seq_len;
  const double fpt = flops_per_token(*s.model, T);
  const double peak = cfg.peak_gflops > 0 ? cfg.peak_gflops : s.peak_probe ? s.peak_probe(s.threads) : 0.0;
  const bool writer = !s.dp || s.dp->rank() == 0;
  const int world = s.dp ? s.dp->world() : 1;
  const int64_t tokens_per_step = cfg.global_tokens_per_step();
  std::ofstream metrics;
  if (writer) metrics.open(s.metrics_path, std::ios::app);

  auto emit = [&](PretrainEvent e) {
    e.total_steps = total;
    const LoaderState& ls = s.loader->state();
    for (size_t i = 0; i < ls.sources.size() && i < ls.tokens_seen.size(); ++i)
      e.tokens_per_source.emplace_back(ls.sources[i], ls.tokens_seen[i]);
    if (on_event) on_event(e);
  };

  {
    PretrainEvent e;
    e.kind = PretrainEvent::Kind::start;
    e.step = s.step;
    const PretrainMemory mem = memory();
    std::ostringstream os;
    os << cfg.to_toml();
    os << "# model: " << family_name(cfg.model.family) << ", " << s.model->layout().count() << " parameters\n";
    os << "# dataset: " << cfg.dataset << " (" << s.manifest.train_tokens() << " train tokens, "
       << s.manifest.val_tokens() << " validation tokens, vocabulary " << cfg.model.vocab_size << ")\n";
    if (s.dp)  // the engine reports params, grads and optimizer state per rank
      os << "# memory: activations " << human_bytes(mem.activations) << " per rank\n";
    else
      os << "# memory: params " << human_bytes(mem.params) << ", grads " << human_bytes(mem.grads)
         << ", AdamW state " << human_bytes(mem.optimizer) << ", activations " << human_bytes(mem.activations)
         << " (recompute " << cfg.recompute << ", precision " << cfg.precision << "; saved by the layers "
         << human_bytes(mem.saved_activations) << ")\n";
    if (mem.weight_scratch)
      os << "# " << cfg.precision << ": fp32 master weights, grads and AdamW state; saved activations in 16 bits; "
         << "matmul weights rounded per use into a " << human_bytes(mem.weight_scratch) << " scratch"
         << (s.scaler ? "; dynamic loss scale from " + std::to_string(s.scaler->scale()) + ", x2 after " +
                            std::to_string(cfg.loss_scale_growth_interval) + " clean steps"
                      : std::string())
         << "\n";
    os << "# threads " << s.threads << ", sgemm ceiling "
       << (peak > 0 ? std::to_string(std::lround(peak)) + " GFLOP/s" + (cfg.peak_gflops > 0 ? " (given)" : " (measured)")
                    : std::string("not measured (MFU reports 0)"))
       << ", FLOPs/token 6N+12LCT = " << fpt << "\n";
    if (s.dp) os << s.dp->report();
    os << s.notes;
    if (s.step > 0) os << "# resumed from step " << s.step << "\n";
    e.text = os.str();
    emit(e);
  }

  auto evaluate = [&]() -> double {
    s.val->reset();
    LossSum sum;
    std::vector<int32_t> tok(static_cast<size_t>(B) * T), tgt(static_cast<size_t>(B) * T);
    for (int i = 0; i < cfg.eval_batches; ++i) {
      const int rows = s.val->next_batch(tok.data(), tgt.data(), B, T);
      if (rows == 0) break;
      Batch b;
      b.tokens = tok.data();
      b.targets = tgt.data();
      b.B = rows;
      b.T = T;
      const LossSum l = s.model->forward(b);
      sum.sum += l.sum;
      sum.count += l.count;
    }
    if (s.dp) {  // every rank evaluated its own windows
      double v[2] = {sum.sum, static_cast<double>(sum.count)};
      s.dp->sum(v, 2);
      sum.sum = v[0];
      sum.count = static_cast<int64_t>(v[1]);
    }
    return sum.count ? sum.mean() : std::nan("");
  };

  auto checkpoint = [&]() {
    CheckpointState cs;
    cs.step = s.step;
    cs.tokens_processed = s.tokens_processed;
    cs.seed = cfg.seed;
    cs.loader_state = s.loader->state().to_json();
    cs.run_config = cfg.to_toml();
    if (s.scaler)
      cs.loss_scaler = nlohmann::json{{"scale", s.scaler->scale()}, {"streak", s.scaler->clean_streak()},
                                      {"skipped", s.scaler->skipped()}}.dump();
    const std::string dir = s.dp ? s.dp->save_checkpoint(cfg.run_dir, cs, cfg.keep_checkpoints)
                                 : save_checkpoint(cfg.run_dir, *s.model, *s.opt, cs, cfg.keep_checkpoints);
    PretrainEvent e;
    e.kind = PretrainEvent::Kind::checkpoint;
    e.step = s.step;
    e.text = dir;
    emit(e);
  };

  const auto t_start = std::chrono::steady_clock::now();
  const int64_t first = s.step;
  double last_val = std::nan("");
  std::vector<Batch> micro(static_cast<size_t>(cfg.grad_accum));
  const int64_t stop = stop_after > 0 ? std::min(stop_after, total) : total;
  while (s.step < stop) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int a = 0; a < cfg.grad_accum; ++a) {
      int32_t* tk = s.tokens.data() + static_cast<size_t>(a) * B * T;
      int32_t* tg = s.targets.data() + static_cast<size_t>(a) * B * T;
      s.loader->next_batch(tk, tg, B, T);
      micro[a].tokens = tk;
      micro[a].targets = tg;
      micro[a].B = B;
      micro[a].T = T;
    }
    const float lr = s.schedule.at(s.step);
    const StepStats st = s.dp       ? s.dp->step(micro, lr, cfg.grad_clip)
                         : s.scaler ? train_step(*s.model, *s.opt, micro, lr, cfg.grad_clip, *s.scaler)
                                    : train_step(*s.model, *s.opt, micro, lr, cfg.grad_clip);
    if (!std::isfinite(st.loss)) throw Error("training diverged: loss is " + std::to_string(st.loss) + " at step " + std::to_string(s.step + 1) + " (lower optim.lr?)");
    ++s.step;
    s.tokens_processed += tokens_per_step;
    s.losses.push_back(st.loss);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    const double tps = static_cast<double>(tokens_per_step) / dt;

    PretrainEvent e;
    e.kind = PretrainEvent::Kind::step;
    e.step = s.step;
    e.loss = st.loss;
    e.lr = lr;
    e.grad_norm = st.grad_norm;
    e.tokens_per_s = tps;
    e.mfu = peak > 0 ? tps * fpt / (peak * 1e9 * world) : 0.0;  // per-rank peak times ranks
    e.elapsed_s = elapsed;
    e.eta_s = elapsed / static_cast<double>(s.step - first) * static_cast<double>(total - s.step);
    e.tokens_seen = s.tokens_processed;
    if (s.scaler) {
      e.loss_scale = st.loss_scale;
      e.skipped = st.skipped;
      e.skipped_steps = s.scaler->skipped();
    }
    {
      nlohmann::ordered_json j{{"step", s.step}, {"loss", st.loss}, {"lr", lr}, {"grad_norm", st.grad_norm},
                               {"tokens", s.tokens_processed}, {"tokens_per_s", tps}, {"mfu", e.mfu},
                               {"step_s", dt}};
      if (s.scaler) {
        j["loss_scale"] = st.loss_scale;
        j["skipped"] = st.skipped;
        j["skipped_steps"] = s.scaler->skipped();
      }
      if (s.dp) {
        j["comm_bytes"] = s.dp->last_step_bytes();  // rank 0's, ring model
        j["comm_payload_bytes"] = s.dp->last_step_payload_bytes();  // rank 0's, measured
        j["comm_s"] = s.dp->last_step_comm_seconds();
      }
      if (writer) metrics << j.dump() << "\n" << std::flush;
    }
    emit(e);

    const bool last = s.step == stop;
    if ((cfg.eval_interval > 0 && s.step % cfg.eval_interval == 0) || last) {
      last_val = evaluate();
      PretrainEvent ev;
      ev.kind = PretrainEvent::Kind::eval;
      ev.step = s.step;
      ev.loss = last_val;
      ev.tokens_seen = s.tokens_processed;
      if (writer) metrics << nlohmann::ordered_json{{"step", s.step}, {"val_loss", last_val}}.dump() << "\n" << std::flush;
      emit(ev);
    }
    if ((cfg.checkpoint_interval > 0 && s.step % cfg.checkpoint_interval == 0) || last) checkpoint();
  }

  PretrainEvent end;
  end.kind = PretrainEvent::Kind::end;
  end.step = s.step;
  end.loss = last_val;
  end.tokens_seen = s.tokens_processed;
  end.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  std::ostringstream os;
  const double run_tokens = static_cast<double>(s.step - first) * static_cast<double>(tokens_per_step);
  os << "steps " << first << " -> " << s.step << ", " << static_cast<int64_t>(run_tokens) << " tokens in "
     << end.elapsed_s << " s (" << (end.elapsed_s > 0 ? run_tokens / end.elapsed_s : 0) << " tokens/s)\n";
  os << "total training FLOPs (6N+12LCT per token): " << run_tokens * fpt << "\n";
  os << "final validation loss: " << last_val << "\n";
  if (s.scaler)
    os << "fp16 loss scaling: " << s.scaler->skipped() << " steps skipped (gradient overflow), scale now "
       << s.scaler->scale() << "\n";
  os << "peak resident memory: " << human_bytes(static_cast<double>(peak_rss_bytes())) << "\n";
  if (s.dp) os << s.dp->summary();
  end.text = os.str();
  emit(end);
}

}  // namespace teddy
