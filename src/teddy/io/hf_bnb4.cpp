// bitsandbytes' 4-bit serialization (io/hf_bnb4.h).
#include "teddy/io/hf_bnb4.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstring>

#include "teddy/core/error.h"

namespace teddy {

namespace {

using json = nlohmann::json;

// create_dynamic_map(signed=True)'s level 0 before bitsandbytes' CPU quantizer sets it
// to -1 (core/nf4.cpp lists the map): the value a CUDA-quantized file stores.
constexpr float kDynamicMapLevel0 = -0x1.fc6666p-1f;

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::vector<float> floats_of(const SafeTensor& t) {
  std::vector<float> v(t.bytes.size() / 4);
  std::memcpy(v.data(), t.bytes.data(), v.size() * 4);  // safetensors is little-endian, as this CPU
  return v;
}

}  // namespace

std::optional<Bnb4Config> read_bnb4_config(const json& config, const std::string& path) {
  if (!config.contains("quantization_config") || config["quantization_config"].is_null()) return std::nullopt;
  const json& q = config["quantization_config"];
  auto fail = [&](const std::string& key, const std::string& what) -> void {
    throw FormatError(path + ": quantization_config" + (key.empty() ? "" : "." + key) + ": " + what);
  };
  if (!q.is_object()) fail("", "expected an object");
  auto str = [&](const char* key, const std::string& fallback) {
    if (!q.contains(key) || q[key].is_null()) return fallback;
    if (!q[key].is_string()) fail(key, "expected a string (got " + q[key].dump() + ")");
    return q[key].get<std::string>();
  };
  auto boolean = [&](const char* key, bool fallback) {
    if (!q.contains(key) || q[key].is_null()) return fallback;
    if (!q[key].is_boolean()) fail(key, "expected true or false (got " + q[key].dump() + ")");
    return q[key].get<bool>();
  };
  const std::string method = str("quant_method", "");
  if (method != "bitsandbytes")
    fail("quant_method", "\"" + method + "\" is not supported (teddy reads bitsandbytes 4-bit NF4 checkpoints)");
  if (boolean("load_in_8bit", false))
    fail("load_in_8bit", "8-bit bitsandbytes checkpoints are not supported (only load_in_4bit with nf4)");
  if (!boolean("load_in_4bit", false)) fail("load_in_4bit", "expected true (teddy reads 4-bit NF4 checkpoints)");
  const std::string type = str("bnb_4bit_quant_type", "fp4");  // transformers' default is fp4
  if (type != "nf4") fail("bnb_4bit_quant_type", "\"" + type + "\" is not supported (only nf4)");
  const std::string storage = str("bnb_4bit_quant_storage", "uint8");
  if (storage != "uint8")
    fail("bnb_4bit_quant_storage", "\"" + storage + "\" is not supported (only uint8: two codes per byte)");
  Bnb4Config c;
  c.double_quant = boolean("bnb_4bit_use_double_quant", false);
  c.compute_dtype = str("bnb_4bit_compute_dtype", "float32");
  return c;
}

json bnb4_quantization_config(const Bnb4Config& c) {
  // BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", ...).to_dict(); nlohmann sorts the keys
  // as transformers' to_json_string(sort_keys=True) does.
  return json{{"_load_in_4bit", true},
              {"_load_in_8bit", false},
              {"bnb_4bit_compute_dtype", c.compute_dtype},
              {"bnb_4bit_quant_storage", "uint8"},
              {"bnb_4bit_quant_type", "nf4"},
              {"bnb_4bit_use_double_quant", c.double_quant},
              {"llm_int8_enable_fp32_cpu_offload", false},
              {"llm_int8_has_fp16_weight", false},
              {"llm_int8_skip_modules", nullptr},
              {"llm_int8_threshold", 6.0},
              {"load_in_4bit", true},
              {"load_in_8bit", false},
              {"quant_method", "bitsandbytes"}};
}

bool bnb4_block_linear(const HfTensorSpec& s) {
  if (s.teddy_name.rfind("layers.", 0) != 0) return false;
  for (const std::string k : {".attn.qkv.weight", ".attn.proj.weight", ".mlp.up.weight", ".mlp.down.weight"})
    if (s.teddy_name.size() > k.size() && s.teddy_name.compare(s.teddy_name.size() - k.size(), k.size(), k) == 0)
      return true;
  return false;
}

std::vector<std::string> bnb4_tensor_names(const std::string& module, bool double_quant) {
  const std::string w = module + ".weight";
  std::vector<std::string> n = {w, w + ".absmax", w + ".quant_map", w + ".quant_state.bitsandbytes__nf4"};
  if (double_quant) n.insert(n.end(), {w + ".nested_absmax", w + ".nested_quant_map"});
  return n;
}

Nf4Tensor read_bnb4_linear(const HfWeights& w, const std::string& module, const std::vector<int64_t>& shape,
                           bool double_quant) {
  const std::string wn = module + ".weight";
  const int64_t n = shape.at(0) * shape.at(1);
  Nf4Tensor t;
  t.numel = n;
  t.double_quant = double_quant;
  const int64_t blocks = static_cast<int64_t>(t.blocks());
  auto where = [&](const std::string& name) { return w.find(name) ? w.file_of(name) : w.listing(); };
  auto fail = [&](const std::string& name, const std::string& what) -> void {
    throw FormatError(where(name) + ": " + name + ": " + what);
  };
  auto need = [&](const std::string& name, const char* dtype, const std::vector<int64_t>& want) -> const SafeTensor& {
    const SafeTensor* s = w.find(name);
    if (!s) {
      if (name == wn + ".quant_state.bitsandbytes__nf4" && w.find(wn + ".quant_state.bitsandbytes__fp4"))
        fail(wn + ".quant_state.bitsandbytes__fp4", "quant_type fp4 is not supported (teddy reads nf4)");
      fail(name, std::string("missing (a bitsandbytes 4-bit") + (double_quant ? " double-quantized" : "") +
                     " linear of shape " + shape_text(shape) + " has " + name.substr(module.size() + 1) + ")");
    }
    if (s->dtype != dtype || s->shape != want)
      fail(name, s->dtype + " " + shape_text(s->shape) + ", expected " + dtype + " " + shape_text(want) +
                     " for a weight of shape " + shape_text(shape));
    return *s;
  };

  // The quant_state: bitsandbytes' non-tensor items as JSON bytes.
  const std::string qs_name = wn + ".quant_state.bitsandbytes__nf4";
  const SafeTensor& qs_t = w.find(qs_name) ? *w.find(qs_name) : need(qs_name, "U8", {});
  if (qs_t.dtype != "U8" || qs_t.shape.size() != 1) fail(qs_name, qs_t.dtype + " " + shape_text(qs_t.shape) + ", expected U8 [bytes]");
  json qs;
  try {
    qs = json::parse(std::string(reinterpret_cast<const char*>(qs_t.bytes.data()), qs_t.bytes.size()));
  } catch (const json::exception& e) {
    fail(qs_name, std::string("not JSON (") + e.what() + ")");
  }
  if (!qs.is_object()) fail(qs_name, "expected a JSON object");
  auto item = [&](const char* key) -> const json& {
    if (!qs.contains(key)) fail(qs_name, std::string("\"") + key + "\" missing");
    return qs[key];
  };
  auto expect = [&](const char* key, const json& want) {
    const json& v = item(key);
    if (v != want) fail(qs_name, std::string("\"") + key + "\" is " + v.dump() + ", expected " + want.dump());
  };
  if (item("quant_type") == "fp4") fail(qs_name, "quant_type \"fp4\" is not supported (teddy reads nf4)");
  expect("quant_type", "nf4");
  expect("blocksize", kNf4Block);
  expect("shape", shape);
  const json& dt = item("dtype");
  if (!dt.is_string() || (dt != "float32" && dt != "float16" && dt != "bfloat16"))
    fail(qs_name, "\"dtype\" is " + dt.dump() + ", expected \"float32\", \"float16\" or \"bfloat16\"");
  if (double_quant) {
    expect("nested_blocksize", kNf4Block2);
    expect("nested_dtype", "float32");
    const json& off = item("nested_offset");
    if (!off.is_number()) fail(qs_name, "\"nested_offset\" is " + off.dump() + ", expected a number");
    t.offset = static_cast<float>(off.get<double>());  // written from a float32: exact
  } else if (qs.contains("nested_offset")) {
    fail(qs_name, "has nested_offset, but config.json's bnb_4bit_use_double_quant is false");
  }

  const SafeTensor& packed = need(wn, "U8", {(n + 1) / 2, 1});
  t.packed.assign(reinterpret_cast<const uint8_t*>(packed.bytes.data()),
                  reinterpret_cast<const uint8_t*>(packed.bytes.data()) + packed.bytes.size());
  const std::vector<float> qmap = floats_of(need(wn + ".quant_map", "F32", {16}));
  for (int i = 0; i < 16; ++i)
    if (qmap[i] != nf4_levels()[i])
      fail(wn + ".quant_map", "level " + std::to_string(i) + " is " + python_float_repr(qmap[i]) +
                                  ", expected the NF4 level " + python_float_repr(nf4_levels()[i]));
  if (!double_quant) {
    t.absmax = floats_of(need(wn + ".absmax", "F32", {blocks}));
    return t;
  }
  const SafeTensor& aq = need(wn + ".absmax", "U8", {blocks});
  t.absmax_q.assign(reinterpret_cast<const uint8_t*>(aq.bytes.data()),
                    reinterpret_cast<const uint8_t*>(aq.bytes.data()) + aq.bytes.size());
  t.absmax2 = floats_of(need(wn + ".nested_absmax", "F32", {(blocks + kNf4Block2 - 1) / kNf4Block2}));
  const std::vector<float> map8 = floats_of(need(wn + ".nested_quant_map", "F32", {256}));
  for (int i = 1; i < 256; ++i)
    if (map8[i] != dynamic_map8()[i])
      fail(wn + ".nested_quant_map", "level " + std::to_string(i) + " is " + python_float_repr(map8[i]) +
                                         ", expected bitsandbytes' dynamic map's " + python_float_repr(dynamic_map8()[i]));
  if (map8[0] != -1.0f && map8[0] != kDynamicMapLevel0)
    fail(wn + ".nested_quant_map", "level 0 is " + python_float_repr(map8[0]) + ", expected -1.0 or " +
                                       python_float_repr(kDynamicMapLevel0));
  t.map_level0 = map8[0];
  return t;
}

std::string bnb4_quant_state_json(const Nf4Tensor& t, const std::vector<int64_t>& shape, const std::string& dtype) {
  // json.dumps of a dict in QuantState.as_dict's order, default separators ", " and ": ".
  std::string s = "{\"quant_type\": \"nf4\", \"blocksize\": " + std::to_string(kNf4Block) + ", \"dtype\": \"" + dtype +
                  "\", \"shape\": " + shape_text(shape);
  if (t.double_quant)
    s += ", \"nested_blocksize\": " + std::to_string(kNf4Block2) + ", \"nested_dtype\": \"float32\", \"nested_offset\": " +
         python_float_repr(t.offset);
  return s + "}";
}

void add_bnb4_linear(SafetensorsWriter& out, const std::string& module, const Nf4Tensor& t,
                     const std::vector<int64_t>& shape, const std::string& dtype) {
  if (shape.size() != 2 || shape[0] * shape[1] != t.numel)
    throw Error("add_bnb4_linear: " + module + ": shape " + shape_text(shape) + " does not hold " +
                std::to_string(t.numel) + " weights");
  const std::string w = module + ".weight";
  const int64_t blocks = static_cast<int64_t>(t.blocks());
  out.add_copy(w, "U8", {static_cast<int64_t>(t.packed.size()), 1}, t.packed.data(), t.packed.size());
  out.add_copy(w + ".quant_map", "F32", {16}, nf4_levels().data(), 16 * sizeof(float));
  if (t.double_quant) {
    out.add_copy(w + ".absmax", "U8", {blocks}, t.absmax_q.data(), t.absmax_q.size());
    out.add_copy(w + ".nested_absmax", "F32", {static_cast<int64_t>(t.absmax2.size())}, t.absmax2.data(),
                 t.absmax2.size() * sizeof(float));
    std::array<float, 256> map8 = dynamic_map8();
    map8[0] = t.map_level0;
    out.add_copy(w + ".nested_quant_map", "F32", {256}, map8.data(), sizeof map8);
  } else {
    out.add_copy(w + ".absmax", "F32", {blocks}, t.absmax.data(), t.absmax.size() * sizeof(float));
  }
  const std::string qs = bnb4_quant_state_json(t, shape, dtype);
  out.add_copy(w + ".quant_state.bitsandbytes__nf4", "U8", {static_cast<int64_t>(qs.size())}, qs.data(), qs.size());
}

std::string python_float_repr(double v) {
  if (std::isnan(v)) return "NaN";  // json.dumps' spelling
  if (std::isinf(v)) return v < 0 ? "-Infinity" : "Infinity";
  if (v == 0) return std::signbit(v) ? "-0.0" : "0.0";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);  // shortest digits
  const std::string s(buf, r.ptr);
  const size_t e = s.find('e');
  const int exp = std::stoi(s.substr(e + 1));
  std::string digits, sign = v < 0 ? "-" : "";
  for (char c : s.substr(0, e))
    if (c >= '0' && c <= '9') digits += c;
  // float_repr_style 'short': scientific when the decimal exponent is < -4 or >= 16.
  if (exp < -4 || exp >= 16) {
    const std::string ex = std::to_string(std::abs(exp));
    return sign + digits.substr(0, 1) + (digits.size() > 1 ? "." + digits.substr(1) : "") + "e" +
           (exp < 0 ? "-" : "+") + (ex.size() < 2 ? "0" : "") + ex;
  }
  if (exp < 0) return sign + "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
  const size_t int_digits = static_cast<size_t>(exp) + 1;
  if (digits.size() <= int_digits) return sign + digits + std::string(int_digits - digits.size(), '0') + ".0";
  return sign + digits.substr(0, int_digits) + "." + digits.substr(int_digits);
}

}  // namespace teddy
