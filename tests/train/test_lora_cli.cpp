// The built binary end to end: `teddy sft` with lora.* overrides trains a LoRA run,
// `teddy generate` answers from it (base + adapters), `teddy lora export` writes a PEFT
// adapter, and `teddy lora merge` from the run and from base + PEFT adapter give the
// same merged weights, bit for bit, that generate the same answer; bad LoRA input
// fails with the key or file named.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/run_teddy.h"
#include "train/sft_test_util.h"
#include "teddy/checkpoint/checkpoint.h"
#include "teddy/model/model.h"

namespace fs = std::filesystem;
using namespace teddy;

namespace {

using Result = teddy::test::CliResult;

using teddy::test::run_teddy;

std::vector<float> merged_params(const std::string& run) {
  const VerifiedCheckpoint c = resolve_verified_checkpoint(run);
  Model m(c.info.model_config);
  load_checkpoint(c, m, nullptr);
  return std::vector<float>(m.params(), m.params() + m.flat_size());
}

}  // namespace

TEST(LoraCli, SftGenerateExportMerge) {
  const fs::path root = fs::temp_directory_path() / ("teddy_lora_cli_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  const std::string base = test::make_lora_sft_base(root), data = test::make_sft_data(root);
  const std::string run = (root / "run").string();
  {
    std::ofstream(root / "sft.toml") << "[model]\ninit = \"" << base << "\"\n[data]\ntrain = \"" << data
                                     << "\"\nval_fraction = 0.15\n[train]\nmicro_batch = 4\nseq_len = 64\n"
                                        "grad_accum = 2\nsteps = 24\nseed = 5\nthreads = 1\n[optim]\nlr = 3e-2\n"
                                        "warmup_steps = 3\n[run]\npeak_gflops = 100\n";
  }
  const std::string cfg = (root / "sft.toml").string();
  Result r = run_teddy("sft -c " + cfg + " run.dir=" + run + " lora.r=8 lora.alpha=16 lora.targets=all");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("# lora: r 8"), std::string::npos) << r.out;
  // The run itself generates (its base rebuilt, the adapters folded in).
  const std::string prompt = " --chat --prompt 'greet anna0' --temperature 0 --max-tokens 4";
  r = run_teddy("generate --checkpoint " + run + prompt);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("hi"), std::string::npos) << r.out;
  const std::string answer = r.out;
  // Export, then merge both ways.
  r = run_teddy("lora export --checkpoint " + run + " --out " + (root / "peft").string());
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_TRUE(fs::exists(root / "peft" / "adapter_model.safetensors"));
  r = run_teddy("lora merge --checkpoint " + run + " --out " + (root / "m1").string());
  ASSERT_EQ(r.rc, 0) << r.out;
  r = run_teddy("lora merge --base " + base + " --adapter " + (root / "peft").string() + " --out " + (root / "m2").string());
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(merged_params((root / "m1").string()), merged_params((root / "m2").string()));
  r = run_teddy("generate --checkpoint " + (root / "m1").string() + prompt);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(r.out, answer);
  // Several adapters on the loaded base: the exported one answers as the run did; the
  // same one twice answers identically; "none" is the base alone.
  r = run_teddy("generate --checkpoint " + base + prompt + " --adapter a=" + (root / "peft").string() + " --adapter b=none" +
                " --adapter c=" + (root / "peft").string());
  ASSERT_EQ(r.rc, 0) << r.out;
  const size_t pa = r.out.find("[adapter a]\n"), pb = r.out.find("[adapter b]\n"), pc = r.out.find("[adapter c]\n");
  ASSERT_TRUE(pa != std::string::npos && pb != std::string::npos && pc != std::string::npos) << r.out;
  const std::string ans_a = r.out.substr(pa + 12, pb - pa - 12), ans_c = r.out.substr(pc + 12);
  EXPECT_EQ(ans_a, answer);
  EXPECT_EQ(ans_c, answer);
  EXPECT_NE(r.out.substr(pb + 12, pc - pb - 12), answer) << "the base alone should not have learnt the task";
  // --prompts: the requests, adapters mixed in one batch, answer as --prompt with each
  // adapter in turn, one JSON line each in input order (a line's max_tokens and a
  // request without an adapter included).
  const std::string ans_b = r.out.substr(pb + 12, pc - pb - 12);
  {
    std::ofstream(root / "req.jsonl") << R"({"prompt": "greet anna0", "adapter": "a"})" << "\n"
                                      << R"({"prompt": "greet anna0", "adapter": "b", "task": "x"})" << "\n\n"
                                      << R"({"prompt": "greet anna0"})" << "\n"
                                      << R"({"prompt": "greet anna0", "adapter": "c", "max_tokens": 1})" << "\n"
                                      << R"({"prompt": "greet anna0", "adapter": "a"})" << "\n";
  }
  const std::string many = " --chat --temperature 0 --max-tokens 4 --adapter a=" + (root / "peft").string() +
                           " --adapter b=none --adapter c=" + (root / "peft").string() + " --batch 2 --prompts ";
  r = run_teddy("generate --checkpoint " + base + many + (root / "req.jsonl").string(), test::Stderr::drop);
  ASSERT_EQ(r.rc, 0) << r.out;
  {
    auto reply = [](const std::string& shown) {  // "user: ...\nassistant: REPLY\n" -> REPLY
      const size_t at = shown.find("assistant: ");
      return at == std::string::npos ? shown : shown.substr(at + 11, shown.size() - at - 12);
    };
    std::istringstream lines(r.out);
    std::vector<nlohmann::json> got;
    for (std::string l; std::getline(lines, l);) got.push_back(nlohmann::json::parse(l));
    ASSERT_EQ(got.size(), 5u) << r.out;
    const char* names[] = {"a", "b", "none", "c", "a"};
    for (size_t i = 0; i < 5; ++i) {
      EXPECT_EQ(got[i]["prompt"], "greet anna0");
      EXPECT_EQ(got[i]["adapter"], names[i]);
    }
    EXPECT_EQ(got[0]["completion"], reply(ans_a));
    EXPECT_EQ(got[4]["completion"], reply(ans_a));
    EXPECT_EQ(got[1]["completion"], reply(ans_b));
    EXPECT_EQ(got[2]["completion"], reply(ans_b));
    EXPECT_EQ(got[3]["completion"], reply(ans_a).substr(0, 1)) << "max_tokens 1: the reply's first byte";
  }
  // A blank line is skipped but counted: the error names the file's line 3.
  std::ofstream(root / "bad1.jsonl") << R"({"prompt": "x"})" << "\n\n" << R"({"prompt": "x", "adapter": "zz"})" << "\n";
  r = run_teddy("generate --checkpoint " + base + many + (root / "bad1.jsonl").string());
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("bad1.jsonl:3: unknown adapter 'zz' (given with --adapter: none, a, b, c)"), std::string::npos)
      << r.out;
  std::ofstream(root / "bad2.jsonl") << R"({"prompt": "x"})" << "\n" << R"({"prompt": "x",)" << "\n";
  r = run_teddy("generate --checkpoint " + base + many + (root / "bad2.jsonl").string());
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("bad2.jsonl:2: invalid JSON"), std::string::npos) << r.out;
  std::ofstream(root / "bad3.jsonl") << R"({"prompt": 3})" << "\n";
  r = run_teddy("generate --checkpoint " + base + many + (root / "bad3.jsonl").string());
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("bad3.jsonl:1: \"prompt\": expected a string"), std::string::npos) << r.out;
  r = run_teddy("generate --checkpoint " + base + prompt + " --adapter broken");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("--adapter: expected NAME=DIR"), std::string::npos) << r.out;
  // Bad input names the key or the file.
  r = run_teddy("sft -c " + cfg + " run.dir=" + (root / "bad").string() + " lora.r=0");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("lora.r"), std::string::npos) << r.out;
  r = run_teddy("sft -c " + cfg + " run.dir=" + (root / "bad").string() + " lora.r=4 lora.targets=q_proj");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("lora.targets: unknown target 'q_proj'"), std::string::npos) << r.out;
  r = run_teddy("lora merge --base " + base + " --adapter " + root.string() + " --out " + (root / "m3").string());
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("adapter_config.json"), std::string::npos) << r.out;
  r = run_teddy("lora export --checkpoint " + base + " --out " + (root / "p2").string());
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("not a LoRA run"), std::string::npos) << r.out;
  fs::remove_all(root);
}
