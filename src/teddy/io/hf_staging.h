#pragma once
// A directory written whole or not at all: files go into a hidden sibling
// ".<name>.tmp-<pid>" (each written durably by its writer), and commit() fsyncs it and
// renames it to the target (then fsyncs the parent). Destroyed without commit, the
// temporary directory is removed, so a failed import or export leaves nothing under
// the target name.
#include <string>

namespace teddy {

class StagedDir {
 public:
  // Throws Error naming `target` when it exists and is not an empty directory (nothing is
  // overwritten), or when the temporary directory cannot be created. Missing parent
  // directories are created (as pretrain creates run.dir).
  explicit StagedDir(std::string target);
  ~StagedDir();
  StagedDir(const StagedDir&) = delete;
  StagedDir& operator=(const StagedDir&) = delete;

  const std::string& dir() const { return temp_; }   // where to write
  std::string path(const std::string& file) const;   // dir()/file
  const std::string& target() const { return target_; }
  void commit();

 private:
  std::string target_, temp_;
  bool committed_ = false;
};

}  // namespace teddy
