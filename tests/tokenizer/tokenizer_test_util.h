#pragma once
// Helpers shared by the tokenizer tests: running a command, the npm tiktoken
// setup, deterministic random text.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace teddy::test {

// Runs `cmd` through the shell; returns its exit status and stdout.
inline int run_command(const std::string& cmd, std::string& out) {
  out.clear();
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_file(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

inline std::string temp_dir() {
  std::string d = std::string(TEDDY_BINARY_DIR) + "/test_tmp";
  std::string ignored;
  run_command("mkdir -p '" + d + "'", ignored);
  return d;
}

// Runs the npm set-up script `script` (relative to the source tree) into
// <build>/<dir_name> (idempotent). On failure returns "" and sets `error` to what went
// wrong: the peer tests must fail, not skip.
inline std::string npm_peer_dir(const std::string& script, const std::string& dir_name, std::string& error) {
  const std::string dir = std::string(TEDDY_BINARY_DIR) + "/" + dir_name;
  std::string out;
  const int rc = run_command("bash '" TEDDY_SOURCE_DIR "/" + script + "' '" + dir + "' 2>&1", out);
  if (rc != 0) {
    error = script + " failed (exit " + std::to_string(rc) + "); node and npm (with registry access, or a filled " +
            dir + ") are required:\n" + out;
    return "";
  }
  return dir;
}

// tests/tokenizer/setup_tiktoken.sh into <build>/npm: the exactness tests' tiktoken peer.
inline std::string tiktoken_dir(std::string& error) {
  return npm_peer_dir("tests/tokenizer/setup_tiktoken.sh", "npm", error);
}

inline void append_utf8(std::string& s, uint32_t cp) {
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Valid UTF-8 text mixing the characters pre-tokenizers care about: letters of
// several scripts, digits, every Unicode space, newlines, punctuation, apostrophe
// contractions, combining marks, emoji.
inline std::string random_text(std::mt19937& rng, int n_chars) {
  static const std::vector<std::pair<uint32_t, uint32_t>> ranges = {
      {'a', 'z'}, {'A', 'Z'}, {'0', '9'}, {' ', ' '}, {' ', ' '}, {'\n', '\n'}, {'\t', '\r'},
      {'!', '/'}, {':', '@'}, {'[', '`'}, {'{', '~'}, {'\'', '\''}, {0x80, 0xFF}, {0x100, 0x17F},
      {0x300, 0x36F}, {0x391, 0x3C9}, {0x410, 0x44F}, {0x5D0, 0x5EA}, {0x620, 0x64A}, {0x660, 0x669},
      {0x900, 0x97F}, {0x1680, 0x1680}, {0x180E, 0x180E}, {0x2000, 0x200F}, {0x2028, 0x202F},
      {0x205F, 0x205F}, {0x2070, 0x209F}, {0x2150, 0x218F}, {0x3000, 0x3000}, {0x3040, 0x30FF},
      {0x4E00, 0x4FFF}, {0xAC00, 0xAD00}, {0xFF01, 0xFF5E}, {0x1F300, 0x1F64F}, {0x1F900, 0x1F9FF}};
  static const char* snippets[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", " the", "  ",
                                   "\r\n", "...", " 123", "4567", "\u00a0", "\u0085", "::", "</>"};
  std::string s;
  for (int i = 0; i < n_chars; ++i) {
    if (rng() % 8 == 0) {
      s += snippets[rng() % (sizeof snippets / sizeof *snippets)];
      continue;
    }
    const auto [lo, hi] = ranges[rng() % ranges.size()];
    append_utf8(s, lo + static_cast<uint32_t>(rng() % (hi - lo + 1)));
  }
  return s;
}

inline std::string random_bytes(std::mt19937& rng, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

}  // namespace teddy::test
