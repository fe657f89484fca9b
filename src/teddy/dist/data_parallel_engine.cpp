#include "teddy/dist/data_parallel_engine.h"

#include <unistd.h>

#include <cstring>
#include <sstream>
#include <vector>

#include "teddy/core/error.h"
#include "teddy/train/sharded_checkpoint.h"

namespace teddy::dist {

DataParallelEngine::DataParallelEngine(Communicator& comm, ParallelLayout layout, size_t bucket_bytes, bool overlap)
    : comm_(comm), layout_(layout), bucket_bytes_(bucket_bytes), overlap_(overlap) {
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
  zt_ = std::make_unique<ZeroTrainer>(model, cfg, comm_, layout_.zero, bucket_bytes_, overlap_);
}

StepStats DataParallelEngine::step(std::span<const Batch> micro, float lr, float max_grad_norm) {
  need_attached("step");
  const CommStats before = comm_.stats();
  const StepStats st = zt_->step(micro, lr, max_grad_norm);
  last_bytes_ = comm_.stats().bytes_sent - before.bytes_sent;
  last_payload_ = comm_.stats().payload_bytes - before.payload_bytes;
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
  const std::vector<double> all = gather_per_rank<double>(
      comm_, {static_cast<double>(mem.params), static_cast<double>(mem.grads), static_cast<double>(mem.optimizer)});
  std::ostringstream os;
  os << "# parallel: " << layout_.describe() << " (" << W << " ranks; global batch = micro_batch x grad_accum x " << W
     << "), " << zt_->buckets() << " gradient buckets\n";
  os << "# ZeRO-" << layout_.zero << " fp32 formula per rank: params " << mib(want.params) << ", grads "
     << mib(want.grads) << ", optimizer " << mib(want.optimizer) << "\n";
  for (int r = 0; r < W; ++r)
    os << "#   rank " << r << " holds: params " << mib(all[3 * r]) << ", grads " << mib(all[3 * r + 1])
       << ", optimizer " << mib(all[3 * r + 2]) << "\n";
  // Payload: the buffer volume the collectives work on (what teddy measures per
  // call); wire: the ring model's bytes a rank sends, (W-1)/W of the volume, an
  // all-reduce counting twice (reduce-scatter + all-gather).
  const double psi = static_cast<double>(model_->flat_size()) * 4.0, ring = static_cast<double>(W - 1) / W;
  const double outer = static_cast<double>(zt_->outer_floats()) * 4.0;
  if (layout_.zero == 0)
    os << "# expected communication per step and rank: payload " << mib(psi) << " (one all-reduce of psi), wire "
       << mib(2 * psi * ring) << " (2 psi (W-1)/W, ring model)\n";
  else if (layout_.zero <= 2)
    os << "# expected communication per step and rank: payload " << mib(2 * psi)
       << " (reduce-scatter psi + all-gather psi" << (layout_.zero == 2 ? "; stage 2: a reduce-scatter per micro-batch" : "")
       << "), wire " << mib(2 * psi * ring) << " (2 psi (W-1)/W, ring model)\n";
  else
    os << "# expected communication per micro-batch and rank: payload " << mib(3 * psi - outer)
       << " (3 psi less the non-block tensors gathered once instead of twice), wire " << mib((3 * psi - outer) * ring)
       << " (ring model)\n";
  return os.str();
}

std::string DataParallelEngine::summary() {
  const int W = comm_.size();
  const CommStats st = comm_.stats();  // before the gather adds its own call
  const std::vector<double> all = gather_per_rank<double>(
      comm_, {static_cast<double>(st.payload_bytes), static_cast<double>(st.bytes_sent), st.seconds,
              static_cast<double>(st.calls)});
  std::ostringstream os;
  for (int r = 0; r < W; ++r)
    os << "rank " << r << " communication: payload " << mib(all[4 * r]) << " (measured), sent " << mib(all[4 * r + 1])
       << " (ring model), " << all[4 * r + 2] << " s in " << static_cast<uint64_t>(all[4 * r + 3]) << " calls\n";
  return os.str();
}

std::string DataParallelEngine::agree_on_error(const std::string& error) {
  const int W = comm_.size();
  const std::vector<int64_t> failed = gather_per_rank<int64_t>(comm_, {error.empty() ? 0 : 1});
  int first = -1;
  for (int r = 0; r < W && first < 0; ++r)
    if (failed[static_cast<size_t>(r)]) first = r;
  if (first < 0) return "";
  // The failed rank's message goes to everyone, so whichever rank reports names the file.
  int64_t len = comm_.rank() == first ? static_cast<int64_t>(error.size()) : 0;
  comm_.broadcast(&len, sizeof len, first);
  std::string msg(static_cast<size_t>(len), '\0');
  if (comm_.rank() == first) msg = error;
  comm_.broadcast(msg.data(), msg.size(), first);
  return W > 1 ? "rank " + std::to_string(first) + ": " + msg : msg;
}

std::string DataParallelEngine::save_checkpoint(const std::string& run_dir, const CheckpointState& state,
                                                int keep_last) {
  need_attached("save_checkpoint");
  // Every rank writes its ZeRO range of parameters, m and v (stage 0: the same equal
  // split) in parallel; rank 0 writes the manifest once all are durable.
  const int rank = comm_.rank(), W = comm_.size();
  const size_t n = model_->flat_size();
  const Range own = zt_->own();
  // Rank 0's pid and host name the temporary directory; every rank writes into it.
  std::string tmp = rank == 0 ? checkpoint_temp_dir(run_dir, state.step) : std::string();
  uint64_t len = tmp.size();
  comm_.broadcast(&len, sizeof len, 0);
  tmp.resize(len);
  comm_.broadcast(tmp.data(), len, 0);
  std::string err;
  if (rank == 0) {
    try {
      begin_checkpoint_dir(tmp);
    } catch (const std::exception& e) {
      err = e.what();
    }
  }
  if (std::string e = agree_on_error(err); !e.empty()) throw Error("checkpoint: " + e);

  ShardEntry mine;
  try {
    const size_t moff = layout_.zero == 0 ? own.begin : 0;  // stage 0 holds the whole m, v
    mine = write_checkpoint_shard(tmp, rank, W, own.begin, own.end, model_->params() + own.begin, zt_->m() + moff,
                                  zt_->v() + moff);
  } catch (const std::exception& e) {
    err = e.what();
  }
  if (std::string e = agree_on_error(err); !e.empty()) throw Error("checkpoint: " + e);
  // Sizes and checksums to rank 0.
  const std::vector<int64_t> meta =
      gather_per_rank<int64_t>(comm_, {static_cast<int64_t>(mine.bytes), static_cast<int64_t>(mine.xxh3)});

  std::string dir;
  if (rank == 0) {
    try {
      ShardedManifest man;
      man.world_size = W;
      man.zero_stage = layout_.zero;
      man.flat_size = n;
      man.optimizer_t = zt_->optimizer_t();
      man.state = state;
      man.model_config = model_->config();
      man.layout = model_->layout().params;
      for (int r = 0; r < W; ++r) {
        const Range rr = zt_->shards().range(r);
        man.shards.push_back({shard_file_name(r, W), rr.begin, rr.end, static_cast<uint64_t>(meta[2 * r]),
                              static_cast<uint64_t>(meta[2 * r + 1])});
      }
      dir = finish_sharded_checkpoint(run_dir, tmp, man, keep_last);
    } catch (const std::exception& e) {
      err = e.what();
    }
  }
  if (std::string e = agree_on_error(err); !e.empty()) throw Error("checkpoint: " + e);
  return rank == 0 ? dir : checkpoint_dir(run_dir, state.step);
}

std::optional<std::string> DataParallelEngine::latest_intact_checkpoint(const std::string& run_dir,
                                                                        std::vector<std::string>* skipped) {
  // Each rank hashes its share of the files; a checkpoint is intact when no rank objects.
  for (const std::string& d : list_checkpoints(run_dir)) {
    std::string err;
    try {
      inspect_checkpoint_part(d, comm_.rank(), comm_.size());
    } catch (const Error& e) {
      err = e.what();
    }
    const std::string e = agree_on_error(err);
    if (e.empty()) return d;
    if (skipped) skipped->push_back(d + ": " + e);
  }
  return std::nullopt;
}

CheckpointInfo DataParallelEngine::load_sharded(const std::string& dir) {
  // Each rank reads only its own range of the new layout from the shards that
  // overlap it (any writer count), then the ranks all-gather what their stage
  // keeps whole: parameters below stage 3, m and v at stage 0.
  const size_t n = model_->flat_size();
  const Range own = zt_->own();
  ShardedManifest man;
  std::vector<float> m, v;  // stage 0: whole buffers; otherwise the own range
  std::string err;
  try {
    man = read_shard_manifest(dir);
    check_shard_manifest_fits(dir, man, *model_);
    const size_t moff = layout_.zero == 0 ? own.begin : 0;
    m.assign(layout_.zero == 0 ? n : own.size(), 0.0f);
    v.assign(m.size(), 0.0f);
    read_shard_range(dir, man, own.begin, own.end, model_->params() + own.begin, m.data() + moff, v.data() + moff);
  } catch (const std::exception& e) {
    err = e.what();
  }
  if (std::string e = agree_on_error(err); !e.empty()) throw Error(e);
  const std::vector<size_t> counts = zt_->shards().counts({0, n});
  if (layout_.zero <= 2) comm_.all_gather(model_->params(), counts);
  if (layout_.zero == 0) {
    comm_.all_gather(m.data(), counts);
    comm_.all_gather(v.data(), counts);
    zt_->set_state(man.optimizer_t, m.data(), v.data());
  } else {
    zt_->set_own_state(man.optimizer_t, m.data(), v.data());
  }
  return checkpoint_info(dir, man);
}

CheckpointInfo DataParallelEngine::load_checkpoint(const std::string& dir) {
  need_attached("load_checkpoint");
  if (is_sharded_checkpoint(dir)) return load_sharded(dir);
  // The single-process format: every rank reads the whole files and keeps its part.
  AdamW full(model_->layout(), adam_);
  const CheckpointInfo info = teddy::load_checkpoint(dir, *model_, &full);
  zt_->set_state(full.t(), full.m(), full.v());
  zt_->release_params();  // stage 3 keeps its own range only
  return info;
}

}  // namespace teddy::dist
