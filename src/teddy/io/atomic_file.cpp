#include "teddy/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "teddy/core/error.h"

namespace teddy {

namespace {

std::string errno_text() { return std::strerror(errno); }

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  // mkstemp picks a unique name, so concurrent writers never collide.
  std::string tmpl = path_ + ".tmp.XXXXXX";
  fd_ = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd_ < 0) throw Error(path_ + ": cannot create temporary file " + tmpl + ": " + errno_text());
  temp_ = tmpl;
  ::fchmod(fd_, 0644);  // mkstemp creates 0600; datasets are meant to be shared
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFile::write(const void* data, size_t bytes) {
  if (fd_ < 0) throw Error(path_ + ": write after commit");
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd_, p, bytes);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(path_ + ": write failed: " + errno_text());
    }
    p += n;
    bytes -= static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  if (fd_ < 0) throw Error(path_ + ": commit called twice");
  if (::fsync(fd_) != 0) throw Error(path_ + ": fsync failed: " + errno_text());
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) throw Error(path_ + ": close failed: " + errno_text());
  if (::rename(temp_.c_str(), path_.c_str()) != 0)
    throw Error(path_ + ": cannot rename " + temp_ + " into place: " + errno_text());
  committed_ = true;
  fsync_directory(std::filesystem::path(path_).parent_path().string());
}

void write_file_atomic(const std::string& path, std::string_view content) {
  AtomicFile f(path);
  f.write(content);
  f.commit();
}

void fsync_directory(const std::string& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace teddy
