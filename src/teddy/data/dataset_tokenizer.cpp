#include "teddy/data/dataset_tokenizer.h"

#include <xxhash.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "teddy/core/error.h"

namespace fs = std::filesystem;

namespace teddy {

std::string tokenizer_file_checksum(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open tokenizer file");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(XXH3_64bits(bytes.data(), bytes.size())));
  return buf;
}

std::string dataset_tokenizer_path(const std::string& dataset_dir, const Manifest& m) {
  const TokenizerInfo& t = m.tokenizer;
  if (t.path == "bytes" && t.file.empty()) return "bytes";
  if (!t.file.empty()) return (fs::path(dataset_dir) / t.file).string();
  // An old dataset: the path as prepare was given it.
  const fs::path given(t.path);
  std::error_code ec;
  if (given.is_absolute() || fs::is_regular_file(given, ec)) return given.string();
  const fs::path beside = fs::path(dataset_dir).parent_path() / given;
  if (fs::is_regular_file(beside, ec)) return beside.string();
  throw Error(manifest_path(dataset_dir) + ": tokenizer \"" + t.path +
              "\" not found (tried it from here and from " + fs::path(dataset_dir).parent_path().string() +
              "); this dataset was prepared before datasets kept a copy of their tokenizer, and its path is "
              "relative to where `teddy data prepare` ran: run from there, or prepare the dataset again");
}

Tokenizer load_dataset_tokenizer(const std::string& dataset_dir, const Manifest& m) {
  const TokenizerInfo& t = m.tokenizer;
  const std::string path = dataset_tokenizer_path(dataset_dir, m);
  const std::string man = manifest_path(dataset_dir);
  Tokenizer tok = path == "bytes" ? Tokenizer::bytes() : Tokenizer::load(path);
  if (path != "bytes" && !t.checksum.empty()) {
    const std::string got = tokenizer_file_checksum(path);
    if (got != t.checksum)
      throw FormatError(path + ": not the tokenizer this dataset was tokenized with: xxh3 " + got + " (vocabulary " +
                        std::to_string(tok.vocab_size()) + "), " + man + " records " + t.checksum + " (vocabulary " +
                        std::to_string(t.vocab_size) + ")");
  }
  if (static_cast<int64_t>(tok.vocab_size()) != t.vocab_size || tok.eot_id() != t.eot_id)
    throw FormatError(path + ": tokenizer has vocabulary " + std::to_string(tok.vocab_size()) + " (end of text " +
                      std::to_string(tok.eot_id()) + "), but " + man + " records vocabulary " +
                      std::to_string(t.vocab_size) + " (end of text " + std::to_string(t.eot_id) + ")");
  return tok;
}

}  // namespace teddy
