#pragma once
// The run-state fields both checkpoint formats record in their JSON file (manifest.json,
// shards.h; the single-file format's state.json, legacy.h), written and read in one place.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "teddy/model/config.h"
#include "teddy/checkpoint/checkpoint.h"

namespace teddy {

// Appends, in this order: step, tokens_processed, seed, optimizer_t, model_config,
// loader_state (null when empty), run_config and, when non-empty, loss_scaler.
void state_to_json(nlohmann::ordered_json& j, const CheckpointState& state, int64_t optimizer_t,
                   const ModelConfig& model_config);
// Reads those fields back. A missing or mistyped field throws nlohmann's exception
// (the caller names its file); `where` names the file in model-config errors.
void state_from_json(const nlohmann::json& j, const std::string& where, CheckpointState& state,
                     int64_t& optimizer_t, ModelConfig& model_config);

}  // namespace teddy
