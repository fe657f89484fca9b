#pragma once
// ModelConfig <-> JSON, for checkpoints and run directories.
#include <string>

#include "teddy/model/config.h"

namespace teddy {

std::string model_config_to_json(const ModelConfig& cfg);
// Throws FormatError naming `where` and the missing or bad field; validates the result.
ModelConfig model_config_from_json(const std::string& text, const std::string& where);

}  // namespace teddy
