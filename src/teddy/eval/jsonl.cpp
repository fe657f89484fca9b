#include "teddy/eval/jsonl.h"

#include <zlib.h>

#include <fstream>
#include <sstream>

#include "teddy/core/error.h"

namespace teddy {

namespace {

bool ends_with(const std::string& s, const char* suffix) {
  const std::string x(suffix);
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}

std::string gunzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw FormatError(path + ": cannot open");
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int err = 0;
      const std::string msg = gzerror(f, &err);
      gzclose(f);
      throw FormatError(path + ": not a valid gzip file (" + msg + ")");
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  // gzread passes a file without the gzip magic through unchanged; a truncated
  // stream ends with Z_BUF_ERROR.
  int err = 0;
  gzerror(f, &err);
  gzclose(f);
  if (err != Z_OK && err != Z_STREAM_END) throw FormatError(path + ": truncated gzip stream");
  return out;
}

const char* json_kind(const nlohmann::json& j) {
  return j.type_name();
}

}  // namespace

std::string read_maybe_gz(const std::string& path) {
  if (ends_with(path, ".gz")) return gunzip(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError(path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

[[noreturn]] void row_error(const std::string& path, size_t line, const std::string& what) {
  throw FormatError(path + ":" + std::to_string(line) + ": " + what);
}

std::vector<JsonlRow> read_jsonl(const std::string& path) {
  const std::string text = read_maybe_gz(path);
  std::vector<JsonlRow> rows;
  size_t pos = 0, line = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    ++line;
    std::string_view s(text.data() + pos, end - pos);
    pos = end + 1;
    if (s.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    JsonlRow r;
    r.line = line;
    try {
      r.value = nlohmann::json::parse(s);
    } catch (const nlohmann::json::exception& e) {
      // nlohmann says "[json.exception.parse_error.101] parse error at line 1, column
      // 7: ..."; the row is one line, so keep from "column" on.
      const std::string what = e.what();
      const size_t col = what.find("column ");
      row_error(path, line, "invalid JSON at " + (col == std::string::npos ? what : what.substr(col)));
    }
    if (!r.value.is_object()) row_error(path, line, std::string("expected a JSON object, got ") + json_kind(r.value));
    rows.push_back(std::move(r));
  }
  return rows;
}

const nlohmann::json& require_field(const JsonlRow& r, const std::string& path, const char* name) {
  auto it = r.value.find(name);
  if (it == r.value.end() || it->is_null()) row_error(path, r.line, std::string("missing field \"") + name + "\"");
  return *it;
}

std::string require_string(const JsonlRow& r, const std::string& path, const char* name) {
  const nlohmann::json& v = require_field(r, path, name);
  if (!v.is_string())
    row_error(path, r.line, std::string("field \"") + name + "\" must be a string (got " + json_kind(v) + ")");
  return v.get<std::string>();
}

}  // namespace teddy
