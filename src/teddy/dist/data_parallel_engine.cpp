#include "teddy/dist/data_parallel_engine.h"

#include <cstring>
#include <sstream>
#include <vector>

#include "teddy/core/error.h"

namespace teddy::dist {

DataParallelEngine::DataParallelEngine(Communicator& comm, ParallelLayout layout, size_t bucket_bytes)
    : comm_(comm), layout_(layout), bucket_bytes_(bucket_bytes) {
  layout_.validate(comm.size());
}

DataParallelEngine::~DataParallelEngine() = default;

void DataParallelEngine::need_attached(const char* what) const {
  if (!zt_) throw Error(std::string("DataParallelEngine::") + what + ": attach() a model first");
}

void DataParallelEngine::attach(Model& model, const AdamWConfig& cfg) {
  model_ = &model;
  adam_ = cfg;
  // Every rank starts from rank 0's weights (they are equal when all ranks use the
  // same seed; the broadcast makes it so even when the init is not deterministic).
  comm_.broadcast(model.params(), model.flat_size() * sizeof(float), 0);
  zt_ = std::make_unique<ZeroTrainer>(model, cfg, comm_, layout_.zero, bucket_bytes_);
}

StepStats DataParallelEngine::step(std::span<const Batch> micro, float lr, float max_grad_norm) {
  need_attached("step");
  const CommStats before = comm_.stats();
  const StepStats st = zt_->step(micro, lr, max_grad_norm);
  last_bytes_ = comm_.stats().bytes_sent - before.bytes_sent;
  last_seconds_ = comm_.stats().seconds - before.seconds;
  return st;
}

namespace {
std::string mib(double b) {
  std::ostringstream os;
  os.precision(2);
  os << std::fixed << b / (1024.0 * 1024.0) << " MiB";
  return os.str();
}
}  // namespace

std::string DataParallelEngine::report() {
  need_attached("report");
  const int W = comm_.size();
  const StateBytes mem = zt_->memory();
  const StateBytes want = ZeroTrainer::expected_memory(model_->flat_size(), layout_.zero, W);
  std::vector<double> all(static_cast<size_t>(3 * W), 0.0);  // gathered by a sum with one slot per rank
  all[3 * comm_.rank()] = static_cast<double>(mem.params);
  all[3 * comm_.rank() + 1] = static_cast<double>(mem.grads);
  all[3 * comm_.rank() + 2] = static_cast<double>(mem.optimizer);
  comm_.all_reduce_sum(all.data(), all.size());
  std::ostringstream os;
  os << "# parallel: " << layout_.describe() << " (" << W << " ranks; global batch = micro_batch x grad_accum x " << W
     << "), " << zt_->buckets() << " gradient buckets\n";
  os << "# ZeRO-" << layout_.zero << " fp32 formula per rank: params " << mib(want.params) << ", grads "
     << mib(want.grads) << ", optimizer " << mib(want.optimizer) << "\n";
  for (int r = 0; r < W; ++r)
    os << "#   rank " << r << " holds: params " << mib(all[3 * r]) << ", grads " << mib(all[3 * r + 1])
       << ", optimizer " << mib(all[3 * r + 2]) << "\n";
  const double psi = static_cast<double>(model_->flat_size()), ring = 4.0 * (W - 1) / W;
  if (layout_.zero <= 2)
    os << "# expected communication per step and rank: " << mib(2 * psi * ring) << " (2 psi fp32, ring"
       << (layout_.zero == 2 ? "; stage 2 adds a reduce-scatter per extra micro-batch" : "") << ")\n";
  else
    os << "# expected communication per micro-batch and rank: "
       << mib((3 * psi - static_cast<double>(zt_->outer_floats())) * ring)
       << " (3 psi fp32, ring, less the non-block tensors gathered once instead of twice)\n";
  return os.str();
}

std::string DataParallelEngine::summary() {
  const int W = comm_.size();
  std::vector<double> all(static_cast<size_t>(3 * W), 0.0);
  all[3 * comm_.rank()] = static_cast<double>(comm_.stats().bytes_sent);
  all[3 * comm_.rank() + 1] = comm_.stats().seconds;
  all[3 * comm_.rank() + 2] = static_cast<double>(comm_.stats().calls);
  comm_.all_reduce_sum(all.data(), all.size());
  std::ostringstream os;
  for (int r = 0; r < W; ++r)
    os << "rank " << r << " communication: " << mib(all[3 * r]) << " sent (ring count), " << all[3 * r + 1]
       << " s in " << static_cast<uint64_t>(all[3 * r + 2]) << " calls\n";
  return os.str();
}

void DataParallelEngine::gather_state(std::vector<float>& m, std::vector<float>& v) {
  const size_t n = model_->flat_size();
  m.assign(n, 0.0f);
  v.assign(n, 0.0f);
  const Range r = zt_->state_range();
  std::memcpy(m.data() + r.begin, zt_->m(), r.size() * sizeof(float));
  std::memcpy(v.data() + r.begin, zt_->v(), r.size() * sizeof(float));
  if (layout_.zero >= 1) {
    const std::vector<size_t> counts = zt_->shards().counts({0, n});
    comm_.all_gather(m.data(), counts);
    comm_.all_gather(v.data(), counts);
  }
}

std::string DataParallelEngine::save_checkpoint(const std::string& run_dir, const CheckpointState& state,
                                                int keep_last) {
  need_attached("save_checkpoint");
  // The single-process format: parameters (equal on every rank) and whole-buffer m, v
  // gathered from the shards; rank 0 writes. Any world size, or one process, loads it.
  std::vector<float> m, v;
  gather_state(m, v);
  zt_->gather_all_params();  // stage 3: the whole buffer, for the file
  std::string dir;
  int64_t failed = 0;
  std::string why;
  if (comm_.rank() == 0) {
    try {
      AdamW full(model_->layout(), adam_);
      full.set_state(zt_->optimizer_t(), m.data(), v.data());
      dir = teddy::save_checkpoint(run_dir, *model_, full, state, keep_last);
    } catch (const std::exception& e) {
      failed = 1;
      why = e.what();
    }
  }
  zt_->release_params();
  comm_.all_reduce_sum(&failed, 1);  // every rank learns whether the checkpoint exists
  if (failed) throw Error(comm_.rank() == 0 ? why : "checkpoint failed on rank 0");
  return dir;
}

CheckpointInfo DataParallelEngine::load_checkpoint(const std::string& dir) {
  need_attached("load_checkpoint");
  AdamW full(model_->layout(), adam_);
  const CheckpointInfo info = teddy::load_checkpoint(dir, *model_, &full);
  zt_->set_state(full.t(), full.m(), full.v());
  zt_->release_params();  // stage 3 keeps its own range only
  return info;
}

}  // namespace teddy::dist
