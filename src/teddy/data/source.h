#pragma once
// Data sources: where documents come from, and how to read them one at a time.
//
//   text   plain text files (or directories of them); the whole file is one document,
//          or, with `separator`, a line equal to the separator ends a document
//          (fortune files use "%")
//   code   like text (one file = one document), usually a directory filtered by
//          `extensions` (".py", ".c", ...); kept distinct so mixtures can weight it
//   jsonl  one JSON object per line, the document in `text_field` (the Hugging Face
//          datasets convention); blank lines are ignored
//
// A path may be a file or a directory; directories are walked recursively in sorted
// order (so runs are reproducible), keeping files whose name ends with one of
// `extensions` (all files when empty). Hidden files and directories are skipped.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace teddy {

enum class SourceKind { text, code, jsonl };

std::string_view source_kind_name(SourceKind k);
// "text", "code", "jsonl"; "fortune" is accepted as text with separator "%".
// Throws ConfigError naming `field`.
SourceKind source_kind_from_name(std::string_view name, std::string_view field = "kind");

struct SourceSpec {
  std::string name;                     // unique, [A-Za-z0-9_.-]+ (it names a directory)
  SourceKind kind = SourceKind::text;
  std::vector<std::string> paths;       // files and/or directories
  std::vector<std::string> extensions;  // filter for directory walks, e.g. {".py", ".c"}
  std::string text_field = "text";      // jsonl only
  std::string separator;                // text/code: document separator line ("" = whole file)
  double weight = 1.0;                  // default mixture weight (must be > 0)
};

// "%g" formatting for numbers in error messages (0.6, not 0.600000).
std::string format_number(double v);

// Throws ConfigError if the spec breaks a rule (name, weight, kind-specific fields).
void validate_source_spec(const SourceSpec& spec);

// The files a source reads, in a fixed order. Throws Error naming the first path that
// does not exist, and Error if the source has no files at all.
std::vector<std::string> list_source_files(const SourceSpec& spec);

struct Document {
  std::string_view text;  // valid only during the callback
  const std::string* file = nullptr;
  uint64_t line = 1;      // first line of the document in `file` (1-based)
};

struct SourceReadStats {
  uint64_t files = 0;
  uint64_t documents = 0;  // passed to the callback (empty documents are not)
  uint64_t skipped = 0;    // bad JSONL lines skipped under skip_bad
  uint64_t bytes = 0;      // bytes of document text
  std::vector<std::string> skipped_examples;  // first few "file:line: why" messages
};

// Reads every document of `spec` in order and calls `fn` for each non-empty one.
// A JSONL line that is not JSON, not an object, or lacks a string `text_field` throws
// FormatError "<file>:<line>: ..." unless skip_bad, in which case it is counted.
// A source that yields no documents throws Error ("empty source").
SourceReadStats read_source(const SourceSpec& spec, bool skip_bad,
                            const std::function<void(const Document&)>& fn);

}  // namespace teddy
