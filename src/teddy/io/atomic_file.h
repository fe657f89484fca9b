#pragma once
// Atomic file replacement: write to a temporary file in the same directory, fsync,
// then rename over the target. A reader (or a crash) sees either the old file or
// the complete new one, never a torn write; if writing throws, the old file stays.
#include <cstddef>
#include <string>
#include <string_view>

namespace teddy {

class AtomicFile {
 public:
  // Creates "<path>.tmp.XXXXXX" next to `path`. Throws Error naming the path.
  explicit AtomicFile(std::string path);
  ~AtomicFile();  // removes the temporary file unless commit() succeeded
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t bytes);
  void write(std::string_view s) { write(s.data(), s.size()); }
  // fsync, rename over the target, fsync the directory. Throws Error on failure.
  void commit();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_; }

 private:
  std::string path_, temp_;
  int fd_ = -1;
  bool committed_ = false;
};

// Convenience: atomically replace `path` with `content`.
void write_file_atomic(const std::string& path, std::string_view content);

// fsync a directory so a rename inside it is durable (best effort; ignores EINVAL).
void fsync_directory(const std::string& dir);

}  // namespace teddy
