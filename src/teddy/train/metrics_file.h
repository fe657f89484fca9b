#pragma once
// The run directory's metrics.jsonl, shared by `teddy pretrain` and `teddy sft`.
#include <cstdint>
#include <string>

namespace teddy {

// Keeps the lines of a metrics.jsonl up to and including `step` (a resumed run rewrites
// the rest); a torn last line from a killed run is dropped. No file: nothing to do.
void truncate_metrics(const std::string& path, int64_t step);

}  // namespace teddy
