#include "teddy/train/sft_trainer.h"
#include "teddy/train/memory_check.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "teddy/core/error.h"
#include "teddy/core/memory_usage.h"
#include "teddy/data/sft/dataset.h"
#include "teddy/train/chat_model.h"
#include "teddy/train/lora_run.h"
#include "teddy/train/sft_batches.h"

namespace fs = std::filesystem;

namespace teddy {

// SFT batches: rows of the shuffled, packed (or padded) example stream. A step's
// global batch is the next micro_batch x grad_accum x dp rows; rank r's micro-batch
// j holds rows r*A*B + j*B .. + B of it (A = grad_accum, B = micro_batch), the split
// pretraining uses, so 2 ranks x micro_batch 4 train on the rows of micro_batch 8.
// Validation batches are split the same way.
class SftTrainer::Task final : public TrainTask {
 public:
  Task(const SftConfig& cfg, int dp_rank, int dp) : cfg_(cfg), rank_(dp_rank), dp_(dp) {
    threads_ = cfg.threads > 0 ? cfg.threads : omp_get_max_threads();
    omp_set_num_threads(threads_);

    // The base model, its tokenizer, and the template's specials (growing the vocabulary).
    {
      // With LoRA the base goes straight from the checkpoint into its storage (fp32,
      // bf16 or NF4) when no vocabulary has to grow; else it loads in fp32 and
      // enable_lora below moves it.
      ChatModel cm = load_chat_model(cfg.init, cfg.tokenizer, true, &cfg.chat_template,
                                     cfg.lora_section ? &cfg.lora : nullptr, cfg.seed);
      report_.init_checkpoint = cm.checkpoint;
      report_.init_skipped = cm.skipped;
      report_.added_specials = cm.added_specials;
      report_.base_vocab = cm.base_vocab;
      tok_ = std::move(cm.tok);
      tmpl_ = cm.tmpl;
      model_ = std::move(cm.model);
    }
    // LoRA: the loaded weights become the frozen base; the flat buffers the engine,
    // AdamW and the checkpoints see hold only the adapters from here on.
    if (cfg.lora_section && !model_->lora()) model_->enable_lora(cfg.lora, cfg.seed);
    report_.vocab = model_->config().vocab_size;
    if (cfg.seq_len > model_->config().max_seq_len)
      throw ConfigError("train.seq_len: must be <= the model's max_seq_len (" + std::to_string(cfg.seq_len) + " > " +
                        std::to_string(model_->config().max_seq_len) + ")");

    // Data: train, and validation from its own file or held out of train.
    std::vector<SftExample> train_ex = read_sft_jsonl(cfg.train_path, cfg.format, cfg.skip_bad, &report_.train_read);
    std::vector<SftExample> val_ex;
    if (!cfg.val_path.empty()) {
      val_ex = read_sft_jsonl(cfg.val_path, cfg.format, cfg.skip_bad, &report_.val_read);
    } else if (cfg.val_fraction > 0) {
      auto [tr, va] = split_sft_examples(std::move(train_ex), cfg.val_fraction);
      train_ex = std::move(tr);
      val_ex = std::move(va);
    }
    const SftDatasetOptions dopt = cfg.dataset_options();
    train_ = SftDataset(train_ex, tok_, tmpl_, dopt);
    val_ = SftDataset(val_ex, tok_, tmpl_, dopt);
    report_.train = train_.stats();
    report_.val = val_.stats();
    if (train_.size() == 0)
      throw Error(cfg.train_path + ": no training example fits (" + report_.train.summary() + ")");
    stream_ = std::make_unique<SftBatchStream>(train_, cfg.batching, cfg.seed);
    report_.rows_per_epoch = stream_->epoch_rows(0);
    report_.fill = static_cast<double>(report_.train.tokens - report_.train.examples) /
                   (static_cast<double>(report_.rows_per_epoch) * cfg.seq_len);
    {
      std::vector<uint32_t> order(val_.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<uint32_t>(i);
      val_rows_ = plan_sft_rows(val_, order, cfg.batching);
    }

    total_ = cfg.total_steps(report_.rows_per_epoch);
    if (cfg.warmup_steps > total_)
      throw ConfigError("optim.warmup_steps: must be <= the run's steps (" + std::to_string(cfg.warmup_steps) + " > " +
                        std::to_string(total_) + ")");
    if (cfg.memory_check) {  // before the optimizer state and the activation arena
      plan::TrainSetup setup;
      setup.micro_batch = cfg.micro_batch;
      setup.seq_len = cfg.seq_len;
      const Precision p = cfg.precision_mode();  // 16-bit: fp32 master state, activations saved in 16 bits
      setup.precision = p == Precision::bf16 ? DType::bf16 : p == Precision::fp16 ? DType::f16 : DType::f32;
      setup.dp = dp;
      setup.zero_stage = dp > 1 ? cfg.zero : 0;
      if (cfg.lora_section) setup.lora = cfg.lora;  // adapters' states + the frozen base (plan/lora.h)
      // What the model holds already: its parameters and gradients (with LoRA the
      // adapters') and the frozen base.
      const double held = static_cast<double>(model_->param_bytes() + model_->grad_bytes()) +
                          (cfg.lora_section ? static_cast<double>(model_->base_bytes()) : 0.0);
      check_training_memory(model_->config(), setup, threads_, local_ranks(), held);
    }
    model_->set_backend(cfg.gemm_backend());      // [train] gemm and precision pick the GEMMs
    model_->set_precision(cfg.precision_mode());  // before the activations are sized: 16-bit saves less
    model_->reserve_activations(cfg.micro_batch, cfg.seq_len);
    micro_.resize(static_cast<size_t>(cfg.grad_accum));
  }

  const SftConfig& config() const { return cfg_; }
  const SftDataReport& data_report() const { return report_; }
  int64_t total_steps() const { return total_; }
  int threads() const { return threads_; }
  const Tokenizer& tokenizer() const { return tok_; }
  const ChatTemplate& chat_template() const { return tmpl_; }

  Model& model() override { return *model_; }
  std::string name() const override { return "SFT"; }

  int64_t next_step(std::vector<Batch>& micro) override {
    const int B = cfg_.micro_batch, A = cfg_.grad_accum;
    // LoRA dropout masks: a function of (step, global row), so a resumed run draws what
    // the uninterrupted one did and any split over ranks what one process draws.
    model_->set_lora_dropout_rows(static_cast<uint64_t>(step_++), static_cast<uint64_t>(rank_) * A * B);
    micro.resize(static_cast<size_t>(A));
    int64_t positions = 0;  // the global batch's, every rank's micro-batches
    for (int q = 0; q < dp_; ++q) {
      for (int a = 0; a < A; ++a) {
        stream_->next_rows(B, rows_);
        if (q == rank_) {
          fill_sft_micro_batch(train_, rows_, cfg_.batching, micro_[a]);
          micro[a] = micro_[a].batch();
        }
        positions += static_cast<int64_t>(B) * sft_micro_batch_width(train_, rows_, cfg_.batching);
      }
    }
    return positions;
  }

  bool has_validation() const override { return !val_rows_.empty(); }
  bool validate_before_first_step() const override { return true; }
  LossSum validate() override {
    const size_t B = static_cast<size_t>(cfg_.micro_batch), global = B * static_cast<size_t>(dp_);
    LossSum sum;
    SftMicroBatch mb;
    int done = 0;
    for (size_t at = 0; at < val_rows_.size(); at += global) {
      if (cfg_.eval_batches > 0 && done == cfg_.eval_batches) break;
      ++done;
      const size_t mine = at + static_cast<size_t>(rank_) * B;
      if (mine >= val_rows_.size()) continue;  // the split's last batch may not reach this rank
      const size_t n = std::min(B, val_rows_.size() - mine);
      fill_sft_micro_batch(val_, std::span<const SftRow>(val_rows_.data() + mine, n), cfg_.batching, mb);
      const LossSum l = model_->forward(mb.batch());
      sum.sum += l.sum;
      sum.count += l.count;
    }
    return sum;
  }

  std::string loader_state() const override {
    return nlohmann::json{{"kind", "sft"}, {"rows", stream_->rows()}, {"epoch", stream_->epoch()}}.dump();
  }
  void restore(const CheckpointInfo& info) override {
    uint64_t rows = static_cast<uint64_t>(info.state.step) * static_cast<uint64_t>(cfg_.rows_per_step());
    try {
      if (!info.state.loader_state.empty())
        rows = nlohmann::json::parse(info.state.loader_state).at("rows").get<uint64_t>();
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(info.dir + ": bad SFT loader state (" + e.what() + ")");
    }
    stream_->seek(rows);
    step_ = info.state.step;
  }
  std::string run_config() const override { return cfg_.to_toml(report_.rows_per_epoch); }

  // What `teddy generate --chat` and `teddy sft eval` need: tokenizer, template, config.
  void write_run_files(const std::string& run_dir) override {
    tok_.save((fs::path(run_dir) / "tokenizer.json").string());
    tmpl_.save((fs::path(run_dir) / "chat_template.json").string());
    std::ofstream((fs::path(run_dir) / "config.toml").string(), std::ios::trunc) << run_config();
    if (const LoraConfig* l = model_->lora())  // the checkpoints hold adapters: how to rebuild the model
      write_lora_run_info(run_dir, LoraRunInfo{*l, fs::absolute(report_.init_checkpoint).string(),
                                               cfg_.tokenizer.empty() ? "" : fs::absolute(cfg_.tokenizer).string()});
  }

  std::string start_text(const TrainReport& rep) override {
    const SftDataReport& r = report_;
    const ModelConfig& mc = model_->config();
    std::ostringstream os;
    os << cfg_.to_toml(r.rows_per_epoch);
    os << "# init: " << r.init_checkpoint << " (" << family_name(mc.family) << ", " << model_->base_layout().count()
       << " parameters)\n";
    for (const std::string& sk : r.init_skipped) os << "# model.init: skipped damaged checkpoint " << sk << "\n";
    if (const LoraConfig* l = model_->lora())
      os << "# lora: r " << l->r << ", scale " << l->scale() << ", dropout " << l->dropout << ": "
         << model_->layout().count() << " trainable parameters (adapters) over a frozen base\n";
    os << "# template " << tmpl_.name << ": " << r.added_specials << " special tokens added, vocabulary "
       << r.base_vocab << " -> " << r.vocab << " (padded " << mc.padded_vocab_size << ")\n";
    auto read_line = [&](const char* what, const SftReadStats& rs) {
      os << "# " << what << ": " << rs.examples << " examples read (messages " << rs.by_format[1]
         << ", prompt_completion " << rs.by_format[2] << ", alpaca " << rs.by_format[3] << "), " << rs.skipped
         << " bad lines skipped\n";
      for (const auto& ex : rs.skipped_examples) os << "#   skipped " << ex << "\n";
    };
    read_line(cfg_.train_path.c_str(), r.train_read);
    if (!cfg_.val_path.empty()) read_line(cfg_.val_path.c_str(), r.val_read);
    os << "# train: " << r.train.summary() << "\n";
    os << "# validation" << (cfg_.val_path.empty() ? " (held out of train)" : "") << ": " << r.val.summary() << "\n";
    os << "# " << sft_batching_name(cfg_.batching) << ": " << r.rows_per_epoch << " rows of " << cfg_.seq_len
       << " per epoch";
    if (cfg_.batching == SftBatching::pack) os << ", " << std::lround(100 * r.fill) << "% of positions hold examples";
    os << "; " << total_ << " steps of " << cfg_.rows_per_step() << " rows = "
       << static_cast<double>(total_) * cfg_.rows_per_step() / static_cast<double>(r.rows_per_epoch) << " epochs\n";
    os << "# memory: params " << human_bytes(static_cast<double>(model_->param_bytes())) << ", AdamW state "
       << human_bytes(static_cast<double>(rep.optimizer_bytes)) << ", activations "
       << human_bytes(static_cast<double>(model_->activation_bytes())) << " (precision " << cfg_.precision
       << "); threads " << rep.threads << "; GEMMs " << kernels::gemm_description(model_->context().ops())
       << " (train.gemm " << cfg_.gemm << ")\n";
    if (const LoraConfig* l = model_->lora())  // lora.compute: what the frozen base's GEMMs take
      os << "# LoRA r " << l->r << " over a " << (l->quantize == "none" ? "fp32" : l->quantize)
         << " base: its products in " << (model_->context().ops().gemm_inputs == DType::bf16 ? "bf16" : "fp32")
         << " (lora.compute " << l->compute << "), the adapters' in fp32\n";
    if (rep.scaler)
      os << "# fp16: dynamic loss scale from " << rep.scaler->scale() << ", x2 after "
         << cfg_.loss_scale_growth_interval << " clean steps\n";
    os << rep.engine_report;
    os << rep.notes;
    if (rep.start_step > 0) os << "# resumed from step " << rep.start_step << "\n";
    return os.str();
  }

  std::string end_text(const TrainReport& r) override {
    std::ostringstream os;
    os << "steps " << r.first_step << " -> " << r.step << " in " << r.elapsed_s << " s\n";
    os << task_eval_summary(r);
    os << "final validation loss: " << r.last_val << "\n";
    if (r.scaler)
      os << "fp16 loss scaling: " << r.scaler->skipped() << " steps skipped (gradient overflow), scale now "
         << r.scaler->scale() << "\n";
    os << "peak resident memory: " << human_bytes(static_cast<double>(peak_rss_bytes())) << "\n";
    os << r.engine_summary;
    return os.str();
  }

  bool metrics_loss_tokens() const override { return true; }

 private:
  SftConfig cfg_;
  int rank_ = 0, dp_ = 1;
  SftDataReport report_;
  Tokenizer tok_;
  ChatTemplate tmpl_;
  SftDataset train_, val_;
  std::unique_ptr<SftBatchStream> stream_;
  std::vector<SftRow> val_rows_;
  std::unique_ptr<Model> model_;
  int64_t step_ = 0;  // next_step calls so far (restored on resume): the LoRA dropout counter
  int64_t total_ = 0;
  std::vector<SftMicroBatch> micro_;  // this rank's micro-batches of the current step
  std::vector<SftRow> rows_;          // scratch: one micro-batch's row plans
  int threads_ = 1;
};

SftTrainer::SftTrainer(SftConfig cfg, Resume resume, dist::Communicator* comm) {
  // [dist] applies to a job of ranks (mpirun / srun); one process is dp = 1, stage 0.
  const int world = comm ? comm->size() : 1;
  cfg.data_parallel = comm ? (cfg.dp > 0 ? cfg.dp : world) : 1;  // the global batch decides the step count
  cfg.validate();
  const dist::ParallelLayout layout = comm ? cfg.layout(world) : dist::ParallelLayout{};
  const int rank = comm ? comm->rank() : 0;
  auto task = std::make_unique<Task>(cfg, layout.dp_rank(rank), layout.dp);
  task_ = task.get();
  TrainerSettings st;
  st.total_steps = task_->total_steps();
  st.seq_len = cfg.seq_len;
  st.seed = cfg.seed;
  st.threads = task_->threads();
  if (cfg.precision_mode() == Precision::fp16) st.loss_scaling = cfg.loss_scaler_config();  // in the engine
  trainer_ = std::make_unique<Trainer>(std::move(task), cfg, st, layout, comm, resume);
}

SftTrainer::~SftTrainer() = default;

const SftConfig& SftTrainer::config() const { return task_->config(); }
void SftTrainer::set_peak_probe(std::function<double(int threads)> probe) { trainer_->set_peak_probe(std::move(probe)); }
const SftDataReport& SftTrainer::data_report() const { return task_->data_report(); }
int64_t SftTrainer::total_steps() const { return task_->total_steps(); }
int64_t SftTrainer::start_step() const { return trainer_->start_step(); }
const std::vector<double>& SftTrainer::step_losses() const { return trainer_->step_losses(); }
Model& SftTrainer::model() { return task_->model(); }
const Tokenizer& SftTrainer::tokenizer() const { return task_->tokenizer(); }
const ChatTemplate& SftTrainer::chat_template() const { return task_->chat_template(); }
Trainer& SftTrainer::trainer() { return *trainer_; }
double SftTrainer::validation_loss() { return trainer_->validation_loss(); }

TrainResult SftTrainer::run(const std::function<void(const SftEvent&)>& on_event, int64_t stop_after) {
  return trainer_->run(on_event, stop_after);
}

}  // namespace teddy
