#include "teddy/train/sft_trainer.h"

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
#include "teddy/data/sft_dataset.h"
#include "teddy/train/adamw.h"
#include "teddy/train/checkpoint.h"
#include "teddy/train/chat_model.h"
#include "teddy/train/lr_schedule.h"
#include "teddy/train/metrics_file.h"
#include "teddy/train/sft_batches.h"
#include "teddy/train/train_step.h"

namespace fs = std::filesystem;

namespace teddy {

struct SftTrainer::State {
  SftConfig cfg;
  SftDataReport report;
  Tokenizer tok;
  ChatTemplate tmpl;
  SftDataset train, val;
  std::unique_ptr<SftBatchStream> stream;
  std::vector<SftRow> val_rows;
  std::unique_ptr<Model> model;
  std::unique_ptr<AdamW> opt;
  LrSchedule schedule;
  int64_t total = 0;
  int64_t step = 0;
  int64_t positions = 0;  // row positions (B*T) trained on so far
  std::vector<double> losses;
  std::vector<SftMicroBatch> micro;
  std::string metrics_path;
  std::string notes;  // "# ..." lines for the start report (stale temporaries removed, fresh start on --resume)
  int threads = 1;
  std::function<double(int)> peak_probe;  // MFU denominator (GFLOP/s) when the config gives none
};

SftTrainer::SftTrainer(SftConfig cfg, Resume resume) : s_(std::make_unique<State>()) {
  State& s = *s_;
  cfg.validate();
  s.threads = cfg.threads > 0 ? cfg.threads : omp_get_max_threads();
  omp_set_num_threads(s.threads);

  // The base model, its tokenizer, and the template's specials (growing the vocabulary).
  {
    ChatModel cm = load_chat_model(cfg.init, cfg.tokenizer, true, &cfg.chat_template);
    s.report.init_checkpoint = cm.checkpoint;
    s.report.added_specials = cm.added_specials;
    s.report.base_vocab = cm.base_vocab;
    s.tok = std::move(cm.tok);
    s.tmpl = cm.tmpl;
    s.model = std::move(cm.model);
  }
  s.report.vocab = s.model->config().vocab_size;
  if (cfg.seq_len > s.model->config().max_seq_len)
    throw ConfigError("train.seq_len: must be <= the model's max_seq_len (" + std::to_string(cfg.seq_len) + " > " +
                      std::to_string(s.model->config().max_seq_len) + ")");

  // Data: train, and validation from its own file or held out of train.
  std::vector<SftExample> train_ex = read_sft_jsonl(cfg.train_path, cfg.format, cfg.skip_bad, &s.report.train_read);
  std::vector<SftExample> val_ex;
  if (!cfg.val_path.empty()) {
    val_ex = read_sft_jsonl(cfg.val_path, cfg.format, cfg.skip_bad, &s.report.val_read);
  } else if (cfg.val_fraction > 0) {
    auto [tr, va] = split_sft_examples(std::move(train_ex), cfg.val_fraction);
    train_ex = std::move(tr);
    val_ex = std::move(va);
  }
  const SftDatasetOptions dopt = cfg.dataset_options();
  s.train = SftDataset(train_ex, s.tok, s.tmpl, dopt);
  s.val = SftDataset(val_ex, s.tok, s.tmpl, dopt);
  s.report.train = s.train.stats();
  s.report.val = s.val.stats();
  if (s.train.size() == 0)
    throw Error(cfg.train_path + ": no training example fits (" + s.report.train.summary() + ")");
  s.stream = std::make_unique<SftBatchStream>(s.train, cfg.batching, cfg.seed);
  s.report.rows_per_epoch = s.stream->epoch_rows(0);
  s.report.fill = static_cast<double>(s.report.train.tokens - s.report.train.examples) /
                  (static_cast<double>(s.report.rows_per_epoch) * cfg.seq_len);
  {
    std::vector<uint32_t> order(s.val.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<uint32_t>(i);
    s.val_rows = plan_sft_rows(s.val, order, cfg.batching);
  }

  s.total = cfg.total_steps(s.report.rows_per_epoch);
  if (cfg.warmup_steps > s.total)
    throw ConfigError("optim.warmup_steps: must be <= the run's steps (" + std::to_string(cfg.warmup_steps) + " > " +
                      std::to_string(s.total) + ")");
  s.model->reserve_activations(cfg.micro_batch, cfg.seq_len);
  AdamWConfig ac;
  ac.lr = cfg.lr;
  ac.beta1 = cfg.beta1;
  ac.beta2 = cfg.beta2;
  ac.eps = cfg.eps;
  ac.weight_decay = cfg.weight_decay;
  ac.validate();
  s.opt = std::make_unique<AdamW>(s.model->layout(), ac, s.model->context());
  s.schedule.lr = cfg.lr;
  s.schedule.warmup_steps = cfg.warmup_steps;
  s.schedule.total_steps = s.total;
  s.schedule.min_lr_ratio = cfg.min_lr_ratio;
  s.schedule.validate();
  s.micro.resize(static_cast<size_t>(cfg.grad_accum));
  s.cfg = cfg;

  std::error_code ec;
  fs::create_directories(cfg.run_dir, ec);
  if (ec) throw Error(cfg.run_dir + ": cannot create run directory: " + ec.message());
  s.metrics_path = (fs::path(cfg.run_dir) / "metrics.jsonl").string();
  s.notes += remove_stale_checkpoint_temps(cfg.run_dir).summary();
  if (resume != Resume::no && list_checkpoints(cfg.run_dir).empty()) {
    if (resume == Resume::require) throw Error(cfg.run_dir + ": --resume=require: no checkpoint to resume from");
    s.notes += "# --resume: no checkpoint in " + cfg.run_dir + " yet, starting from scratch\n";
    resume = Resume::no;
  }
  if (resume != Resume::no) {
    std::vector<std::string> skipped;
    const auto verified = latest_verified_checkpoint(cfg.run_dir, &skipped);
    if (!verified) {
      std::string msg = cfg.run_dir + ": --resume found no intact checkpoint";
      for (auto& sk : skipped) msg += "\n  skipped " + sk;
      throw Error(msg);
    }
    const CheckpointInfo ci = load_checkpoint(*verified, *s.model, s.opt.get());  // its files hashed once, by the search
    s.step = ci.state.step;
    s.positions = ci.state.tokens_processed;
    uint64_t rows = static_cast<uint64_t>(s.step) * cfg.rows_per_step();
    try {
      if (!ci.state.loader_state.empty()) rows = nlohmann::json::parse(ci.state.loader_state).at("rows").get<uint64_t>();
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(verified->info.dir + ": bad SFT loader state (" + e.what() + ")");
    }
    s.stream->seek(rows);
    truncate_metrics(s.metrics_path, s.step);
  } else {
    std::ofstream(s.metrics_path, std::ios::trunc);
  }
  // What `teddy generate --chat` and `teddy sft eval` need: tokenizer, template, config.
  s.tok.save((fs::path(cfg.run_dir) / "tokenizer.json").string());
  s.tmpl.save((fs::path(cfg.run_dir) / "chat_template.json").string());
  std::ofstream((fs::path(cfg.run_dir) / "config.toml").string(), std::ios::trunc) << cfg.to_toml(s.report.rows_per_epoch);
}

SftTrainer::~SftTrainer() = default;

const SftConfig& SftTrainer::config() const { return s_->cfg; }
void SftTrainer::set_peak_probe(std::function<double(int threads)> probe) { s_->peak_probe = std::move(probe); }
const SftDataReport& SftTrainer::data_report() const { return s_->report; }
int64_t SftTrainer::total_steps() const { return s_->total; }
int64_t SftTrainer::start_step() const { return s_->step; }
const std::vector<double>& SftTrainer::step_losses() const { return s_->losses; }
Model& SftTrainer::model() { return *s_->model; }
const Tokenizer& SftTrainer::tokenizer() const { return s_->tok; }
const ChatTemplate& SftTrainer::chat_template() const { return s_->tmpl; }

double SftTrainer::validation_loss() {
  State& s = *s_;
  const size_t B = static_cast<size_t>(s.cfg.micro_batch);
  LossSum sum;
  SftMicroBatch mb;
  int done = 0;
  for (size_t at = 0; at < s.val_rows.size(); at += B) {
    if (s.cfg.eval_batches > 0 && done == s.cfg.eval_batches) break;
    const size_t n = std::min(B, s.val_rows.size() - at);
    fill_sft_micro_batch(s.val, std::span<const SftRow>(s.val_rows.data() + at, n), s.cfg.batching, mb);
    const LossSum l = s.model->forward(mb.batch());
    sum.sum += l.sum;
    sum.count += l.count;
    ++done;
  }
  return sum.count ? sum.mean() : std::nan("");
}

void SftTrainer::run(const std::function<void(const SftEvent&)>& on_event, int64_t stop_after) {
  State& s = *s_;
  const SftConfig& cfg = s.cfg;
  const int B = cfg.micro_batch;
  const ModelConfig& mc = s.model->config();
  const double fpt = 6.0 * static_cast<double>(s.model->layout().count()) +
                     12.0 * mc.n_layer * mc.d_model * static_cast<double>(cfg.seq_len);
  const double peak = cfg.peak_gflops > 0 ? cfg.peak_gflops : s.peak_probe ? s.peak_probe(s.threads) : 0.0;
  std::ofstream metrics(s.metrics_path, std::ios::app);
  auto emit = [&](SftEvent e) {
    e.total_steps = s.total;
    if (on_event) on_event(e);
  };

  {
    const SftDataReport& r = s.report;
    std::ostringstream os;
    os << cfg.to_toml(r.rows_per_epoch);
    os << "# init: " << r.init_checkpoint << " (" << family_name(mc.family) << ", " << s.model->layout().count()
       << " parameters)\n";
    os << "# template " << s.tmpl.name << ": " << r.added_specials << " special tokens added, vocabulary "
       << r.base_vocab << " -> " << r.vocab << " (padded " << mc.padded_vocab_size << ")\n";
    auto read_line = [&](const char* what, const SftReadStats& rs) {
      os << "# " << what << ": " << rs.examples << " examples read (messages " << rs.by_format[1]
         << ", prompt_completion " << rs.by_format[2] << ", alpaca " << rs.by_format[3] << "), " << rs.skipped
         << " bad lines skipped\n";
      for (const auto& ex : rs.skipped_examples) os << "#   skipped " << ex << "\n";
    };
    read_line(cfg.train_path.c_str(), r.train_read);
    if (!cfg.val_path.empty()) read_line(cfg.val_path.c_str(), r.val_read);
    os << "# train: " << r.train.summary() << "\n";
    os << "# validation" << (cfg.val_path.empty() ? " (held out of train)" : "") << ": " << r.val.summary() << "\n";
    os << "# " << sft_batching_name(cfg.batching) << ": " << r.rows_per_epoch << " rows of " << cfg.seq_len
       << " per epoch";
    if (cfg.batching == SftBatching::pack) os << ", " << std::lround(100 * r.fill) << "% of positions hold examples";
    os << "; " << s.total << " steps of " << cfg.rows_per_step() << " rows = "
       << static_cast<double>(s.total) * cfg.rows_per_step() / static_cast<double>(r.rows_per_epoch) << " epochs\n";
    os << "# memory: params " << human_bytes(static_cast<double>(s.model->param_bytes())) << ", AdamW state "
       << human_bytes(2.0 * s.opt->size() * sizeof(float)) << ", activations "
       << human_bytes(static_cast<double>(s.model->activation_bytes())) << "; threads " << s.threads << "\n";
    os << s.notes;
    if (s.step > 0) os << "# resumed from step " << s.step << "\n";
    SftEvent e;
    e.kind = SftEvent::Kind::start;
    e.step = s.step;
    e.text = os.str();
    emit(e);
  }

  double last_val = std::nan("");
  auto evaluate = [&] {
    last_val = validation_loss();
    SftEvent ev;
    ev.kind = SftEvent::Kind::eval;
    ev.step = s.step;
    ev.loss = last_val;
    ev.tokens_seen = s.positions;
    metrics << nlohmann::ordered_json{{"step", s.step}, {"val_loss", last_val}}.dump() << "\n" << std::flush;
    emit(ev);
  };
  auto checkpoint = [&] {
    CheckpointState cs;
    cs.step = s.step;
    cs.tokens_processed = s.positions;
    cs.seed = cfg.seed;
    cs.loader_state = nlohmann::json{{"kind", "sft"}, {"rows", s.stream->rows()}, {"epoch", s.stream->epoch()}}.dump();
    cs.run_config = cfg.to_toml(s.report.rows_per_epoch);
    SftEvent e;
    e.kind = SftEvent::Kind::checkpoint;
    e.step = s.step;
    e.text = save_checkpoint(cfg.run_dir, *s.model, *s.opt, cs, cfg.keep_checkpoints);
    emit(e);
  };

  if (s.step == 0 && !s.val_rows.empty()) evaluate();  // the starting point, for comparison
  const auto t_start = std::chrono::steady_clock::now();
  const int64_t first = s.step;
  const int64_t stop = stop_after > 0 ? std::min(stop_after, s.total) : s.total;
  std::vector<Batch> batches(s.micro.size());
  while (s.step < stop) {
    const auto t0 = std::chrono::steady_clock::now();
    int64_t positions = 0;
    for (size_t a = 0; a < s.micro.size(); ++a) {
      s.stream->next(B, s.micro[a]);
      batches[a] = s.micro[a].batch();
      positions += static_cast<int64_t>(s.micro[a].B) * s.micro[a].T;
    }
    const float lr = s.schedule.at(s.step);
    const StepStats st = train_step(*s.model, *s.opt, batches, lr, cfg.grad_clip);
    if (!std::isfinite(st.loss))
      throw Error("SFT diverged: loss is " + std::to_string(st.loss) + " at step " + std::to_string(s.step + 1) +
                  " (lower optim.lr?)");
    ++s.step;
    s.positions += positions;
    s.losses.push_back(st.loss);
    const auto now = std::chrono::steady_clock::now();
    const double dt = std::chrono::duration<double>(now - t0).count();
    const double elapsed = std::chrono::duration<double>(now - t_start).count();
    SftEvent e;
    e.kind = SftEvent::Kind::step;
    e.step = s.step;
    e.loss = st.loss;
    e.lr = lr;
    e.grad_norm = st.grad_norm;
    e.tokens_per_s = static_cast<double>(positions) / dt;
    e.mfu = peak > 0 ? e.tokens_per_s * fpt / (peak * 1e9) : 0.0;
    e.elapsed_s = elapsed;
    e.eta_s = elapsed / static_cast<double>(s.step - first) * static_cast<double>(s.total - s.step);
    e.tokens_seen = s.positions;
    metrics << nlohmann::ordered_json{{"step", s.step},           {"loss", st.loss},
                                      {"lr", lr},                 {"grad_norm", st.grad_norm},
                                      {"loss_tokens", st.tokens}, {"tokens", s.positions},
                                      {"tokens_per_s", e.tokens_per_s}, {"mfu", e.mfu},
                                      {"step_s", dt}}
                   .dump()
            << "\n"
            << std::flush;
    emit(e);
    const bool last = s.step == stop;
    if (!s.val_rows.empty() && ((cfg.eval_interval > 0 && s.step % cfg.eval_interval == 0) || last)) evaluate();
    if ((cfg.checkpoint_interval > 0 && s.step % cfg.checkpoint_interval == 0) || last) checkpoint();
  }

  SftEvent end;
  end.kind = SftEvent::Kind::end;
  end.step = s.step;
  end.loss = last_val;
  end.tokens_seen = s.positions;
  end.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  std::ostringstream os;
  os << "steps " << first << " -> " << s.step << " in " << end.elapsed_s << " s\n";
  os << "final validation loss: " << last_val << "\n";
  os << "peak resident memory: " << human_bytes(static_cast<double>(peak_rss_bytes())) << "\n";
  end.text = os.str();
  emit(end);
}

}  // namespace teddy
