#include "teddy/io/hf_weights.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "teddy/core/error.h"
#include "teddy/io/json_errors.h"
#include "teddy/tokenizer/tokenizer_file.h"

namespace fs = std::filesystem;

namespace teddy {

namespace {
constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";
}  // namespace

HfWeights HfWeights::open(const std::string& dir) {
  HfWeights w;
  const fs::path root(dir);
  const fs::path index_path = root / kIndexFile, single_path = root / kSingleFile;
  auto add_file = [&](const std::string& name) {
    w.files_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open((root / name).string())));
    w.file_names_.push_back(name);
    return w.files_.size() - 1;
  };
  if (fs::exists(index_path)) {
    const std::string ipath = index_path.string();
    w.listing_ = ipath;
    const nlohmann::json index = parse_json_or_throw(read_text_file(ipath), ipath);
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      throw FormatError(ipath + ": weight_map: missing (expected {tensor: file})");
    std::map<std::string, std::vector<std::string>> by_file;  // file -> tensors the index puts there
    for (const auto& [tensor, file] : index["weight_map"].items()) {
      const std::string key = "weight_map[" + nlohmann::json(tensor).dump() + "]";
      if (!file.is_string()) throw FormatError(ipath + ": " + key + ": expected a file name");
      const std::string f = file.get<std::string>();
      if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..")
        throw FormatError(ipath + ": " + key + ": \"" + f + "\" is not a file name in the model directory");
      by_file[f].push_back(tensor);
    }
    if (by_file.empty()) throw FormatError(ipath + ": weight_map: empty");
    for (const auto& [f, tensors] : by_file) {
      if (!fs::exists(root / f))
        throw FormatError(ipath + ": weight_map[" + nlohmann::json(tensors.front()).dump() + "]: names " + f +
                          ", which does not exist in " + dir);
      const size_t fi = add_file(f);
      const SafetensorsFile& sf = *w.files_[fi];
      for (const std::string& t : tensors)
        if (!sf.contains(t))
          throw FormatError(ipath + ": weight_map[" + nlohmann::json(t).dump() + "]: not in " + f +
                            " (the index and the shard disagree)");
      if (sf.size() != tensors.size())
        for (const std::string& t : sf.names())
          if (std::find(tensors.begin(), tensors.end(), t) == tensors.end())
            throw FormatError(sf.path() + ": tensor " + nlohmann::json(t).dump() + " is not listed in " + kIndexFile);
      for (const std::string& t : tensors) w.tensors_[t] = {fi, sf.find(t)};
    }
  } else if (fs::exists(single_path)) {
    const size_t fi = add_file(kSingleFile);
    w.listing_ = single_path.string();
    for (const std::string& t : w.files_[fi]->names()) w.tensors_[t] = {fi, w.files_[fi]->find(t)};
  } else {
    throw FormatError(dir + ": no " + std::string(kSingleFile) + " or " + kIndexFile +
                      " (pytorch_model.bin and other formats are not read)");
  }
  return w;
}

const SafeTensor* HfWeights::find(const std::string& name) const {
  const auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : it->second.second;
}

const std::string& HfWeights::file_of(const std::string& name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error("tensor " + name + " is not in the model's files");
  return files_[it->second.first]->path();
}

std::vector<std::string> HfWeights::names() const {
  std::vector<std::string> out;
  for (const auto& [n, v] : tensors_) out.push_back(n);
  return out;
}

void HfWeights::check_dtype(const std::string& name) const {
  const SafeTensor* t = find(name);
  if (!t) throw Error("tensor " + name + " is not in the model's files");
  if (t->dtype != "F32" && t->dtype != "F16" && t->dtype != "BF16")
    throw FormatError(file_of(name) + ": " + name + ": dtype " + t->dtype + " is not supported (F32, F16 or BF16)");
}

void HfWeights::copy_f32(const std::string& name, float* dst, size_t n) const {
  check_dtype(name);
  files_[tensors_.at(name).first]->copy_f32(name, dst, n);
}

}  // namespace teddy
