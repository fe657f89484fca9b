#include "teddy/plan/plan.h"

#include "teddy/core/error.h"
#include "teddy/plan/lora.h"
#include "teddy/plan/units.h"

namespace teddy::plan {

Plan make_plan(const PlanInput& in) {
  Plan p;
  p.input = in;
  in.setup.validate(in.cfg);
  check_range("mfu", in.mfu, 1.0);
  check_range("tokens", in.tokens, 1e18, /*allow_zero=*/true);
  check_range("device memory", in.device_memory, 1e15, /*allow_zero=*/true);
  check_range("peak FLOP/s", in.device.peak_flops, 1e20, /*allow_zero=*/true);

  LoraSpec spec = in.lora;
  if (in.setup.lora.enabled()) spec.rank = in.setup.lora.r;
  p.params = count_params(in.cfg, spec);
  if (in.setup.lora.enabled()) {  // the targets' adapters, as the engine allocates them
    p.params.lora = lora_adapter_params(in.cfg, in.setup.lora);
    p.params.trainable = p.params.lora;
  }
  p.flops = flops_per_token(in.cfg, in.setup.seq_len);
  p.recompute_flops_per_token = recompute_flops_per_token(in.cfg, in.setup.seq_len, in.setup.recompute);
  p.optimal = chinchilla_for_params(static_cast<double>(p.params.total));
  p.tokens_from_chinchilla = in.tokens == 0;
  p.tokens = p.tokens_from_chinchilla ? p.optimal.tokens : in.tokens;
  p.train_flops = p.flops.approx() * p.tokens;
  if (in.device.peak_flops > 0) {
    const int n_devices = in.setup.dp * in.setup.tp * in.setup.pp;
    p.time = training_time(p.flops.approx(), p.tokens, in.device.peak_flops, in.mfu, n_devices);
  }
  p.memory = estimate_memory(in.cfg, in.setup);
  if (in.device_memory > 0) {
    p.fit_checked = true;
    p.fits = p.memory.total() <= in.device_memory;
    try {
      p.max_micro_batch = max_micro_batch(in.cfg, in.setup, in.device_memory);
    } catch (const ConfigError& e) {
      p.max_micro_batch = 0;  // an answer, not a failure: report why
      p.fit_error = e.what();
    }
  }
  p.chinchilla_loss = chinchilla_loss(static_cast<double>(p.params.total), p.tokens);
  p.kaplan_loss_params = kaplan_loss_params(static_cast<double>(p.params.non_embedding));
  p.kaplan_loss_tokens = kaplan_loss_tokens(p.tokens);
  return p;
}

}  // namespace teddy::plan
