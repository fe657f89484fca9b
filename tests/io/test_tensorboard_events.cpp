// TensorBoard event files (io/tensorboard_events, io/crc32c) read back by a reader teddy
// did not write: tests/reference/tfevents_reader.py (crcmod's CRC-32C, Google's protobuf
// library with descriptors built from the published field numbers). /usr/bin/python3
// with python3-crcmod and python3-protobuf is required (scripts/setup.sh installs them);
// the test fails, never skips, without them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "teddy/io/crc32c.h"
#include "teddy/io/tensorboard_events.h"

namespace teddy {
namespace {

namespace fs = std::filesystem;

struct Read {
  int rc = -1;
  nlohmann::json j;
};

Read read_events(const std::string& path) {
  const std::string out = path + ".json";
  const std::string cmd = "/usr/bin/python3 '" TEDDY_SOURCE_DIR "/tests/reference/tfevents_reader.py' '" + path +
                          "' > '" + out + "' 2> '" + out + ".err'";
  Read r;
  r.rc = std::system(cmd.c_str());
  if (r.rc == 0) r.j = nlohmann::json::parse(std::ifstream(out));
  return r;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::path(TEDDY_BINARY_DIR) / "tmp_tensorboard" / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(Crc32c, KnownVectors) {
  // RFC 3720 B.4 and the iSCSI test patterns: 32 zero bytes, 32 0xff bytes.
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  const std::string zeros(32, '\0'), ones(32, '\xff');
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  // Incremental use equals one pass.
  EXPECT_EQ(crc32c("6789", 4, crc32c("12345", 5)), 0xE3069283u);
}

TEST(TensorBoardEvents, IndependentReaderSeesEveryScalarExactly) {
  const fs::path dir = fresh_dir("scalars");
  std::vector<std::vector<std::pair<std::string, float>>> logged;
  std::string path;
  {
    EventFileWriter w(dir.string(), "testhost");
    path = w.path();
    for (int s = 1; s <= 7; ++s) {
      // Values that a float round trip would expose: subnormal, huge, negative, fractions.
      std::vector<std::pair<std::string, float>> sc{{"loss/train", 10.0f / static_cast<float>(s) + 1e-7f * s},
                                                      {"lr", 3e-4f * static_cast<float>(s) / 7.0f},
                                                      {"grad_norm", s == 3 ? 1e-40f : -0.0f + static_cast<float>(s) * 1.5e30f},
                                                      {"throughput/tokens_per_s", -1.25f * static_cast<float>(s)}};
      w.add_scalars(s, sc);
      logged.push_back(sc);
    }
  }
  EXPECT_EQ(fs::path(path).parent_path(), dir);
  EXPECT_EQ(fs::path(path).filename().string().rfind("events.out.tfevents.", 0), 0u) << path;
  const Read r = read_events(path);
  ASSERT_EQ(r.rc, 0) << "the reference reader failed (needs /usr/bin/python3 with python3-crcmod and python3-protobuf)";
  ASSERT_EQ(r.j["complete"].get<int>(), 8);
  EXPECT_EQ(r.j["tail_bytes"].get<int>(), 0);
  EXPECT_EQ(r.j["records"][0]["file_version"], "brain.Event:2");
  for (int s = 1; s <= 7; ++s) {
    const auto& rec = r.j["records"][s];
    EXPECT_EQ(rec["step"].get<int64_t>(), s);
    EXPECT_GT(rec["wall_time"].get<double>(), 1.7e9);  // seconds since 1970, not ms or 0
    ASSERT_EQ(rec["scalars"].size(), logged[s - 1].size());
    for (const auto& [tag, v] : logged[s - 1])  // exact: the float is stored, and Python prints its double
      EXPECT_EQ(static_cast<float>(rec["scalars"][tag].get<double>()), v) << "step " << s << " " << tag;
  }
}

TEST(TensorBoardEvents, CutFileKeepsEveryCompleteRecord) {
  const fs::path dir = fresh_dir("cut");
  std::string path;
  {
    EventFileWriter w(dir.string(), "h");
    path = w.path();
    for (int s = 1; s <= 3; ++s) w.add_scalars(s, {{"loss/train", static_cast<float>(s)}});
  }
  const auto full = fs::file_size(path);
  std::string bytes(full, '\0');
  std::ifstream(path, std::ios::binary).read(bytes.data(), static_cast<std::streamsize>(full));
  const size_t last = tfrecord_frame(encode_scalars_event(0, 3, {{"loss/train", 3.0f}})).size();
  // Cut inside the last record's length, length CRC, payload and payload CRC.
  for (size_t cut : {size_t{3}, size_t{10}, last / 2, last - 1}) {
    const std::string p = (dir / ("cut" + std::to_string(cut))).string();
    std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(full - cut));
    const Read r = read_events(p);
    ASSERT_EQ(r.rc, 0) << "cut " << cut;
    EXPECT_EQ(r.j["complete"].get<int>(), 3) << "cut " << cut;  // file_version + steps 1, 2
    EXPECT_EQ(r.j["records"][2]["scalars"]["loss/train"].get<double>(), 2.0);
  }
}

TEST(TensorBoardEvents, ReaderRejectsAFlippedBit) {
  // The reference checks the CRCs it is meant to check: one flipped payload bit fails it.
  const fs::path dir = fresh_dir("flip");
  std::string path;
  {
    EventFileWriter w(dir.string(), "h");
    path = w.path();
    w.add_scalars(1, {{"lr", 0.5f}});
  }
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(-6, std::ios::end);
  char c;
  f.read(&c, 1);
  c ^= 0x04;
  f.seekp(-6, std::ios::end);
  f.write(&c, 1);
  f.close();
  EXPECT_NE(read_events(path).rc, 0);
}

TEST(TensorBoardEvents, SessionStartAndNewFilePerWriter) {
  const fs::path dir = fresh_dir("restart");
  std::string first, second;
  {
    EventFileWriter w(dir.string(), "h");
    first = w.path();
    w.add_scalars(5, {{"loss/train", 1.0f}});
  }
  {
    EventFileWriter w(dir.string(), "h");  // same second, same host: a distinct file
    second = w.path();
    w.session_start(4);
    w.add_scalars(5, {{"loss/train", 0.5f}});
  }
  ASSERT_NE(first, second);
  const Read a = read_events(first), b = read_events(second);
  ASSERT_EQ(a.rc, 0);
  ASSERT_EQ(b.rc, 0);
  EXPECT_EQ(a.j["complete"].get<int>(), 2);  // untouched by the second writer
  ASSERT_EQ(b.j["complete"].get<int>(), 3);
  EXPECT_EQ(b.j["records"][1]["session_status"].get<int>(), 1);  // START
  EXPECT_EQ(b.j["records"][1]["step"].get<int64_t>(), 4);
}

}  // namespace
}  // namespace teddy
