#pragma once
// TensorBoard event files: what `tensorboard --logdir` reads. A file is a sequence of
// TFRecords (uint64 length, masked CRC-32C of the length, payload, masked CRC-32C of
// the payload; little-endian), each payload one `Event` protobuf message:
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3;
//             Summary summary = 5; SessionLog session_log = 6; }
//   Summary { repeated Value value = 1; }  Value { string tag = 1; float simple_value = 2; }
//   SessionLog { SessionStatus status = 1; }  (START = 1)
// (tensorflow/core/util/event.proto, tensorflow/core/framework/summary.proto). These few
// fields are encoded by hand (protobuf's wire format: varints, fixed64/fixed32 and
// length-delimited fields) rather than linking libprotobuf and generated code for five
// fields; tests/reference/tfevents_reader.py decodes the files with Google's protobuf
// library and crcmod, from descriptors written in the test, not from this code.
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace teddy {

// One Event message's bytes (exposed for tests).
std::string encode_scalars_event(double wall_time, int64_t step, const std::vector<std::pair<std::string, float>>& scalars);
std::string encode_file_version_event(double wall_time);
std::string encode_session_start_event(double wall_time, int64_t step);
// One TFRecord: the framing around a payload.
std::string tfrecord_frame(const std::string& payload);

// Writes one event file in a directory: `events.out.tfevents.<unix time>.<host>`, a new
// file per writer (a resumed run appends a file and never rewrites one already there).
// Each add_* writes a whole record with one fwrite and flushes, so a crash leaves every
// completed record readable. Throws Error if the file cannot be created or written.
class EventFileWriter {
 public:
  // host: the file name's host part; empty: this machine's name.
  explicit EventFileWriter(const std::string& dir, std::string host = {});
  ~EventFileWriter();
  EventFileWriter(const EventFileWriter&) = delete;
  EventFileWriter& operator=(const EventFileWriter&) = delete;

  // A (re)started run's first record: TensorBoard drops the events of earlier files
  // whose step is >= `step` (the steps a resume recomputes), so curves show each once.
  void session_start(int64_t step);
  void add_scalars(int64_t step, const std::vector<std::pair<std::string, float>>& scalars);
  const std::string& path() const { return path_; }

 private:
  void write(const std::string& payload);
  std::string path_;
  std::FILE* f_ = nullptr;
};

}  // namespace teddy
