// Step time of ZeRO stages 0-3 on a preset model, under mpirun (data parallel) or
// alone (one process, the baseline), with the communication share of the step:
//   OMP_NUM_THREADS=1 mpirun --oversubscribe -np 2 ./bench_zero --preset gpt2-124M --stage 1 --B 1
//   OMP_NUM_THREADS=2 ./bench_zero --preset gpt2-124M --stage 0 --B 2       # same global batch
//   ... --overlap 0                                  # blocking bucket collectives
//   ... --progress 0                                 # started collectives advance only in test/wait
// Synthetic tokens; 1 warm-up step then --steps timed steps (median reported).
// Prints one line from rank 0 with the step time, the seconds rank 0 spent inside
// communication calls (blocked, or progressing started collectives: the exposed
// communication), the payload bytes handed to the collectives per step (measured)
// and the ring-model bytes on the wire (modelled), and the resident state bytes
// per rank (peak over ranks).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "teddy/core/memory_usage.h"
#include "teddy/distributed/mpi_communicator.h"
#include "teddy/distributed/zero_trainer.h"

using namespace teddy;
using namespace teddy::dist;

int main(int argc, char** argv) {
  std::string preset = "gpt2-124M";
  int stage = 0, B = 1, T = 64, steps = 3, overlap = 1, progress = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--preset") preset = v;
    else if (k == "--stage") stage = std::atoi(v.c_str());
    else if (k == "--B") B = std::atoi(v.c_str());
    else if (k == "--T") T = std::atoi(v.c_str());
    else if (k == "--steps") steps = std::atoi(v.c_str());
    else if (k == "--overlap") overlap = std::atoi(v.c_str());
    else if (k == "--progress") progress = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  std::unique_ptr<MpiRuntime> mpi;
  std::unique_ptr<Communicator> comm;
  if (launched_by_mpi()) {
    mpi = std::make_unique<MpiRuntime>();
    comm = mpi->world(0, progress != 0);
    progress = progress != 0 && mpi->thread_multiple();  // what it got
  } else {
    comm = std::make_unique<SelfCommunicator>();
    progress = 0;
  }
  try {
    ModelConfig cfg = ModelConfig::preset(preset);
    Model model(cfg);
    model.init_weights(1);
    AdamWConfig ac;
    ZeroTrainer zt(model, ac, *comm, stage, size_t{8} << 20, overlap != 0);
    std::vector<int32_t> tok(static_cast<size_t>(B) * T), tgt(tok.size());
    std::mt19937 rng(static_cast<unsigned>(comm->rank() + 1));
    std::vector<double> step_s, comm_s;
    uint64_t bytes = 0, payload = 0;
    for (int k = 0; k <= steps; ++k) {
      for (size_t i = 0; i < tok.size(); ++i) {
        tok[i] = static_cast<int32_t>(rng() % cfg.vocab_size);
        tgt[i] = static_cast<int32_t>(rng() % cfg.vocab_size);
      }
      Batch b{tok.data(), tgt.data(), nullptr, nullptr, B, T};
      comm->barrier();
      comm->reset_stats();
      const auto t0 = std::chrono::steady_clock::now();
      zt.step(std::span<const Batch>(&b, 1), 1e-4f, 1.0f);
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (k == 0) continue;  // warm-up
      step_s.push_back(dt);
      comm_s.push_back(comm->stats().seconds);
      bytes = comm->stats().bytes_sent;
      payload = comm->stats().payload_bytes;
    }
    std::sort(step_s.begin(), step_s.end());
    std::sort(comm_s.begin(), comm_s.end());
    const StateBytes mem = zt.memory();
    double worst[4] = {static_cast<double>(mem.params), static_cast<double>(mem.grads),
                       static_cast<double>(mem.optimizer), static_cast<double>(peak_rss_bytes())};
    const std::vector<double> all = gather_per_rank(*comm, std::vector<double>(worst, worst + 4));
    for (int r = 0; r < comm->size(); ++r)
      for (int j = 0; j < 4; ++j) worst[j] = std::max(worst[j], all[4 * r + j]);
    if (comm->rank() == 0) {
      const double med = step_s[step_s.size() / 2], cmed = comm_s[comm_s.size() / 2];
      const double psi_bytes = 4.0 * static_cast<double>(model.flat_size());
      std::printf("%s ranks %d stage %d overlap %d progress %d B/rank %d T %d: step %.3f s, comm %.3f s (%.0f%%), payload %.1f MiB/step/rank "
                  "(%.2f psi, measured), wire %.1f MiB/step/rank (%.2f psi, ring model), state/rank MiB: params %.0f "
                  "grads %.0f optimizer %.0f, peak RSS %.0f MiB\n",
                  preset.c_str(), comm->size(), stage, overlap, progress, B, T, med, cmed, 100 * cmed / med, payload / 1048576.0,
                  payload / psi_bytes, bytes / 1048576.0, bytes / psi_bytes, worst[0] / 1048576.0, worst[1] / 1048576.0,
                  worst[2] / 1048576.0, worst[3] / 1048576.0);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_zero: error on rank %d: %s\n", comm->rank(), e.what());
    std::fflush(stderr);
    comm->abort(1, e.what());
  }
  return 0;
}
