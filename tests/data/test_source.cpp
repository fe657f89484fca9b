#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "data/data_test_util.h"
#include "teddy/core/error.h"
#include "teddy/data/source.h"

using namespace teddy;
using namespace teddy::test;

namespace {

struct Doc {
  std::string text, file;
  uint64_t line;
};

std::vector<Doc> read_all(const SourceSpec& spec, bool skip_bad, SourceReadStats* stats = nullptr) {
  std::vector<Doc> docs;
  SourceReadStats st = read_source(spec, skip_bad, [&](const Document& d) {
    docs.push_back(Doc{std::string(d.text), *d.file, d.line});
  });
  if (stats) *stats = st;
  return docs;
}

SourceSpec spec(const std::string& name, SourceKind kind, std::vector<std::string> paths) {
  SourceSpec s;
  s.name = name;
  s.kind = kind;
  s.paths = std::move(paths);
  return s;
}

}  // namespace

TEST(Source, TextFileIsOneDocument) {
  ScratchDir dir;
  write_text(dir / "a.txt", "hello\nworld\n");
  const auto docs = read_all(spec("prose", SourceKind::text, {dir / "a.txt"}), false);
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0].text, "hello\nworld\n");
  EXPECT_EQ(docs[0].line, 1u);
}

TEST(Source, SeparatorSplitsFortuneStyleFiles) {
  ScratchDir dir;
  write_text(dir / "fortunes", "first\nline two\n%\nsecond\n%\n%\n  \n%\nthird\r\n%\n");
  auto s = spec("fortune", SourceKind::text, {dir / "fortunes"});
  s.separator = "%";
  SourceReadStats st;
  const auto docs = read_all(s, false, &st);
  ASSERT_EQ(docs.size(), 3u);  // the empty and blank entries are dropped
  EXPECT_EQ(docs[0].text, "first\nline two\n");
  EXPECT_EQ(docs[0].line, 1u);
  EXPECT_EQ(docs[1].text, "second\n");
  EXPECT_EQ(docs[1].line, 4u);
  EXPECT_EQ(docs[2].text, "third\r\n");  // text is kept byte for byte; "%\r" still separates
  EXPECT_EQ(docs[2].line, 9u);
  EXPECT_EQ(st.documents, 3u);
  EXPECT_EQ(st.files, 1u);
}

TEST(Source, CodeDirectoryFiltersByExtensionInSortedOrder) {
  ScratchDir dir;
  write_text(dir / "src/b.py", "b = 2\n");
  write_text(dir / "src/a.py", "a = 1\n");
  write_text(dir / "src/sub/c.c", "int c;\n");
  write_text(dir / "src/notes.md", "skip me\n");
  write_text(dir / "src/.hidden/d.py", "skip me too\n");
  write_text(dir / "src/.e.py", "hidden file\n");
  auto s = spec("code", SourceKind::code, {dir / "src"});
  s.extensions = {".py", ".c"};
  const auto files = list_source_files(s);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0], dir / "src/a.py");
  EXPECT_EQ(files[1], dir / "src/b.py");
  EXPECT_EQ(files[2], dir / "src/sub/c.c");
  const auto docs = read_all(s, false);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].text, "a = 1\n");
  EXPECT_EQ(docs[2].text, "int c;\n");
}

TEST(Source, MissingPathNamesThePath) {
  ScratchDir dir;
  EXPECT_THROW_WITH(list_source_files(spec("x", SourceKind::text, {dir / "nope.txt"})), Error, "nope.txt");
  EXPECT_THROW_WITH(read_all(spec("x", SourceKind::text, {dir / "nope.txt"}), false), Error, "no such file");
}

TEST(Source, EmptySourcesAreErrors) {
  ScratchDir dir;
  std::filesystem::create_directories(dir / "empty");
  write_text(dir / "empty/readme.md", "not code\n");
  auto s = spec("code", SourceKind::code, {dir / "empty"});
  s.extensions = {".py"};
  EXPECT_THROW_WITH(list_source_files(s), Error, "empty source");

  write_text(dir / "blank.txt", "  \n\n");
  EXPECT_THROW_WITH(read_all(spec("blank", SourceKind::text, {dir / "blank.txt"}), false), Error, "empty source");

  write_text(dir / "empty.jsonl", "\n{\"text\": \"\"}\n");
  EXPECT_THROW_WITH(read_all(spec("j", SourceKind::jsonl, {dir / "empty.jsonl"}), false), Error, "empty source");
}

TEST(Source, JsonlReadsTheTextField) {
  ScratchDir dir;
  write_text(dir / "d.jsonl",
             "{\"text\": \"one\", \"id\": 1}\n"
             "\n"
             "{\"id\": 2, \"text\": \"two\\nlines \\u00e9\"}\n");
  const auto docs = read_all(spec("web", SourceKind::jsonl, {dir / "d.jsonl"}), false);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].text, "one");
  EXPECT_EQ(docs[1].text, "two\nlines \xc3\xa9");
  EXPECT_EQ(docs[1].line, 3u);

  write_text(dir / "c.jsonl", "{\"content\": \"x\"}\n");
  auto s = spec("web", SourceKind::jsonl, {dir / "c.jsonl"});
  s.text_field = "content";
  EXPECT_EQ(read_all(s, false).at(0).text, "x");
}

TEST(Source, JsonlErrorsNameFileAndLine) {
  ScratchDir dir;
  const std::string f = dir / "bad.jsonl";
  const auto s = spec("web", SourceKind::jsonl, {f});

  write_text(f, "{\"text\": \"ok\"}\n{\"text\": \"ok\"}\n{not json\n");
  EXPECT_THROW_WITH(read_all(s, false), FormatError, f + ":3: not valid JSON");

  write_text(f, "{\"text\": \"ok\"}\n{\"body\": \"no text\"}\n");
  EXPECT_THROW_WITH(read_all(s, false), FormatError, f + ":2: no \"text\" field");

  write_text(f, "{\"text\": 42}\n");
  EXPECT_THROW_WITH(read_all(s, false), FormatError, f + ":1: field \"text\" is a number");

  write_text(f, "[\"text\"]\n");
  EXPECT_THROW_WITH(read_all(s, false), FormatError, f + ":1: expected a JSON object");

  write_text(f, "{\"text\": \"ok\"}\n{\"text\": \"ok\"} trailing\n");
  EXPECT_THROW_WITH(read_all(s, false), FormatError, f + ":2:");
}

TEST(Source, SkipBadCountsAndSkips) {
  ScratchDir dir;
  const std::string f = dir / "mixed.jsonl";
  write_text(f,
             "{\"text\": \"a\"}\n"
             "{oops\n"
             "{\"text\": \"b\"}\n"
             "{\"title\": \"no text\"}\n"
             "{\"text\": null}\n"
             "{\"text\": \"c\"}\n");
  SourceReadStats st;
  const auto docs = read_all(spec("web", SourceKind::jsonl, {f}), true, &st);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[2].text, "c");
  EXPECT_EQ(docs[2].line, 6u);
  EXPECT_EQ(st.skipped, 3u);
  EXPECT_EQ(st.documents, 3u);
  ASSERT_EQ(st.skipped_examples.size(), 3u);
  EXPECT_EQ(st.skipped_examples[0].rfind(f + ":2:", 0), 0u) << st.skipped_examples[0];
  EXPECT_EQ(st.skipped_examples[1].rfind(f + ":4:", 0), 0u) << st.skipped_examples[1];

  // All lines bad: still an empty source, and the message says lines were skipped.
  write_text(f, "{oops\n");
  EXPECT_THROW_WITH(read_all(spec("web", SourceKind::jsonl, {f}), true), Error, "1 bad line(s) skipped");
}

TEST(Source, KindNames) {
  EXPECT_EQ(source_kind_from_name("text"), SourceKind::text);
  EXPECT_EQ(source_kind_from_name("code"), SourceKind::code);
  EXPECT_EQ(source_kind_from_name("jsonl"), SourceKind::jsonl);
  EXPECT_EQ(source_kind_from_name("fortune"), SourceKind::text);
  EXPECT_THROW_WITH(source_kind_from_name("parquet", "source[0].kind"), ConfigError, "source[0].kind");
}

TEST(Source, SpecValidation) {
  auto s = spec("ok-name_1.x", SourceKind::text, {"a"});
  EXPECT_NO_THROW(validate_source_spec(s));
  s.name = "a/b";
  EXPECT_THROW(validate_source_spec(s), ConfigError);
  s.name = "..";
  EXPECT_THROW(validate_source_spec(s), ConfigError);
  s.name = "ok";
  s.weight = 0;
  EXPECT_THROW_WITH(validate_source_spec(s), ConfigError, "weight");
  s.weight = -1;
  EXPECT_THROW(validate_source_spec(s), ConfigError);
  s.weight = 1;
  s.paths.clear();
  EXPECT_THROW_WITH(validate_source_spec(s), ConfigError, "paths");
}
