#include "teddy/report/run_log.h"

#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <toml++/toml.h>

#include "teddy/core/error.h"
#include "teddy/plan/params.h"
#include "teddy/train/pretrain_config.h"

namespace teddy::report {

namespace fs = std::filesystem;

namespace {

double number_or_nan(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return std::numeric_limits<double>::quiet_NaN();
  if (!j[key].is_number()) throw FormatError(std::string("\"") + key + "\" is not a number");
  return j[key].get<double>();
}

void flatten(const toml::table& t, const std::string& prefix, std::map<std::string, std::string>& out) {
  for (const auto& [k, v] : t) {
    const std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const toml::table* sub = v.as_table()) {
      flatten(*sub, key, out);
    } else {
      // Values as a user wrote them: strings bare, numbers in their shortest exact form.
      if (const auto* str = v.as_string()) {
        out[key] = str->get();
      } else if (const auto* f = v.as_floating_point()) {
        char b[64];
        for (int prec = 1; prec <= 17; ++prec) {  // the shortest %g that reads back exactly
          std::snprintf(b, sizeof b, "%.*g", prec, f->get());
          if (std::strtod(b, nullptr) == f->get()) break;
        }
        out[key] = b;
      } else {
        std::ostringstream os;
        v.visit([&](const auto& x) { os << x; });
        out[key] = os.str();
      }
    }
  }
}

// The model and its parameter count from a pretraining config.toml; false if the file
// is not one (an SFT config, or a newer format).
bool pretrain_model(const fs::path& config_path, std::string& model, std::optional<int64_t>& params) {
  try {
    const PretrainConfig c = PretrainConfig::load(config_path.string());
    params = plan::count_params(c.model).total;
    std::map<std::string, std::string> flat;
    flatten(toml::parse_file(config_path.string()), "", flat);
    const auto preset = flat.find("model.preset");
    model = preset != flat.end() ? preset->second : "";
    if (model.empty()) model = std::to_string(c.model.n_layer) + " layers x " + std::to_string(c.model.d_model);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// A pretraining run describes its model; an SFT run names its base (model.init), whose
// run's config.toml gives the model when the base is a teddy run.
void describe_model(RunLog& r, const fs::path& config_path) {
  const auto it = r.config.find("model.init");
  if (it == r.config.end()) {
    pretrain_model(config_path, r.model, r.params);
    return;
  }
  const std::string init = it->second;
  r.model = "finetuned from " + init;
  fs::path base = init;
  for (int up = 0; up < 3; ++up, base = base.parent_path()) {  // a run, or a checkpoint two levels below it
    std::string m;
    if (fs::exists(base / "config.toml") && pretrain_model(base / "config.toml", m, r.params)) {
      r.model = m + " (finetuned from " + init + ")";
      return;
    }
  }
}

}  // namespace

double RunLog::wall_s() const {
  double s = 0;
  for (const StepRow& r : steps) s += r.step_s;
  return s;
}

std::optional<double> RunLog::best_val() const {
  std::optional<double> b;
  for (const ValRow& v : vals)
    if (std::isfinite(v.val_loss) && (!b || v.val_loss < *b)) b = v.val_loss;
  return b;
}

int64_t RunLog::best_val_step() const {
  const auto b = best_val();
  for (const ValRow& v : vals)
    if (b && v.val_loss == *b) return v.step;
  return -1;
}

RunLog read_run(const std::string& dir) {
  const fs::path d = dir, metrics = d / "metrics.jsonl";
  if (!fs::is_directory(d)) throw Error(dir + ": no such run directory");
  if (!fs::exists(metrics))
    throw Error(dir + ": not a teddy run directory (no metrics.jsonl; `teddy pretrain` and `teddy sft` write one)");
  RunLog r;
  r.dir = dir;
  r.label = fs::path(dir).lexically_normal().filename().string();
  if (r.label.empty() || r.label == ".") r.label = fs::absolute(d).lexically_normal().parent_path().filename().string();

  std::ifstream in(metrics);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  std::map<int64_t, int64_t> tokens_at;  // step -> tokens, to place validations on the token axis
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string where = metrics.string() + ":" + std::to_string(i + 1);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(lines[i]);
      if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer())
        throw FormatError("not a JSON object with an integer \"step\"");
      if (j.contains("eval")) {  // {"step", "tokens", "eval": task, "n", metrics..., "eval_s"}
        EvalRow e;
        e.step = j["step"].get<int64_t>();
        e.tokens = j.value("tokens", int64_t{0});
        e.task = j["eval"].get<std::string>();
        for (const auto& [k, v] : j.items())
          if (k != "step" && k != "tokens" && k != "eval" && k != "n" && k != "eval_s" && (v.is_number() || v.is_null()))
            e.metrics[k] = number_or_nan(j, k.c_str());
        r.evals.push_back(std::move(e));
        continue;
      }
      if (j.contains("val_loss")) {
        r.vals.push_back({j["step"].get<int64_t>(), 0, number_or_nan(j, "val_loss")});
        continue;
      }
      StepRow s;
      s.step = j["step"].get<int64_t>();
      s.loss = number_or_nan(j, "loss");
      s.lr = number_or_nan(j, "lr");
      s.grad_norm = number_or_nan(j, "grad_norm");
      s.tokens = j.value("tokens", int64_t{0});
      s.tokens_per_s = number_or_nan(j, "tokens_per_s");
      s.mfu = number_or_nan(j, "mfu");
      s.step_s = j.contains("step_s") ? number_or_nan(j, "step_s") : 0.0;
      if (j.contains("peak_rss_bytes")) s.peak_rss_bytes = number_or_nan(j, "peak_rss_bytes");
      if (j.contains("loss_scale")) s.loss_scale = number_or_nan(j, "loss_scale");
      s.skipped_steps = j.value("skipped_steps", int64_t{0});
      tokens_at[s.step] = s.tokens;
      r.steps.push_back(s);
    } catch (const std::exception& e) {  // nlohmann's parse_error/type_error or ours
      if (i + 1 == lines.size()) {
        r.warnings.push_back(where + ": skipped the last line, cut off or unreadable (a killed run?)");
        break;
      }
      throw FormatError(where + ": " + e.what());
    }
  }
  if (r.steps.empty()) throw FormatError(metrics.string() + ": no training step logged yet");
  for (ValRow& v : r.vals) {
    const auto t = tokens_at.find(v.step);
    v.tokens = t != tokens_at.end() ? t->second : 0;
  }

  const fs::path cfg = d / "config.toml";
  if (fs::exists(cfg)) {
    try {
      flatten(toml::parse_file(cfg.string()), "", r.config);
    } catch (const toml::parse_error& e) {
      r.warnings.push_back(cfg.string() + ": not readable TOML (" + std::string(e.description()) + "); config not compared");
    }
    describe_model(r, cfg);
  } else {
    r.warnings.push_back(cfg.string() + ": missing; config not compared");
  }
  return r;
}

}  // namespace teddy::report
