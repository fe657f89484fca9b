#pragma once
// The few-shot examples of a generation or multiple-choice task, one rule for every task:
// the first K rows of --fewshot FILE, or else the first K rows of the data itself (which
// are then not scored: `first` is where scoring starts).
#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "teddy/core/error.h"

namespace teddy {

template <class Doc, class Reader>
std::vector<Doc> select_shots(const std::vector<Doc>& docs, int K, const std::string& fewshot_path, Reader read,
                              size_t& first) {
  first = 0;
  if (K <= 0) return {};
  if (!fewshot_path.empty()) {
    const std::vector<Doc> pool = read(fewshot_path);
    if (pool.size() < static_cast<size_t>(K))
      throw FormatError(fewshot_path + ": " + std::to_string(pool.size()) + " rows, " + std::to_string(K) + " shots asked");
    return std::vector<Doc>(pool.begin(), pool.begin() + K);
  }
  first = std::min<size_t>(static_cast<size_t>(K), docs.size());
  return std::vector<Doc>(docs.begin(), docs.begin() + static_cast<std::ptrdiff_t>(first));
}

}  // namespace teddy
