// `--model hf:DIR`: generate reads a Hugging Face directory in memory and produces what
// the imported run produces; sft imports it once into RUN_DIR/hf_base and reuses it.
#include <gtest/gtest.h>

#include "io/interop_test_util.h"
#include "teddy/io/hf_export.h"
#include "teddy/io/hf_import.h"
#include "teddy/model/generate.h"

namespace teddy {
namespace {

namespace fs = std::filesystem;

TEST(HfOnTheFly, GenerateFromAnHfDirectory) {
  const std::string root = test::fresh_dir("hf_on_the_fly");
  Tokenizer tok = test::trained_tokenizer(PretokenizerKind::llama3);
  const ChatTemplate t = ChatTemplate::named("llama3");
  add_template_specials(tok, t);
  Model m(test::config_for(test::llama_spec(), tok.vocab_size()));
  test::randomize(m, 8);
  test::write_run(root + "/run", m, tok, &t);
  export_hf(root + "/run", root + "/hf", {});

  EXPECT_EQ(hf_model_dir("hf:" + root + "/hf"), root + "/hf");
  EXPECT_EQ(hf_model_dir(root + "/run"), "");
  ChatModel cm = load_hf_chat_model(root + "/hf", true);
  EXPECT_EQ(cm.tmpl.name, "llama3");  // recognised from the published Jinja
  EXPECT_EQ(cm.added_specials, 0);
  ASSERT_EQ(cm.model->flat_size(), m.flat_size());
  EXPECT_EQ(std::memcmp(cm.model->params(), m.params(), m.flat_size() * 4), 0);

  // The CLI: --model hf:DIR gives what --checkpoint RUN gives.
  auto gen = [&](const std::string& source) {
    std::string out;
    const int rc = test::run_command("'" TEDDY_BINARY_DIR "/teddy' generate " + source +
                                         " --prompt 'Hello world' --temperature 0 -n 12 --no-stop 2>&1",
                                     out);
    EXPECT_EQ(rc, 0) << out;
    return out;
  };
  const std::string a = gen("--model hf:'" + root + "/hf'"), b = gen("--checkpoint '" + root + "/run'");
  EXPECT_EQ(a, b);
  EXPECT_GT(a.size(), std::string("Hello world").size());

  // sft's import into RUN_DIR/hf_base: once, then reused; another directory is refused.
  bool reused = true;
  EXPECT_EQ(import_hf_once(root + "/hf", root + "/sft/hf_base", &reused), root + "/sft/hf_base");
  EXPECT_FALSE(reused);
  EXPECT_EQ(import_hf_once(root + "/hf/", root + "/sft/hf_base", &reused), root + "/sft/hf_base");
  EXPECT_TRUE(reused);
  fs::create_directories(root + "/other");
  fs::copy(root + "/hf", root + "/other/hf");
  const std::string msg = test::error_of([&] { import_hf_once(root + "/other/hf", root + "/sft/hf_base"); });
  EXPECT_TRUE(test::contains(msg, "holds an import of")) << msg;
  if (!HasFailure()) fs::remove_all(root);
}

}  // namespace
}  // namespace teddy
