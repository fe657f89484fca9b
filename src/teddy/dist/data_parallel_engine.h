#pragma once
// The pretraining loop's DataParallel over a Communicator and a ZeroTrainer: the
// piece `teddy pretrain` builds when launched by mpirun / srun.
#include <memory>

#include "teddy/dist/communicator.h"
#include "teddy/dist/parallel_layout.h"
#include "teddy/dist/zero_trainer.h"
#include "teddy/train/data_parallel.h"

namespace teddy::dist {

class DataParallelEngine final : public DataParallel {
 public:
  // Validates `layout` against comm's world size (ConfigError otherwise).
  DataParallelEngine(Communicator& comm, ParallelLayout layout, size_t bucket_bytes = size_t{8} << 20,
                     bool overlap = true);
  ~DataParallelEngine() override;

  int rank() const override { return layout_.dp_rank(comm_.rank()); }
  int world() const override { return layout_.dp; }
  void attach(Model& model, const AdamWConfig& cfg) override;
  StepStats step(std::span<const Batch> micro_batches, float lr, float max_grad_norm) override;
  void sum(double* values, size_t n) override { comm_.all_reduce_sum(values, n); }
  std::string report() override;
  std::string summary() override;
  uint64_t last_step_bytes() const override { return last_bytes_; }
  uint64_t last_step_payload_bytes() const override { return last_payload_; }
  double last_step_comm_seconds() const override { return last_seconds_; }
  std::string save_checkpoint(const std::string& run_dir, const CheckpointState& state, int keep_last) override;
  CheckpointInfo load_checkpoint(const std::string& dir) override;
  std::optional<std::string> latest_intact_checkpoint(const std::string& run_dir,
                                                      std::vector<std::string>* skipped) override;

  ZeroTrainer& trainer() { return *zt_; }
  const ParallelLayout& layout() const { return layout_; }

 private:
  Communicator& comm_;
  ParallelLayout layout_;
  size_t bucket_bytes_;
  bool overlap_;
  Model* model_ = nullptr;
  AdamWConfig adam_;
  std::unique_ptr<ZeroTrainer> zt_;
  uint64_t last_bytes_ = 0, last_payload_ = 0;
  double last_seconds_ = 0;

  void need_attached(const char* what) const;
  // Every rank learns whether any rank failed (its `error` non-empty): returns the
  // lowest failed rank's message, prefixed with its rank, or "" when none did.
  std::string agree_on_error(const std::string& error);
  CheckpointInfo load_sharded(const std::string& dir);
};

}  // namespace teddy::dist
