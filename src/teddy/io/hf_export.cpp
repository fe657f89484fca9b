#include "teddy/io/hf_export.h"

#include <cstdio>
#include <cstring>
#include <optional>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "teddy/core/error.h"
#include "teddy/io/atomic_file.h"
#include "teddy/io/hf_bnb4.h"
#include "teddy/io/hf_model.h"
#include "teddy/io/hf_staging.h"
#include "teddy/io/safetensors.h"

namespace fs = std::filesystem;

namespace teddy {

namespace {

using json = nlohmann::json;

const char* st_dtype(DType t) { return t == DType::f32 ? "F32" : t == DType::bf16 ? "BF16" : "F16"; }
const char* torch_dtype(DType t) { return t == DType::f32 ? "float32" : t == DType::bf16 ? "bfloat16" : "float16"; }

// One HF tensor gathered from the model's flat buffer and converted to the output dtype.
std::vector<std::byte> gather(const Model& m, const HfTensorSpec& s, DType dtype) {
  const size_t n = static_cast<size_t>(s.rows * s.cols);
  std::vector<float> f(n);
  const float* p = m.params() + m.layout().find(s.teddy_name).offset + static_cast<size_t>(s.row_begin * s.cols);
  if (!s.transpose) {
    std::copy(p, p + n, f.begin());
  } else {  // teddy rows -> HF [cols, rows]
    for (int64_t r = 0; r < s.rows; ++r)
      for (int64_t k = 0; k < s.cols; ++k) f[static_cast<size_t>(k * s.rows + r)] = p[r * s.cols + k];
  }
  std::vector<std::byte> out(n * dtype_size(dtype));
  if (dtype == DType::f32) std::memcpy(out.data(), f.data(), out.size());
  else if (dtype == DType::bf16) convert_f32_to_bf16(reinterpret_cast<bf16_t*>(out.data()), f.data(), n);
  else convert_f32_to_f16(reinterpret_cast<f16_t*>(out.data()), f.data(), n);
  return out;
}

void write_json(const std::string& path, const json& j) { write_file_atomic(path, j.dump(2) + "\n"); }

}  // namespace

HfExportReport write_hf_dir(const TeddyRun& run, const std::string& out_dir, const HfExportOptions& opts) {
  const Model& m = *run.model;
  const ModelConfig& cfg = m.config();
  HfExportReport r;
  r.out_dir = out_dir;
  r.checkpoint = run.checkpoint;
  r.skipped = run.skipped;
  r.architecture = hf_architecture(cfg);
  StagedDir out(out_dir);

  // What each HF tensor becomes: itself in opts.dtype, or with --quantize nf4 a block
  // linear's bitsandbytes tensors (hf_bnb4.h), one Nf4Tensor per HF module.
  const std::vector<HfTensorSpec> specs = hf_tensor_specs(cfg);
  struct Item {
    size_t spec;
    std::optional<Nf4Tensor> q;
    uint64_t bytes = 0;
  };
  std::vector<Item> items;
  for (size_t i = 0; i < specs.size(); ++i) {
    const HfTensorSpec& s = specs[i];
    Item it{i, std::nullopt, static_cast<uint64_t>(s.rows * s.cols) * dtype_size(opts.dtype)};
    if (opts.quantize_nf4 && bnb4_block_linear(s)) {
      // Rows in teddy's (= nn.Linear's) [out, in] order: transformers quantizes a
      // Conv1D's weight transposed to that too.
      const float* p = m.params() + m.layout().find(s.teddy_name).offset + static_cast<size_t>(s.row_begin * s.cols);
      it.q = nf4_quantize(p, s.rows * s.cols, opts.double_quant);
      // Every tensor the module writes: codes and constants, the two maps, the quant_state.
      it.bytes = it.q->bytes() - (opts.double_quant ? 4 : 0) + 16 * 4 + (opts.double_quant ? 256 * 4 : 0) +
                 bnb4_quant_state_json(*it.q, {s.rows, s.cols}, torch_dtype(opts.dtype)).size();
    }
    items.push_back(std::move(it));
  }
  // Shards, as huggingface_hub's split_state_dict_into_shards_factory makes them.
  std::vector<std::vector<size_t>> shards;
  std::vector<size_t> current;
  uint64_t current_bytes = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const uint64_t bytes = items[i].bytes;
    r.tensor_bytes += bytes;
    if (bytes > opts.max_shard_bytes) {
      shards.push_back({i});
      continue;
    }
    if (current_bytes + bytes > opts.max_shard_bytes) {
      shards.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    current.push_back(i);
    current_bytes += bytes;
  }
  if (!current.empty()) shards.push_back(std::move(current));
  r.shards = static_cast<int>(shards.size());
  r.tensors = 0;

  json weight_map = json::object();
  for (size_t k = 0; k < shards.size(); ++k) {
    char name[64];
    if (shards.size() == 1) std::snprintf(name, sizeof name, "model.safetensors");
    else std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", k + 1, shards.size());
    SafetensorsWriter w;
    w.set_metadata("format", "pt");
    for (size_t i : shards[k]) {
      const HfTensorSpec& s = specs[items[i].spec];
      if (items[i].q) {
        const std::string module = s.hf_name.substr(0, s.hf_name.size() - std::strlen(".weight"));
        add_bnb4_linear(w, module, *items[i].q, {s.rows, s.cols}, torch_dtype(opts.dtype));
        for (const std::string& n : bnb4_tensor_names(module, opts.double_quant)) weight_map[n] = name;
        r.tensors += bnb4_tensor_names(module, opts.double_quant).size();
        continue;
      }
      const std::vector<std::byte> bytes = gather(m, s, opts.dtype);
      w.add_copy(s.hf_name, st_dtype(opts.dtype), s.hf_shape, bytes.data(), bytes.size());
      weight_map[s.hf_name] = name;
      ++r.tensors;
    }
    w.write(out.path(name));
    r.files.push_back(name);
  }
  if (shards.size() > 1) {
    write_json(out.path("model.safetensors.index.json"),
               json{{"metadata", {{"total_size", r.tensor_bytes}}}, {"weight_map", weight_map}});
    r.files.push_back("model.safetensors.index.json");
  }

  json config = model_to_hf_config(cfg, run.config_extras(), torch_dtype(opts.dtype));
  if (opts.quantize_nf4) config["quantization_config"] = bnb4_quantization_config({opts.double_quant, "float32"});
  write_json(out.path("config.json"), config);
  r.files.push_back("config.json");
  const json gen = make_generation_config(run.tokenizer, run.extras, run.chat ? &*run.chat : nullptr);
  if (!gen.is_null()) {
    write_json(out.path("generation_config.json"), gen);
    r.files.push_back("generation_config.json");
  }
  run.tokenizer.save_hf_json(out.path("tokenizer.json"));
  write_json(out.path("tokenizer_config.json"),
             make_tokenizer_config(run.tokenizer, run.extras, run.chat_template(), cfg.max_seq_len));
  r.files.insert(r.files.end(), {"tokenizer.json", "tokenizer_config.json"});
  out.commit();
  return r;
}

HfExportReport export_hf(const std::string& checkpoint, const std::string& out_dir, const HfExportOptions& opts) {
  return write_hf_dir(read_teddy_run(checkpoint, opts.tokenizer), out_dir, opts);
}

}  // namespace teddy
