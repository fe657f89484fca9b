// Log-likelihood scores against the independent PyTorch reader of Hugging Face
// directories (tests/reference/hf_reference.py) on identical weights: the test run
// exported with `teddy export hf`, ARC's choices scored by teddy and, in float64, by
// PyTorch. Needs /usr/bin/python3 with torch and numpy; fails, never skips, without.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "eval/eval_fixtures.h"
#include "teddy/eval/datasets.h"
#include "teddy/eval/loglikelihood.h"
#include "teddy/eval/prompts.h"
#include "teddy/io/safetensors.h"
#include "teddy/train/chat_model.h"

namespace teddy {
namespace {

constexpr double kEps32 = 1.0 / (1 << 23);

std::vector<double> f64_tensor(const SafetensorsFile& f, const std::string& name) {
  const SafeTensor& t = f.get(name);
  EXPECT_EQ(t.dtype, "F64");
  std::vector<double> v(static_cast<size_t>(t.numel()));
  std::memcpy(v.data(), t.bytes.data(), v.size() * sizeof(double));
  return v;
}

TEST(EvalVsPytorch, ChoiceLogLikelihoodsMatchFloat64) {
  const test::fs::path dir = test::scratch_dir("vs_pytorch");
  const std::string run = test::make_run(dir, 21);
  const std::string hf = (dir / "hf").string();
  ASSERT_EQ(std::system((std::string(TEDDY_BINARY_DIR) + "/teddy export hf --checkpoint " + run + " --out " + hf + " > /dev/null").c_str()), 0);
  ChatModel cm = load_chat_model(run, "", false);
  const std::vector<McDoc> docs = read_arc(test::make_arc(dir / "arc.jsonl").string());
  std::vector<LoglikRequest> reqs;
  for (const McDoc& d : docs)
    for (const std::string& c : arc_continuations(d)) {
      auto [ctx, cont] = encode_pair(cm.tok, arc_prompt(d, {}), c);
      reqs.push_back({ctx, cont});
    }
  const std::vector<LoglikResult> ours = score_loglikelihood(*cm.model, reqs);

  std::string args;
  for (size_t i = 0; i < reqs.size(); ++i) {
    std::vector<int32_t> in = reqs[i].context;
    in.insert(in.end(), reqs[i].continuation.begin(), reqs[i].continuation.end() - 1);
    std::string ids;
    for (int32_t t : in) ids += (ids.empty() ? "" : ",") + std::to_string(t);
    args += " '" + hf + "' " + ids + " '" + (dir / ("out" + std::to_string(i) + ".safetensors")).string() + "'";
  }
  const std::string log = (dir / "python.log").string();
  const int rc = std::system(("/usr/bin/python3 '" TEDDY_SOURCE_DIR "/tests/reference/hf_reference.py'" + args + " > '" + log + "' 2>&1").c_str());
  ASSERT_EQ(rc, 0) << "the PyTorch reference failed (needs /usr/bin/python3 with torch and numpy); see " << log;

  const ModelConfig& cfg = cm.model->config();
  const int V = cfg.vocab_size, Vp = cfg.padded_vocab_size;
  double d_teddy = 0, d_torch = 0, n64 = 0;  // squared norms over every logit, pooled
  for (size_t i = 0; i < reqs.size(); ++i) {
    const SafetensorsFile f = SafetensorsFile::open((dir / ("out" + std::to_string(i) + ".safetensors")).string());
    const std::vector<double> z64 = f64_tensor(f, "f64.logits");
    const std::vector<float> z32 = f.to_f32("logits");
    std::vector<int32_t> in = reqs[i].context;
    in.insert(in.end(), reqs[i].continuation.begin(), reqs[i].continuation.end() - 1);
    const int T = static_cast<int>(in.size());
    ASSERT_EQ(z64.size(), static_cast<size_t>(T) * V);
    std::vector<float> zt(static_cast<size_t>(T) * Vp);
    Batch b;
    b.tokens = in.data();
    b.B = 1;
    b.T = T;
    cm.model->forward(b, zt.data());
    double ll64 = 0, dz = 0;
    const size_t nc = reqs[i].continuation.size();
    for (int p = 0; p < T; ++p) {
      for (int v = 0; v < V; ++v) {
        const double x64 = z64[static_cast<size_t>(p) * V + v];
        const double e = zt[static_cast<size_t>(p) * Vp + v] - x64;
        d_teddy += e * e;
        d_torch += (z32[static_cast<size_t>(p) * V + v] - x64) * (z32[static_cast<size_t>(p) * V + v] - x64);
        n64 += x64 * x64;
        if (p >= T - static_cast<int>(nc)) dz = std::max(dz, std::abs(e));
      }
      if (p >= T - static_cast<int>(nc)) {
        const double* z = z64.data() + static_cast<size_t>(p) * V;
        double mx = z[0], s = 0;
        for (int v = 1; v < V; ++v) mx = std::max(mx, z[v]);
        for (int v = 0; v < V; ++v) s += std::exp(z[v] - mx);
        ll64 += z[reqs[i].continuation[p - (T - nc)]] - mx - std::log(s);
      }
    }
    // docs/TESTING.md rule 3: each token's log-probability moves by at most 2 max|dz|
    // (its gradient in the logits has l1 norm <= 2); the log-softmax itself is double.
    EXPECT_NEAR(ours[i].logprob, ll64, 2 * dz * static_cast<double>(nc) + 1e-12 * std::abs(ll64)) << "request " << i;
  }
  // Rule 2 on the logits themselves: teddy within twice torch float32's error.
  EXPECT_LE(std::sqrt(d_teddy), 2 * std::sqrt(d_torch) + kEps32 * std::sqrt(n64));
}

}  // namespace
}  // namespace teddy
