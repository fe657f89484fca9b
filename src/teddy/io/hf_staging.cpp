#include "teddy/io/hf_staging.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "teddy/core/error.h"
#include "teddy/io/atomic_file.h"

namespace fs = std::filesystem;

namespace teddy {

StagedDir::StagedDir(std::string target) : target_(std::move(target)) {
  while (target_.size() > 1 && target_.back() == '/') target_.pop_back();
  if (target_.empty()) throw Error("output directory: empty path");
  std::error_code ec;
  if (fs::exists(target_, ec)) {
    if (!fs::is_directory(target_, ec) || !fs::is_empty(target_, ec))
      throw Error(target_ + ": already exists (give a new or empty directory; nothing was written)");
  }
  fs::path t(target_);
  fs::path parent = t.parent_path();
  if (parent.empty()) parent = ".";
  if (!fs::is_directory(parent, ec) && !fs::create_directories(parent, ec))
    throw Error(target_ + ": cannot create parent directory " + parent.string() + ": " + ec.message());
  temp_ = (parent / ("." + t.filename().string() + ".tmp-" + std::to_string(::getpid()))).string();
  fs::remove_all(temp_, ec);
  if (!fs::create_directory(temp_, ec)) throw Error(temp_ + ": cannot create: " + ec.message());
}

StagedDir::~StagedDir() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(temp_, ec);
}

std::string StagedDir::path(const std::string& file) const { return (fs::path(temp_) / file).string(); }

void StagedDir::commit() {
  fsync_directory(temp_);
  std::error_code ec;
  if (fs::exists(target_, ec)) fs::remove(target_, ec);  // an empty directory (checked at the start)
  if (::rename(temp_.c_str(), target_.c_str()) != 0)
    throw Error(target_ + ": cannot rename " + temp_ + " into place: " + std::strerror(errno));
  committed_ = true;
  fs::path parent = fs::path(target_).parent_path();
  fsync_directory(parent.empty() ? "." : parent.string());
}

}  // namespace teddy
