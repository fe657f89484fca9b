#include "teddy/io/hf_import.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

#include "teddy/core/error.h"
#include "teddy/io/atomic_file.h"
#include "teddy/io/json_errors.h"
#include "teddy/tokenizer/tokenizer_file.h"
#include "teddy/io/hf_staging.h"
#include "teddy/io/hf_weights.h"
#include "teddy/io/hf_bnb4.h"
#include "teddy/checkpoint/checkpoint.h"
#include "teddy/train/grow_vocab.h"

namespace fs = std::filesystem;

namespace teddy {

namespace {

using json = nlohmann::json;

// An absolute, normalised directory name without a trailing separator.
std::string normalized_dir(const std::string& dir) {
  fs::path p = fs::absolute(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.string();
}

json read_json(const std::string& path) { return parse_json_or_throw(read_text_file(path), path); }

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// tokenizer.json settings outside what parse_hf_tokenizer checks that would make teddy
// encode or decode differently from the file's owner.
void check_tokenizer_json(const json& j, const std::string& path, std::vector<std::string>& notes) {
  auto fail = [&](const std::string& key, const std::string& what) -> void {
    throw FormatError(path + ": " + key + ": " + what);
  };
  auto type_of = [](const json& v) { return v.is_object() ? v.value("type", std::string("?")) : v.dump(); };
  if (j.contains("model") && j["model"].is_object()) {
    const json& m = j["model"];
    for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (m.contains(k) && !m[k].is_null() && !(m[k].is_string() && m[k].get<std::string>().empty()))
        fail(std::string("model.") + k, "not supported (byte-level BPE has none; got " + m[k].dump() + ")");
    if (m.contains("dropout") && !m["dropout"].is_null() && !(m["dropout"].is_number() && m["dropout"].get<double>() == 0))
      fail("model.dropout", "BPE dropout is not supported (got " + m["dropout"].dump() + ")");
  }
  if (j.contains("decoder") && !j["decoder"].is_null()) {
    const std::string t = type_of(j["decoder"]);
    if (t != "ByteLevel") fail("decoder", "type \"" + t + "\" is not supported (only ByteLevel)");
  }
  if (j.contains("post_processor") && !j["post_processor"].is_null()) {
    const std::string t = type_of(j["post_processor"]);
    if (t == "TemplateProcessing")
      notes.push_back(path + ": post_processor TemplateProcessing (tokens added around an encoding, e.g. BOS) is "
                             "not applied by teddy's encoder");
    else if (t != "ByteLevel")
      fail("post_processor", "type \"" + t + "\" is not supported (null, ByteLevel or TemplateProcessing)");
  }
  for (const char* k : {"truncation", "padding"})
    if (j.contains(k) && !j[k].is_null()) notes.push_back(path + ": " + k + " settings ignored");
}

Tokenizer read_tokenizer(const std::string& path, std::vector<std::string>& notes) {
  const std::string text = read_text_file(path);
  check_tokenizer_json(parse_json_or_throw(text, path), path, notes);
  BpeVocab v = parse_hf_tokenizer(text, path);
  try {
    return Tokenizer::from_vocab(std::move(v));
  } catch (const FormatError&) {
    throw;
  } catch (const Error& e) {
    throw FormatError(path + ": " + e.what());
  }
}

// "model.layers.0.self_attn.q_proj.weight" -> its module "model.layers.0.self_attn.q_proj".
std::string bnb4_module(const std::string& weight_name) {
  return weight_name.substr(0, weight_name.size() - std::strlen(".weight"));
}

// Checks every tensor's presence, shape and dtype against `c` (before any model is
// allocated, so a config.json that promises a huge model over small files costs nothing).
// Returns each spec's tensor name as stored.
std::vector<std::string> check_weights(const HfWeights& w, const ModelConfig& c, const std::vector<HfTensorSpec>& specs,
                                       std::vector<std::string>& notes, const Bnb4Config* bnb) {
  const std::string arch = hf_architecture(c);
  // GPT-2 checkpoints saved from GPT2Model name tensors without "transformer.".
  std::vector<std::string> names(specs.size());
  std::set<std::string> used;
  for (size_t i = 0; i < specs.size(); ++i) {
    const HfTensorSpec& s = specs[i];
    std::string name = s.hf_name;
    if (c.family == Family::gpt2 && name.rfind("transformer.", 0) == 0) {
      const std::string bare = name.substr(std::strlen("transformer."));
      if (w.find(bare) && w.find(name))
        throw FormatError(w.file_of(bare) + ": both " + name + " and " + bare + " are present");
      if (w.find(bare)) name = bare;
    }
    if (bnb && bnb4_block_linear(s)) {
      // A bitsandbytes module: its tensors present (read_bnb4_linear checks the rest when it reads them).
      const std::string module = bnb4_module(name);
      for (const std::string& n : bnb4_tensor_names(module, bnb->double_quant)) {
        if (!w.find(n)) {
          if (n == name + ".quant_state.bitsandbytes__nf4" && w.find(name + ".quant_state.bitsandbytes__fp4"))
            throw FormatError(w.file_of(name + ".quant_state.bitsandbytes__fp4") + ": " + name +
                              ".quant_state.bitsandbytes__fp4: quant_type fp4 is not supported (teddy reads nf4)");
          throw FormatError(w.listing() + ": tensor " + n + " is missing (config.json's quantization_config says " +
                            s.hf_name + " is a bitsandbytes 4-bit" + (bnb->double_quant ? " double-quantized" : "") +
                            " linear)");
        }
        used.insert(n);
      }
      names[i] = name;
      continue;
    }
    const SafeTensor* t = w.find(name);
    if (!t)
      throw FormatError(w.listing() + ": tensor " + s.hf_name + " is missing (a " + arch + " with this config.json has " +
                        std::to_string(specs.size()) + " tensors)");
    if (t->shape != s.hf_shape)
      throw FormatError(w.file_of(name) + ": " + name + ": shape " + shape_text(t->shape) + ", but config.json implies " +
                        shape_text(s.hf_shape));
    w.check_dtype(name);
    names[i] = name;
    used.insert(name);
  }
  if (c.tie_embeddings && w.find("lm_head.weight")) used.insert("lm_head.weight");  // compared once loaded
  for (const std::string& n : w.names()) {
    if (used.count(n)) continue;
    if (hf_ignorable_tensor(c.family, n)) {
      notes.push_back(w.file_of(n) + ": " + n + " (a buffer, not a parameter) skipped");
      continue;
    }
    throw FormatError(w.file_of(n) + ": tensor " + n + " is not part of a " + arch +
                      " with this config.json (unexpected tensor)");
  }
  return names;
}

// Copies the checked tensors into `m` (fp32; bitsandbytes modules dequantized).
void copy_weights(const HfWeights& w, const std::vector<HfTensorSpec>& specs, const std::vector<std::string>& names,
                  Model& m, HfModel& out, const Bnb4Config* bnb) {
  const ModelConfig& c = m.config();
  const SafeTensor* tied_head = c.tie_embeddings ? w.find("lm_head.weight") : nullptr;
  std::vector<float> buf;
  for (size_t i = 0; i < specs.size(); ++i) {
    const HfTensorSpec& s = specs[i];
    const size_t n = static_cast<size_t>(s.rows * s.cols);
    if (bnb && bnb4_block_linear(s)) {  // stored [out, in] like teddy's rows, whatever the family
      const Nf4Tensor q = read_bnb4_linear(w, bnb4_module(names[i]), {s.rows, s.cols}, bnb->double_quant);
      nf4_dequantize(q, 0, q.numel, m.param(s.teddy_name) + static_cast<size_t>(s.row_begin * s.cols));
      ++out.dtypes["NF4"];
      continue;
    }
    buf.resize(n);
    w.copy_f32(names[i], buf.data(), n);
    ++out.dtypes[w.find(names[i])->dtype];
    float* p = m.param(s.teddy_name) + static_cast<size_t>(s.row_begin * s.cols);
    if (!s.transpose) {
      std::memcpy(p, buf.data(), n * sizeof(float));
    } else {  // HF [cols, rows] -> teddy rows
      for (int64_t r = 0; r < s.rows; ++r)
        for (int64_t k = 0; k < s.cols; ++k) p[r * s.cols + k] = buf[static_cast<size_t>(k * s.rows + r)];
    }
  }
  if (tied_head) {
    const std::string& emb = names[0];
    if (tied_head->shape != w.find(emb)->shape)
      throw FormatError(w.file_of("lm_head.weight") + ": lm_head.weight: config.json ties it to " + emb +
                        " but its shape differs");
    buf.resize(static_cast<size_t>(tied_head->numel()));
    w.copy_f32("lm_head.weight", buf.data(), buf.size());
    if (std::memcmp(buf.data(), m.param("tok_emb.weight"), buf.size() * sizeof(float)) != 0)
      throw FormatError(w.file_of("lm_head.weight") +
                        ": lm_head.weight: differs from the embedding, but config.json has tie_word_embeddings");
    out.notes.push_back("lm_head.weight equals the tied embedding; not stored twice");
  }
}

}  // namespace

HfModel read_hf_model(const std::string& dir) {
  HfModel out;
  const fs::path root(dir);
  if (!fs::is_directory(root)) throw Error(dir + ": not a directory");
  const std::string config_path = (root / "config.json").string();
  if (!fs::exists(config_path)) throw FormatError(config_path + ": missing (a Hugging Face model directory has one)");
  const json config = read_json(config_path);
  HfConfigExtras cfg_extras;
  const ModelConfig cfg = hf_config_to_model(config, config_path, &cfg_extras);

  const std::string tok_path = (root / "tokenizer.json").string();
  if (!fs::exists(tok_path))
    throw FormatError(tok_path + ": missing (teddy reads tokenizer.json; vocab.json/merges.txt and tokenizer.model are not read)");
  out.tokenizer = read_tokenizer(tok_path, out.notes);
  if (out.tokenizer.vocab_size() > cfg.vocab_size)
    throw FormatError(tok_path + ": has " + std::to_string(out.tokenizer.vocab_size()) + " ids, but " + config_path +
                      " says vocab_size " + std::to_string(cfg.vocab_size));

  out.extras.source = normalized_dir(dir);
  out.extras.config = cfg_extras;
  const std::string tc_path = (root / "tokenizer_config.json").string();
  if (fs::exists(tc_path)) {
    std::vector<std::string> ignored;
    out.extras.tokenizer_config = read_tokenizer_config(read_json(tc_path), tc_path, out.tokenizer, &ignored);
    if (!ignored.empty()) {
      std::string list;
      for (const std::string& k : ignored) list += (list.empty() ? "" : ", ") + k;
      out.notes.push_back(tc_path + ": not kept: " + list);
    }
  }
  const std::string gc_path = (root / "generation_config.json").string();
  if (fs::exists(gc_path)) out.extras.generation_config = read_generation_config(read_json(gc_path), gc_path);
  for (const char* f : {"special_tokens_map.json", "vocab.json", "merges.txt", "tokenizer.model"})
    if (fs::exists(root / f)) out.notes.push_back((root / f).string() + ": not read (tokenizer.json and tokenizer_config.json say it all)");

  const std::optional<Bnb4Config> bnb = read_bnb4_config(config, config_path);
  if (bnb) out.notes.push_back(config_path + ": bitsandbytes 4-bit NF4 base: dequantized to fp32");
  const HfWeights weights = HfWeights::open(dir);
  const std::vector<HfTensorSpec> specs = hf_tensor_specs(cfg);
  const std::vector<std::string> names = check_weights(weights, cfg, specs, out.notes, bnb ? &*bnb : nullptr);
  out.model = std::make_unique<Model>(cfg);
  std::memset(out.model->params(), 0, out.model->flat_size() * sizeof(float));
  copy_weights(weights, specs, names, *out.model, out, bnb ? &*bnb : nullptr);
  return out;
}

namespace {

// Elements [begin, begin + n) of a checked (F32 / F16 / BF16) tensor as floats.
void widen(const SafeTensor& t, size_t begin, size_t n, float* out) {
  const std::byte* b = t.bytes.data();
  if (t.dtype == "F32") std::memcpy(out, b + begin * 4, n * 4);
  else if (t.dtype == "BF16") convert_bf16_to_f32(out, reinterpret_cast<const bf16_t*>(b) + begin, n);
  else convert_f16_to_f32(out, reinterpret_cast<const f16_t*>(b) + begin, n);
}

}  // namespace

bool is_hf_bnb4_dir(const std::string& dir) {
  const fs::path config = fs::path(dir) / "config.json";
  if (!fs::exists(config)) return false;
  const json j = read_json(config.string());
  return j.is_object() && read_bnb4_config(j, config.string()).has_value();
}

Model read_hf_bnb4_lora(const std::string& dir, const LoraConfig& lora, uint64_t seed, Context ctx) {
  const std::string config_path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(config_path)) throw FormatError(config_path + ": missing (a Hugging Face model directory has one)");
  const json config = read_json(config_path);
  const ModelConfig cfg = hf_config_to_model(config, config_path, nullptr);
  const std::optional<Bnb4Config> bnb = read_bnb4_config(config, config_path);
  if (!bnb) throw Error(config_path + ": has no bitsandbytes quantization_config");
  const HfWeights w = HfWeights::open(dir);
  const std::vector<HfTensorSpec> specs = hf_tensor_specs(cfg);
  std::vector<std::string> notes;
  const std::vector<std::string> names = check_weights(w, cfg, specs, notes, &*bnb);
  // The last tensor read whole (a transposed plain tensor, or a module dequantized for a
  // bf16 / fp32 base): one tensor at a time, never the model.
  size_t cached = specs.size();
  std::vector<float> whole;
  const BaseFill fill = [&](const ParamInfo& p, int64_t row0, int64_t rows, float* out) {
    const int64_t width = static_cast<int64_t>(p.numel) / p.shape[0];
    std::fill(out, out + rows * width, 0.0f);  // padding rows (vocabulary) stay zero
    for (size_t i = 0; i < specs.size(); ++i) {
      const HfTensorSpec& s = specs[i];
      if (s.teddy_name != p.name) continue;
      const int64_t lo = std::max(row0, s.row_begin), hi = std::min(row0 + rows, s.row_begin + s.rows);
      if (lo >= hi) continue;
      float* dst = out + (lo - row0) * width;
      const size_t first = static_cast<size_t>((lo - s.row_begin) * s.cols), n = static_cast<size_t>((hi - lo) * s.cols);
      if (!bnb4_block_linear(s) && !s.transpose) {
        widen(*w.find(names[i]), first, n, dst);
        continue;
      }
      if (cached != i) {
        whole.assign(static_cast<size_t>(s.rows * s.cols), 0.0f);
        if (bnb4_block_linear(s)) {
          const Nf4Tensor q = read_bnb4_linear(w, bnb4_module(names[i]), {s.rows, s.cols}, bnb->double_quant);
          nf4_dequantize(q, 0, q.numel, whole.data());
        } else {  // HF [cols, rows] -> teddy rows
          std::vector<float> t(whole.size());
          widen(*w.find(names[i]), 0, t.size(), t.data());
          for (int64_t r = 0; r < s.rows; ++r)
            for (int64_t k = 0; k < s.cols; ++k) whole[static_cast<size_t>(r * s.cols + k)] = t[static_cast<size_t>(k * s.rows + r)];
        }
        cached = i;
      }
      std::copy(whole.begin() + static_cast<std::ptrdiff_t>(first), whole.begin() + static_cast<std::ptrdiff_t>(first + n), dst);
    }
  };
  // Each HF module's codes and constants as stored: no fp32 on the way.
  const Nf4Source nf4 = [&](const ParamInfo& p, const LoraPart& part) -> std::optional<Nf4Tensor> {
    for (size_t i = 0; i < specs.size(); ++i) {
      const HfTensorSpec& s = specs[i];
      if (s.teddy_name == p.name && s.row_begin == part.off && s.rows == part.rows && bnb4_block_linear(s))
        return read_bnb4_linear(w, bnb4_module(names[i]), {s.rows, s.cols}, bnb->double_quant);
    }
    throw Error("read_hf_bnb4_lora: no Hugging Face module holds rows " + std::to_string(part.off) + ".." +
                std::to_string(part.off + part.rows) + " of " + p.name);
  };
  return Model::with_lora(cfg, lora, seed, fill, nf4, ctx);
}

void install_hf_bnb4_base_loader() {
  set_imported_base_loader([](const std::string& run_dir, const LoraConfig& lora, uint64_t seed) -> std::unique_ptr<Model> {
    const fs::path extras = fs::path(run_dir) / kHfExtrasFile;
    if (lora.quantize != "nf4" || !fs::exists(extras)) return nullptr;
    const HfExtras e = HfExtras::from_json(read_text_file(extras.string()), extras.string());
    if (e.source.empty() || !is_hf_bnb4_dir(e.source)) return nullptr;
    return std::make_unique<Model>(read_hf_bnb4_lora(e.source, lora, seed));
  });
}

HfImportReport import_hf(const std::string& dir, const std::string& run_dir) {
  HfModel m = read_hf_model(dir);
  HfImportReport r;
  r.run_dir = run_dir;
  r.config = m.model->config();
  r.architecture = m.extras.config.architecture;
  r.parameters = m.model->layout().count();
  r.dtypes = m.dtypes;
  r.notes = m.notes;

  StagedDir out(run_dir);
  // A fresh optimizer state: finetuning or continued pretraining starts AdamW at t = 0.
  const AdamW opt(m.model->layout(), AdamWConfig{}, m.model->context());
  CheckpointState state;
  state.run_config = "# imported from Hugging Face: " + m.extras.source + "\n";
  const std::string staged_ckpt = save_checkpoint(out.dir(), *m.model, opt, state, 0);
  m.tokenizer.save(out.path("tokenizer.json"));
  write_file_atomic(out.path(kHfExtrasFile), m.extras.to_json());
  std::string why;
  if (const auto t = model_chat_template(m.extras, m.tokenizer, &why)) {
    t->save(out.path("chat_template.json"));
    r.chat_template = t->name;
  } else if (!why.empty()) {
    r.notes.push_back(why + " (the template is kept for export; generate --chat and sft use chatml unless told otherwise)");
  }
  out.commit();
  r.checkpoint = (fs::path(run_dir) / fs::path(staged_ckpt).lexically_relative(out.dir())).string();
  return r;
}

std::string hf_model_dir(const std::string& spec) { return spec.rfind("hf:", 0) == 0 ? spec.substr(3) : ""; }

ChatModel load_hf_chat_model(const std::string& dir, bool chat, const ChatTemplate* tmpl) {
  HfModel m = read_hf_model(dir);
  ChatModel cm;
  cm.checkpoint = "hf:" + dir;
  cm.tok = std::move(m.tokenizer);
  cm.base_vocab = m.model->config().vocab_size;
  if (chat) {
    cm.tmpl = resolve_chat_template(tmpl, model_chat_template(m.extras, cm.tok), cm.tok, "hf:" + dir);
    cm.added_specials = add_template_specials(cm.tok, cm.tmpl);
    finish_chat_template(cm.tmpl, cm.tok);
  }
  if (cm.tok.vocab_size() > cm.base_vocab)
    cm.model = std::make_unique<Model>(grow_vocab(*m.model, cm.tok.vocab_size()));
  else
    cm.model = std::move(m.model);
  return cm;
}

std::string import_hf_once(const std::string& dir, const std::string& run_dir, bool* reused) {
  const fs::path extras = fs::path(run_dir) / kHfExtrasFile;
  if (fs::exists(extras)) {
    const HfExtras e = HfExtras::from_json(read_text_file(extras.string()), extras.string());
    const std::string want = normalized_dir(dir);
    if (e.source != want)
      throw Error(run_dir + ": holds an import of " + e.source + ", not of " + want + " (remove it or pick another run.dir)");
    if (reused) *reused = true;
    return run_dir;
  }
  import_hf(dir, run_dir);
  if (reused) *reused = false;
  return run_dir;
}

}  // namespace teddy
