#pragma once
// The single-file checkpoint format teddy wrote before every checkpoint was sharded,
// read only (checkpoint.h takes both formats): <run>/checkpoints/step_<NNNNNNNN>/
//   model.safetensors      parameters by name (F32), model config in the metadata
//   optimizer.safetensors  AdamW m and v (flat, the parameters' layout)
//   state.json             step, optimizer t, data-loader state, run config, and the
//                          XXH3-64 checksum and size of each file above (written last)
#include <cstdint>
#include <string>

#include "teddy/checkpoint/checkpoint.h"

namespace teddy::legacy_checkpoint {

inline constexpr const char* kModelFile = "model.safetensors";
inline constexpr const char* kOptimizerFile = "optimizer.safetensors";
inline constexpr const char* kStateFile = "state.json";

// True when `dir` holds a state.json.
bool is_single_file(const std::string& dir);
// Parses state.json and checks the size and checksum of the data files i with
// i % parts == part (model file 0, optimizer file 1). FormatError naming the file.
VerifiedCheckpoint verify(const std::string& dir, int part, int parts);
// read_checkpoint_range for this format: the parameters by name at their offsets in
// the checkpoint's model layout (padding zero), m and v from the flat optimizer file.
void read_range(const VerifiedCheckpoint& checkpoint, uint64_t begin, uint64_t end, float* params, float* m,
                float* v);

}  // namespace teddy::legacy_checkpoint
