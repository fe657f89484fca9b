#pragma once
// The TOML file behind `teddy data prepare --config FILE` (schema in docs/DATA.md).
// Relative paths in it (sources, tokenizer, out) are relative to the file's directory,
// so a config works from any working directory.
#include <string>

#include "teddy/data/prepare.h"

namespace teddy {

// Throws ConfigError "<file>: <field>: <rule>" for unknown keys, wrong types or bad values.
PrepareConfig load_prepare_config(const std::string& path);
// Same from TOML text; `base_dir` resolves relative paths, `where` names it in errors.
PrepareConfig parse_prepare_config(const std::string& text, const std::string& base_dir, const std::string& where);

}  // namespace teddy
