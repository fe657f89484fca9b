// PEFT adapter directories (io/hf_peft.h).
#include "teddy/io/hf_peft.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "teddy/core/error.h"
#include "teddy/io/atomic_file.h"
#include "teddy/io/safetensors.h"

namespace fs = std::filesystem;

namespace teddy {

namespace {

std::string peft_key(const ModelConfig& c, int layer, const LoraPart& part, const char* ab) {
  return "base_model.model." + peft_module_path(c, layer, part) + "." + ab + ".weight";
}

// Visits every (layer, site, part) with its A rows (r, in) and B rows (n, r) in the
// model's adapter buffer.
template <class F>
void for_each_part(const Model& m, F&& f) {
  const int r = m.lora()->r;
  for (int l = 0; l < m.config().n_layer; ++l)
    for (const LoraSite& s : m.lora_sites()) {
      const std::string n = "layers." + std::to_string(l) + "." + s.name;
      const size_t a_off = m.layout().find(n + ".lora_A").offset, b_off = m.layout().find(n + ".lora_B").offset;
      int brow = 0;
      for (size_t p = 0; p < s.parts.size(); ++p) {
        f(l, s, s.parts[p], a_off + p * static_cast<size_t>(r) * s.in, b_off + static_cast<size_t>(brow) * r);
        brow += s.parts[p].rows;
      }
    }
}

// PEFT's target_modules for the sites: short names ("q_proj", "c_fc"), qualified where
// the short one would also match a module teddy does not adapt (GPT-2's c_proj).
std::vector<std::string> target_modules(const Model& m) {
  std::set<std::string> chosen, all_short;
  for (const LoraSite& s : m.lora_sites())
    for (const LoraPart& p : s.parts) chosen.insert(p.hf_module);
  std::vector<std::string> out;
  for (const LoraSite& s : lora_all_sites(m.config()))
    for (const LoraPart& p : s.parts) {
      if (!chosen.count(p.hf_module)) continue;
      const std::string short_name = p.hf_module.substr(p.hf_module.rfind('.') + 1);
      bool clash = false;  // another module of that short name left out
      for (const LoraSite& s2 : lora_all_sites(m.config()))
        for (const LoraPart& q : s2.parts)
          clash = clash || (q.hf_module != p.hf_module && q.hf_module.substr(q.hf_module.rfind('.') + 1) == short_name &&
                            !chosen.count(q.hf_module));
      const std::string name = clash ? p.hf_module : short_name;
      if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
    }
  return out;
}

}  // namespace

void save_peft_adapter(const Model& m, const std::string& dir, const std::string& base_name) {
  const LoraConfig* l = m.lora();
  if (!l) throw Error("save_peft_adapter: the model has no LoRA adapters");
  fs::create_directories(dir);
  const ModelConfig& c = m.config();
  SafetensorsWriter w;
  for_each_part(m, [&](int layer, const LoraSite& s, const LoraPart& part, size_t a, size_t b) {
    w.add_f32(peft_key(c, layer, part, "lora_A"), {l->r, s.in}, m.params() + a);
    w.add_f32(peft_key(c, layer, part, "lora_B"), {part.rows, l->r}, m.params() + b);
  });
  w.set_metadata("format", "pt");
  w.write((fs::path(dir) / "adapter_model.safetensors").string());
  const nlohmann::json j = {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"base_model_name_or_path", base_name},
      {"r", l->r},
      {"lora_alpha", l->alpha},
      {"lora_dropout", l->dropout},
      {"target_modules", target_modules(m)},
      {"bias", "none"},
      {"fan_in_fan_out", c.family == Family::gpt2},  // GPT-2's Conv1D base weights are (in, out)
      {"use_rslora", l->rslora},
      {"use_dora", false},
      {"init_lora_weights", true},
      {"inference_mode", true},
      {"modules_to_save", nullptr},
      {"layers_to_transform", nullptr},
      {"rank_pattern", nlohmann::json::object()},
      {"alpha_pattern", nlohmann::json::object()},
      {"revision", nullptr},
  };
  write_file_atomic((fs::path(dir) / "adapter_config.json").string(), j.dump(2) + "\n");
}

LoraConfig read_peft_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / "adapter_config.json").string();
  std::ifstream f(path);
  if (!f) throw Error(path + ": cannot open (a PEFT adapter directory has adapter_config.json)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path + ": not JSON (" + e.what() + ")");
  }
  auto bad = [&](const std::string& key, const std::string& why) { return FormatError(path + ": " + key + ": " + why); };
  auto is_empty = [&](const char* key) {
    return !j.contains(key) || j[key].is_null() || (j[key].is_object() && j[key].empty()) ||
           (j[key].is_array() && j[key].empty());
  };
  LoraConfig l;
  try {
    if (j.value("peft_type", std::string("LORA")) != "LORA") throw bad("peft_type", "only \"LORA\" adapters are read");
    if (!j.contains("r") || !j["r"].is_number_integer()) throw bad("r", "missing or not an integer");
    l.r = j["r"].get<int>();
    l.alpha = j.contains("lora_alpha") ? j["lora_alpha"].get<float>() : 8.0f;  // PEFT's default
    l.dropout = j.contains("lora_dropout") ? j["lora_dropout"].get<float>() : 0.0f;
    l.rslora = j.value("use_rslora", false);
    if (j.value("bias", std::string("none")) != "none") throw bad("bias", "only \"none\" (teddy's adapters have no bias)");
    if (j.value("use_dora", false)) throw bad("use_dora", "DoRA adapters are not supported");
    for (const char* key : {"rank_pattern", "alpha_pattern", "modules_to_save", "layers_to_transform"})
      if (!is_empty(key)) throw bad(key, "not supported (every adapted module has the same r and alpha)");
    const nlohmann::json& t = j.at("target_modules");
    if (t.is_string()) {
      if (t.get<std::string>() != "all-linear")
        throw bad("target_modules", "a regular expression (\"" + t.get<std::string>() + "\") is not supported; list the modules");
      l.targets = {"all-linear"};
    } else {
      l.targets = t.get<std::vector<std::string>>();
    }
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path + ": " + e.what());
  }
  try {
    l.validate_values();
  } catch (const ConfigError& e) {
    throw FormatError(path + ": " + e.what());
  }
  return l;
}

namespace {

// The adapter tensors of `dir` into out (m's adapter layout), every one checked.
void read_tensors(const Model& m, const std::string& dir, float* out) {
  const LoraConfig& l = *m.lora();
  const std::string path = (fs::path(dir) / "adapter_model.safetensors").string();
  const SafetensorsFile f = SafetensorsFile::open(path);
  std::set<std::string> used;
  const ModelConfig& c = m.config();
  auto read = [&](const std::string& key, std::vector<int64_t> shape, size_t off) {
    const SafeTensor* t = f.find(key);
    if (!t)
      throw FormatError(path + ": tensor \"" + key + "\" missing (adapter_config.json targets it; an adapter for another "
                        "architecture or layer count?)");
    if (t->shape != shape)
      throw FormatError(path + ": tensor \"" + key + "\" has shape [" + std::to_string(t->shape.size() > 0 ? t->shape[0] : 0) +
                        ", " + std::to_string(t->shape.size() > 1 ? t->shape[1] : 0) + "], the model needs [" +
                        std::to_string(shape[0]) + ", " + std::to_string(shape[1]) + "] (an adapter made for another base?)");
    f.copy_f32(key, out + off, static_cast<size_t>(shape[0] * shape[1]));
    used.insert(key);
  };
  for_each_part(m, [&](int layer, const LoraSite& s, const LoraPart& part, size_t a, size_t b) {
    read(peft_key(c, layer, part, "lora_A"), {l.r, s.in}, a);
    read(peft_key(c, layer, part, "lora_B"), {part.rows, l.r}, b);
  });
  for (const std::string& n : f.names())
    if (!used.count(n))
      throw FormatError(path + ": tensor \"" + n + "\" is not an adapter of this model (another architecture, more "
                        "layers, or modules teddy does not adapt)");
}

}  // namespace

void load_peft_adapter(Model& m, const std::string& dir) {
  LoraConfig l = read_peft_config(dir);
  const std::string cfg_path = (fs::path(dir) / "adapter_config.json").string();
  try {
    l.validate(m.config());
  } catch (const ConfigError& e) {
    throw FormatError(cfg_path + ": " + e.what() + " (an adapter made for another model?)");
  }
  m.enable_lora(l, 0);
  read_tensors(m, dir, m.params());
}

LoraConfig read_peft_adapter_into(const Model& m, const std::string& dir, float* out) {
  if (!m.lora()) throw Error("read_peft_adapter_into: the model has no LoRA adapters yet");
  const LoraConfig l = read_peft_config(dir);
  const std::string cfg_path = (fs::path(dir) / "adapter_config.json").string();
  const LoraConfig& have = *m.lora();
  try {
    l.validate(m.config());
  } catch (const ConfigError& e) {
    throw FormatError(cfg_path + ": " + e.what() + " (an adapter made for another model?)");
  }
  if (l.r != have.r || lora_sites(m.config(), l).size() != m.lora_sites().size() || l.scale() != have.scale())
    throw FormatError(cfg_path + ": r, lora_alpha, use_rslora and target_modules must match the first adapter's (r " +
                      std::to_string(have.r) + ", scale " + std::to_string(have.scale()) + ") to share its layout");
  for (size_t i = 0; i < m.lora_sites().size(); ++i)
    if (lora_sites(m.config(), l)[i].part_cols() != m.lora_sites()[i].part_cols())
      throw FormatError(cfg_path + ": target_modules select other modules than the first adapter's");
  read_tensors(m, dir, out);
  return l;
}

}  // namespace teddy
