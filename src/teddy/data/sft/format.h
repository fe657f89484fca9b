#pragma once
// Supervised-finetuning data: JSONL files, one example a line, in the three common
// shapes, all read into one conversation type:
//
//   messages           {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
//   prompt_completion  {"prompt": "...", "completion": "..."}   -> user, assistant
//   alpaca             {"instruction": "...", "input": "...", "output": "..."}
//                      -> user (instruction, then a blank line and input if non-empty), assistant
//
// "auto" picks the shape per line from its keys. An optional string "task" (or
// "category") is kept as a label for per-task evaluation. Rules, each an error naming
// file and line: valid JSON object; the shape's fields present and strings; roles
// known; a system turn only first; at least one assistant turn; no empty assistant
// turn. See docs/SFT.md.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace teddy {

enum class SftFormat { auto_detect, messages, prompt_completion, alpaca };
std::string_view sft_format_name(SftFormat f);  // "auto", "messages", "prompt_completion", "alpaca"
// Throws ConfigError naming `field` and the known names.
SftFormat sft_format_from_name(std::string_view name, std::string_view field = "data.format");

enum class ChatRole { system, user, assistant };
std::string_view chat_role_name(ChatRole r);

struct ChatTurn {
  ChatRole role = ChatRole::user;
  std::string content;
};

struct SftExample {
  std::vector<ChatTurn> turns;
  SftFormat format = SftFormat::messages;  // the shape the line had
  std::string task;       // optional label ("task" or "category" field), "" if absent
  std::string file;       // where it came from, for messages
  uint64_t line = 0;
};

// Parses one JSONL line. Throws FormatError "<file>:<line>: <why>".
SftExample parse_sft_line(std::string_view text, SftFormat format, const std::string& file, uint64_t line);

struct SftReadStats {
  uint64_t lines = 0;     // non-blank lines
  uint64_t examples = 0;  // parsed
  uint64_t skipped = 0;   // bad lines skipped under skip_bad
  uint64_t by_format[4] = {0, 0, 0, 0};  // examples per detected SftFormat (index = enum value)
  std::vector<std::string> skipped_examples;  // first few "file:line: why"
};

// Reads a JSONL file (blank lines ignored). A bad line throws FormatError naming file
// and line, unless skip_bad: then it is counted in stats and skipped. Throws Error if
// the file cannot be opened or yields no example.
std::vector<SftExample> read_sft_jsonl(const std::string& path, SftFormat format, bool skip_bad,
                                       SftReadStats* stats = nullptr);

}  // namespace teddy
