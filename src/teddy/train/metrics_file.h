#pragma once
// The run directory's metrics.jsonl, shared by `teddy pretrain` and `teddy sft`.
#include <cstdint>
#include <string>

namespace teddy {

// Keeps the lines of a metrics.jsonl up to and including `step` (a resumed run rewrites
// the rest), replacing the file atomically. A torn last line (a run killed mid-write, a
// full disk) is dropped, and so is any other line that is not JSON; each is said in a
// returned "# ..." line for the run's start report, never silently. No file: "".
std::string truncate_metrics(const std::string& path, int64_t step);

}  // namespace teddy
