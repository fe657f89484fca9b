#pragma once
// The tokenizer a prepared dataset was tokenized with. `teddy data prepare` keeps a
// copy of the tokenizer file inside the dataset (manifest.json's tokenizer.file,
// "tokenizer/<name>"), so the dataset can be moved or used from any directory; every
// reader (`teddy pretrain`, `teddy data inspect`) verifies the file against the
// checksum and vocabulary the manifest records and refuses another tokenizer,
// naming both.
//
// Datasets prepared before the copy was kept record only the path given to prepare,
// which may be relative to the directory prepare ran in: it is tried as given, then
// next to the dataset directory; found or not, a file whose checksum differs is refused
// (never a silent swap). Re-running `teddy data prepare` adds the copy.
#include <string>

#include "teddy/data/manifest.h"
#include "teddy/tokenizer/tokenizer.h"

namespace teddy {

// Where the dataset's tokenizer file is ("bytes" for the built-in byte tokenizer).
// Throws Error naming the dataset and what was tried when an old dataset's file cannot
// be found.
std::string dataset_tokenizer_path(const std::string& dataset_dir, const Manifest& m);

// Loads and verifies it: the file's XXH3-64 against tokenizer.checksum, and the
// tokenizer's vocabulary size and end-of-text id against the manifest's. Throws
// FormatError naming the file, the dataset and both values on a mismatch.
Tokenizer load_dataset_tokenizer(const std::string& dataset_dir, const Manifest& m);

// XXH3-64 of a file's bytes as 16 hex digits (the manifest's tokenizer.checksum).
std::string tokenizer_file_checksum(const std::string& path);

}  // namespace teddy
