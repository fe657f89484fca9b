#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "teddy/core/dtype.h"
#include "teddy/core/error.h"
#include "teddy/io/safetensors.h"

using namespace teddy;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test so parallel ctest runs do not collide.
class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("teddy_st_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  static std::string read_all(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  // File = u64 LE header size + header + data, written verbatim.
  std::string raw(const std::string& header, const std::string& data = "",
                  uint64_t declared = UINT64_MAX) {
    const std::string p = path("raw.safetensors");
    std::ofstream f(p, std::ios::binary);
    uint64_t n = declared == UINT64_MAX ? header.size() : declared;
    for (int i = 0; i < 8; ++i) f.put(static_cast<char>((n >> (8 * i)) & 0xff));
    f << header << data;
    return p;
  }
  // Expects open() to throw FormatError whose message contains every fragment.
  static void expect_rejected(const std::string& p, std::vector<std::string> fragments) {
    try {
      SafetensorsFile::open(p);
      ADD_FAILURE() << "accepted a malformed file; expected: " << fragments[0];
    } catch (const FormatError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(p), std::string::npos) << "message does not name the file: " << msg;
      for (const auto& fr : fragments)
        EXPECT_NE(msg.find(fr), std::string::npos) << "missing \"" << fr << "\" in: " << msg;
    }
  }

  fs::path dir_;
};

std::string le_f32(std::initializer_list<float> v) {
  std::string s;
  for (float f : v) {
    char b[4];
    std::memcpy(b, &f, 4);
    s.append(b, 4);
  }
  return s;
}
std::string u64_le(uint64_t n) {
  std::string s;
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return s;
}

}  // namespace

// Byte-exact vectors: the reference implementation's own serialization tests
// (huggingface/safetensors, safetensors/src/tensor.rs: test_serialization,
// test_serialization_forced_alignement, test_empty).
TEST_F(Safetensors, ByteExactSingleTensorNoPadding) {
  const std::vector<float> data{0, 1, 2, 3, 4, 5};
  SafetensorsWriter w;
  w.add_f32("attn.0", {1, 2, 3}, data.data());
  const std::string header = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
  ASSERT_EQ(header.size(), 64u);  // already a multiple of 8: no padding
  EXPECT_EQ(w.header(), header);
  w.write(path("a.safetensors"));
  EXPECT_EQ(read_all(path("a.safetensors")), u64_le(64) + header + le_f32({0, 1, 2, 3, 4, 5}));
}

TEST_F(Safetensors, ByteExactPaddedWithSpaces) {
  const std::vector<float> data{0, 1, 2, 3, 4, 5};
  SafetensorsWriter w;
  w.add_f32("attn0", {1, 1, 2, 3}, data.data());
  const std::string json = R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})";
  ASSERT_EQ(json.size(), 65u);
  w.write(path("a.safetensors"));
  EXPECT_EQ(read_all(path("a.safetensors")),
            u64_le(72) + json + std::string(7, ' ') + le_f32({0, 1, 2, 3, 4, 5}));
  auto f = SafetensorsFile::open(path("a.safetensors"));
  EXPECT_EQ(f.header_bytes(), 72u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f.get("attn0").bytes.data()) % 8, 0u);
}

TEST_F(Safetensors, ByteExactEmptyAndMetadataOnly) {
  SafetensorsWriter w;
  w.write(path("e.safetensors"));
  EXPECT_EQ(read_all(path("e.safetensors")), u64_le(8) + "{}" + std::string(6, ' '));
  EXPECT_EQ(SafetensorsFile::open(path("e.safetensors")).size(), 0u);

  SafetensorsWriter m;
  m.set_metadata("framework", "pt");
  m.write(path("m.safetensors"));
  EXPECT_EQ(read_all(path("m.safetensors")),
            u64_le(40) + R"({"__metadata__":{"framework":"pt"}})" + std::string(5, ' '));
  EXPECT_EQ(SafetensorsFile::open(path("m.safetensors")).metadata("framework"), "pt");
}

TEST_F(Safetensors, WriterOrdersByDtypeAlignmentThenName) {
  const std::vector<float> f{1, 2};
  const std::vector<double> d{3};
  const std::vector<uint8_t> u{4, 5, 6};
  SafetensorsWriter w;
  w.add_f32("b", {2}, f.data());
  w.add("a", "U8", {3}, u.data(), 3);
  w.add("c", "F64", {1}, d.data(), 8);
  w.add_f32("a2", {2}, f.data());
  const std::string json =
      R"({"c":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},)"
      R"("a2":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]},)"
      R"("a":{"dtype":"U8","shape":[3],"data_offsets":[24,27]}})";
  EXPECT_EQ(w.header(), json + std::string((8 - json.size() % 8) % 8, ' '));
  w.write(path("o.safetensors"));
  auto r = SafetensorsFile::open(path("o.safetensors"));
  EXPECT_EQ(r.names(), (std::vector<std::string>{"c", "a2", "b", "a"}));
}

TEST_F(Safetensors, RoundTripAllDtypesAndMetadata) {
  const std::vector<float> f32{1.5f, -2.25f, 3.0f, 0.0f, 7.0f, -1.0f};
  const std::vector<double> f64{1.0 / 3.0, -2.0};
  std::vector<uint16_t> bf16, f16;
  for (float x : {0.5f, -1.75f, 3.0f}) bf16.push_back(f32_to_bf16(x)), f16.push_back(f32_to_f16(x));
  const std::vector<int32_t> i32{-5, 7, 2147483647};
  const std::vector<int64_t> i64{-(int64_t{1} << 40), 3};
  const std::vector<uint8_t> u8{0, 255};
  const std::vector<uint16_t> u16{65535};
  const std::vector<uint32_t> u32{4000000000u, 1};
  const std::vector<float> scalar{42.0f};

  SafetensorsWriter w;
  w.add_f32("w.f32", {2, 3}, f32.data());
  w.add("w.f64", "F64", {2}, f64.data(), 16);
  w.add("w.bf16", "BF16", {3}, bf16.data(), 6);
  w.add("w.f16", "F16", {3, 1}, f16.data(), 6);
  w.add_i32("tok.i32", {3}, i32.data());
  w.add("tok.i64", "I64", {2}, i64.data(), 16);
  w.add("u8", "U8", {2}, u8.data(), 2);
  w.add("u16", "U16", {1}, u16.data(), 2);
  w.add("u32", "U32", {2}, u32.data(), 8);
  w.add_f32("scalar", {}, scalar.data());
  w.add("empty", "F32", {0, 4}, nullptr, 0);
  w.set_metadata("format", "pt");
  w.set_metadata("config", R"({"n_layer": 2, "name": "quote \" and\nnewline"})");
  w.write(path("rt.safetensors"));

  auto r = SafetensorsFile::open(path("rt.safetensors"));
  EXPECT_EQ(r.size(), 11u);
  EXPECT_EQ(r.metadata().size(), 2u);
  EXPECT_EQ(r.metadata("config"), R"({"n_layer": 2, "name": "quote \" and\nnewline"})");
  EXPECT_THROW(r.metadata("nope"), Error);
  auto same = [&](const char* name, const void* want, size_t n) {
    const SafeTensor& t = r.get(name);
    ASSERT_EQ(t.bytes.size(), n) << name;
    EXPECT_EQ(std::memcmp(t.bytes.data(), want, n), 0) << name;
  };
  same("w.f32", f32.data(), 24);
  same("w.f64", f64.data(), 16);
  same("w.bf16", bf16.data(), 6);
  same("w.f16", f16.data(), 6);
  same("tok.i32", i32.data(), 12);
  same("tok.i64", i64.data(), 16);
  same("u8", u8.data(), 2);
  same("u16", u16.data(), 2);
  same("u32", u32.data(), 8);
  same("scalar", scalar.data(), 4);
  EXPECT_EQ(r.get("w.f32").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(r.get("w.f16").dtype, "F16");
  EXPECT_TRUE(r.get("scalar").shape.empty());
  EXPECT_EQ(r.get("scalar").numel(), 1);
  EXPECT_EQ(r.get("empty").numel(), 0);
  EXPECT_EQ(r.get("empty").shape, (std::vector<int64_t>{0, 4}));
  EXPECT_FALSE(r.contains("missing"));
  EXPECT_THROW(r.get("missing"), Error);

  // Conversions to float.
  EXPECT_EQ(r.to_f32("w.f32"), f32);
  EXPECT_EQ(r.to_f32("w.bf16"), (std::vector<float>{0.5f, -1.75f, 3.0f}));
  EXPECT_EQ(r.to_f32("w.f16"), (std::vector<float>{0.5f, -1.75f, 3.0f}));
  EXPECT_EQ(r.to_f32("w.f64"), (std::vector<float>{static_cast<float>(1.0 / 3.0), -2.0f}));
  EXPECT_THROW(r.to_f32("tok.i32"), Error);
  std::vector<float> wrong(5);
  EXPECT_THROW(r.copy_f32("w.f32", wrong.data(), wrong.size()), Error);

  // Move keeps the mapping alive.
  SafetensorsFile moved = std::move(r);
  EXPECT_EQ(moved.to_f32("w.f32"), f32);
}

TEST_F(Safetensors, WriterIsAtomicAndReplaces) {
  const std::vector<float> a{1, 2}, b{3, 4, 5};
  SafetensorsWriter w1;
  w1.add_f32("x", {2}, a.data());
  w1.write(path("ck.safetensors"));
  SafetensorsWriter w2;
  w2.add_f32("x", {3}, b.data());
  w2.write(path("ck.safetensors"));
  EXPECT_EQ(SafetensorsFile::open(path("ck.safetensors")).to_f32("x"), b);
  // No temporary files left behind.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) ++files, (void)e;
  EXPECT_EQ(files, 1);
  // An unwritable target directory is reported with its path.
  try {
    w2.write(path("no_such_dir/x.safetensors"));
    ADD_FAILURE() << "wrote into a missing directory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_dir"), std::string::npos) << e.what();
  }
}

TEST_F(Safetensors, WriterRejectsBadInput) {
  const std::vector<float> a{1, 2};
  SafetensorsWriter w;
  w.add_f32("x", {2}, a.data());
  EXPECT_THROW(w.add_f32("x", {2}, a.data()), Error);                      // duplicate
  EXPECT_THROW(w.add("y", "F32", {3}, a.data(), 8), Error);                // size mismatch
  EXPECT_THROW(w.add("y", "F17", {2}, a.data(), 8), Error);                // unknown dtype
  EXPECT_THROW(w.add("__metadata__", "F32", {2}, a.data(), 8), Error);     // reserved
  EXPECT_THROW(w.add("y", "F32", {-2}, a.data(), 8), Error);               // negative dim
}

TEST_F(Safetensors, AddCopyOwnsItsBytes) {
  std::vector<float> a{1, 2};
  SafetensorsWriter w;
  w.add_copy("x", "F32", {2}, a.data(), 8);
  for (int i = 0; i < 20; ++i) w.add_copy("pad" + std::to_string(i), "U8", {1}, "z", 1);  // regrow
  a = {9, 9};
  w.write(path("c.safetensors"));
  EXPECT_EQ(SafetensorsFile::open(path("c.safetensors")).to_f32("x"), (std::vector<float>{1, 2}));
}

// ---- malformed files: each rejected with a FormatError naming file and field ----

TEST_F(Safetensors, RejectsTooShortFile) {
  const std::string p = path("short.safetensors");
  std::ofstream(p, std::ios::binary) << "abc";
  expect_rejected(p, {"too short"});
}

TEST_F(Safetensors, RejectsHeaderSizePastEnd) {
  expect_rejected(raw("{}      ", "", 1000), {"header size 1000", "past the end"});
}

TEST_F(Safetensors, RejectsHugeHeaderSize) {
  expect_rejected(raw("{}      ", "", uint64_t{1} << 40), {"100 MB"});
}

TEST_F(Safetensors, RejectsInvalidJson) {
  expect_rejected(raw(R"({"a": {"dtype": "F32",)"), {"not valid JSON"});
}

TEST_F(Safetensors, RejectsNonObjectHeader) {
  expect_rejected(raw("[1, 2]  "), {"JSON object"});
}

TEST_F(Safetensors, RejectsDuplicateNames) {
  expect_rejected(raw(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                      R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                      "xy"),
                  {"\"a\" twice"});
}

TEST_F(Safetensors, RejectsUnknownDtype) {
  expect_rejected(raw(R"({"w":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}})", "abcd"),
                  {"tensor \"w\"", "dtype", "F17"});
}

TEST_F(Safetensors, RejectsMissingFields) {
  expect_rejected(raw(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", "abcd"), {"\"w\"", "dtype"});
  expect_rejected(raw(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", "abcd"), {"\"w\"", "shape"});
  expect_rejected(raw(R"({"w":{"dtype":"F32","shape":[1]}})", "abcd"), {"\"w\"", "data_offsets"});
  expect_rejected(raw(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", "abcd"),
                  {"\"w\"", "data_offsets"});
  expect_rejected(raw(R"({"w":[1,2]})", "abcd"), {"\"w\"", "object"});
}

TEST_F(Safetensors, RejectsUnknownField) {
  expect_rejected(raw(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", "abcd"),
                  {"\"w\"", "unknown field \"x\""});
}

TEST_F(Safetensors, RejectsBadShape) {
  expect_rejected(raw(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "abcd"),
                  {"\"w\"", "shape", "non-negative"});
  expect_rejected(raw(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", "abcd"),
                  {"\"w\"", "shape"});
  expect_rejected(
      raw(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", "abcd"),
      {"\"w\"", "overflows"});
}

TEST_F(Safetensors, RejectsShapeSizeMismatch) {
  expect_rejected(raw(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", "abcd"),
                  {"\"w\"", "needs 8 bytes", "span 4"});
}

TEST_F(Safetensors, RejectsReversedOffsets) {
  expect_rejected(raw(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", "abcd"),
                  {"\"w\"", "before begin"});
}

TEST_F(Safetensors, RejectsOffsetsOutOfRange) {
  expect_rejected(raw(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "abcd"),
                  {"\"w\"", "out of range"});
}

TEST_F(Safetensors, RejectsOverlap) {
  expect_rejected(raw(R"({"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},)"
                      R"("b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})",
                      "abcd"),
                  {"\"b\"", "overlap", "\"a\""});
}

TEST_F(Safetensors, RejectsGap) {
  expect_rejected(raw(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                      R"("b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})",
                      "abcd"),
                  {"\"b\"", "gap"});
  expect_rejected(raw(R"({"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})", "abcd"),
                  {"\"b\"", "gap"});
}

TEST_F(Safetensors, RejectsTrailingBytes) {
  expect_rejected(raw(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", "abcd"),
                  {"cover 2 of the 4"});
}

TEST_F(Safetensors, RejectsBadMetadata) {
  expect_rejected(raw(R"({"__metadata__":{"k":1}})"), {"__metadata__.k", "string"});
  expect_rejected(raw(R"({"__metadata__":"x"})"), {"__metadata__"});
}

TEST_F(Safetensors, AcceptsUnpaddedHeaderFromOtherWriters) {
  // The spec only recommends padding; readers must accept any header size.
  const std::string h = R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})";
  ASSERT_NE(h.size() % 8, 0u);
  auto f = SafetensorsFile::open(raw(h, "xy"));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.get("a").bytes.data()), 2), "xy");
}

TEST_F(Safetensors, MissingFileIsAnError) {
  EXPECT_THROW(SafetensorsFile::open(path("nope.safetensors")), Error);
}
