#pragma once
// Checks a run directory's TensorBoard event files against its metrics.jsonl, reading
// the event files with tests/reference/tfevents_reader.py (crcmod + Google's protobuf,
// not teddy's code). Files are read in name order (their names carry the start time)
// and a SessionLog START at step s drops the earlier files' events with step >= s, as
// TensorBoard does; what remains must be one event per metrics.jsonl line, with every
// value equal to the line's as float32.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace teddy::test {

inline void expect_tensorboard_matches_metrics(const std::string& run_dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(fs::path(run_dir) / "tensorboard"))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  ASSERT_FALSE(files.empty()) << run_dir << ": no event file";
  std::map<int64_t, std::map<std::string, nlohmann::json>> by_step;  // step -> tag -> value or "nan"/"inf"
  for (const std::string& f : files) {
    const std::string out = f + ".json";
    const std::string cmd = "/usr/bin/python3 '" TEDDY_SOURCE_DIR "/tests/reference/tfevents_reader.py' '" + f + "' > '" + out + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "the reference reader failed on " << f;
    const nlohmann::json j = nlohmann::json::parse(std::ifstream(out));
    fs::remove(out);
    EXPECT_EQ(j["tail_bytes"].get<int>(), 0) << f;
    EXPECT_EQ(j["records"][0]["file_version"], "brain.Event:2") << f;
    for (const auto& r : j["records"]) {
      const int64_t step = r["step"].get<int64_t>();
      if (r.contains("session_status") && r["session_status"].get<int>() == 1)
        by_step.erase(by_step.lower_bound(step), by_step.end());
      for (const auto& [tag, v] : r["scalars"].items()) by_step[step][tag] = v;
    }
  }
  std::ifstream m(fs::path(run_dir) / "metrics.jsonl");
  size_t lines = 0;
  std::map<int64_t, bool> seen;
  // metrics.jsonl writes a non-finite number (an fp16 step's overflowed norm) as null.
  auto expect_tag = [&](int64_t step, const std::string& tag, const nlohmann::json& want) {
    const auto s = by_step.find(step);
    ASSERT_TRUE(s != by_step.end() && s->second.count(tag)) << "step " << step << ": no " << tag;
    const nlohmann::json& got = s->second.at(tag);
    if (want.is_null())
      EXPECT_TRUE(got.is_string()) << "step " << step << " " << tag << ": " << got << ", metrics.jsonl: null";
    else
      EXPECT_EQ(static_cast<float>(got.get<double>()), static_cast<float>(want.get<double>())) << "step " << step << " " << tag;
  };
  for (std::string line; std::getline(m, line);) {
    const nlohmann::json l = nlohmann::json::parse(line);
    const int64_t step = l["step"].get<int64_t>();
    ++lines;
    seen[step] = true;
    if (l.contains("val_loss")) {
      expect_tag(step, "loss/val", l["val_loss"]);
      continue;
    }
    if (l.contains("eval")) {  // a benchmark task's record: eval/<task>/<metric> for each metric
      const std::string task = l["eval"].get<std::string>();
      size_t metrics = 0;
      for (const auto& [k, v] : l.items())
        if (k != "step" && k != "tokens" && k != "eval" && k != "n" && k != "eval_s") {
          expect_tag(step, "eval/" + task + "/" + k, v);
          ++metrics;
        }
      EXPECT_GT(metrics, 0u) << "step " << step << ": an eval record without metrics";
      continue;
    }
    expect_tag(step, "loss/train", l["loss"]);
    expect_tag(step, "lr", l["lr"]);
    expect_tag(step, "grad_norm", l["grad_norm"]);
    expect_tag(step, "throughput/tokens_per_s", l["tokens_per_s"]);
    expect_tag(step, "throughput/mfu", l["mfu"]);
    expect_tag(step, "tokens/seen", l["tokens"]);
    expect_tag(step, "memory/peak_rss_bytes", l["peak_rss_bytes"]);
    if (l.contains("tokens_per_source"))
      for (const auto& [name, n] : l["tokens_per_source"].items()) expect_tag(step, "tokens/" + name, n);
    if (l.contains("loss_scale")) {
      expect_tag(step, "precision/loss_scale", l["loss_scale"]);
      expect_tag(step, "precision/skipped_steps", l["skipped_steps"]);
    }
  }
  EXPECT_GT(lines, 0u);
  for (const auto& [step, tags] : by_step) EXPECT_TRUE(seen.count(step)) << "event at step " << step << " has no metrics line";
}

}  // namespace teddy::test
