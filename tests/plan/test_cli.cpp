// The built `teddy plan` binary: JSON that scripts can parse, and clear errors.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <sys/wait.h>

#include "cli/run_teddy.h"

namespace {

using Result = teddy::test::CliResult;

Result run_teddy(const std::string& args, bool merge_stderr = false) {
  return teddy::test::run_teddy(args, merge_stderr ? teddy::test::Stderr::merge : teddy::test::Stderr::drop);
}

}  // namespace

TEST(PlanCli, ChinchillaJsonRows) {
  const Result r = run_teddy("plan chinchilla --json");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 9u);
  EXPECT_DOUBLE_EQ(j[0]["params"].get<double>(), 400e6);
  EXPECT_NEAR(j[0]["flops"].get<double>() / 1.92e19, 1.0, 0.05);
  EXPECT_NEAR(j[8]["tokens"].get<double>() / 216.2e12, 1.0, 0.05);
  for (const auto& row : j) {
    EXPECT_TRUE(row.contains("params") && row.contains("flops") && row.contains("tokens"));
  }
}

TEST(PlanCli, ChinchillaForBudget) {
  const Result r = run_teddy("plan chinchilla --flops 5.76e23 --json");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_NEAR(j["params"].get<double>() / 67e9, 1.0, 0.05);
  EXPECT_GT(j["parametric"]["params"].get<double>(), 0);
  const Result n = run_teddy("plan chinchilla --params 1B --json");
  ASSERT_EQ(n.rc, 0) << n.out;
  EXPECT_NEAR(nlohmann::json::parse(n.out)["tokens"].get<double>() / 20.2e9, 1.0, 0.05);
}

TEST(PlanCli, FullPlanJson) {
  const Result r = run_teddy(
      "plan --model llama-1B --seq 2048 --precision bf16 --device h100 --mfu 0.4 --json");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["params"]["total"].get<int64_t>(), 1235814400);
  EXPECT_EQ(j["training"]["tokens_source"], "chinchilla");
  EXPECT_GT(j["training"]["gpu_hours"].get<double>(), 0);
  EXPECT_TRUE(j["memory"]["fits"].get<bool>());
  EXPECT_GE(j["memory"]["max_micro_batch"].get<int>(), 1);
  EXPECT_DOUBLE_EQ(j["memory"]["device_memory_bytes"].get<double>(), 80e9);
  // Subcommands show their part only, and take the same flags after their name.
  const Result m = run_teddy("plan memory --model gpt2-124M --seq 1024 --micro-batch 8 --zero 2 --dp 4 --json");
  ASSERT_EQ(m.rc, 0) << m.out;
  const auto mj = nlohmann::json::parse(m.out);
  EXPECT_TRUE(mj.contains("memory"));
  EXPECT_FALSE(mj.contains("training"));
  EXPECT_EQ(mj["memory"]["setup"]["zero_stage"], 2);
}

TEST(PlanCli, ExplicitSizes) {
  const Result r = run_teddy(
      "plan params --family llama --layers 2 --d-model 32 --heads 2 --kv-heads 1 --vocab 512 --max-seq 64 --json");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["model"]["d_ff"], 88);  // LLaMA's 8/3 * 32 rounded up to a multiple of 8
  EXPECT_GT(j["params"]["total"].get<int64_t>(), 0);
}

TEST(PlanCli, TextOutputHasUnits) {
  const Result r = run_teddy("plan --model gpt2-124M --tokens 10B");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("124.5M"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" GB"), std::string::npos);
  EXPECT_NE(r.out.find("GPU-hours"), std::string::npos);
}

TEST(PlanCli, BadInputIsAClearError) {
  auto expect_error = [](const std::string& args, const std::string& needle) {
    const Result r = run_teddy(args, /*merge_stderr=*/true);
    EXPECT_EQ(r.rc, 1) << args << "\n" << r.out;
    EXPECT_NE(r.out.find(needle), std::string::npos) << args << "\n" << r.out;
    if (args.find("nan") == std::string::npos) EXPECT_EQ(r.out.find("nan"), std::string::npos) << r.out;
  };
  expect_error("plan --model gpt2-7T", "known: gpt2-124M");
  expect_error("plan --model gpt2-124M --tokens -5", "--tokens: must be > 0");
  expect_error("plan --model gpt2-124M --tokens nan", "--tokens: must be a finite");
  expect_error("plan --model gpt2-124M --micro-batch 0", "--micro-batch");
  expect_error("plan --model gpt2-124M --mfu 3", "--mfu: must be at most 1");
  expect_error("plan --model gpt2-124M --seq 4096", "--seq: must be at most");
  expect_error("plan --model gpt2-124M --zero 5", "--zero");
  expect_error("plan --model gpt2-124M --recompute sometimes", "recompute");
  expect_error("plan --model gpt2-124M --device tpu", "known: h100");
  expect_error("plan --model gpt2-124M --device-mem 80parsecs", "--device-mem");
  expect_error("plan chinchilla --flops 1e99", "--flops: must be at most");
  expect_error("plan", "--model");
  // Too small for one sample is an answer, not a crash: the plan says so.
  const Result small = run_teddy("plan memory --model llama-1B --seq 8192 --device-mem 21GB --json");
  ASSERT_EQ(small.rc, 0) << small.out;
  const auto j = nlohmann::json::parse(small.out);
  EXPECT_FALSE(j["memory"]["fits"].get<bool>());
  EXPECT_EQ(j["memory"]["max_micro_batch"], 0);
  EXPECT_NE(j["memory"]["fit_error"].get<std::string>().find("too small for even one sample"), std::string::npos);
}

// LoRA / QLoRA plans: the JSON carries the frozen base for every storage and the
// adapters (fp32 by default); bad LoRA flags name themselves.
TEST(PlanCli, LoraAndQloraMemory) {
  const Result r = run_teddy("plan memory --model llama-1B --seq 256 --lora-rank 16 --lora-quantize nf4 --json");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out)["memory"];
  EXPECT_EQ(j["setup"]["precision"], "f32");
  EXPECT_EQ(j["lora"]["trainable_params"].get<int64_t>(), 11272192);  // 16 * sum(in + out) over 7 modules x 16 layers
  EXPECT_DOUBLE_EQ(j["base_bytes"].get<double>(), j["lora"]["base_bytes"]["nf4"].get<double>());
  EXPECT_LT(j["lora"]["base_bytes"]["nf4"].get<double>(), j["lora"]["base_bytes"]["nf4_no_double_quant"].get<double>());
  EXPECT_LT(j["total_bytes"].get<double>(), 2.5e9);
  const Result q = run_teddy("plan memory --model llama-1B --seq 256 --lora-rank 16 --lora-targets q_proj,v_proj --json");
  ASSERT_EQ(q.rc, 0) << q.out;
  // q (2048 -> 2048) and v (2048 -> 512) per layer: 16 * (4096 + 2560) * 16 layers.
  EXPECT_EQ(nlohmann::json::parse(q.out)["memory"]["lora"]["trainable_params"].get<int64_t>(), 16 * (4096 + 2560) * 16);
  const Result bad = run_teddy("plan --model llama-1B --lora-rank 16 --lora-quantize int3", true);
  EXPECT_EQ(bad.rc, 1);
  EXPECT_NE(bad.out.find("lora.quantize"), std::string::npos) << bad.out;
  const Result alone = run_teddy("plan --model llama-1B --lora-quantize nf4", true);
  EXPECT_EQ(alone.rc, 1);
  EXPECT_NE(alone.out.find("need --lora-rank"), std::string::npos) << alone.out;
  const Result half = run_teddy("plan --model llama-1B --lora-rank 16 --precision bf16", true);
  EXPECT_EQ(half.rc, 1);
  EXPECT_NE(half.out.find("LoRA trains in fp32"), std::string::npos) << half.out;
}

// An unknown subcommand is an error, whatever follows it (CLI11 alone would answer
// `teddy NOSUCH --help` with the top-level help and exit 0).
TEST(Cli, UnknownSubcommandIsAnErrorEvenWithHelp) {
  for (const char* args : {"NOSUCH", "NOSUCH --help", "tokenizer NOSUCH --help", "plan NOSUCH --help"}) {
    const Result r = run_teddy(args, true);
    EXPECT_NE(r.rc, 0) << args;
    EXPECT_NE(r.out.find("unknown command 'NOSUCH'"), std::string::npos) << args << ": " << r.out;
  }
  for (const char* args : {"--help", "plan --help", "tokenizer encode --help", "plan chinchilla --help"}) {
    const Result r = run_teddy(args);
    EXPECT_EQ(r.rc, 0) << args;
    EXPECT_NE(r.out.find("Usage:"), std::string::npos) << args;
  }
}

// --version names the machine a result came from: CPU, ISA, BLAS and its kernels.
TEST(Cli, VersionNamesCpuAndBlasKernels) {
  const Result r = run_teddy("--version");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(r.out.rfind("teddy ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\ncpu: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nblas: OpenBLAS"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("; kernels "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nopenmp: "), std::string::npos) << r.out;
}
