#pragma once
// Memory checked before it is spent: before a run allocates its model, gradients,
// optimizer state and activation arena, the planner's figures for this rank
// (plan/memory.h: they are what the engine allocates) plus a runtime allowance are
// compared with what the process may still use, and a run that cannot fit is
// refused within seconds with the breakdown and the settings that would fit, instead
// of failing in an allocation minutes later (or being killed by the OOM killer).
#include <string>

#include "teddy/core/memory_usage.h"
#include "teddy/model/config.h"
#include "teddy/plan/memory.h"

namespace teddy {


// Headroom for what the planner does not count: the BLAS library's and OpenMP's
// per-thread buffers, thread stacks, the data loader, code.
double runtime_allowance_bytes(int threads);

// The check itself (pure, for tests): "" when `need` for `ranks_here` processes on
// this machine fits `budget`, else the refusal: every buffer, the budget, and the
// settings that fit (a smaller train.micro_batch, train.recompute = "block", a higher
// dist.zero when there are ranks to shard over) and the override.
// `allocated`: bytes of the need this process holds already (SFT loads its model
// first: parameters and gradients), which the budget no longer includes.
std::string memory_check_failure(const ModelConfig& cfg, const plan::TrainSetup& setup, int threads, int ranks_here,
                                 const MemoryBudget& budget, double allocated = 0);

// Throws Error with memory_check_failure's text when the run does not fit what this
// process may use. ranks_here: processes of the job on this machine (each needs its own).
void check_training_memory(const ModelConfig& cfg, const plan::TrainSetup& setup, int threads, int ranks_here,
                           double allocated = 0);

// Processes of an mpirun / srun job on this machine (OMPI_COMM_WORLD_LOCAL_SIZE,
// SLURM_NTASKS_PER_NODE; 1 outside a job).
int local_ranks();

}  // namespace teddy
