#include "teddy/train/memory_check.h"

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

#include "teddy/core/error.h"

namespace teddy {

namespace {

std::string gb(double bytes) { return format_bytes(bytes, ByteUnits::decimal); }

}  // namespace

double runtime_allowance_bytes(int threads) {
  // OpenBLAS keeps a 32 MiB GEMM buffer per thread; OpenMP and thread stacks, the
  // loader's windows and the code take the rest.
  return (128.0 + 40.0 * std::max(threads, 1)) * 1048576.0;
}

std::string memory_check_failure(const ModelConfig& cfg, const plan::TrainSetup& setup, int threads, int ranks_here,
                                 const MemoryBudget& budget, double allocated) {
  const plan::MemoryEstimate est = plan::estimate_memory(cfg, setup);
  const double runtime = runtime_allowance_bytes(threads);
  const int here = std::max(ranks_here, 1);
  const double per_rank = est.total() + runtime;
  const double need = per_rank * here;
  const double still = need - allocated * here;  // what is yet to be allocated
  if (!(still > budget.bytes)) return "";
  std::string msg = "not enough memory for this run: it needs " + gb(need);
  if (here > 1) msg += " (" + std::to_string(here) + " ranks on this machine, " + gb(per_rank) + " each: ";
  else msg += " (";
  msg += "parameters " + gb(est.states.params) + ", gradients " + gb(est.states.grads) + ", AdamW " +
         gb(est.states.optimizer) + ", activations " + gb(est.activations.total()) + " for micro_batch " +
         std::to_string(setup.micro_batch) + " x seq_len " + std::to_string(setup.seq_len) + ", runtime " +
         gb(runtime) + "), " +
         (allocated > 0 ? "of which " + gb(allocated * here) + " is allocated already, " : std::string()) +
         gb(budget.bytes) + " available (" + budget.source + ")";
  // What would fit, in the order a user would try.
  const double room = budget.bytes / here + allocated - runtime;
  std::vector<std::string> fixes;
  try {
    const int b = plan::max_micro_batch(cfg, setup, room);
    if (b < setup.micro_batch) fixes.push_back("train.micro_batch <= " + std::to_string(b) + " (raise train.grad_accum to keep the batch)");
  } catch (const Error&) {
  }
  if (setup.recompute != Recompute::block) {
    plan::TrainSetup r = setup;
    r.recompute = Recompute::block;
    if (plan::estimate_memory(cfg, r).total() <= room) {
      fixes.push_back("train.recompute = \"block\"");
    } else {
      try {
        const int b = plan::max_micro_batch(cfg, r, room);
        fixes.push_back("train.micro_batch <= " + std::to_string(b) + " with train.recompute = \"block\"");
      } catch (const Error&) {
      }
    }
  }
  if (setup.dp > 1 && setup.zero_stage < 3) {
    for (int z = setup.zero_stage + 1; z <= 3; ++z) {
      plan::TrainSetup r = setup;
      r.zero_stage = z;
      if (plan::estimate_memory(cfg, r).total() <= room) {
        fixes.push_back("dist.zero = " + std::to_string(z));
        break;
      }
    }
  }
  if (room <= 0) {
    msg += "; the runtime alone (BLAS and OpenMP buffers, thread stacks, the loader) needs about " + gb(runtime) +
           (here > 1 ? " per rank" : "") + ": raise the limit";
  } else if (fixes.empty()) {
    msg += "; nothing in reach fits: the model states alone need " + gb(est.states.total()) +
           " (a smaller model, or more ranks with dist.zero = 3)";
  } else {
    msg += "; fits with ";
    for (size_t i = 0; i < fixes.size(); ++i) msg += (i ? ", or " : "") + fixes[i];
  }
  msg += ". To start anyway: --no-memory-check (or run.memory_check = false)";
  return msg;
}

void check_training_memory(const ModelConfig& cfg, const plan::TrainSetup& setup, int threads, int ranks_here,
                           double allocated) {
  const std::string why = memory_check_failure(cfg, setup, threads, ranks_here, available_memory(), allocated);
  if (!why.empty()) throw Error(why);
}

int local_ranks() {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"}) {
    if (const char* v = std::getenv(var)) {
      const int n = std::atoi(v);  // SLURM_NTASKS_PER_NODE may read "2(x3)": atoi takes the 2
      if (n > 0) return n;
    }
  }
  return 1;
}

}  // namespace teddy
