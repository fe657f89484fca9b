#include "teddy/io/tensorboard_events.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <unistd.h>

#include "teddy/core/error.h"
#include "teddy/io/crc32c.h"

namespace teddy {

namespace {

// Protobuf wire format (developers.google.com/protocol-buffers/docs/encoding):
// a field is (number << 3 | wire type) then its value; wire types 0 varint,
// 1 fixed64, 2 length-delimited, 5 fixed32; all little-endian.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_tag(std::string& out, int field, int wire) { put_varint(out, static_cast<uint64_t>(field) << 3 | wire); }
template <class T>
void put_le(std::string& out, T v) {
  unsigned char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // x86-64 and every platform teddy builds on are little-endian
  out.append(reinterpret_cast<const char*>(b), sizeof(T));
}
void put_bytes(std::string& out, int field, const std::string& bytes) {
  put_tag(out, field, 2);
  put_varint(out, bytes.size());
  out += bytes;
}
std::string event_head(double wall_time, int64_t step) {
  std::string e;
  put_tag(e, 1, 1);  // wall_time, double
  put_le(e, wall_time);
  if (step != 0) {  // proto3 default: omitted when zero
    put_tag(e, 2, 0);  // step, int64 (two's complement varint)
    put_varint(e, static_cast<uint64_t>(step));
  }
  return e;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string encode_scalars_event(double wall_time, int64_t step, const std::vector<std::pair<std::string, float>>& scalars) {
  std::string summary;
  for (const auto& [tag, value] : scalars) {
    std::string v;
    put_bytes(v, 1, tag);
    put_tag(v, 2, 5);  // simple_value, float
    put_le(v, value);
    put_bytes(summary, 1, v);
  }
  std::string e = event_head(wall_time, step);
  put_bytes(e, 5, summary);
  return e;
}

std::string encode_file_version_event(double wall_time) {
  std::string e = event_head(wall_time, 0);
  put_bytes(e, 3, "brain.Event:2");
  return e;
}

std::string encode_session_start_event(double wall_time, int64_t step) {
  std::string log;
  put_tag(log, 1, 0);  // status = START
  put_varint(log, 1);
  std::string e = event_head(wall_time, step);
  put_bytes(e, 6, log);
  return e;
}

std::string tfrecord_frame(const std::string& payload) {
  std::string r;
  const uint64_t n = payload.size();
  put_le(r, n);
  put_le(r, crc32c_mask(crc32c(r.data(), 8)));
  r += payload;
  put_le(r, crc32c_mask(crc32c(payload.data(), payload.size())));
  return r;
}

EventFileWriter::EventFileWriter(const std::string& dir, std::string host) {
  if (host.empty()) {
    char buf[256] = {};
    host = ::gethostname(buf, sizeof buf - 1) == 0 && buf[0] ? buf : "localhost";
  }
  for (char& c : host)  // a file name part: no separators
    if (c == '/' || c == ' ') c = '_';
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error("tensorboard: cannot create " + dir + ": " + ec.message());
  // Two writers started within one second (a quick restart) must not share a name.
  const auto t = static_cast<long long>(std::time(nullptr));
  for (int k = 0;; ++k) {
    path_ = (std::filesystem::path(dir) / ("events.out.tfevents." + std::to_string(t) + "." + host +
                                           (k ? "." + std::to_string(k) : "")))
                .string();
    if (!std::filesystem::exists(path_)) break;
  }
  f_ = std::fopen(path_.c_str(), "wbx");
  if (!f_) throw Error("tensorboard: cannot create " + path_ + ": " + std::strerror(errno));
  write(encode_file_version_event(now_seconds()));
}

EventFileWriter::~EventFileWriter() {
  if (f_) std::fclose(f_);
}

void EventFileWriter::session_start(int64_t step) { write(encode_session_start_event(now_seconds(), step)); }

void EventFileWriter::add_scalars(int64_t step, const std::vector<std::pair<std::string, float>>& scalars) {
  write(encode_scalars_event(now_seconds(), step, scalars));
}

void EventFileWriter::write(const std::string& payload) {
  const std::string rec = tfrecord_frame(payload);
  if (std::fwrite(rec.data(), 1, rec.size(), f_) != rec.size() || std::fflush(f_) != 0)
    throw Error("tensorboard: cannot write " + path_ + ": " + std::strerror(errno));
}

}  // namespace teddy
