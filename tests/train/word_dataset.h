#pragma once
// A small byte-tokenized dataset of random words (one source, "prose", 20% held out for
// validation), prepared under root/dataset: the fixture of the tests that run whole
// training jobs (tests/train, tests/distributed). Same files, words and seed give the
// same dataset, so runs compared across processes or layouts read the same tokens.
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "teddy/data/prepare.h"

namespace teddy::test {

inline std::string make_word_dataset(const std::filesystem::path& root, int files, int words_per_file) {
  const std::filesystem::path src = root / "src";
  std::filesystem::create_directories(src);
  std::mt19937 rng(5);
  const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away", "home"};
  for (int f = 0; f < files; ++f) {
    std::ofstream out(src / ("doc" + std::to_string(f) + ".txt"));
    for (int w = 0; w < words_per_file; ++w) out << words[rng() % 12] << (w % 13 == 12 ? ".\n" : " ");
  }
  PrepareConfig pc;
  SourceSpec a;
  a.name = "prose";
  a.kind = SourceKind::text;
  a.paths = {src.string()};
  pc.sources = {a};
  pc.tokenizer = "bytes";
  pc.out_dir = (root / "dataset").string();
  pc.val_fraction = 0.2;
  pc.overwrite = true;
  prepare_dataset(pc);
  return pc.out_dir;
}

}  // namespace teddy::test
