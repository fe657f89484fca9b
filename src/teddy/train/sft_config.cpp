#include "teddy/train/sft_config.h"

#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <toml++/toml.h>

#include "teddy/core/error.h"
#include "teddy/train/toml_config.h"

namespace teddy {

namespace {

using toml_config::get_as;
using Setter = toml_config::Setter<SftConfig>;
using toml_config::field;

#define TEDDY_FIELD(T, member, want) field<T, SftConfig>([](SftConfig& c) -> T& { return c.member; }, want)

const toml_config::KeyTable<SftConfig>& keys() {
  static const toml_config::KeyTable<SftConfig> k = [] {
    toml_config::KeyTable<SftConfig> t = {
      {"model.init", TEDDY_FIELD(std::string, init, "a checkpoint or run directory")},
      {"model.tokenizer", TEDDY_FIELD(std::string, tokenizer, "a tokenizer file")},
      {"data.train", TEDDY_FIELD(std::string, train_path, "a JSONL file path")},
      {"data.val", TEDDY_FIELD(std::string, val_path, "a JSONL file path")},
      {"data.val_fraction", TEDDY_FIELD(double, val_fraction, "a number")},
      {"data.format", [](SftConfig& c, const toml::node& n, const std::string& w) {
         c.format = sft_format_from_name(get_as<std::string>(n, w, "a format name"), w);
       }},
      {"data.skip_bad", TEDDY_FIELD(bool, skip_bad, "true or false")},
      {"data.train_on_inputs", TEDDY_FIELD(bool, train_on_inputs, "true or false")},
      {"template.name", [](SftConfig&, const toml::node&, const std::string&) {}},  // read first
      {"template.bos", TEDDY_FIELD(std::string, chat_template.bos, "a string")},
      {"template.header_prefix", TEDDY_FIELD(std::string, chat_template.header_prefix, "a string")},
      {"template.header_suffix", TEDDY_FIELD(std::string, chat_template.header_suffix, "a string")},
      {"template.end_of_turn", TEDDY_FIELD(std::string, chat_template.end_of_turn, "a string")},
      {"template.separator", TEDDY_FIELD(std::string, chat_template.separator, "a string")},
      {"template.specials", [](SftConfig& c, const toml::node& n, const std::string& w) {
         const toml::array* a = n.as_array();
         if (!a) throw ConfigError(w + ": expected an array of strings");
         c.chat_template.specials.clear();
         for (const toml::node& e : *a) c.chat_template.specials.push_back(get_as<std::string>(e, w, "an array of strings"));
       }},
      {"train.micro_batch", TEDDY_FIELD(int, micro_batch, "an integer")},
      {"train.seq_len", TEDDY_FIELD(int, seq_len, "an integer")},
      {"train.grad_accum", TEDDY_FIELD(int, grad_accum, "an integer")},
      {"train.steps", TEDDY_FIELD(int64_t, steps, "an integer")},
      {"train.epochs", TEDDY_FIELD(double, epochs, "a number")},
      {"train.batching", [](SftConfig& c, const toml::node& n, const std::string& w) {
         c.batching = sft_batching_from_name(get_as<std::string>(n, w, "\"pack\" or \"pad\""), w);
       }},
      {"train.truncation", [](SftConfig& c, const toml::node& n, const std::string& w) {
         c.truncation = sft_truncation_from_name(get_as<std::string>(n, w, "\"right\", \"left\" or \"drop\""), w);
       }},
      {"train.seed", TEDDY_FIELD(uint64_t, seed, "an integer")},
      {"train.threads", TEDDY_FIELD(int, threads, "an integer")},
    };
    add_common_keys(t);  // [optim] [eval] [checkpoint] [dist] [run]
    return t;
  }();
  return k;
}

#undef TEDDY_FIELD

}  // namespace

SftConfig::SftConfig() {
  lr = 1e-4f;
  warmup_steps = 10;
  weight_decay = 0.0f;
  eval_batches = 0;
  keep_checkpoints = 2;
  run_dir = "runs/sft";
}

int64_t SftConfig::total_steps(size_t rows_per_epoch) const {
  if (steps > 0) return steps;
  const double rows = epochs * static_cast<double>(rows_per_epoch);
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(rows / rows_per_step())));
}

SftConfig SftConfig::parse(const std::string& text, const std::string& source, const std::vector<std::string>& overrides) {
  const toml::table tbl = toml_config::parse_with_overrides(text, source, overrides);

  SftConfig c;
  // The template's name picks the base the other template keys modify: read it first.
  if (auto n = tbl["template"]["name"]) {
    const std::string where = toml_config::key_origin(source, "template.name", overrides);
    const std::string name = get_as<std::string>(*n.node(), where, "a template name");
    try {
      c.chat_template = name == "custom" ? ChatTemplate{} : ChatTemplate::named(name);
    } catch (const ConfigError& e) {
      throw ConfigError(source + ": " + e.what());
    }
    c.chat_template.name = name;
    if (c.chat_template.is_jinja() || c.chat_template.wants_model_template())
      for (const char* k : {"bos", "header_prefix", "header_suffix", "separator"})
        if (auto v = tbl["template"][k]; v && !(v.is_string() && v.as_string()->get().empty()))
          throw ConfigError(source + ": template." + k + ": only for built-in templates (\"" + name +
                            "\" is a Jinja template: its text says how turns are written)");
  }
  toml_config::apply_keys(c, tbl, source, keys(), {}, overrides);
  return c;
}

SftConfig SftConfig::load(const std::string& path, const std::vector<std::string>& overrides) {
  return parse(toml_config::read_config_file(path), path, overrides);
}

void SftConfig::validate() const {
  auto check = [](bool ok, const char* key, const std::string& rule) {
    if (!ok) throw ConfigError(std::string(key) + ": " + rule);
  };
  check(!init.empty(), "model.init", "must name the checkpoint (or run directory) to finetune");
  check(!train_path.empty(), "data.train", "must name a JSONL file");
  check(val_fraction >= 0 && val_fraction < 1, "data.val_fraction", "must be in [0, 1)");
  check(micro_batch >= 1, "train.micro_batch", "must be >= 1 (got " + std::to_string(micro_batch) + ")");
  check(seq_len >= 2, "train.seq_len", "must be >= 2 (got " + std::to_string(seq_len) + ")");
  check(grad_accum >= 1, "train.grad_accum", "must be >= 1 (got " + std::to_string(grad_accum) + ")");
  check(steps >= 0, "train.steps", "must be >= 0 (0: derived from train.epochs)");
  check(steps > 0 || (std::isfinite(epochs) && epochs > 0), "train.epochs", "must be > 0 when train.steps = 0");
  check(threads >= 0, "train.threads", "must be >= 0 (0 = all cores)");
  CommonRules rules;
  rules.eval_batches_zero_is_all = true;  // warmup's bound needs the data: SftTrainer checks it
  validate_common(*this, rules);
  chat_template.validate();
}

std::string SftConfig::to_toml(size_t rows_per_epoch) const {
  toml::table t;
  t.insert("model", toml::table{{"init", init}, {"tokenizer", tokenizer}});
  t.insert("data", toml::table{{"train", train_path},
                               {"val", val_path},
                               {"val_fraction", val_fraction},
                               {"format", std::string(sft_format_name(format))},
                               {"skip_bad", skip_bad},
                               {"train_on_inputs", train_on_inputs}});
  toml::array specials;
  for (const auto& s : chat_template.specials) specials.push_back(s);
  if (chat_template.is_jinja() || chat_template.wants_model_template()) {  // the text is in chat_template.json
    t.insert("template", toml::table{{"name", chat_template.name},
                                     {"end_of_turn", chat_template.end_of_turn},
                                     {"specials", specials}});
  } else {
    t.insert("template", toml::table{{"name", chat_template.name},
                                     {"bos", chat_template.bos},
                                     {"header_prefix", chat_template.header_prefix},
                                     {"header_suffix", chat_template.header_suffix},
                                     {"end_of_turn", chat_template.end_of_turn},
                                     {"separator", chat_template.separator},
                                     {"specials", specials}});
  }
  t.insert("train", toml::table{{"micro_batch", micro_batch},
                                {"seq_len", seq_len},
                                {"grad_accum", grad_accum},
                                {"steps", rows_per_epoch > 0 ? total_steps(rows_per_epoch) : steps},
                                {"epochs", epochs},
                                {"batching", std::string(sft_batching_name(batching))},
                                {"truncation", std::string(sft_truncation_name(truncation))},
                                {"seed", static_cast<int64_t>(seed)},
                                {"threads", threads}});
  insert_common_toml(t, *this);
  // Escaped "basic" strings only: templates hold newlines, which toml++ would write as a
  // triple-quoted literal that reads back without its leading newline.
  std::ostringstream os;
  os << toml::toml_formatter{t, toml::toml_formatter::default_flags & ~toml::format_flags::allow_multi_line_strings &
                                                 ~toml::format_flags::allow_literal_strings}
     << "\n";
  return os.str();
}

}  // namespace teddy
