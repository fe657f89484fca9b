#pragma once
// The weights of a Hugging Face model directory: model.safetensors, or the shards that
// model.safetensors.index.json maps tensor names to ({"metadata": {...}, "weight_map":
// {tensor: file}}), as transformers' save_pretrained writes them.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "teddy/io/safetensors.h"

namespace teddy {

class HfWeights {
 public:
  // Opens and validates every file (SafetensorsFile::open's checks: a truncated file is
  // refused naming it). With an index: every file it names must exist and hold exactly
  // the tensors mapped to it (a tensor missing from its shard, or a shard tensor the
  // index does not list, is refused naming both), file names must be plain names in
  // `dir`, and no tensor may appear twice. Throws FormatError "<file>: <key>: <what>".
  static HfWeights open(const std::string& dir);

  const SafeTensor* find(const std::string& name) const;  // nullptr if absent
  const std::string& file_of(const std::string& name) const;  // the file holding it
  std::vector<std::string> names() const;                      // sorted
  const std::vector<std::string>& files() const { return file_names_; }
  // The file that lists the tensors: the index, or model.safetensors.
  const std::string& listing() const { return listing_; }
  // Throws FormatError naming file, tensor and dtype unless tensor `name` is F32, F16 or
  // BF16 (the dtypes teddy widens exactly to fp32).
  void check_dtype(const std::string& name) const;
  // Copies tensor `name` (check_dtype's dtypes) into `dst` as floats.
  void copy_f32(const std::string& name, float* dst, size_t n) const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::vector<std::string> file_names_;
  std::string listing_;
  std::map<std::string, std::pair<size_t, const SafeTensor*>> tensors_;  // name -> (file index, view)
};

}  // namespace teddy
