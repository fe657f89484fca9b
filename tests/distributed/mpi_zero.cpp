// Launched by test_zero.cpp under `mpirun -np W`: trains a small model for N steps
// with ZeroTrainer (stage S) on W ranks, then rank 0 trains the same model on the
// same global batches in one process with train_step and compares the losses.
// Also checks per-rank state bytes against ZeRO's formulas and the bytes sent per
// step against 2Ψ. Prints one "key value" line per figure; exits 1 on a mismatch.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <chrono>
#include <thread>
#include <vector>

#include "model/model_f64.h"
#include "train/adamw_exact.h"
#include "teddy/core/error.h"
#include "teddy/distributed/mpi_communicator.h"
#include "teddy/distributed/zero_trainer.h"
#include "teddy/model/model.h"
#include "teddy/train/optim/grad_clip.h"
#include "teddy/train/train_step.h"

using namespace teddy;
using namespace teddy::dist;

namespace {

struct Args {
  int stage = 0, steps = 20, accum = 2, B = 2, T = 16;
  std::string family = "gpt2";
  size_t bucket_bytes = 4096;
  int fail_rank = -1, fail_step = -1;  // fault injection: this rank throws at this step
  int hang_rank = -1, hang_step = -1;  // ... or stops answering (sleeps) at this step
  double timeout = 0;                  // communicator watchdog (seconds, 0: off)
  int overlap = 1;                     // non-blocking bucket collectives
  int check_blocking = 0;              // also train with the other overlap setting; 1: params must match
                                       // bit for bit, 2: both runs verified step by step (StepVerifier)
};

ModelConfig config(const std::string& family) {
  const Family f = family_from_name(family);
  ModelConfig c = ModelConfig::for_family(f);
  c.vocab_size = 61;
  c.padded_vocab_size = 64;
  c.max_seq_len = 16;
  c.n_layer = 3;
  c.n_head = 2;
  c.n_kv_head = f == Family::gpt2 ? 2 : 1;
  c.d_model = 32;  // ~40k floats: shards span several pages, so resident bytes mean something
  c.d_ff = f == Family::gpt2 ? 128 : 64;
  c.validate();
  return c;
}

// Global row g of micro-batch a of step k: a learnable pattern (target = 3*token+1
// mod V with noise) and a varying number of ignored targets per row, so ranks hold
// different target counts and the global normalisation matters.
void fill_row(int k, int a, int g, int T, int V, int32_t* tok, int32_t* tgt) {
  uint64_t s = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(k * 1000003 + a * 1009 + g + 1);
  auto next = [&s] {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  };
  for (int t = 0; t < T; ++t) {
    tok[t] = static_cast<int32_t>(next() % static_cast<uint64_t>(V));
    tgt[t] = next() % 8 == 0 ? static_cast<int32_t>(next() % static_cast<uint64_t>(V)) : (3 * tok[t] + 1) % V;
    if (t < (g * 3 + k) % 5) tgt[t] = kIgnoreIndex;
  }
}

struct Micro {
  std::vector<int32_t> tok, tgt;
};

// Rows [first, first + rows) of every micro-batch of step k.
std::vector<Micro> make_step(const Args& a, int k, int first, int rows, int V) {
  std::vector<Micro> m(static_cast<size_t>(a.accum));
  for (int i = 0; i < a.accum; ++i) {
    m[i].tok.resize(static_cast<size_t>(rows) * a.T);
    m[i].tgt.resize(static_cast<size_t>(rows) * a.T);
    for (int r = 0; r < rows; ++r)
      fill_row(k, i, first + r, a.T, V, m[i].tok.data() + static_cast<size_t>(r) * a.T,
               m[i].tgt.data() + static_cast<size_t>(r) * a.T);
  }
  return m;
}

std::vector<Batch> batches(const std::vector<Micro>& m, int rows, int T) {
  std::vector<Batch> b(m.size());
  for (size_t i = 0; i < m.size(); ++i) {
    b[i].tokens = m[i].tok.data();
    b[i].targets = m[i].tgt.data();
    b[i].B = rows;
    b[i].T = T;
  }
  return b;
}

// Checks every step of a ZeroTrainer run against the math it must do, at the point
// the run is at: each step's loss, global gradient and gradient norm against the
// float64 twin (model/model_f64.h) at the step's parameters, and the parameters and
// optimizer state after it against one AdamW step in double from the state before,
// on the run's own (gathered) gradient. Rounding differs between ranks' partial sums
// and one process's, and Adam amplifies it along a trajectory (a parameter with a
// near-zero gradient can end anywhere in its trust region), so two runs' trajectories
// cannot be compared with a bound derived from eps; each step at its own point can:
//   loss: 2 max |logits error| per target + the cross-entropy kernel's rounding
//     (test::loss_sum_bound), the logits from one process's fp32 forward at the step's
//     parameters, twice for the run's own evaluation (the rule);
//   gradient: within twice one process's fp32 distance from float64 at the same point
//     (the rule; per matrix, the vectors pooled);
//   norm: | ||g|| - ||g64|| | <= ||g - g64|| + eps ||g64||;
//   AdamW, element by element: train/adamw_exact.h (its error model is written there).
// Collective: every rank calls before() and after(); rank 0 checks and prints.
class StepVerifier {
 public:
  StepVerifier(Communicator& comm, const ModelConfig& cfg, const AdamWConfig& ac, float clip, const char* what)
      : comm_(comm), ref_(cfg), ac_(ac), clip_(clip), what_(what) {}

  // The run's full parameters, m, v and gradient (stages >= 1 hold their own range of
  // the last three; stage 3 of the parameters too).
  void capture(Model& model, ZeroTrainer& zt, bool grads) {
    const size_t n = model.flat_size();
    const auto counts = zt.shards().counts({0, n});
    auto full = [&](const float* own_or_all, bool sharded) {
      std::vector<float> f(n, 0.0f);
      if (!sharded) {
        std::copy(own_or_all, own_or_all + n, f.begin());
      } else {
        const Range r = zt.own();
        std::copy(own_or_all, own_or_all + r.size(), f.begin() + static_cast<ptrdiff_t>(r.begin));
        comm_.all_gather(f.data(), counts);
      }
      return f;
    };
    zt.gather_all_params();
    p_ = full(model.params(), false);
    if (zt.stage() >= 3) zt.release_params();
    if (zt.optimizer_t() > 0) {
      m_ = full(zt.m(), zt.stage() >= 1);
      v_ = full(zt.v(), zt.stage() >= 1);
    } else {
      m_.assign(n, 0.0f);
      v_.assign(n, 0.0f);
    }
    if (grads) g_ = full(model.grads() + (zt.stage() >= 1 ? zt.own().begin : 0), zt.stage() >= 1);
    t_ = zt.optimizer_t();
  }

  void before(Model& model, ZeroTrainer& zt) {
    capture(model, zt, false);
    p0_ = p_, m0_ = m_, v0_ = v_;
  }

  // After step k (micro-batches `global`: every rank's rows, as one process runs them).
  void after(Model& model, ZeroTrainer& zt, const StepStats& st, const std::vector<Batch>& global, float lr, int k) {
    capture(model, zt, true);
    if (comm_.rank() != 0) return;
    const size_t n = model.flat_size();
    const int V = ref_.config().vocab_size, Vp = ref_.config().padded_vocab_size;
    // One process at the same point: fp32 logits and gradient, and the float64 twin.
    std::copy(p0_.begin(), p0_.end(), ref_.params());
    int64_t count = 0;
    for (const Batch& b : global) count += count_targets(b);
    const float dloss = static_cast<float>(1.0 / static_cast<double>(count));
    ref_.zero_grad();
    std::vector<double> g64(n, 0.0);
    double loss64 = 0, loss_bound = 0;
    for (const Batch& b : global) {
      std::vector<float> z(static_cast<size_t>(b.B) * b.T * Vp);
      ref_.forward(b, z.data());
      const test::F64Pass tw = test::f64_pass(ref_, b, true, true, dloss);
      for (size_t i = 0; i < n; ++i) g64[i] += tw.grads[i];
      loss64 += tw.loss_sum;
      loss_bound += test::loss_sum_bound(z.data(), tw.logits.data(), b.targets, b.B * b.T, V, Vp, 2, tw.loss_sum);
    }
    for (const Batch& b : global) ref_.forward_backward(b, dloss);
    loss64 /= static_cast<double>(count);
    loss_bound /= static_cast<double>(count);
    const std::string at = what_ + " step " + std::to_string(k + 1);
    auto fail = [&](const std::string& m) {
      std::printf("FAIL %s: %s\n", at.c_str(), m.c_str());
      ok = false;
    };
    worst_[0] = std::max(worst_[0], std::fabs(st.loss - loss64) / loss_bound);
    if (!(std::fabs(st.loss - loss64) <= loss_bound))
      fail("loss " + std::to_string(st.loss) + " float64 " + std::to_string(loss64));
    // Gradient, under the rule.
    test::Dist pooled, all;
    double used = 0;
    for (const ParamInfo& pi : ref_.layout().params) {
      const test::Dist d = test::dist(g_.data() + pi.offset, ref_.grads() + pi.offset, g64.data() + pi.offset, pi.numel);
      all.add(d);
      if (pi.shape.size() == 1) {
        pooled.add(d);
      } else {
        used = std::max(used, d.used());
        if (!(d.x_abs <= d.bound())) fail("gradient of " + pi.name + " beyond twice one process's rounding");
      }
    }
    used = std::max(used, pooled.used());
    if (!(pooled.x_abs <= pooled.bound())) fail("gradient vectors beyond twice one process's rounding");
    worst_[1] = std::max(worst_[1], used);
    const double ne = std::fabs(st.grad_norm - all.norm64), nb = all.x_abs + test::kEpsF32 * all.norm64;
    worst_[2] = std::max(worst_[2], ne / nb);
    if (!(ne <= nb)) fail("grad norm " + std::to_string(st.grad_norm) + " float64 " + std::to_string(all.norm64));
    // One AdamW step in double from the state before, on the run's gradient.
    double ss = 0;
    for (float x : g_) ss += static_cast<double>(x) * x;
    const double scale = clip_scale(std::sqrt(ss), clip_);
    const test::AdamWStepConstants kc(ac_, t_);
    std::vector<bool> decay(n, false);
    for (const ParamInfo& pi : ref_.layout().params)
      for (size_t i = 0; i < pi.numel; ++i) decay[pi.offset + i] = pi.decay;
    double worst = 0;
    size_t worst_at = 0;
    for (size_t i = 0; i < n; ++i) {
      const double wd = decay[i] ? ac_.weight_decay : 0.0;
      const test::AdamWElementStep e =
          test::adamw_element_step(static_cast<double>(g_[i]) * scale, p0_[i], m0_[i], v0_[i], ac_, wd, lr, kc);
      for (const auto& [got, want, bound] : {std::tuple{static_cast<double>(p_[i]), e.p, e.ep},
                                             std::tuple{static_cast<double>(m_[i]), e.m, e.em},
                                             std::tuple{static_cast<double>(v_[i]), e.v, e.ev}}) {
        const double d = std::fabs(got - want);
        if (d == 0) continue;
        if (!(d <= bound)) {
          if (worst <= 1) worst_at = i;
          worst = std::max(worst, bound > 0 ? d / bound : INFINITY);
        } else {
          worst = std::max(worst, d / bound);
        }
      }
    }
    worst_[3] = std::max(worst_[3], worst);
    if (!(worst <= 1)) fail("AdamW step off at element " + std::to_string(worst_at) + " (" + std::to_string(worst) + " of its bound)");
  }

  void report() const {
    if (comm_.rank() == 0)
      std::printf("%s verified_steps: largest fraction of a bound used: loss %.3g gradient %.3g grad_norm %.3g adamw %.3g\n",
                  what_.c_str(), worst_[0], worst_[1], worst_[2], worst_[3]);
  }
  bool ok = true;

 private:
  Communicator& comm_;
  Model ref_;
  AdamWConfig ac_;
  float clip_;
  std::string what_;
  std::vector<float> p_, m_, v_, g_, p0_, m0_, v0_;
  int64_t t_ = 0;
  double worst_[4] = {0, 0, 0, 0};
};

int run(Communicator& comm, const Args& a) {
  const int W = comm.size(), rank = comm.rank();
  const ModelConfig cfg = config(a.family);
  AdamWConfig ac;
  ac.lr = 3e-3f;
  const float clip = 1.0f;
  bool ok = true;

  Model model(cfg);
  model.init_weights(1234);
  std::vector<double> losses;
  uint64_t step_bytes = 0, step_payload = 0;
  size_t outer = 0;
  StepVerifier verifier(comm, cfg, ac, clip, a.overlap ? "overlapped" : "blocking");
  {
    ZeroTrainer zt(model, ac, comm, a.stage, a.bucket_bytes, a.overlap != 0);
    outer = zt.outer_floats();
    auto one_step = [&](int k) {
      if (rank == a.fail_rank && k == a.fail_step) throw Error("injected failure at step " + std::to_string(k));
      if (rank == a.hang_rank && k == a.hang_step) std::this_thread::sleep_for(std::chrono::hours(1));
      const auto data = make_step(a, k, rank * a.B, a.B, cfg.vocab_size);
      const auto b = batches(data, a.B, a.T);
      verifier.before(model, zt);
      comm.reset_stats();
      const StepStats st = zt.step(b, ac.lr, clip);
      step_bytes = comm.stats().bytes_sent;
      step_payload = comm.stats().payload_bytes;
      losses.push_back(st.loss);
      const auto global = make_step(a, k, 0, W * a.B, cfg.vocab_size);
      verifier.after(model, zt, st, batches(global, W * a.B, a.T), ac.lr, k);
    };
    one_step(0);
    // Per-rank state bytes after a step (resident pages), gathered to rank 0.
    const StateBytes mem = zt.memory(), want = ZeroTrainer::expected_memory(model.flat_size(), a.stage, W);
    const std::vector<int64_t> all = gather_per_rank<int64_t>(
        comm, {static_cast<int64_t>(mem.params), static_cast<int64_t>(mem.grads), static_cast<int64_t>(mem.optimizer)});
    if (rank == 0) {
      std::printf("psi_floats %zu buckets %zu\n", model.flat_size(), zt.buckets());
      for (int r = 0; r < W; ++r)
        std::printf("rank %d bytes params %lld grads %lld optimizer %lld (formula %zu %zu %zu)\n", r,
                    static_cast<long long>(all[3 * r]), static_cast<long long>(all[3 * r + 1]),
                    static_cast<long long>(all[3 * r + 2]), want.params, want.grads, want.optimizer);
    }
    // The formula uses the largest shard (rank 0's); the other ranks hold at most
    // that. Resident bytes count whole pages: a buffer's own range may share a page
    // with its neighbours at each end, and the buffer's ends are not page aligned.
    // Up to 4 extra pages seen: the range ends, plus pages MPI read as zero pages.
    const double page = 4096, slack = 4 * page;
    auto near = [&](double got, double formula, double lo_slack) {
      return got <= formula + slack && got >= formula - lo_slack;
    };
    const double lo = rank == 0 ? page : 1e18;  // rank 0 holds the full shard; others may hold less
    if (!near(mem.params, want.params, a.stage >= 3 ? lo : page) || !near(mem.grads, want.grads, a.stage >= 2 ? lo : page) ||
        !near(mem.optimizer, want.optimizer, rank == 0 ? 0 : 1e18)) {
      std::printf("FAIL rank %d state bytes differ from the ZeRO formula\n", rank);
      ok = false;
    }
    for (int k = 1; k < a.steps; ++k) one_step(k);
    zt.gather_all_params();  // stage 3 keeps only the own range; the comparison needs all
  }
  // Expected bytes per step: the 2Ψ of ZeRO (all-reduce = reduce-scatter + all-gather),
  // plus stage 2's extra reduce-scatter per extra micro-batch, as ring bytes
  // (W-1)/W * 4 bytes per element; the scalar all-reduces add < 64 bytes.
  const double psi = static_cast<double>(model.flat_size());
  const double rs = (W - 1) * 4.0 * psi / W;
  // Stage 3 per micro-batch: all-gather each block twice and the rest once, reduce-scatter
  // everything: 3Ψ minus the non-block part; no all-gather after the update.
  const double expect = a.stage == 3 ? a.accum * (3 * rs - (W - 1) * 4.0 * static_cast<double>(outer) / W)
                                     : 2 * rs + (a.stage == 2 ? (a.accum - 1) * rs : 0.0);
  std::printf("rank %d comm_bytes_per_step %llu expected %.0f (2*psi*4*(W-1)/W = %.0f)\n", rank,
              static_cast<unsigned long long>(step_bytes), expect, 2 * rs);
  // Payload (measured from the calls, exact): the gradient volume each collective
  // works on (stage 0: one all-reduce of Ψ; 1: reduce-scatter Ψ + all-gather Ψ;
  // 2: a reduce-scatter of Ψ per micro-batch + all-gather Ψ; 3: per micro-batch a
  // reduce-scatter of Ψ and gathers of 2Ψ - outer) plus the scalar all-reduces:
  // target count (int64), loss sum and count (2 doubles), stages 1-3 the squared
  // gradient norm (double).
  const uint64_t P = model.flat_size() * 4, O = outer * 4, K = static_cast<uint64_t>(a.accum);
  const uint64_t want_payload = (a.stage == 0   ? P
                                 : a.stage == 1 ? 2 * P
                                 : a.stage == 2 ? K * P + P
                                                : K * (3 * P - O)) +
                                8 + 16 + (a.stage >= 1 ? 8 : 0);
  std::printf("rank %d comm_payload_per_step %llu expected %llu\n", rank, static_cast<unsigned long long>(step_payload),
              static_cast<unsigned long long>(want_payload));
  if (step_payload != want_payload) {
    std::printf("FAIL rank %d payload bytes\n", rank);
    ok = false;
  }
  if (std::fabs(static_cast<double>(step_bytes) - expect) > 256) {  // scalar all-reduces, per-call rounding
    std::printf("FAIL rank %d comm bytes\n", rank);
    ok = false;
  }

  if (a.check_blocking != 0) {
    // The same run with the other overlap setting: the collectives and their
    // inputs are the same, only when they run differs.
    Model other(cfg);
    other.init_weights(1234);
    StepVerifier other_verifier(comm, cfg, ac, clip, a.overlap ? "blocking" : "overlapped");
    {
      ZeroTrainer zt(other, ac, comm, a.stage, a.bucket_bytes, a.overlap == 0);
      for (int k = 0; k < a.steps; ++k) {
        const auto data = make_step(a, k, rank * a.B, a.B, cfg.vocab_size);
        other_verifier.before(other, zt);
        const StepStats st = zt.step(batches(data, a.B, a.T), ac.lr, clip);
        const auto global = make_step(a, k, 0, W * a.B, cfg.vocab_size);
        other_verifier.after(other, zt, st, batches(global, W * a.B, a.T), ac.lr, k);
      }
      zt.gather_all_params();
    }
    other_verifier.report();
    ok = ok && other_verifier.ok;
    // How far apart: ||a - b|| / ||b|| over the whole buffer, and the largest |a - b|.
    // (Not an element-wise relative bound: a parameter near zero, a bias, can end
    // with the other sign, a relative difference near 2 at an absolute one ~1e-6.)
    size_t differ = 0;
    double d2 = 0, n2 = 0, max_abs = 0;
    for (size_t i = 0; i < model.flat_size(); ++i) {
      const double x = model.params()[i], y = other.params()[i];
      differ += std::memcmp(model.params() + i, other.params() + i, sizeof(float)) != 0;
      d2 += (x - y) * (x - y);
      n2 += y * y;
      max_abs = std::max(max_abs, std::fabs(x - y));
    }
    const double rel_l2 = n2 > 0 ? std::sqrt(d2 / n2) : 0.0;
    // And every rank ends with rank 0's parameters bit for bit (stage 0 updates
    // its own copy from its all-reduced gradient).
    std::vector<float> root(model.params(), model.params() + model.flat_size());
    comm.broadcast(root.data(), root.size() * sizeof(float), 0);
    const bool same_as_rank0 = std::memcmp(root.data(), model.params(), root.size() * sizeof(float)) == 0;
    std::printf("rank %d overlap_vs_blocking differing_params %zu of %zu, rel_l2 %.3g, max_abs %.3g, same_as_rank0 %d\n",
                rank, differ, model.flat_size(), rel_l2, max_abs, same_as_rank0 ? 1 : 0);
    if (!same_as_rank0) {
      std::printf("FAIL rank %d parameters differ from rank 0's\n", rank);
      ok = false;
    }
    if (differ && a.check_blocking == 1) {
      std::printf("FAIL rank %d overlapped and blocking runs differ\n", rank);
      ok = false;
    }
    // At 3 ranks another summation order of the same partial sums: rounding, which
    // Adam amplifies along the 20 steps (elements with near-zero gradients can end
    // anywhere in their trust region), so no bound from eps holds for the distance
    // itself; instead both runs had every step verified at its own point
    // (StepVerifier), and rel_l2 / max_abs are printed for information.
  }

  if (rank == 0) {
    Model ref(cfg);
    ref.init_weights(1234);
    AdamW opt(ref.layout(), ac);
    double worst = 0;
    for (int k = 0; k < a.steps; ++k) {
      const auto data = make_step(a, k, 0, W * a.B, cfg.vocab_size);
      const auto b = batches(data, W * a.B, a.T);
      const StepStats st = train_step(ref, opt, b, ac.lr, clip);
      const double d = std::fabs(losses[k] - st.loss) / std::fabs(st.loss);
      worst = std::max(worst, d);
      std::printf("step %d loss %.9f single %.9f rel %.3g\n", k + 1, losses[k], st.loss, d);
    }
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.flat_size(); ++i) {
      const double e = static_cast<double>(model.params()[i]) - ref.params()[i];
      num += e * e;
      den += static_cast<double>(ref.params()[i]) * ref.params()[i];
    }
    std::printf("worst_loss_rel %.3g params_rel %.3g first_loss %.6f last_loss %.6f\n", worst,
                std::sqrt(num / den), losses.front(), losses.back());
    // For information: the single process's trajectory is another fp32 rounding of the
    // same training, apart from this run's by Adam-amplified rounding (see
    // StepVerifier, which checks every step of this run at its own point instead).
    if (!(losses.back() < losses.front() - 0.1)) {
      std::printf("FAIL the loss did not go down\n");
      ok = false;
    }
  }
  verifier.report();
  ok = ok && verifier.ok;
  int64_t bad = ok ? 0 : 1;
  comm.all_reduce_sum(&bad, 1);
  return bad == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--stage") a.stage = std::atoi(v.c_str());
    else if (k == "--steps") a.steps = std::atoi(v.c_str());
    else if (k == "--accum") a.accum = std::atoi(v.c_str());
    else if (k == "--family") a.family = v;
    else if (k == "--fail-rank") a.fail_rank = std::atoi(v.c_str());
    else if (k == "--fail-step") a.fail_step = std::atoi(v.c_str());
    else if (k == "--hang-rank") a.hang_rank = std::atoi(v.c_str());
    else if (k == "--hang-step") a.hang_step = std::atoi(v.c_str());
    else if (k == "--timeout") a.timeout = std::atof(v.c_str());
    else if (k == "--overlap") a.overlap = std::atoi(v.c_str());
    else if (k == "--check-blocking") a.check_blocking = std::atoi(v.c_str());
    else if (k == "--bucket-bytes") a.bucket_bytes = static_cast<size_t>(std::atoll(v.c_str()));
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  MpiRuntime mpi;
  // The CLI's pattern for a hung collective (cli/job.cpp): the library reports it, the
  // caller names the rank; when the handler returns, the communicator ends the job.
  auto comm = mpi.world(a.timeout, true, [](const HungCall& h) {
    std::fprintf(stderr, "teddy: error on rank %d of %d: %s, ending the job\n", h.rank, h.size, h.message().c_str());
    std::fflush(stderr);
  });
  try {
    const int rc = run(*comm, a);
    std::fflush(stdout);
    return rc;
  } catch (const std::exception& e) {
    // The CLI's pattern: name the failed rank, then end the whole job.
    std::fprintf(stderr, "teddy: error on rank %d of %d: %s\n", comm->rank(), comm->size(), e.what());
    std::fflush(stderr);
    comm->abort(1, e.what());
  }
}
