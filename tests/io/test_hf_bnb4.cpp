// The bitsandbytes 4-bit serialization (io/hf_bnb4.h) against an independent writer and
// reader (tests/reference/bnb4_reference.py, from bitsandbytes' and transformers' source):
//   - teddy reads the reference's files: every module's codes, absmax codes, second-level
//     scales and offset equal teddy's own quantization of the same fp32 weights (one NF4
//     tensor per HF module), and the QLoRA model's logits equal, bit for bit, the model
//     teddy builds from fp32 with quantize nf4;
//   - teddy's `export hf --quantize nf4` writes the reference's tensors byte for byte, and
//     the reference reader dequantizes them to teddy's dequantized weights exactly;
//   - read(write(x)) is x's quantization; the plain import dequantizes;
//   - QLoRA SFT from a bitsandbytes hf:DIR base trains on the file's codes, loss falling;
//   - fp4, blocksize 128, a wrong shape, a missing nested_absmax, a foreign quant_map are
//     refused naming the file, the tensor and what was expected.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "io/interop_test_util.h"
#include "kernels/kernel_check.h"
#include "teddy/io/hf_bnb4.h"
#include "teddy/io/hf_export.h"
#include "teddy/io/hf_import.h"
#include "teddy/io/safetensors.h"
#include "teddy/kernels/quant_weight.h"
#include "teddy/model/lora.h"
#include "teddy/train/chat_model.h"
#include "teddy/train/sft_trainer.h"
#include "train/sft_test_util.h"

using namespace teddy;
using namespace teddy::test;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// LLaMA with GQA and d_ff 49 (gate and up have 1568 weights each: a partial last block,
// and up_proj starts inside a 64-block of the fused mlp.up); GPT-2 with 64 x 320
// linears (320 blocks: two second-level blocks, the last partial).
RunSpec spec_of(Family f) {
  if (f == Family::llama) {
    RunSpec s = llama_spec();
    s.d_ff = 49;
    return s;
  }
  RunSpec s;
  s.d_model = 64;
  s.d_ff = 320;
  return s;
}

struct Fixture {
  std::string root, run, plain, ref, mine;
  Tokenizer tok;
  std::unique_ptr<Model> m;  // fp32
};

LoraConfig nf4_lora(const char* quantize = "nf4") {
  LoraConfig l;
  l.r = 4;
  l.quantize = quantize;
  return l;
}

void python(const std::string& args) {
  const std::string cmd = "/usr/bin/python3 '" TEDDY_SOURCE_DIR "/tests/reference/bnb4_reference.py' " + args;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

// A random model, its run, the plain f32 HF export, the reference's bitsandbytes
// directory made from it (tokenizer files copied) and teddy's own --quantize nf4 export.
Fixture make(Family f, bool dq, const std::string& name) {
  Fixture x;
  x.root = fresh_dir("hf_bnb4_" + name);
  x.tok = trained_tokenizer(PretokenizerKind::gpt2);
  x.m = std::make_unique<Model>(config_for(spec_of(f), x.tok.vocab_size()));
  randomize(*x.m, 3);
  x.run = x.root + "/run";
  x.plain = x.root + "/plain";
  x.ref = x.root + "/ref";
  x.mine = x.root + "/mine";
  write_run(x.run, *x.m, x.tok);
  export_hf(x.run, x.plain, HfExportOptions{});
  python("write '" + x.plain + "' '" + x.ref + "' " + (dq ? "1" : "0"));
  for (const char* file : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"})
    if (fs::exists(x.plain + "/" + file)) fs::copy_file(x.plain + "/" + file, x.ref + "/" + file);
  HfExportOptions q;
  q.quantize_nf4 = true;
  q.double_quant = dq;
  export_hf(x.run, x.mine, q);
  return x;
}

BaseFill fill_from(const Model& m) {
  return [&m](const ParamInfo& p, int64_t row0, int64_t rows, float* out) {
    const size_t width = p.numel / static_cast<size_t>(p.shape[0]);
    std::memcpy(out, m.params() + p.offset + static_cast<size_t>(row0) * width, static_cast<size_t>(rows) * width * 4);
  };
}

// Every module's NF4 tensor of a QLoRA model, by (layer, linear, part).
std::vector<const Nf4Tensor*> parts_of(const Model& q) {
  std::vector<const Nf4Tensor*> out;
  for (int l = 0; l < q.config().n_layer; ++l)
    for (int i = 0; i < kLoraLinears; ++i) {
      const kernels::QuantWeight* w = q.base_quant(l, static_cast<LoraLinear>(i));
      for (int k = 0; k < w->nf4_parts; ++k) out.push_back(&w->nf4[k].q);
    }
  return out;
}

void expect_same_nf4(const Nf4Tensor& a, const Nf4Tensor& b) {
  EXPECT_EQ(a.numel, b.numel);
  EXPECT_EQ(a.double_quant, b.double_quant);
  EXPECT_EQ(a.packed, b.packed);
  EXPECT_EQ(a.absmax, b.absmax);
  EXPECT_EQ(a.absmax_q, b.absmax_q);
  EXPECT_EQ(a.absmax2, b.absmax2);
  EXPECT_EQ(a.offset, b.offset);
}

std::vector<float> logits(Model& m) {
  const ModelConfig& c = m.config();
  std::vector<int32_t> tokens(2 * 8);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 37 + 5) % c.vocab_size);
  Batch b;
  b.tokens = tokens.data();
  b.B = 2;
  b.T = 8;
  std::vector<float> out(static_cast<size_t>(b.B) * b.T * c.padded_vocab_size);
  m.forward(b, out.data());
  return out;
}

// Random adapters, the same in both models, so the comparison covers them too.
void set_adapters(Model& m) {
  const std::vector<float> v = randn(m.flat_size(), 17, 0.1);
  std::copy(v.begin(), v.end(), m.params());
}

struct Stored {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};
std::map<std::string, Stored> tensors_of(const std::string& file) {
  const SafetensorsFile f = SafetensorsFile::open(file);
  std::map<std::string, Stored> out;
  for (const std::string& n : f.names()) {
    const SafeTensor& t = f.get(n);
    out[n] = {t.dtype, t.shape, std::string(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size())};
  }
  return out;
}
void write_tensors(const std::string& file, const std::map<std::string, Stored>& ts) {
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  for (const auto& [n, t] : ts) w.add_copy(n, t.dtype, t.shape, t.bytes.data(), t.bytes.size());
  w.write(file);
}

class HfBnb4 : public ::testing::TestWithParam<std::tuple<Family, bool>> {};

TEST_P(HfBnb4, ReadsTheReferenceWritesItsBytes) {
  const auto [family, dq] = GetParam();
  const Fixture x = make(family, dq, std::string(family_name(family)) + (dq ? "_dq" : "_plain"));
  const ModelConfig& c = x.m->config();
  const std::vector<LoraSite> mods = lora_all_sites(c);

  // 1. teddy reads the reference's directory: each module is teddy's quantization of
  // the same fp32 rows (double quantization as the file says).
  Model from_ref = read_hf_bnb4_lora(x.ref, nf4_lora(), 5);
  const std::vector<const Nf4Tensor*> got = parts_of(from_ref);
  const ParamLayout full = make_param_layout(c);
  size_t k = 0;
  for (int l = 0; l < c.n_layer; ++l)
    for (const LoraSite& s : mods) {
      const ParamInfo& p = full.find("layers." + std::to_string(l) + "." + s.name + ".weight");
      for (const LoraPart& part : s.parts) {
        SCOPED_TRACE(p.name + " " + part.hf_module);
        ASSERT_LT(k, got.size());
        const Nf4Tensor want = nf4_quantize(x.m->params() + p.offset + static_cast<size_t>(part.off) * s.in,
                                            static_cast<int64_t>(part.rows) * s.in, dq);
        expect_same_nf4(*got[k++], want);
      }
    }
  EXPECT_EQ(k, got.size());

  // 2. With double quantization (teddy's own QLoRA always has it) the model equals the
  // one teddy builds from fp32: every base tensor and the logits, bit for bit.
  if (dq) {
    Model own = Model::with_lora(c, nf4_lora(), 5, fill_from(*x.m));
    const std::vector<const Nf4Tensor*> mine = parts_of(own);
    ASSERT_EQ(mine.size(), got.size());
    for (size_t i = 0; i < mine.size(); ++i) expect_same_nf4(*mine[i], *got[i]);
    EXPECT_EQ(own.base_bytes(), from_ref.base_bytes());
    set_adapters(own);
    set_adapters(from_ref);
    EXPECT_EQ(logits(own), logits(from_ref));
  }

  // 3. teddy's export: the reference's tensors, byte for byte, and the same quantization_config.
  const auto ref_t = tensors_of(x.ref + "/model.safetensors"), mine_t = tensors_of(x.mine + "/model.safetensors");
  ASSERT_EQ(ref_t.size(), mine_t.size());
  for (const auto& [n, t] : ref_t) {
    SCOPED_TRACE(n);
    ASSERT_TRUE(mine_t.count(n));
    EXPECT_EQ(mine_t.at(n).dtype, t.dtype);
    EXPECT_EQ(mine_t.at(n).shape, t.shape);
    EXPECT_TRUE(mine_t.at(n).bytes == t.bytes);
  }
  size_t stored = 0;  // what the export reports equals the bytes of the tensors it wrote
  for (const auto& [n, t] : mine_t) stored += t.bytes.size();
  EXPECT_EQ(export_hf(x.run, x.root + "/again", [&] {
              HfExportOptions o;
              o.quantize_nf4 = true;
              o.double_quant = dq;
              return o;
            }()).tensor_bytes,
            stored);
  auto config = [](const std::string& d) { return json::parse(std::ifstream(d + "/config.json")); };
  EXPECT_EQ(config(x.mine)["quantization_config"], config(x.ref)["quantization_config"]);

  // 4. The reference reader dequantizes teddy's files to teddy's dequantized weights, and
  // teddy's plain import (the full-precision path) dequantizes to the same floats.
  python("read '" + x.mine + "' '" + x.root + "/deq.safetensors'");
  const SafetensorsFile deq = SafetensorsFile::open(x.root + "/deq.safetensors");
  HfModel plain = read_hf_model(x.mine);
  Model from_mine = read_hf_bnb4_lora(x.mine, nf4_lora(), 5);
  for (const HfTensorSpec& s : hf_tensor_specs(c)) {
    if (!bnb4_block_linear(s)) continue;
    SCOPED_TRACE(s.hf_name);
    const std::vector<float> want = deq.to_f32(s.hf_name);
    ASSERT_EQ(want.size(), static_cast<size_t>(s.rows * s.cols));
    std::vector<float> whole(make_param_layout(c).find(s.teddy_name).numel);
    from_mine.base_weight(s.teddy_name, whole.data());
    EXPECT_TRUE(std::equal(want.begin(), want.end(), whole.begin() + s.row_begin * s.cols));
    const float* imported = plain.model->param(s.teddy_name) + s.row_begin * s.cols;
    EXPECT_TRUE(std::equal(want.begin(), want.end(), imported));
  }
  // Round trip: reading teddy's files gives back the modules it quantized.
  const std::vector<const Nf4Tensor*> back = parts_of(from_mine);
  ASSERT_EQ(back.size(), got.size());
  for (size_t i = 0; i < back.size(); ++i) expect_same_nf4(*back[i], *got[i]);
  // Sharded (a module's tensors in the index's weight_map, each in its shard): the same.
  HfExportOptions sh;
  sh.quantize_nf4 = true;
  sh.double_quant = dq;
  sh.max_shard_bytes = 4000;
  const HfExportReport rep = export_hf(x.run, x.root + "/sharded", sh);
  EXPECT_GT(rep.shards, 3);
  Model from_shards = read_hf_bnb4_lora(x.root + "/sharded", nf4_lora(), 5);
  const std::vector<const Nf4Tensor*> sharded = parts_of(from_shards);
  ASSERT_EQ(sharded.size(), got.size());
  for (size_t i = 0; i < sharded.size(); ++i) expect_same_nf4(*sharded[i], *got[i]);
}

INSTANTIATE_TEST_SUITE_P(Families, HfBnb4,
                         ::testing::Values(std::tuple{Family::llama, true}, std::tuple{Family::gpt2, true},
                                           std::tuple{Family::llama, false}),
                         [](const auto& i) {
                           return std::string(family_name(std::get<0>(i.param))) + (std::get<1>(i.param) ? "_dq" : "_no_dq");
                         });

// Python's repr of floats, as json.dumps writes bitsandbytes' nested_offset.
TEST(HfBnb4Format, PythonFloatRepr) {
  EXPECT_EQ(python_float_repr(0.0123), "0.0123");
  EXPECT_EQ(python_float_repr(1e-05), "1e-05");
  EXPECT_EQ(python_float_repr(0.0001), "0.0001");
  EXPECT_EQ(python_float_repr(1.5e-7), "1.5e-07");
  EXPECT_EQ(python_float_repr(1.0), "1.0");
  EXPECT_EQ(python_float_repr(-2.5), "-2.5");
  EXPECT_EQ(python_float_repr(123456.0), "123456.0");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
  EXPECT_EQ(python_float_repr(static_cast<double>(0.1f)), "0.10000000149011612");
}

// Bad input: a FormatError naming the file, the tensor (or key) and what was expected.
TEST(HfBnb4Format, BadInputIsNamed) {
  const Fixture x = make(Family::llama, true, "bad");
  const std::string file = x.mine + "/model.safetensors";
  const std::string q = "model.layers.0.self_attn.k_proj.weight";
  int n = 0;
  auto variant = [&](const std::function<void(std::map<std::string, Stored>&, json&)>& edit) {
    const std::string d = x.root + "/bad" + std::to_string(n++);
    fs::copy(x.mine, d);
    auto ts = tensors_of(d + "/model.safetensors");
    json cfg = json::parse(std::ifstream(d + "/config.json"));
    edit(ts, cfg);
    write_tensors(d + "/model.safetensors", ts);
    std::ofstream(d + "/config.json") << cfg.dump(2);
    return d;
  };
  auto state = [&](std::map<std::string, Stored>& ts, const std::function<void(json&)>& f) {
    Stored& s = ts.at(q + ".quant_state.bitsandbytes__nf4");
    json j = json::parse(s.bytes);
    f(j);
    s.bytes = j.dump();
    s.shape = {static_cast<int64_t>(s.bytes.size())};
  };
  auto both = [&](const std::string& d, std::vector<std::string> parts) {
    // The plain import and the straight QLoRA read refuse alike.
    for (const std::string& msg : {error_of([&] { read_hf_model(d); }), error_of([&] { read_hf_bnb4_lora(d, nf4_lora(), 1); })})
      for (const std::string& p : parts) EXPECT_TRUE(contains(msg, p)) << msg << "\n  lacks: " << p;
  };
  // fp4, by config.json and by a module's quant_state.
  both(variant([](auto&, json& c) { c["quantization_config"]["bnb_4bit_quant_type"] = "fp4"; }),
       {"config.json", "bnb_4bit_quant_type", "fp4", "only nf4"});
  both(variant([&](auto& ts, json&) {
         state(ts, [](json& j) { j["quant_type"] = "fp4"; });
       }),
       {file.substr(file.rfind('/') + 1), q + ".quant_state.bitsandbytes__nf4", "fp4"});
  // blocksize 128
  both(variant([&](auto& ts, json&) { state(ts, [](json& j) { j["blocksize"] = 128; }); }),
       {"model.safetensors", q + ".quant_state.bitsandbytes__nf4", "\"blocksize\" is 128, expected 64"});
  // A shape that is not the module's: in the quant_state, and the packed codes' own.
  both(variant([&](auto& ts, json&) { state(ts, [](json& j) { j["shape"] = {32, 16}; }); }),
       {q + ".quant_state.bitsandbytes__nf4", "\"shape\" is [32,16], expected [16,32]"});
  both(variant([&](auto& ts, json&) {
         Stored& w = ts.at(q);
         w.bytes.resize(w.bytes.size() - 2);
         w.shape = {static_cast<int64_t>(w.bytes.size()), 1};
       }),
       {q, "U8 [254, 1], expected U8 [256, 1]"});
  // A missing nested_absmax.
  both(variant([&](auto& ts, json&) { ts.erase(q + ".nested_absmax"); }), {q + ".nested_absmax", "missing"});
  // A quant_map that is not NF4's.
  both(variant([&](auto& ts, json&) {
         Stored& m = ts.at(q + ".quant_map");
         float v[16];
         std::memcpy(v, m.bytes.data(), sizeof v);
         v[3] *= 1.01f;
         std::memcpy(m.bytes.data(), v, sizeof v);
       }),
       {q + ".quant_map", "level 3", "expected the NF4 level"});
  // Another quantization method, or 8-bit.
  both(variant([](auto&, json& c) { c["quantization_config"]["quant_method"] = "gptq"; }),
       {"quantization_config.quant_method", "gptq"});
  both(variant([](auto&, json& c) {
         c["quantization_config"]["load_in_8bit"] = true;
         c["quantization_config"]["load_in_4bit"] = false;
       }),
       {"quantization_config.load_in_8bit"});
}

// A CUDA-quantized file keeps create_dynamic_map's level 0 (-0.99375) in its
// nested_quant_map: teddy decodes code 0 with it, and writes it back.
TEST(HfBnb4Format, NestedMapLevelZeroIsTheFiles) {
  const Fixture x = make(Family::llama, true, "level0");
  const std::string d = x.root + "/cuda";
  fs::copy(x.mine, d);
  auto ts = tensors_of(d + "/model.safetensors");
  const float level0 = -0x1.fc6666p-1f;
  for (auto& [n, t] : ts)
    if (n.size() > 17 && n.compare(n.size() - 17, 17, ".nested_quant_map") == 0) std::memcpy(t.bytes.data(), &level0, 4);
  write_tensors(d + "/model.safetensors", ts);
  HfWeights w = HfWeights::open(d);
  const ModelConfig& c = x.m->config();
  const std::string mod = "model.layers.1.mlp.down_proj";
  bool any0 = false;
  for (const HfTensorSpec& s : hf_tensor_specs(c)) {
    if (!bnb4_block_linear(s)) continue;
    const Nf4Tensor t = read_bnb4_linear(w, s.hf_name.substr(0, s.hf_name.size() - 7), {s.rows, s.cols}, true);
    EXPECT_EQ(t.map_level0, level0);
    for (size_t b = 0; b < t.absmax_q.size(); ++b)
      if (t.absmax_q[b] == 0) {
        any0 = true;
        volatile float scaled = level0 * t.absmax2[b / kNf4Block2];  // rounded alone: no FMA
        EXPECT_EQ(t.block_absmax(b), scaled + t.offset);
        EXPECT_NE(t.block_absmax(b), -t.absmax2[b / kNf4Block2] + t.offset);
      }
  }
  EXPECT_TRUE(any0) << "no block uses code 0: the check above did not run";
  const Nf4Tensor t = read_bnb4_linear(w, mod, {c.d_model, c.d_ff}, true);
  SafetensorsWriter out;
  add_bnb4_linear(out, mod, t, {c.d_model, c.d_ff}, "float32");
  out.write(x.root + "/one.safetensors");
  const SafetensorsFile back = SafetensorsFile::open(x.root + "/one.safetensors");
  EXPECT_EQ(back.to_f32(mod + ".weight.nested_quant_map")[0], level0);
}

// `teddy sft` with [lora] quantize nf4 over a bitsandbytes hf:DIR: the import (for the
// tokenizer, template and full-precision uses) plus the base read from the directory's
// own NF4 codes; the adapters learn the tiny task.
TEST(HfBnb4Sft, QloraFromABitsandbytesBaseTrains) {
  const fs::path root = fresh_dir("hf_bnb4_sft");
  const std::string base = make_lora_sft_base(root);
  const std::string bnb = (root / "bnb").string();
  HfExportOptions q;
  q.quantize_nf4 = true;
  export_hf(base, bnb, q);
  const std::string imported = import_hf_once(bnb, (root / "run" / "hf_base").string());
  install_hf_bnb4_base_loader();
  const std::string data = make_sft_data(root);
  SftConfig cfg = SftConfig::parse(R"(
[train]
micro_batch = 4
seq_len = 64
grad_accum = 2
steps = 16
seed = 5
threads = 1
[optim]
lr = 3e-2
warmup_steps = 3
[run]
peak_gflops = 100
[lora]
r = 8
quantize = "nf4"
)", "test.toml", {"model.init=" + imported, "data.train=" + data, "run.dir=" + (root / "run").string()});
  SftTrainer t(cfg, Resume::no);
  // The base is the file's codes (a re-quantization of the dequantized import would
  // differ in the double quantization's offsets).
  Model direct = read_hf_bnb4_lora(bnb, cfg.lora, 5);
  const std::vector<const Nf4Tensor*> a = parts_of(t.model()), b = parts_of(direct);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) expect_same_nf4(*a[i], *b[i]);
  {  // without the loader the base would be the import's dequantized weights quantized again: not the file's
    set_imported_base_loader({});
    ChatModel requantized = load_chat_model(imported, "", true, nullptr, &cfg.lora, 5);
    const std::vector<const Nf4Tensor*> r = parts_of(*requantized.model);
    ASSERT_EQ(r.size(), b.size());
    size_t differ = 0;
    for (size_t i = 0; i < r.size(); ++i) differ += r[i]->offset != b[i]->offset || r[i]->absmax_q != b[i]->absmax_q;
    EXPECT_GT(differ, 0u);
    std::cout << "  re-quantizing the dequantized import changes " << differ << " of " << r.size() << " modules\n";
  }
  t.run({});
  const std::vector<double> losses = t.step_losses();
  std::cout << "  QLoRA from a bitsandbytes base: loss " << losses.front() << " -> " << losses.back() << "\n";
  EXPECT_LT(losses.back(), 0.7 * losses.front());
}

}  // namespace
