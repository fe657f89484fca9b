// Memory estimates: ZeRO's published numbers, teddy's measured allocation, the
// largest micro-batch search and its failure messages.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "teddy/core/error.h"
#include "teddy/model/model.h"
#include "teddy/core/nf4.h"
#include "teddy/plan/lora.h"
#include "teddy/plan/memory.h"
#include "teddy/train/memory_check.h"
#include "teddy/train/optim/adamw.h"

using namespace teddy;
using namespace teddy::plan;

TEST(PlanMemory, ZeroPaperNumbers) {
  // Rajbhandari et al.: 7.5B parameters, mixed precision Adam, N_d = 64.
  const double psi = 7.5e9;
  EXPECT_NEAR(zero_states(psi, DType::bf16, 0, 64).total() / 1e9, 120.0, 0.05);
  EXPECT_NEAR(zero_states(psi, DType::bf16, 1, 64).total() / 1e9, 31.4, 0.05);
  EXPECT_NEAR(zero_states(psi, DType::bf16, 2, 64).total() / 1e9, 16.6, 0.05);
  EXPECT_NEAR(zero_states(psi, DType::bf16, 3, 64).total() / 1e9, 1.9, 0.05);
  // fp32 analogue: 4 + 4 + 8 bytes, the same 16 per parameter in total.
  const ModelStates f1 = zero_states(psi, DType::f32, 1, 64);
  EXPECT_DOUBLE_EQ(f1.params, 4 * psi);
  EXPECT_DOUBLE_EQ(f1.grads, 4 * psi);
  EXPECT_DOUBLE_EQ(f1.optimizer, 8 * psi / 64);
  EXPECT_DOUBLE_EQ(zero_states(psi, DType::f16, 2, 8).grads, 2 * psi / 8);
  EXPECT_DOUBLE_EQ(zero_states(psi, DType::f32, 3, 1).total(), 16 * psi);  // one rank: nothing to shard
}

// Runs one forward_backward in the engine and compares what it allocated.
void check_against_engine(const std::string& preset, int B, int T) {
  SCOPED_TRACE(preset + " B=" + std::to_string(B) + " T=" + std::to_string(T));
  const ModelConfig cfg = ModelConfig::preset(preset);
  Model model(cfg);
  model.init_weights(1);
  std::vector<int32_t> tokens(static_cast<size_t>(B) * T), targets(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<int32_t>((i * 7 + 3) % cfg.vocab_size);
    targets[i] = static_cast<int32_t>((i * 11 + 5) % cfg.vocab_size);
  }
  Batch batch;
  batch.tokens = tokens.data();
  batch.targets = targets.data();
  batch.B = B;
  batch.T = T;
  model.zero_grad();
  model.forward_backward(batch, 1.0f / static_cast<float>(tokens.size()));

  TrainSetup s;
  s.micro_batch = B;
  s.seq_len = T;
  s.precision = DType::f32;
  const MemoryEstimate m = estimate_memory(cfg, s);
  const double measured_acts = static_cast<double>(model.activation_bytes());
  EXPECT_NEAR(m.activations.total() / measured_acts, 1.0, 0.10);
  EXPECT_DOUBLE_EQ(m.activations.total(), static_cast<double>(Model::activation_bytes_for(cfg, B, T)));
  for (Recompute r : {Recompute::attention, Recompute::block}) {  // the planner models each mode's arena exactly
    TrainSetup sr = s;
    sr.recompute = r;
    EXPECT_DOUBLE_EQ(activation_bytes(cfg, sr).total(), static_cast<double>(Model::activation_bytes_for(cfg, B, T, r)))
        << recompute_name(r);
  }
  for (DType d : {DType::bf16, DType::f16})  // mixed precision: 16-bit saved tensors, fp32 working scratch
    for (Recompute r : {Recompute::none, Recompute::attention, Recompute::block}) {
      TrainSetup sp = s;
      sp.precision = d;
      sp.recompute = r;
      const Precision p = d == DType::bf16 ? Precision::bf16 : Precision::fp16;
      EXPECT_DOUBLE_EQ(activation_bytes(cfg, sp).total(), static_cast<double>(Model::activation_bytes_for(cfg, B, T, r, p)))
          << dtype_name(d) << " " << recompute_name(r);
    }
  EXPECT_DOUBLE_EQ(m.states.params, static_cast<double>(model.param_bytes()));
  EXPECT_DOUBLE_EQ(m.states.grads, static_cast<double>(model.grad_bytes()));
}

TEST(PlanMemory, MatchesEngineAllocationFp32) {
  check_against_engine("gpt2-tiny", 2, 64);
  check_against_engine("llama-tiny", 3, 32);
  check_against_engine("gpt2-mini", 2, 128);   // a real 50257 vocab: classifier chunking
  check_against_engine("llama-mini", 1, 256);
}

TEST(PlanMemory, Bf16HalvesActivationsAndKeeps16BytesPerParam) {
  const ModelConfig cfg = ModelConfig::preset("gpt2-124M");
  TrainSetup s;
  s.micro_batch = 4;
  s.seq_len = 1024;
  const MemoryEstimate f32 = estimate_memory(cfg, s);
  s.precision = DType::bf16;
  const MemoryEstimate bf = estimate_memory(cfg, s);
  // What each block keeps halves (norm statistics and logsumexp stay fp32); the fp32
  // logits chunk, activation gradients and one block's working copy do not shrink.
  EXPECT_NEAR(bf.activations.layers / f32.activations.layers, 0.5, 0.01);
  EXPECT_LT(bf.activations.total() / f32.activations.total(), 0.7);  // 0.65 here
  EXPECT_DOUBLE_EQ(bf.states.total(), f32.states.total());  // 2+2+12 == 4+4+8
  EXPECT_DOUBLE_EQ(bf.states.params * 2, f32.states.params);
}

TEST(PlanMemory, RecomputeSavesActivations) {
  const ModelConfig cfg = ModelConfig::preset("llama-134M");
  TrainSetup s;
  s.micro_batch = 8;
  s.seq_len = 1024;
  const double none = activation_bytes(cfg, s).layers;
  s.recompute = Recompute::attention;
  const double attn = activation_bytes(cfg, s).layers;
  s.recompute = Recompute::block;
  const ActivationBytes block = activation_bytes(cfg, s);
  EXPECT_LT(attn, none);
  EXPECT_LT(block.layers, attn);
  // Block recompute keeps the residual stream only: B*T*C floats per layer.
  EXPECT_DOUBLE_EQ(block.per_layer, 8.0 * 1024 * 768 * 4);
  EXPECT_DOUBLE_EQ(block.korthikanti_per_layer, 2.0 * 1024 * 8 * 768 * 2);  // 2sbh at 16-bit, x2 for fp32
}

TEST(PlanMemory, KorthikantiReference) {
  // sbh(34 + 5as/h) bytes per layer at 16-bit activations.
  const ModelConfig cfg = ModelConfig::preset("gpt2-124M");
  TrainSetup s;
  s.micro_batch = 2;
  s.seq_len = 1024;
  s.precision = DType::bf16;
  const double sbh = 1024.0 * 2 * 768;
  EXPECT_DOUBLE_EQ(activation_bytes(cfg, s).korthikanti_per_layer, sbh * (34 + 5.0 * 12 * 1024 / 768));
}

TEST(PlanMemory, LargestMicroBatchIsMonotoneAndFits) {
  const ModelConfig cfg = ModelConfig::preset("gpt2-124M");
  TrainSetup s;
  s.seq_len = 1024;
  s.precision = DType::bf16;
  int prev = 0;
  for (double gb : {8.0, 16.0, 24.0, 40.0, 80.0, 141.0}) {
    const int b = max_micro_batch(cfg, s, gb * 1e9);
    EXPECT_GE(b, prev) << gb;
    prev = b;
    TrainSetup at = s;
    at.micro_batch = b;
    EXPECT_LE(estimate_memory(cfg, at).total(), gb * 1e9);
    at.micro_batch = b + 1;
    EXPECT_GT(estimate_memory(cfg, at).total(), gb * 1e9);
  }
  EXPECT_GT(prev, 1);
  // ZeRO-3 over more ranks leaves more room for activations.
  TrainSetup z = s;
  z.zero_stage = 3;
  z.dp = 8;
  EXPECT_GE(max_micro_batch(cfg, z, 8e9), max_micro_batch(cfg, s, 8e9));
}

TEST(PlanMemory, TooSmallSaysSo) {
  const ModelConfig cfg = ModelConfig::preset("llama-1B");
  TrainSetup s;
  s.seq_len = 8192;
  s.precision = DType::bf16;
  try {
    max_micro_batch(cfg, s, 4e9);  // 1.24B x 16 bytes = 19.8 GB of states alone
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("too small for even the model states"), std::string::npos) << e.what();
  }
  try {
    max_micro_batch(cfg, s, 21e9);  // states fit, one 8192-token sample does not
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("too small for even one sample"), std::string::npos) << e.what();
  }
}

TEST(PlanMemory, BadSetupNamesTheField) {
  const ModelConfig cfg = ModelConfig::preset("gpt2-tiny");
  auto expect_error = [&](TrainSetup s, const std::string& field) {
    try {
      estimate_memory(cfg, s);
      FAIL() << "expected ConfigError for " << field;
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()).rfind(field, 0), 0u) << e.what();
    }
  };
  TrainSetup s;
  s.seq_len = 64;
  TrainSetup bad = s;
  bad.micro_batch = 0;
  expect_error(bad, "micro_batch");
  bad = s;
  bad.micro_batch = -3;
  expect_error(bad, "micro_batch");
  bad = s;
  bad.seq_len = 65;  // beyond gpt2-tiny's 64 learned positions
  expect_error(bad, "seq_len");
  bad = s;
  bad.zero_stage = 4;
  expect_error(bad, "zero_stage");
  bad = s;
  bad.dp = 0;
  expect_error(bad, "dp");
  bad = s;
  bad.tp = 3;  // does not divide 2 heads
  expect_error(bad, "tp");
  EXPECT_THROW(max_micro_batch(cfg, s, -1), ConfigError);
  EXPECT_THROW(max_micro_batch(cfg, s, 0.0 / 0.0), ConfigError);
}

TEST(PlanMemory, TensorAndPipelineSplitModelStates) {
  const ModelConfig cfg = ModelConfig::preset("llama-134M");
  TrainSetup s;
  s.seq_len = 1024;
  const double full = static_cast<double>(model_states(cfg, s).params_on_device);
  s.tp = 4;
  const double tp4 = static_cast<double>(model_states(cfg, s).params_on_device);
  EXPECT_LT(tp4, full / 4 * 1.05);  // norms are replicated: a bit above a quarter
  EXPECT_GT(tp4, full / 4);
  s.tp = 1;
  s.pp = 4;
  EXPECT_LT(static_cast<double>(model_states(cfg, s).params_on_device), full / 2);
}

namespace {

// LoRA / QLoRA: the planner's states and arena equal, byte for byte, what a LoRA model
// allocates (adapters, their gradients, AdamW's m and v, the frozen base in its
// storage, the activation arena with the adapters' tensors), for each storage, target
// set and dropout.
void check_lora_against_engine(const std::string& preset, int B, int T, const std::string& quantize,
                               std::vector<std::string> targets, float dropout) {
  SCOPED_TRACE(preset + " " + quantize + " targets " + std::to_string(targets.size()) + " dropout " +
               std::to_string(dropout));
  const ModelConfig cfg = ModelConfig::preset(preset);
  LoraConfig l;
  l.r = 4;
  l.quantize = quantize;
  l.targets = std::move(targets);
  l.dropout = dropout;
  Model m = Model::with_lora(cfg, l, 1, Model::init_source(cfg, 1));
  m.reserve_activations(B, T);
  const AdamW opt(m.layout(), AdamWConfig{}, m.context());
  TrainSetup s;
  s.micro_batch = B;
  s.seq_len = T;
  s.precision = DType::f32;
  s.lora = l;
  const MemoryEstimate e = estimate_memory(cfg, s);
  EXPECT_DOUBLE_EQ(e.states.params, static_cast<double>(m.param_bytes()));
  EXPECT_DOUBLE_EQ(e.states.grads, static_cast<double>(m.grad_bytes()));
  EXPECT_DOUBLE_EQ(e.states.optimizer, 2.0 * 4.0 * static_cast<double>(opt.size()));
  EXPECT_DOUBLE_EQ(e.states.base, static_cast<double>(m.base_bytes()));
  EXPECT_DOUBLE_EQ(e.activations.total(), static_cast<double>(m.activation_bytes()));
  EXPECT_EQ(lora_adapter_params(cfg, l), static_cast<int64_t>(m.layout().count()));
  EXPECT_EQ(e.states.params_on_device, static_cast<int64_t>(m.flat_size()));
}

TEST(PlanMemory, LoraMatchesEngineAllocation) {
  for (const char* q : {"none", "bf16", "nf4"}) {
    check_lora_against_engine("gpt2-tiny", 2, 64, q, {}, 0);
    check_lora_against_engine("llama-tiny", 3, 32, q, {}, 0.1f);
    check_lora_against_engine("llama-tiny", 1, 16, q, {"q_proj", "v_proj"}, 0);
    check_lora_against_engine("gpt2-mini", 1, 128, q, {"c_attn"}, 0.05f);
  }
}

// NF4's bytes per tensor as core/nf4 stores them, with and without double quantization,
// for sizes with a partial block and a partial group of 256 blocks.
TEST(PlanMemory, Nf4TensorBytes) {
  for (int64_t n : {int64_t{1}, int64_t{64}, int64_t{65}, int64_t{64 * 256}, int64_t{64 * 256 * 3 + 100}}) {
    const std::vector<float> w(static_cast<size_t>(n), 0.5f);
    EXPECT_DOUBLE_EQ(nf4_tensor_bytes(n, true), static_cast<double>(nf4_quantize(w.data(), n, true).bytes())) << n;
    EXPECT_DOUBLE_EQ(nf4_tensor_bytes(n, false), static_cast<double>(nf4_quantize(w.data(), n, false).bytes())) << n;
  }
  // llama-1B: the NF4 linears cost 4.127 bits per weight with double quantization, 4.5
  // without; the bf16 embedding (tied) is the largest part of a QLoRA base.
  const ModelConfig c = ModelConfig::preset("llama-1B");
  const LoraBaseBytes b = lora_base_bytes(c);
  EXPECT_LT(b.nf4, b.nf4_no_dq);
  EXPECT_LT(b.nf4_no_dq, b.bf16);
  EXPECT_LT(b.bf16, b.fp32);
  const double emb16 = 2.0 * c.padded_vocab_size * c.d_model;
  EXPECT_LT(b.nf4, 1.2e9);  // ~0.5 GB of embedding + ~0.6 GB of NF4 linears
  EXPECT_GT(b.nf4, emb16);
}

// LoRA plans refuse what the engine refuses: 16-bit precision, tensor or pipeline
// parallelism, a bad [lora] key (named).
TEST(PlanMemory, LoraRefusals) {
  const ModelConfig cfg = ModelConfig::preset("llama-tiny");
  TrainSetup s;
  s.micro_batch = 1;
  s.seq_len = 16;
  s.lora.r = 4;
  s.precision = DType::bf16;
  EXPECT_THROW(estimate_memory(cfg, s), ConfigError);
  s.precision = DType::f32;
  s.lora.quantize = "int3";
  try {
    estimate_memory(cfg, s);
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("lora.quantize"), std::string::npos) << e.what();
  }
}

// The memory check uses the LoRA figures: a budget that a full finetune of llama-1B
// overflows (16 bytes per parameter) holds its QLoRA run, and the refusal of a too
// small one lists the frozen base.
TEST(PlanMemory, MemoryCheckUsesLoraFigures) {
  const ModelConfig cfg = ModelConfig::preset("llama-1B");
  TrainSetup s;
  s.micro_batch = 1;
  s.seq_len = 256;
  s.precision = DType::f32;
  const MemoryBudget four_gb{4e9, "test"};
  EXPECT_NE(memory_check_failure(cfg, s, 2, 1, four_gb), "");
  s.lora.r = 16;
  s.lora.quantize = "nf4";
  EXPECT_EQ(memory_check_failure(cfg, s, 2, 1, four_gb), "");
  s.lora.quantize = "none";  // a 5 GB fp32 base does not fit
  EXPECT_NE(memory_check_failure(cfg, s, 2, 1, four_gb), "");
}

}  // namespace
