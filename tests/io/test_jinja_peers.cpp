// teddy's Jinja engine renders the published chat templates of Llama 3.1 / 3.2, Qwen2.5
// (ChatML, with its tools branches), Mistral Nemo, Gemma 2 and SmolLM2 byte for byte as
// the two reference engines do: @huggingface/jinja (node; the engine of Hugging Face's
// JS libraries) and Jinja2 (Debian's python3-jinja2) set up as transformers sets it up
// (tests/io/jinja_render.py). Conversations with and without a system prompt, with and
// without add_generation_prompt, quotes, backslashes, Jinja syntax, unicode and
// surrounding whitespace in the content; tool calls and tool results; templates that
// refuse a conversation (raise_exception) must refuse it in all three. Also the engine's
// constructs in an indented layout where trim_blocks / lstrip_blocks decide the output
// (tests/io/jinja/constructs.jinja).
// Needs node and npm (like the llama.cpp peer test) and python3-jinja2 (scripts/setup.sh).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "io/interop_test_util.h"
#include "teddy/data/sft/jinja/template.h"
#include "teddy/io/hf_extras.h"

namespace teddy {
namespace {

using json = nlohmann::json;

constexpr std::time_t kNow = 1721952000;  // 26 Jul 2024 00:00 UTC: strftime_now's clock in all three engines

struct Case {
  std::string name;      // template file (tests/data/jinja_templates) or "teddy:<builtin>"
  std::string template_text;
  json context;
};

json msg(const std::string& role, const std::string& content) { return {{"role", role}, {"content", content}}; }

std::vector<json> conversations() {
  return {
      json::array({msg("user", "Hi")}),
      json::array({msg("system", "You are terse."), msg("user", "What is 2 + 2?"), msg("assistant", "4.")}),
      json::array({msg("system", "You are terse."), msg("user", "What is 2 + 2?"), msg("assistant", "4."),
                   msg("user", "And 3 + 3?")}),
      json::array({msg("user", "Line one\nline two, «quotes» and 'apostrophes' and \"double\" \\ backslash"),
                   msg("assistant", "{{ not a tag }} {% neither %} {# nor #}"), msg("user", "  padded\t\n"),
                   msg("assistant", "  日本語 🙂 ünïcödé\u3000")}),
      json::array({msg("user", "<|im_end|> <|eot_id|> </s> [INST] <end_of_turn>"), msg("assistant", "")}),
  };
}

json tools() {
  return json::parse(R"([{"type": "function", "function": {"name": "get_weather", "description": "Weather \"now\" in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "Città"}, "days": {"type": "integer"}},
    "required": ["city"]}}}])");
}

// A tool call and its result, in the shapes each family's template reads.
json tool_conversation(bool mistral_ids) {
  json call = {{"type", "function"}, {"function", {{"name", "get_weather"}, {"arguments", {{"city", "Zürich"}, {"days", 2}}}}}};
  if (mistral_ids) call["id"] = "abc123def";
  json tool = {{"role", "tool"}, {"content", "{\"temp\": 21.5}"}};
  if (mistral_ids) tool["tool_call_id"] = "abc123def";
  return json::array({msg("user", "Weather in Zürich?"), {{"role", "assistant"}, {"content", ""}, {"tool_calls", json::array({call})}},
                      tool, msg("assistant", "21.5 °C.")});
}

std::string read_template(const std::string& file) {
  return test::read_file(TEDDY_SOURCE_DIR "/tests/data/jinja_templates/" + file);
}

std::vector<Case> cases() {
  struct Family {
    std::string file, bos, eos;
  };
  const std::vector<Family> families = {
      {"meta-llama-Llama-3.1-8B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>"},
      {"meta-llama-Llama-3.2-3B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>"},
      {"Qwen-Qwen2.5-7B-Instruct.jinja", "", "<|im_end|>"},
      {"mistralai-Mistral-Nemo-Instruct-2407.jinja", "<s>", "</s>"},
      {"google-gemma-2-2b-it.jinja", "<bos>", "<eos>"},
      {"HuggingFaceTB-SmolLM2-135M-Instruct.jinja", "", "<|im_end|>"},
  };
  std::vector<Case> out;
  for (const Family& f : families) {
    const std::string text = read_template(f.file);
    for (const json& conv : conversations())
      for (bool gen : {false, true})
        out.push_back({f.file, text,
                       {{"messages", conv}, {"add_generation_prompt", gen}, {"bos_token", f.bos}, {"eos_token", f.eos}}});
    const bool mistral = f.file.find("Mistral") != std::string::npos;
    if (f.file.find("gemma") == std::string::npos && f.file.find("SmolLM") == std::string::npos) {
      for (bool gen : {false, true})
        out.push_back({f.file, text,
                       {{"messages", tool_conversation(mistral)}, {"tools", tools()}, {"add_generation_prompt", gen},
                        {"bos_token", f.bos}, {"eos_token", f.eos}}});
    }
  }
  // The engine's constructs in an indented layout (tests/io/jinja/constructs.jinja).
  const std::string constructs = test::read_file(TEDDY_SOURCE_DIR "/tests/io/jinja/constructs.jinja");
  for (const json& conv : conversations())
    for (bool gen : {false, true})
      out.push_back({"constructs.jinja", constructs, {{"messages", conv}, {"add_generation_prompt", gen}}});
  out.push_back({"constructs.jinja", constructs, {{"messages", json::array()}, {"add_generation_prompt", true}}});
  // teddy's own published templates (chat_template_jinja), as in test_hf_chat_template.
  for (const std::string& name : ChatTemplate::names())
    for (const json& conv : conversations())
      out.push_back({"teddy:" + name, chat_template_jinja(ChatTemplate::named(name)),
                     {{"messages", conv}, {"add_generation_prompt", true}}});
  return out;
}

// Runs a peer on the jobs; "" and a failure message when it could not run.
json run_peer(const std::string& command, std::string& failure) {
  std::string out;
  const int rc = test::run_command(command + " 2>&1", out);
  if (rc != 0) {
    failure = command + " failed (" + std::to_string(rc) + "):\n" + out;
    return json();
  }
  return json::parse(out);
}

TEST(JinjaPeers, PublishedTemplatesRenderAsJinja2AndHuggingFaceJinja) {
  setenv("TZ", "UTC", 1);  // strftime_now: transformers formats local time; the peers format UTC
  tzset();
  std::string error;
  const std::string npm = test::llama_npm_dir(error);
  ASSERT_FALSE(npm.empty()) << error;
  const std::vector<Case> all = cases();
  json jobs = json::array();
  std::vector<json> mine;
  jinja::RenderOptions opt;
  opt.now = [] { return kNow; };
  for (const Case& c : all) {
    jobs.push_back({{"template", c.template_text}, {"context", c.context}, {"now", kNow}});
    try {
      mine.push_back(jinja::Template(c.template_text, c.name).render(c.context, opt));
    } catch (const jinja::JinjaError& e) {
      mine.push_back({{"error", e.what()}});
    }
  }
  const std::string dir = test::fresh_dir("jinja_peers");
  test::write_file(dir + "/jobs.json", jobs.dump());
  std::string failure;
  const json node = run_peer("'" + npm + "/node/bin/node' '" TEDDY_SOURCE_DIR "/tests/io/jinja_render.mjs' '" + npm + "' '" + dir + "/jobs.json'", failure);
  ASSERT_TRUE(failure.empty()) << failure;
  const json py = run_peer("/usr/bin/python3 '" TEDDY_SOURCE_DIR "/tests/io/jinja_render.py' '" + dir + "/jobs.json'", failure);
  ASSERT_TRUE(failure.empty()) << failure;
  ASSERT_EQ(node.size(), all.size());
  ASSERT_EQ(py.size(), all.size());
  size_t compared = 0, refused = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    const std::string what = "case " + std::to_string(i) + " (" + all[i].name + ", context " + all[i].context.dump() + ")";
    if (py[i].is_object()) {  // Jinja2 refused the conversation: so must the others
      EXPECT_TRUE(mine[i].is_object()) << what << "\nJinja2: " << py[i] << "\nteddy rendered: " << mine[i];
      EXPECT_TRUE(node[i].is_object()) << what << "\nJinja2: " << py[i] << "\n@huggingface/jinja rendered: " << node[i];
      ++refused;
      continue;
    }
    EXPECT_EQ(mine[i], py[i]) << what << " vs Jinja2";
    EXPECT_EQ(mine[i], node[i]) << what << " vs @huggingface/jinja";
    compared += mine[i] == py[i] && mine[i] == node[i];
  }
  std::printf("%zu renders equal in teddy, Jinja2 and @huggingface/jinja; %zu conversations refused by all three\n",
              compared, refused);
  EXPECT_GT(compared, 60u);
  std::filesystem::remove_all(dir);
}

// Render time: every case above, many times (the figure docs/BENCHMARKS.md quotes).
TEST(JinjaPeers, RenderTime) {
  std::vector<Case> all = cases();
  jinja::RenderOptions opt;
  opt.now = [] { return kNow; };
  std::vector<std::pair<jinja::Template, const Case*>> parsed;
  for (const Case& c : all) parsed.emplace_back(jinja::Template(c.template_text, c.name), &c);
  const int reps = 200;
  size_t renders = 0, bytes = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r)
    for (const auto& [t, c] : parsed) {
      try {
        bytes += t.render(c->context, opt).size();
      } catch (const jinja::JinjaError&) {
      }
      ++renders;
    }
  const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / renders;
  std::printf("render: %.1f us per conversation (%zu renders of %zu cases, %.0f bytes each on average)\n", us, renders,
              all.size(), static_cast<double>(bytes) / renders);
  EXPECT_GT(bytes, 0u);
}

}  // namespace
}  // namespace teddy
