// The planner's ZeRO per-rank bytes (fp32) against the engine's: ZeroTrainer's
// per-rank state sizes, which tests/dist checks against resident pages measured on
// every rank under mpirun. Together: planner == measured, within shard padding.
#include <gtest/gtest.h>

#include "teddy/distributed/zero_trainer.h"
#include "teddy/model/config.h"
#include "teddy/model/model.h"
#include "teddy/plan/memory.h"

using namespace teddy;

TEST(PlanZeroVsEngine, PerRankStateBytesAgreeForEveryStage) {
  for (const char* preset : {"gpt2-124M", "gpt2-d6", "llama-134M"}) {
    const size_t n = make_param_layout(ModelConfig::preset(preset)).total;  // the flat buffer ZeRO shards
    for (int world : {1, 2, 3}) {
      for (int stage = 0; stage <= 3; ++stage) {
        const plan::ModelStates p = plan::zero_states(static_cast<double>(n), DType::f32, stage, world);
        const dist::StateBytes e = dist::ZeroTrainer::expected_memory(n, stage, world);
        // The engine's shards are whole floats (the largest rank holds ceil(n / world)).
        const double pad = 16.0 * world;
        EXPECT_NEAR(p.params, static_cast<double>(e.params), pad) << preset << " W=" << world << " stage " << stage;
        EXPECT_NEAR(p.grads, static_cast<double>(e.grads), pad) << preset << " W=" << world << " stage " << stage;
        EXPECT_NEAR(p.optimizer, static_cast<double>(e.optimizer), 2 * pad) << preset << " W=" << world << " stage " << stage;
      }
    }
  }
}
