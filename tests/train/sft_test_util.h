#pragma once
// What the SFT tests train on, shared by tests/train/test_sft_trainer.cpp (the
// library in one process) and tests/distributed/test_sft_dist.cpp (`teddy sft` under mpirun).
#include <filesystem>
#include <fstream>
#include <string>

#include "teddy/checkpoint/checkpoint.h"
#include "teddy/data/sft/chat_template.h"
#include "teddy/tokenizer/tokenizer.h"
#include "teddy/model/model.h"
#include "teddy/train/optim/adamw.h"

namespace teddy::test {

// A "pretrained" base: a randomly initialised byte-level gpt2-tiny in <root>/base,
// as `teddy pretrain` leaves a run directory (checkpoint + tokenizer.json).
inline std::string make_sft_base(const std::filesystem::path& root) {
  const std::string run = (root / "base").string();
  ModelConfig c = ModelConfig::preset("gpt2-tiny");
  c.vocab_size = 257;
  c.padded_vocab_size = ModelConfig::pad_vocab(257);
  Model m(c);
  m.init_weights(9);
  AdamW opt(m.layout(), AdamWConfig{});
  CheckpointState st;
  st.step = 100;
  save_checkpoint(run, m, opt, st, 0);
  Tokenizer::bytes().save((std::filesystem::path(run) / "tokenizer.json").string());
  return run;
}

// A "pretrained" base for LoRA: make_sft_base's model with embeddings 20x larger
// (std 0.4) and a tokenizer that already has the chat template's specials (random
// rows of their own). With GPT-2's 0.02 embeddings every logit is bounded by
// |LN(h)| |e_t| = 5.7 * 0.11 = 0.64, and a special added by SFT starts as the mean
// row (norm ~0.14): frozen, neither can be lifted by adapters (full finetuning grows
// them; PEFT users add such rows to modules_to_save). A pretrained chat base has both.
inline std::string make_lora_sft_base(const std::filesystem::path& root) {
  const std::string run = (root / "base").string();
  Tokenizer tok = Tokenizer::bytes();
  ChatTemplate tmpl;
  add_template_specials(tok, tmpl);
  ModelConfig c = ModelConfig::preset("gpt2-tiny");
  c.vocab_size = tok.vocab_size();
  c.padded_vocab_size = ModelConfig::pad_vocab(c.vocab_size);
  Model m(c);
  m.init_weights(9);
  const ParamInfo& e = m.layout().find("tok_emb.weight");
  for (size_t i = 0; i < e.numel; ++i) m.params()[e.offset + i] *= 20;
  AdamW opt(m.layout(), AdamWConfig{});
  CheckpointState st;
  st.step = 100;
  save_checkpoint(run, m, opt, st, 0);
  tok.save((std::filesystem::path(run) / "tokenizer.json").string());
  return run;
}

// <root>/sft.jsonl: a task a tiny model learns in a few dozen steps, 80 examples in
// the three formats whose answer is always "hi"; `extra_line` goes in after the 41st.
inline std::string make_sft_data(const std::filesystem::path& root, const std::string& extra_line = "") {
  const std::string path = (root / "sft.jsonl").string();
  std::ofstream out(path);
  const char* names[] = {"anna", "bob", "carl", "dora", "emil", "fay", "gus", "hana", "ivo", "jan"};
  for (int i = 0; i < 80; ++i) {
    const std::string name = std::string(names[i % 10]) + std::to_string(i);
    if (i % 3 == 0)
      out << R"({"prompt": "greet )" << name << R"(", "completion": "hi"})" << "\n";
    else if (i % 3 == 1)
      out << R"({"instruction": "greet )" << name << R"(", "output": "hi"})" << "\n";
    else
      out << R"({"messages": [{"role": "user", "content": "greet )" << name
          << R"("}, {"role": "assistant", "content": "hi"}], "task": "greet"})" << "\n";
    if (i == 40 && !extra_line.empty()) out << extra_line << "\n";
  }
  return path;
}

}  // namespace teddy::test
