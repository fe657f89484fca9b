#include "teddy/distributed/zero_trainer.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

#include "teddy/core/error.h"
#include "teddy/distributed/resident_pages.h"
#include "teddy/kernels/backend.h"
#include "teddy/train/optim/grad_clip.h"

namespace teddy {

int64_t count_targets(const Batch& b) {
  if (b.targets == nullptr) throw Error("training step: a micro-batch has no targets");
  const int64_t n = static_cast<int64_t>(b.B) * b.T;
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i) c += b.targets[i] != kIgnoreIndex;
  return c;
}

}  // namespace teddy

namespace teddy::dist {

namespace {

// Completion key of a tensor: its block, -1 for tensors before the first block
// (embeddings; with tied embeddings their gradient is finished last, by the
// encoder backward), n_layer for those after the last (final norm, untied head),
// whose gradients are complete before the first block backward runs.
int completion_key(const ParamLayout& layout, const ParamInfo& p, int n_layer) {
  if (p.layer >= 0) return p.layer;
  size_t first_block = SIZE_MAX;
  for (const ParamInfo& q : layout.params)
    if (q.layer >= 0) first_block = std::min(first_block, q.offset);
  return p.offset < first_block ? -1 : n_layer;
}

}  // namespace

ZeroTrainer::ZeroTrainer(Model& model, const AdamWConfig& cfg, Communicator& comm, int stage, size_t bucket_bytes,
                         bool overlap)
    : model_(model), comm_(comm), stage_(stage), shards_(model.flat_size(), comm.size()),
      own_(shards_.range(comm.rank())), overlap_(overlap) {
  if (stage < 0 || stage > 3) throw ConfigError("dist.zero: must be 0, 1, 2 or 3 (got " + std::to_string(stage) + ")");
  if (stage_ == 0) {
    own_opt_ = std::make_unique<AdamW>(model.layout(), cfg, model.context());
    full_opt_ = own_opt_.get();
  } else {
    shard_opt_ = std::make_unique<ShardedAdamW>(model.layout(), cfg, own_, model.context());
  }
  setup(bucket_bytes);
}

ZeroTrainer::ZeroTrainer(Model& model, AdamW& optimizer, Communicator& comm)
    : model_(model), comm_(comm), stage_(0), shards_(model.flat_size(), comm.size()),
      own_(shards_.range(comm.rank())), full_opt_(&optimizer) {
  if (optimizer.size() != model.flat_size())
    throw Error("training step: the optimizer has " + std::to_string(optimizer.size()) + " floats, model " +
                std::to_string(model.flat_size()));
  setup(size_t{8} << 20);
}

void ZeroTrainer::setup(size_t bucket_bytes) {
  // Every rank starts from rank 0's weights (they are equal when all ranks use the
  // same seed; the broadcast makes it so even when the init is not deterministic).
  if (comm_.size() > 1) comm_.broadcast(model_.params(), model_.flat_size() * sizeof(float), 0);
  const ParamLayout& layout = model_.layout();
  const size_t n = model_.flat_size();
  const int L = model_.config().n_layer;
  // Buckets from the end of the flat buffer backwards (the order backward completes
  // them), each at least bucket_bytes unless it is the last, covering [0, n) exactly.
  const size_t want = std::max<size_t>(bucket_bytes / sizeof(float), 1);
  size_t hi = n;
  int key = INT_MAX;
  for (size_t i = layout.params.size(); i-- > 0;) {
    const ParamInfo& p = layout.params[i];
    key = std::min(key, completion_key(layout, p, L));
    if (hi - p.offset >= want || i == 0) {
      const size_t lo = i == 0 ? 0 : p.offset;
      buckets_.push_back({{lo, hi}, key});
      hi = lo;
      key = INT_MAX;
    }
  }
  blocks_.assign(static_cast<size_t>(L), Range{SIZE_MAX, 0});
  for (const ParamInfo& p : layout.params) {
    if (p.layer < 0) continue;
    Range& r = blocks_[static_cast<size_t>(p.layer)];
    r.begin = std::min(r.begin, p.offset);
    r.end = std::max(r.end, p.offset + p.numel);
  }
  for (size_t l = 1; l < blocks_.size(); ++l) blocks_[l].begin = blocks_[l - 1].end;  // padding goes with the block
  head_ = {0, L > 0 ? blocks_[0].begin : n};
  tail_ = {L > 0 ? blocks_.back().end : n, n};
  if (stage_ >= 2) release_range(model_.grads(), {0, n}, own_);
  if (stage_ >= 3) release_param_range({0, n});

  Model::LayerHooks h;
  h.before_backward = [this, L](int l) {
    poll();
    if (stage_ >= 3) gather(blocks_[static_cast<size_t>(l)]);
    if (l == L - 1) flush_through(L);  // final norm / head
  };
  h.after_backward = [this](int l) {
    if (stage_ >= 3) release_param_range(blocks_[static_cast<size_t>(l)]);
    flush_through(l);
    poll();
  };
  if (stage_ >= 3) {
    h.on_start = [this] {
      gather(head_);
      gather(tail_);
    };
    // All of it, not just head and tail: pages shared by two blocks' ranges were
    // only zeroed when the first of them was released.
    h.on_end = [this] { release_param_range({0, model_.flat_size()}); };
    h.before_forward = [this](int l) { gather(blocks_[static_cast<size_t>(l)]); };
    h.after_forward = [this](int l) { release_param_range(blocks_[static_cast<size_t>(l)]); };
  }
  model_.set_layer_hooks(std::move(h));
}

ZeroTrainer::~ZeroTrainer() {
  model_.set_layer_hooks({});
  // An exception mid-backward can leave collectives started; MPI must finish with
  // the buffers before they go.
  try {
    wait_all();
  } catch (...) {
  }
}

void ZeroTrainer::poll() {
  while (!in_flight_.empty()) {
    if (!comm_.test(in_flight_.front().req)) return;  // the test moves the later ones along too
    if (stage_ >= 2) release_range(model_.grads(), in_flight_.front().r, own_);
    in_flight_.erase(in_flight_.begin());
  }
}

void ZeroTrainer::wait_all() {
  for (const InFlight& f : in_flight_) {
    comm_.wait(f.req);
    if (stage_ >= 2) release_range(model_.grads(), f.r, own_);
  }
  in_flight_.clear();
}

void ZeroTrainer::gather(Range r) {
  if (r.size() == 0) return;
  comm_.all_gather(model_.params() + r.begin, shards_.counts(r));
}

void ZeroTrainer::release_param_range(Range r) { release_range(model_.params(), r, own_); }

void ZeroTrainer::gather_all_params() {
  if (stage_ >= 3) gather({0, model_.flat_size()});
}

void ZeroTrainer::release_params() {
  if (stage_ >= 3) release_param_range({0, model_.flat_size()});
}

size_t ZeroTrainer::outer_floats() const { return head_.size() + tail_.size(); }

void ZeroTrainer::flush_through(int key) {
  if (!reducing_) return;
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].key >= key) reduce_bucket(buckets_[next_bucket_++]);
}

void ZeroTrainer::reduce_bucket(const Bucket& b) {
  float* g = model_.grads() + b.r.begin;
  if (overlap_) {
    const CommRequest req = stage_ == 0 ? comm_.start_all_reduce_sum(g, b.r.size())
                                        : comm_.start_reduce_scatter_sum(g, shards_.counts(b.r));
    in_flight_.push_back({req, b.r});  // stage 2 frees the rest of the bucket once it completes
    return;
  }
  if (stage_ == 0) {
    comm_.all_reduce_sum(g, b.r.size());
    return;
  }
  const std::vector<size_t> counts = shards_.counts(b.r);
  comm_.reduce_scatter_sum(g, counts);
  if (stage_ >= 2) release_range(model_.grads(), b.r, own_);  // the rest of the bucket is done with
}

void ZeroTrainer::enable_loss_scaling(const LossScalerConfig& cfg) {
  own_scaler_ = std::make_unique<LossScaler>(cfg);
  scaler_ = own_scaler_.get();
}

void ZeroTrainer::set_loss_scaler(LossScaler* scaler) {
  own_scaler_.reset();
  scaler_ = scaler;
}

StepStats ZeroTrainer::step(std::span<const Batch> micro, float lr, float max_grad_norm) {
  const CommStats before = comm_.stats();
  const StepStats st = step_impl(micro, lr, max_grad_norm);
  last_bytes_ = comm_.stats().bytes_sent - before.bytes_sent;
  last_payload_ = comm_.stats().payload_bytes - before.payload_bytes;
  last_seconds_ = comm_.stats().seconds - before.seconds;
  return st;
}

StepStats ZeroTrainer::step_impl(std::span<const Batch> micro, float lr, float max_grad_norm) {
  if (micro.empty()) throw Error("training step: no micro-batches");
  int64_t total = 0;
  for (const Batch& b : micro) total += count_targets(b);
  comm_.all_reduce_sum(&total, 1);
  const float scale = scaler_ ? scaler_->scale() : 1.0f;
  const float dloss = total > 0 ? static_cast<float>(1.0 / static_cast<double>(total)) * scale : 0.0f;

  // Stages 0-1: the first micro-batch overwrites the gradients (Grad::set, no
  // zero_grad pass; bit-identical). Stage 2/3: only the own range holds anything
  // (the last step's reduced gradient); the rest is zero since the release that ends
  // every step (below; the constructor's before the first), so zero the own range and add.
  if (stage_ >= 2) std::memset(model_.grads() + own_.begin, 0, own_.size() * sizeof(float));
  double loss[2] = {0, 0};  // sum, count
  for (size_t i = 0; i < micro.size(); ++i) {
    reducing_ = stage_ >= 2 || i + 1 == micro.size();
    next_bucket_ = 0;
    const kernels::Grad mode = i == 0 && stage_ <= 1 ? kernels::Grad::set : kernels::Grad::add;
    const LossSum s = model_.forward_backward(micro[i], dloss, mode);
    flush_through(INT_MIN);  // embeddings (and anything left)
    wait_all();              // before the next micro-batch accumulates or the optimizer reads
    reducing_ = false;
    loss[0] += s.sum;
    loss[1] += static_cast<double>(s.count);
  }
  // Stage 2/3: each bucket's floats outside the own range were zeroed as its
  // reduce-scatter completed (its whole pages returned to the OS), which is all the
  // next micro-batch needs. A page two buckets share was only zeroed in place, so
  // one sweep per step returns those pages (the next backward touches them again
  // anyway, so a sweep per micro-batch bought nothing).
  if (stage_ >= 2) release_range(model_.grads(), {0, model_.flat_size()}, own_);
  comm_.all_reduce_sum(loss, 2);
  if (static_cast<int64_t>(loss[1]) != total)
    throw Error("training step: model counted " + std::to_string(static_cast<int64_t>(loss[1])) +
                " targets, expected " + std::to_string(total));

  StepStats st;
  st.loss = loss[1] > 0 ? loss[0] / loss[1] : 0.0;
  st.tokens = total;
  st.lr = lr;
  st.loss_scale = scale;
  float* P = model_.params();
  const float* g = stage_ == 0 ? model_.grads() : model_.grads() + own_.begin;
  double scaled_norm;
  if (stage_ == 0) {
    scaled_norm = grad_norm(g, model_.flat_size(), model_.context());
  } else {
    double ss;
    {
      const ThreadScope threads(model_.context());
      ss = model_.context().ops().sum_squares(g, static_cast<int64_t>(own_.size()));
    }
    comm_.all_reduce_sum(&ss, 1);
    scaled_norm = std::sqrt(ss);
  }
  st.grad_norm = scaled_norm / scale;
  // The norm is accumulated in double, which float squares cannot overflow: it is
  // finite exactly when every (reduced) gradient is, and it is the same on every rank.
  if (scaler_ && !scaler_->update(std::isfinite(scaled_norm))) {
    st.skipped = true;  // overflow: keep the parameters and moments, retry with half the scale
    return st;
  }
  // scale is a power of two, so (scale*g) * (c/scale) rounds exactly like g * c.
  const float grad_scale = clip_scale(st.grad_norm, max_grad_norm) / scale;
  if (stage_ == 0) {
    full_opt_->step(P, g, lr, grad_scale);
    return st;
  }
  shard_opt_->step(P, g, lr, grad_scale);
  if (stage_ <= 2) comm_.all_gather(P, shards_.counts({0, model_.flat_size()}));
  return st;
}

StateBytes ZeroTrainer::memory() const {
  StateBytes b;
  b.params = resident_bytes(model_.params(), model_.param_bytes());
  b.grads = resident_bytes(model_.grads(), model_.grad_bytes());
  b.optimizer = optimizer_bytes();
  return b;
}

size_t ZeroTrainer::optimizer_bytes() const {
  return stage_ == 0 ? 2 * full_opt_->size() * sizeof(float) : shard_opt_->bytes();
}

StateBytes ZeroTrainer::expected_memory(size_t n, int stage, int world) {
  const FlatShards s(n, world);
  const size_t own = s.range(0).size();  // the largest range
  StateBytes b;
  b.params = 4 * n;
  b.grads = stage >= 2 ? 4 * own : 4 * n;
  b.optimizer = stage >= 1 ? 8 * own : 8 * n;
  if (stage >= 3) b.params = 4 * own;
  return b;
}

int64_t ZeroTrainer::optimizer_t() const { return stage_ == 0 ? full_opt_->t() : shard_opt_->t(); }
const float* ZeroTrainer::m() const { return stage_ == 0 ? full_opt_->m() : shard_opt_->m(); }
const float* ZeroTrainer::v() const { return stage_ == 0 ? full_opt_->v() : shard_opt_->v(); }

void ZeroTrainer::set_state(int64_t t, const float* m_full, const float* v_full) {
  if (stage_ == 0) {
    full_opt_->set_state(t, m_full, v_full);
    return;
  }
  std::memcpy(shard_opt_->m(), m_full + own_.begin, own_.size() * sizeof(float));
  std::memcpy(shard_opt_->v(), v_full + own_.begin, own_.size() * sizeof(float));
  shard_opt_->set_t(t);
}

void ZeroTrainer::set_own_state(int64_t t, const float* m_own, const float* v_own) {
  if (stage_ == 0) throw Error("ZeroTrainer::set_own_state: stage 0 holds the whole buffer (use set_state)");
  std::memcpy(shard_opt_->m(), m_own, own_.size() * sizeof(float));
  std::memcpy(shard_opt_->v(), v_own, own_.size() * sizeof(float));
  shard_opt_->set_t(t);
}

}  // namespace teddy::dist
