// A model's own Jinja chat template end to end: `teddy import hf` keeps Qwen2.5's
// published template in chat_template.json (the end-of-turn token derived from it),
// `teddy generate --chat` renders prompts with it (from the run, from hf:DIR, and from
// --template jinja:PATH alike) and stops at its end of turn, and export hf / export gguf
// write the text back byte for byte, also from a run that has no hf_extras.json (an SFT
// run's chat_template.json).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/interop_test_util.h"
#include "teddy/data/sft/jinja_chat.h"
#include "teddy/io/gguf_export.h"
#include "teddy/io/hf_export.h"
#include "teddy/io/hf_import.h"
#include "teddy/model/generate.h"

namespace teddy {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kQwen = "Qwen-Qwen2.5-7B-Instruct.jinja";

std::string published(const std::string& file) { return test::read_file(TEDDY_SOURCE_DIR "/tests/data/jinja_templates/" + file); }

std::string run_teddy(const std::string& args) {
  std::string out;
  const int rc = test::run_command("'" TEDDY_BINARY_DIR "/teddy' " + args + " 2>&1", out);
  EXPECT_EQ(rc, 0) << args << "\n" << out;
  return out;
}

std::string run_teddy_fails(const std::string& args) {
  std::string out;
  const int rc = test::run_command("'" TEDDY_BINARY_DIR "/teddy' " + args + " 2>&1", out);
  EXPECT_NE(rc, 0) << args << "\n" << out;
  return out;
}

TEST(HfJinjaChat, ImportGenerateAndExportWithTheModelsOwnTemplate) {
  const std::string root = test::fresh_dir("hf_jinja_chat");
  Tokenizer tok = test::trained_tokenizer(PretokenizerKind::llama3);
  tok.add_special("<|im_start|>");
  tok.add_special("<|im_end|>");
  test::RunSpec spec = test::llama_spec();
  spec.max_seq_len = 128;  // Qwen's prompt with its default system turn is ~80 tokens here
  Model m(test::config_for(spec, tok.vocab_size()));
  test::randomize(m, 3);
  for (const ParamInfo& p : m.layout().params)  // larger weights: the greedy reply depends on the prompt
    if (p.shape.size() == 2)
      for (size_t i = 0; i < p.numel; ++i) m.param(p.name)[i] *= 8;
  test::write_run(root + "/run", m, tok);
  export_hf(root + "/run", root + "/hf", {});
  // The published Qwen2.5 template in place of teddy's default.
  json tc = json::parse(test::read_file(root + "/hf/tokenizer_config.json"));
  const std::string qwen = published(kQwen);
  tc["chat_template"] = qwen;
  tc["eos_token"] = "<|im_end|>";
  test::write_file(root + "/hf/tokenizer_config.json", tc.dump(2));

  const HfImportReport r = import_hf(root + "/hf", root + "/imported");
  EXPECT_EQ(r.chat_template, "model");
  const ChatTemplate saved = ChatTemplate::load(root + "/imported/chat_template.json");
  EXPECT_EQ(saved.jinja, qwen);
  EXPECT_EQ(saved.end_of_turn, "<|im_end|>");
  EXPECT_EQ(saved.eos_token, "<|im_end|>");

  // generate --chat: the prompt is Qwen's rendering (its default system prompt included);
  // the reply is what the library generates from it, up to <|im_end|>.
  const ChatTurn user{ChatRole::user, "Hello world"};
  const std::string prompt_text = render_jinja_text(saved, std::span<const ChatTurn>(&user, 1), true);
  EXPECT_EQ(prompt_text, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
                         "<|im_start|>user\nHello world<|im_end|>\n<|im_start|>assistant\n");
  const std::vector<uint32_t> ids = tok.encode_with_special(prompt_text);
  SamplingOptions so;
  so.temperature = 0;
  so.stop_tokens = {static_cast<int32_t>(tok.special_id("<|im_end|>"))};
  std::vector<int32_t> out = generate(m, std::vector<int32_t>(ids.begin(), ids.end()), 10, so);
  if (!out.empty() && out.back() == so.stop_tokens[0]) out.pop_back();
  const std::string reply = tok.decode(std::vector<uint32_t>(out.begin(), out.end()));
  const std::string want = "user: Hello world\nassistant: " + reply + "\n";
  const std::string args = " --chat --prompt 'Hello world' --temperature 0 -n 10";
  EXPECT_EQ(run_teddy("generate --checkpoint '" + root + "/imported'" + args), want);
  EXPECT_EQ(run_teddy("generate --model hf:'" + root + "/hf'" + args), want);
  EXPECT_EQ(run_teddy("generate --model hf:'" + root + "/hf' --template model" + args), want);
  test::write_file(root + "/qwen.jinja", qwen);
  EXPECT_EQ(run_teddy("generate --checkpoint '" + root + "/run' --template jinja:'" + root + "/qwen.jinja'" + args), want);
  // chatml renders another prompt (no system turn), so the flag is not ignored.
  EXPECT_NE(run_teddy("generate --checkpoint '" + root + "/imported' --template chatml" + args), want);

  // Export writes the text back verbatim: from the import (hf_extras.json) ...
  export_hf(root + "/imported", root + "/hf2", {});
  EXPECT_EQ(json::parse(test::read_file(root + "/hf2/tokenizer_config.json"))["chat_template"], qwen);
  // ... and from a run whose template is only its chat_template.json (what sft writes).
  const ChatTemplate jt = ChatTemplate::from_jinja("model", qwen, "", "<|im_end|>");
  test::write_run(root + "/sft_like", m, tok, &jt);
  export_hf(root + "/sft_like", root + "/hf3", {});
  EXPECT_EQ(json::parse(test::read_file(root + "/hf3/tokenizer_config.json"))["chat_template"], qwen);
  export_gguf(root + "/sft_like", root + "/x.gguf", {});
  EXPECT_NE(test::read_file(root + "/x.gguf").find(qwen), std::string::npos);

  // "model" on a run without a template of its own is refused, naming the run.
  const std::string msg = run_teddy_fails("generate --checkpoint '" + root + "/run' --template model" + args);
  EXPECT_TRUE(test::contains(msg, "has no chat template of its own")) << msg;
  if (!HasFailure()) fs::remove_all(root);
}

}  // namespace
}  // namespace teddy
