#include "teddy/train/pretrainer.h"

#include <omp.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "teddy/core/error.h"
#include "teddy/core/memory_usage.h"
#include "teddy/data/loader.h"
#include "teddy/data/manifest.h"
#include "teddy/tokenizer/tokenizer.h"
#include "teddy/model/model.h"
#include "teddy/train/memory_check.h"
#include "teddy/data/dataset_tokenizer.h"

namespace fs = std::filesystem;

namespace teddy {

// Pretraining batches: this rank's rows of every global batch from the dataset's
// loader, validation windows split the same way.
class Pretrainer::Task final : public TrainTask {
 public:
  Task(const PretrainConfig& cfg, int dp_rank, int dp) : cfg_(cfg), rank_(dp_rank), dp_(dp) {
    manifest_ = Manifest::load(cfg.dataset);
    // The dataset's own tokenizer, verified (checksum, vocabulary) before anything is
    // allocated; it goes into the run directory for `teddy generate`.
    tok_ = std::make_unique<Tokenizer>(load_dataset_tokenizer(cfg.dataset, manifest_));
    cfg_.finalize(static_cast<int>(manifest_.tokenizer.vocab_size));
    threads_ = cfg_.threads > 0 ? cfg_.threads : omp_get_max_threads();
    omp_set_num_threads(threads_);

    const Mixture mix = cfg_.mix.empty() ? Mixture() : Mixture::parse(cfg_.mix);
    LoaderOptions lo;
    lo.seed = cfg_.seed;
    lo.rank = dp_rank;
    lo.world = dp;
    val_ = std::make_unique<ValidationLoader>(cfg_.dataset, lo);
    lo.grad_accum = cfg_.grad_accum;  // a step's rows depend on the global batch only, not on its split
    loader_ = std::make_unique<DataLoader>(cfg_.dataset, mix, lo);

    if (cfg_.memory_check) {  // before the first large allocation
      plan::TrainSetup setup;
      setup.micro_batch = cfg_.micro_batch;
      setup.seq_len = cfg_.seq_len;
      const Precision p = precision_from_name(cfg_.precision, "train.precision");
      setup.precision = p == Precision::bf16 ? DType::bf16 : p == Precision::fp16 ? DType::f16 : DType::f32;
      setup.dp = dp;
      setup.zero_stage = dp > 1 ? cfg_.zero : 0;  // one process runs stage 0 (Trainer)
      setup.recompute = recompute_from_name(cfg_.recompute);
      if (cfg_.lora_section) setup.lora = cfg_.lora;  // adapters' states + the frozen base (plan/lora.h)
      check_training_memory(cfg_.model, setup, threads_, local_ranks());
    }
    if (cfg_.lora_section) {
      // LoRA over the seeded base (reproducible from the seed, so a resume rebuilds it),
      // built straight into its storage: the same model as init_weights + enable_lora.
      model_ = std::make_unique<Model>(
          Model::with_lora(cfg_.model, cfg_.lora, cfg_.seed + 1, Model::init_source(cfg_.model, cfg_.seed),
                          Context{.backend = &cfg_.gemm_backend()}));  // [train] gemm, precision
    } else {
      model_ = std::make_unique<Model>(cfg_.model, Context{.backend = &cfg_.gemm_backend()});  // [train] gemm, precision
      model_->init_weights(cfg_.seed);
    }
    model_->set_recompute(recompute_from_name(cfg_.recompute));
    model_->set_precision(cfg_.precision_mode());
    model_->reserve_activations(cfg_.micro_batch, cfg_.seq_len);
    const size_t n = static_cast<size_t>(cfg_.grad_accum) * cfg_.micro_batch * cfg_.seq_len;
    tokens_.resize(n);
    targets_.resize(n);
  }

  const PretrainConfig& config() const { return cfg_; }
  int threads() const { return threads_; }

  Model& model() override { return *model_; }
  std::string name() const override { return "training"; }

  int64_t next_step(std::vector<Batch>& micro) override {
    const int B = cfg_.micro_batch, T = cfg_.seq_len;
    // LoRA dropout masks from (step, global row): resume and any rank split draw the same ones.
    model_->set_lora_dropout_rows(static_cast<uint64_t>(step_++),
                                  static_cast<uint64_t>(rank_) * cfg_.grad_accum * cfg_.micro_batch);
    micro.resize(static_cast<size_t>(cfg_.grad_accum));
    for (int a = 0; a < cfg_.grad_accum; ++a) {
      int32_t* tk = tokens_.data() + static_cast<size_t>(a) * B * T;
      int32_t* tg = targets_.data() + static_cast<size_t>(a) * B * T;
      loader_->next_batch(tk, tg, B, T);
      micro[a] = Batch{tk, tg, nullptr, nullptr, B, T};
    }
    return cfg_.global_tokens_per_step();
  }

  bool has_validation() const override { return true; }
  bool validate_before_first_step() const override { return false; }
  LossSum validate() override {
    const int B = cfg_.micro_batch, T = cfg_.seq_len;
    val_->reset();
    LossSum sum;
    std::vector<int32_t> tok(static_cast<size_t>(B) * T), tgt(static_cast<size_t>(B) * T);
    for (int i = 0; i < cfg_.eval_batches; ++i) {
      const int rows = val_->next_batch(tok.data(), tgt.data(), B, T);
      if (rows == 0) break;
      const LossSum l = model_->forward(Batch{tok.data(), tgt.data(), nullptr, nullptr, rows, T});
      sum.sum += l.sum;
      sum.count += l.count;
    }
    return sum;
  }

  std::string loader_state() const override { return loader_->state().to_json(); }
  void restore(const CheckpointInfo& info) override {
    if (!info.state.loader_state.empty()) loader_->restore(LoaderState::from_json(info.state.loader_state));
    step_ = info.state.step;
  }
  std::string run_config() const override { return cfg_.to_toml(); }

  // The run directory carries what `teddy generate` needs: the resolved config and the tokenizer.
  void write_run_files(const std::string& run_dir) override {
    tok_->save((fs::path(run_dir) / "tokenizer.json").string());
    std::ofstream((fs::path(run_dir) / "config.toml").string(), std::ios::trunc) << cfg_.to_toml();
  }

  std::string start_text(const TrainReport& r) override {
    std::ostringstream os;
    os << cfg_.to_toml();
    os << "# model: " << family_name(cfg_.model.family) << ", " << model_->layout().count() << " parameters\n";
    os << "# dataset: " << cfg_.dataset << " (" << manifest_.train_tokens() << " train tokens, "
       << manifest_.val_tokens() << " validation tokens, vocabulary " << cfg_.model.vocab_size << ")\n";
    if (r.world > 1)  // the engine reports params, grads and optimizer state per rank
      os << "# memory: activations " << human_bytes(model_->activation_bytes()) << " per rank\n";
    else
      os << "# memory: params " << human_bytes(model_->param_bytes()) << ", grads " << human_bytes(model_->grad_bytes())
         << ", AdamW state " << human_bytes(r.optimizer_bytes) << ", activations "
         << human_bytes(model_->activation_bytes()) << " (recompute " << cfg_.recompute << ", precision "
         << cfg_.precision << "; saved by the layers " << human_bytes(model_->saved_activation_bytes()) << ")\n";
    if (model_->weight_scratch_bytes())
      os << "# " << cfg_.precision << ": fp32 master weights, grads and AdamW state; saved activations in 16 bits; "
         << (model_->context().ops().gemm_inputs == DType::bf16 && cfg_.precision == "bf16"
                 ? "matmul weights as a bf16 copy (" + human_bytes(model_->weight_scratch_bytes()) +
                       ") rewritten from the masters each forward, fed to the bf16 GEMMs with the saved activations"
                 : "matmul weights rounded per use into a " + human_bytes(model_->weight_scratch_bytes()) + " scratch")
         << (r.scaler ? "; dynamic loss scale from " + std::to_string(r.scaler->scale()) + ", x2 after " +
                            std::to_string(cfg_.loss_scale_growth_interval) + " clean steps"
                      : std::string())
         << "\n";
    os << "# threads " << r.threads << ", GEMMs " << kernels::gemm_description(model_->context().ops())
       << " (train.gemm " << cfg_.gemm << "), MFU peak "
       << (r.peak_gflops > 0
               ? std::to_string(std::lround(r.peak_gflops)) + " GFLOP/s" + (r.peak_given ? " (given)" : " (measured)")
               : std::string("not measured (MFU reports 0)"))
       << ", FLOPs/token 6N+12LCT = " << r.flops_per_token << "\n";
    if (const LoraConfig* l = model_->lora())  // lora.compute: what the frozen base's GEMMs take
      os << "# LoRA r " << l->r << " over a " << (l->quantize == "none" ? "fp32" : l->quantize)
         << " base: its products in " << (model_->context().ops().gemm_inputs == DType::bf16 ? "bf16" : "fp32")
         << " (lora.compute " << l->compute << "), the adapters' in fp32\n";
    os << r.engine_report;
    os << r.notes;
    if (r.start_step > 0) os << "# resumed from step " << r.start_step << "\n";
    return os.str();
  }

  std::string end_text(const TrainReport& r) override {
    std::ostringstream os;
    const double run_tokens = static_cast<double>(r.run_tokens);
    const double train_s = r.elapsed_s - r.task_eval_s;  // benchmark evaluations are not training time
    os << "steps " << r.first_step << " -> " << r.step << ", " << r.run_tokens << " tokens in " << r.elapsed_s
       << " s (" << (train_s > 0 ? run_tokens / train_s : 0) << " tokens/s)\n";
    os << task_eval_summary(r);
    os << "total training FLOPs (6N+12LCT per token): " << run_tokens * r.flops_per_token << "\n";
    os << "final validation loss: " << r.last_val << "\n";
    if (r.scaler)
      os << "fp16 loss scaling: " << r.scaler->skipped() << " steps skipped (gradient overflow), scale now "
         << r.scaler->scale() << "\n";
    os << "peak resident memory: " << human_bytes(static_cast<double>(peak_rss_bytes())) << "\n";
    os << r.engine_summary;
    return os.str();
  }

  void decorate(TrainEvent& e) const override {
    const LoaderState& ls = loader_->state();
    for (size_t i = 0; i < ls.sources.size() && i < ls.tokens_seen.size(); ++i)
      e.tokens_per_source.emplace_back(ls.sources[i], ls.tokens_seen[i]);
  }

 private:
  PretrainConfig cfg_;
  Manifest manifest_;
  std::unique_ptr<Tokenizer> tok_;  // the dataset's, verified
  std::unique_ptr<DataLoader> loader_;
  std::unique_ptr<ValidationLoader> val_;
  std::unique_ptr<Model> model_;
  int rank_ = 0, dp_ = 1;
  int64_t step_ = 0;  // next_step calls so far (restored on resume): the LoRA dropout counter
  std::vector<int32_t> tokens_, targets_;  // (grad_accum, B, T)
  int threads_ = 1;
};

Pretrainer::Pretrainer(PretrainConfig cfg, Resume resume, dist::Communicator* comm) {
  // [dist] applies to a job of ranks (mpirun / srun); one process is dp = 1, stage 0.
  const int world = comm ? comm->size() : 1;
  cfg.data_parallel = comm ? (cfg.dp > 0 ? cfg.dp : world) : 1;  // train.tokens counts the global batch
  // A bad value is reported before the dataset is read: every rule but the vocabulary
  // (the preset's stands in for it here); finalize() checks again with the dataset's.
  cfg.validate();
  const dist::ParallelLayout layout = comm ? cfg.layout(world) : dist::ParallelLayout{};  // refuses a job of another size
  const int rank = comm ? comm->rank() : 0;
  auto task = std::make_unique<Task>(cfg, layout.dp_rank(rank), layout.dp);
  task_ = task.get();
  const PretrainConfig& c = task_->config();
  TrainerSettings st;
  st.total_steps = c.total_steps();
  st.seq_len = c.seq_len;
  st.seed = c.seed;
  st.threads = task_->threads();
  if (c.precision_mode() == Precision::fp16) st.loss_scaling = c.loss_scaler_config();
  trainer_ = std::make_unique<Trainer>(std::move(task), c, st, layout, comm, resume);
}

Pretrainer::~Pretrainer() = default;

const PretrainConfig& Pretrainer::config() const { return task_->config(); }
void Pretrainer::set_peak_probe(std::function<double(int threads)> probe) { trainer_->set_peak_probe(std::move(probe)); }
const std::vector<double>& Pretrainer::step_losses() const { return trainer_->step_losses(); }
int64_t Pretrainer::start_step() const { return trainer_->start_step(); }
Trainer& Pretrainer::trainer() { return *trainer_; }

TrainResult Pretrainer::run(const std::function<void(const PretrainEvent&)>& on_event, int64_t stop_after) {
  return trainer_->run(on_event, stop_after);
}

PretrainMemory Pretrainer::memory() const {
  Model& model = task_->model();
  PretrainMemory m;
  m.params = model.param_bytes();
  m.grads = model.grad_bytes();
  m.optimizer = trainer_->engine().optimizer_bytes();
  m.activations = model.activation_bytes();
  m.saved_activations = model.saved_activation_bytes();
  m.weight_scratch = model.weight_scratch_bytes();
  return m;
}

}  // namespace teddy
