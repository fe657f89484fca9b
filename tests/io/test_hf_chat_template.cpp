// The Jinja chat template teddy publishes for its own templates (tokenizer_config.json's
// chat_template, GGUF's tokenizer.chat_template) renders, in @huggingface/jinja, exactly
// what teddy's ChatTemplate renders: multi-turn conversations with and without a system
// prompt, with and without add_generation_prompt, for chatml, llama3 and a custom
// template whose strings need escaping. Needs node and npm, like the llama.cpp peer test.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/interop_test_util.h"
#include "teddy/io/hf_extras.h"

namespace teddy {
namespace {

using json = nlohmann::json;

TEST(HfChatTemplate, JinjaRendersAsTeddy) {
  std::string error;
  const std::string npm = test::llama_npm_dir(error);
  ASSERT_FALSE(npm.empty()) << error;
  ChatTemplate custom;
  custom.name = "custom";
  custom.bos = "<s>";
  custom.header_prefix = "[[";
  custom.header_suffix = "]]: 'q' \"dq\" \\ {{ x }} {% y %}\t\n";
  custom.end_of_turn = "</turn>";
  custom.separator = "\n\n";
  custom.specials = {"<s>", "</turn>"};
  const std::vector<ChatTemplate> templates = {ChatTemplate::named("chatml"), ChatTemplate::named("llama3"), custom};
  const std::vector<std::vector<ChatTurn>> conversations = {
      {},
      {{ChatRole::user, "Hi"}},
      {{ChatRole::system, "You are terse."}, {ChatRole::user, "What is 2 + 2?"}, {ChatRole::assistant, "4."}},
      {{ChatRole::user, "Line one\nline two, «quotes» and 'apostrophes'"},
       {ChatRole::assistant, "{{ not a tag }} {% neither %}"},
       {ChatRole::user, "Again?"}},
  };
  json jobs = json::array();
  std::vector<std::string> want;
  for (const ChatTemplate& t : templates)
    for (const auto& conv : conversations)
      for (bool gen : {false, true}) {
        json messages = json::array();
        for (const ChatTurn& turn : conv)
          messages.push_back({{"role", std::string(chat_role_name(turn.role))}, {"content", turn.content}});
        jobs.push_back({{"template", chat_template_jinja(t)}, {"messages", messages}, {"add_generation_prompt", gen}});
        want.push_back(t.render_text(conv, gen));
      }
  const std::string dir = test::fresh_dir("hf_chat_template");
  test::write_file(dir + "/job.json", jobs.dump());
  std::string out;
  const int rc = test::run_command("'" + npm + "/node/bin/node' '" TEDDY_SOURCE_DIR "/tests/io/jinja_render.mjs' '" + npm + "' '" + dir +
                                       "/job.json' 2>&1",
                                   out);
  ASSERT_EQ(rc, 0) << out;
  const json got = json::parse(out);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ(got[i].get<std::string>(), want[i]) << "case " << i << " template:\n" << jobs[i]["template"].get<std::string>();
  std::filesystem::remove_all(dir);
}

TEST(HfChatTemplate, BuiltinsAreRecognised) {
  for (const std::string& name : ChatTemplate::names()) {
    const auto t = builtin_template_for_jinja(chat_template_jinja(ChatTemplate::named(name)));
    ASSERT_TRUE(t.has_value()) << name;
    EXPECT_EQ(t->name, name);
  }
  EXPECT_FALSE(builtin_template_for_jinja("{{ messages }}").has_value());
}

}  // namespace
}  // namespace teddy
