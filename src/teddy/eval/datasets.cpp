#include "teddy/eval/datasets.h"

#include <algorithm>
#include <filesystem>

#include "teddy/core/error.h"
#include "teddy/eval/csv.h"
#include "teddy/eval/jsonl.h"

namespace fs = std::filesystem;

namespace teddy {

namespace {

bool has_suffix(const std::string& s, const std::string& x) {
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}

bool is_jsonl(const std::string& p) { return has_suffix(p, ".jsonl") || has_suffix(p, ".jsonl.gz") || has_suffix(p, ".json"); }

// "abstract_algebra_test.csv" -> "abstract_algebra".
std::string mmlu_subject(const fs::path& p) {
  std::string s = p.stem().string();
  for (const char* split : {"_test", "_val", "_dev"})
    if (has_suffix(s, split)) return s.substr(0, s.size() - std::string(split).size());
  return s;
}

void read_mmlu_csv(const fs::path& file, std::vector<McDoc>& out) {
  const std::string path = file.string();
  const std::string subject = mmlu_subject(file);
  const std::vector<CsvRow> rows = parse_csv(read_maybe_gz(path), path);
  size_t k = 0;
  for (const CsvRow& r : rows) {
    if (r.fields.size() != 6)
      row_error(path, r.line, "expected 6 fields (question, A, B, C, D, answer), got " + std::to_string(r.fields.size()));
    const std::string& a = r.fields[5];
    if (a.size() != 1 || a[0] < 'A' || a[0] > 'D')
      row_error(path, r.line, "answer (field 6) must be one of A, B, C, D (got \"" + a + "\")");
    McDoc d;
    d.id = subject + "/" + std::to_string(k++);
    d.subject = subject;
    d.question = r.fields[0];
    d.choices.assign(r.fields.begin() + 1, r.fields.begin() + 5);
    d.gold = a[0] - 'A';
    d.file = path;
    d.line = r.line;
    out.push_back(std::move(d));
  }
}

std::vector<std::string> string_list(const JsonlRow& r, const std::string& path, const nlohmann::json& v, const char* name) {
  if (!v.is_array()) row_error(path, r.line, std::string("field \"") + name + "\" must be a list of strings");
  std::vector<std::string> out;
  for (const auto& e : v) {
    if (!e.is_string()) row_error(path, r.line, std::string("field \"") + name + "\" must be a list of strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

void read_mmlu_jsonl(const std::string& path, std::vector<McDoc>& out) {
  for (const JsonlRow& r : read_jsonl(path)) {
    McDoc d;
    d.question = require_string(r, path, "question");
    d.subject = r.value.contains("subject") && r.value["subject"].is_string() ? r.value["subject"].get<std::string>() : "";
    d.choices = string_list(r, path, require_field(r, path, "choices"), "choices");
    if (d.choices.size() != 4) row_error(path, r.line, "field \"choices\" must hold 4 answers, got " + std::to_string(d.choices.size()));
    const nlohmann::json& a = require_field(r, path, "answer");
    if (a.is_number_integer() && a.get<int64_t>() >= 0 && a.get<int64_t>() < 4) {
      d.gold = static_cast<int>(a.get<int64_t>());
    } else if (a.is_string() && a.get<std::string>().size() == 1 && a.get<std::string>()[0] >= 'A' &&
               a.get<std::string>()[0] <= 'D') {
      d.gold = a.get<std::string>()[0] - 'A';
    } else {
      row_error(path, r.line, "field \"answer\" must be 0-3 or A-D (got " + a.dump() + ")");
    }
    d.id = (d.subject.empty() ? std::string("mmlu") : d.subject) + "/" + std::to_string(out.size());
    d.file = path;
    d.line = r.line;
    out.push_back(std::move(d));
  }
}

std::vector<fs::path> csv_files(const fs::path& dir, const std::string& split) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && has_suffix(name, ".csv") && (split.empty() || has_suffix(name, "_" + split + ".csv")))
      files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

std::vector<McDoc> read_mmlu(const std::string& path, const std::string& split) {
  std::vector<McDoc> out;
  if (!fs::exists(path)) throw FormatError(path + ": no such file or folder");
  if (fs::is_directory(path)) {
    fs::path dir = path;
    if (fs::is_directory(dir / split)) dir /= split;
    std::vector<fs::path> files = csv_files(dir, split);
    if (files.empty()) files = csv_files(dir, "");
    if (files.empty())
      throw FormatError(path + ": no MMLU CSV files (expected <subject>_" + split + ".csv here or in " + split + "/)");
    for (const fs::path& f : files) read_mmlu_csv(f, out);
  } else if (is_jsonl(path)) {
    read_mmlu_jsonl(path, out);
  } else {
    read_mmlu_csv(path, out);
  }
  if (out.empty()) throw FormatError(path + ": no questions");
  return out;
}

std::string mmlu_dev_path(const std::string& path) {
  fs::path p = path;
  if (!fs::is_directory(p)) p = p.parent_path();
  if (fs::is_directory(p / "dev")) return (p / "dev").string();
  if (fs::is_directory(p.parent_path() / "dev")) return (p.parent_path() / "dev").string();
  return "";
}

std::vector<McDoc> read_arc(const std::string& path) {
  std::vector<McDoc> out;
  for (const JsonlRow& r : read_jsonl(path)) {
    McDoc d;
    d.id = r.value.contains("id") && r.value["id"].is_string() ? r.value["id"].get<std::string>() : std::to_string(out.size());
    std::vector<std::string> labels;
    const nlohmann::json& q = require_field(r, path, "question");
    if (q.is_object()) {  // AI2's published form
      auto stem = q.find("stem");
      if (stem == q.end() || !stem->is_string()) row_error(path, r.line, "missing field \"question.stem\"");
      d.question = stem->get<std::string>();
      auto ch = q.find("choices");
      if (ch == q.end() || !ch->is_array()) row_error(path, r.line, "missing field \"question.choices\" (a list)");
      for (const auto& c : *ch) {
        if (!c.is_object() || !c.contains("text") || !c["text"].is_string() || !c.contains("label") || !c["label"].is_string())
          row_error(path, r.line, "each of \"question.choices\" needs string fields \"text\" and \"label\"");
        d.choices.push_back(c["text"].get<std::string>());
        labels.push_back(c["label"].get<std::string>());
      }
    } else if (q.is_string()) {  // Hugging Face's export: choices {text: [], label: []}
      d.question = q.get<std::string>();
      const nlohmann::json& ch = require_field(r, path, "choices");
      if (!ch.is_object() || !ch.contains("text") || !ch.contains("label"))
        row_error(path, r.line, "field \"choices\" must be an object with lists \"text\" and \"label\"");
      d.choices = string_list(r, path, ch["text"], "choices.text");
      labels = string_list(r, path, ch["label"], "choices.label");
      if (labels.size() != d.choices.size()) row_error(path, r.line, "\"choices.text\" and \"choices.label\" differ in length");
    } else {
      row_error(path, r.line, "field \"question\" must be a string or an object with \"stem\" and \"choices\"");
    }
    if (d.choices.size() < 2) row_error(path, r.line, "a question needs at least 2 choices");
    const std::string key = require_string(r, path, "answerKey");
    auto it = std::find(labels.begin(), labels.end(), key);
    if (it == labels.end()) row_error(path, r.line, "answerKey \"" + key + "\" is not one of the choice labels");
    d.gold = static_cast<int>(it - labels.begin());
    d.file = path;
    d.line = r.line;
    out.push_back(std::move(d));
  }
  if (out.empty()) throw FormatError(path + ": no questions");
  return out;
}

std::vector<Gsm8kDoc> read_gsm8k(const std::string& path) {
  std::vector<Gsm8kDoc> out;
  for (const JsonlRow& r : read_jsonl(path)) {
    Gsm8kDoc d;
    d.question = require_string(r, path, "question");
    d.answer = require_string(r, path, "answer");
    d.file = path;
    d.line = r.line;
    out.push_back(std::move(d));
  }
  if (out.empty()) throw FormatError(path + ": no problems");
  return out;
}

std::vector<HumanEvalTask> read_humaneval(const std::string& path) {
  std::vector<HumanEvalTask> out;
  for (const JsonlRow& r : read_jsonl(path)) {
    HumanEvalTask t;
    t.task_id = require_string(r, path, "task_id");
    t.prompt = require_string(r, path, "prompt");
    t.canonical_solution = r.value.contains("canonical_solution") && r.value["canonical_solution"].is_string()
                               ? r.value["canonical_solution"].get<std::string>()
                               : "";
    t.test = require_string(r, path, "test");
    t.entry_point = require_string(r, path, "entry_point");
    t.file = path;
    t.line = r.line;
    out.push_back(std::move(t));
  }
  if (out.empty()) throw FormatError(path + ": no tasks");
  return out;
}

}  // namespace teddy
