// `teddy tokenizer train|encode|decode|info|convert`: the command-line face of the
// byte-level BPE tokenizer (tokenizer/tokenizer.h). Text and ids travel on stdin/stdout
// as raw bytes, so encode/decode round-trip any file.
#include <cctype>
#include <charconv>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "teddy/cli/commands.h"
#include "teddy/core/error.h"
#include "teddy/tokenizer/bpe_trainer.h"
#include "teddy/tokenizer/pretokenizer.h"
#include "teddy/tokenizer/tokenizer.h"
#include "teddy/tokenizer/tokenizer_file.h"

namespace teddy::cli {

namespace {

std::string read_stdin() {
  std::string s;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) s.append(buf, n);
  if (std::ferror(stdin)) throw Error("stdin: read failed");
  return s;
}

void write_stdout(std::string_view s) {
  if (std::fwrite(s.data(), 1, s.size(), stdout) != s.size() || std::fflush(stdout) != 0)
    throw Error("stdout: write failed");
}

// "bytes" names the built-in 256-byte tokenizer; anything else is a file.
Tokenizer load_named(const std::string& name) { return name == "bytes" ? Tokenizer::bytes() : Tokenizer::load(name); }

void save_as(const Tokenizer& tok, const std::string& path, const std::string& format) {
  if (format == "teddy")
    tok.save(path);
  else if (format == "hf")
    tok.save_hf_json(path);
  else
    tok.save_tiktoken(path);
}

const std::vector<std::string> kFormats = {"teddy", "hf", "tiktoken"};

struct TrainArgs {
  std::vector<std::string> inputs, specials = {"<|endoftext|>"};
  int vocab_size = 0;
  std::string pattern = "gpt2", output, format = "teddy";
};

int run_train(const TrainArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  BpeTrainer trainer({.vocab_size = a.vocab_size, .pattern = pretokenizer_from_name(a.pattern), .specials = a.specials});
  // Directories contribute every regular file under them, in sorted order.
  std::vector<std::string> files;
  for (const std::string& in : a.inputs) {
    if (std::filesystem::is_directory(in)) {
      std::vector<std::string> found;
      for (const auto& e : std::filesystem::recursive_directory_iterator(in))
        if (e.is_regular_file()) found.push_back(e.path().string());
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else {
      files.push_back(in);
    }
  }
  size_t bytes = 0;
  for (const std::string& path : files) {
    const std::string text = read_text_file(path);
    bytes += text.size();
    trainer.add_text(text);
  }
  const auto t1 = std::chrono::steady_clock::now();
  const Tokenizer tok = trainer.train();
  const auto t2 = std::chrono::steady_clock::now();
  save_as(tok, a.output, a.format);
  const double count_s = std::chrono::duration<double>(t1 - t0).count();
  const double merge_s = std::chrono::duration<double>(t2 - t1).count();
  std::fprintf(stderr,
               "teddy tokenizer train: %zu bytes from %zu file(s), %zu distinct pieces (%.2f s); %zu merges (%.2f s); "
               "vocab %d -> %s\n",
               bytes, files.size(), trainer.unique_pieces(), count_s, trainer.merges().size(), merge_s,
               tok.vocab_size(), a.output.c_str());
  if (tok.vocab_size() < a.vocab_size)
    std::fprintf(stderr, "teddy tokenizer train: the corpus ran out of pairs before vocab size %d\n", a.vocab_size);
  return 0;
}

int run_encode(const std::string& path, bool allow_special, int threads) {
  const Tokenizer tok = load_named(path);
  const std::string text = read_stdin();
  const std::vector<uint32_t> ids = threads > 1 ? tok.encode_parallel(text, threads, allow_special)
                                    : allow_special ? tok.encode_with_special(text)
                                                    : tok.encode(text);
  std::string out;
  out.reserve(ids.size() * 6 + 1);
  char num[16];
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ' ';
    out.append(num, std::to_chars(num, num + sizeof num, ids[i]).ptr);
  }
  out += '\n';
  write_stdout(out);
  return 0;
}

int run_decode(const std::string& path) {
  const Tokenizer tok = load_named(path);
  const std::string in = read_stdin();
  std::vector<uint32_t> ids;
  size_t pos = 0;
  while (pos < in.size()) {
    if (std::isspace(static_cast<unsigned char>(in[pos]))) {
      ++pos;
      continue;
    }
    uint32_t id = 0;
    const auto [end, ec] = std::from_chars(in.data() + pos, in.data() + in.size(), id);
    const size_t stop = in.find_first_of(" \t\r\n\v\f", pos);
    const std::string_view word = std::string_view(in).substr(pos, stop == std::string::npos ? in.size() - pos : stop - pos);
    if (ec != std::errc() || end != in.data() + pos + word.size())
      throw Error("stdin: id " + std::to_string(ids.size() + 1) + ": expected a token id (got '" +
                  std::string(word.substr(0, 40)) + "')");
    ids.push_back(id);
    pos += word.size();
  }
  write_stdout(tok.decode(ids));
  return 0;
}

int run_info(const std::string& path) {
  const Tokenizer tok = load_named(path);
  const BpeVocab& v = tok.vocab();
  std::printf("tokenizer   %s\n", path.c_str());
  std::printf("vocab size  %d\n", tok.vocab_size());
  std::printf("pattern     %s\n", std::string(pretokenizer_name(tok.pattern())).c_str());
  if (v.merges.empty())
    std::printf("merges      %zu (tiktoken rule: lowest-ranked token bytes first)\n", tok.merge_count());
  else
    std::printf("merges      %zu (merge-pair rule%s)\n", tok.merge_count(),
                v.whole_piece_first ? ", whole words first" : "");
  std::printf("specials    %zu\n", v.specials.size());
  for (size_t i = 0; i < v.specials.size() && i < 16; ++i)
    std::printf("  %8u  %s\n", v.specials[i].second, v.specials[i].first.c_str());
  if (v.specials.size() > 16) std::printf("  ... (%zu more)\n", v.specials.size() - 16);
  try {
    std::printf("eot id      %u\n", tok.eot_id());
  } catch (const Error&) {
    std::printf("eot id      (none)\n");
  }
  return 0;
}

}  // namespace

void register_tokenizer(CLI::App& app, Run& run) {
  CLI::App* tok = app.add_subcommand("tokenizer", "Byte-level BPE tokenizer: train, encode, decode, info, convert");
  tok->require_subcommand(1);

  auto ta = std::make_shared<TrainArgs>();
  CLI::App* train = tok->add_subcommand("train", "Learn BPE merges from text files");
  train->add_option("--input,-i", ta->inputs, "Text file(s) or directories (all files under them) to learn from")->required()->check(CLI::ExistingPath);
  train->add_option("--vocab-size", ta->vocab_size, "Total ids: 256 bytes + merges + specials")->required();
  train->add_option("--pattern", ta->pattern, "Pre-tokenizer regex: gpt2 or llama3")
      ->check(CLI::IsMember({"gpt2", "llama3"}));
  train->add_option("--special", ta->specials, "Special token(s), ids after the merges (default <|endoftext|>)");
  train->add_option("--output,-o", ta->output, "Tokenizer file to write")->required();
  train->add_option("--format", ta->format, "Output format: teddy (default), hf (tokenizer.json) or tiktoken")
      ->check(CLI::IsMember(kFormats));
  train->callback([ta, &run] { run = [ta] { return run_train(*ta); }; });

  struct CodecArgs {
    std::string tokenizer;
    bool allow_special = false;
    int threads = 1;
  };
  auto ea = std::make_shared<CodecArgs>();
  CLI::App* encode = tok->add_subcommand("encode", "Text on stdin -> token ids (space-separated) on stdout");
  encode->add_option("--tokenizer,-t", ea->tokenizer, "Tokenizer file (teddy, tokenizer.json, tiktoken) or 'bytes'")
      ->required();
  encode->add_flag("--allow-special", ea->allow_special, "Encode special-token text (e.g. <|endoftext|>) as its id");
  encode->add_option("--threads", ea->threads, "Threads (cuts the text only where the result cannot change)")
      ->check(CLI::Range(1, 1024));
  encode->callback([ea, &run] { run = [ea] { return run_encode(ea->tokenizer, ea->allow_special, ea->threads); }; });

  auto da = std::make_shared<std::string>();
  CLI::App* decode = tok->add_subcommand("decode", "Token ids on stdin -> bytes on stdout");
  decode->add_option("--tokenizer,-t", *da, "Tokenizer file or 'bytes'")->required();
  decode->callback([da, &run] { run = [da] { return run_decode(*da); }; });

  auto ia = std::make_shared<std::string>();
  CLI::App* info = tok->add_subcommand("info", "Vocabulary size, pattern, merges and special tokens");
  info->add_option("--tokenizer,-t", *ia, "Tokenizer file or 'bytes'")->required();
  info->callback([ia, &run] { run = [ia] { return run_info(*ia); }; });

  struct ConvertArgs {
    std::string tokenizer, output, format = "teddy";
  };
  auto ca = std::make_shared<ConvertArgs>();
  CLI::App* convert = tok->add_subcommand("convert", "Rewrite a tokenizer in another format");
  convert->add_option("--tokenizer,-t", ca->tokenizer, "Tokenizer file or 'bytes'")->required();
  convert->add_option("--output,-o", ca->output, "File to write")->required();
  convert->add_option("--format", ca->format, "teddy (default), hf (tokenizer.json) or tiktoken")
      ->check(CLI::IsMember(kFormats));
  convert->callback([ca, &run] {
    run = [ca] {
      save_as(load_named(ca->tokenizer), ca->output, ca->format);
      return 0;
    };
  });
}

}  // namespace teddy::cli
