#include "teddy/train/metrics_file.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "teddy/io/atomic_file.h"

namespace teddy {

std::string truncate_metrics(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return "";
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  in.close();
  std::string kept, notes;
  for (size_t i = 0; i < lines.size(); ++i) {
    nlohmann::json j = nlohmann::json::parse(lines[i], nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      notes += "# " + path + ":" + std::to_string(i + 1) +
               (i + 1 == lines.size() ? ": dropped the last line, cut off (a killed run or a full disk?)\n"
                                      : ": dropped a line that is not JSON (damaged?)\n");
      continue;
    }
    const nlohmann::json& s = j.contains("step") ? j["step"] : nlohmann::json();
    if (!s.is_number_integer() || s.get<int64_t>() <= step) kept += lines[i] + "\n";
  }
  // Atomic: a crash during the rewrite leaves the old file, not half of it.
  write_file_atomic(path, kept);
  return notes;
}

}  // namespace teddy
