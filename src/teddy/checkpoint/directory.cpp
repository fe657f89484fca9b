// A checkpoint directory's life cycle (checkpoint.h): names, the temporary
// directory a save assembles, the atomic commit, pruning, the list of a run's
// checkpoints and the removal of dead writers' temporaries.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "teddy/checkpoint/checkpoint.h"
#include "teddy/core/error.h"

namespace fs = std::filesystem;

namespace teddy {

namespace {

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) throw Error(path + ": cannot open to fsync: " + std::strerror(errno));
  if (::fsync(fd) != 0 && errno != EINVAL) {
    const int e = errno;
    ::close(fd);
    throw Error(path + ": fsync failed: " + std::strerror(e));
  }
  ::close(fd);
}

std::string this_host() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  std::string h(buf);
  // The name goes into a directory name: keep it to characters that are safe there.
  for (char& c : h)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') c = '_';
  return h.empty() ? "localhost" : h;
}

// A temporary directory's writer: "step_N.tmp-<pid>@<host>" (or, before hosts were
// recorded, "step_N.tmp-<pid>", taken as this host's). nullopt: not a temp directory.
struct TempWriter {
  int64_t pid = 0;
  std::string host;
};
std::optional<TempWriter> temp_writer(const std::string& name) {
  const size_t at = name.find(".tmp-");
  if (name.rfind("step_", 0) != 0 || at == std::string::npos) return std::nullopt;
  const std::string rest = name.substr(at + 5);
  const size_t sep = rest.find('@');
  const std::string digits = rest.substr(0, sep);
  if (digits.empty() || digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return std::nullopt;
  return TempWriter{std::stoll(digits), sep == std::string::npos ? this_host() : rest.substr(sep + 1)};
}

bool process_alive(int64_t pid) {
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;  // EPERM: alive, someone else's
}

// Removes a committed checkpoint so that a kill at any moment leaves either the whole
// checkpoint or none of it: the directory is first renamed to a temporary name (one
// rename, atomic), which list_checkpoints never returns and the stale-temporary sweep
// removes if this process dies before remove_all ends. remove_all alone, killed midway,
// left a manifest whose shard was gone (a damaged checkpoint that resume must skip).
void remove_checkpoint_whole(const fs::path& dir) {
  std::error_code ec;
  const fs::path doomed = dir.parent_path() / (dir.filename().string() + ".old.tmp-" + std::to_string(::getpid()) +
                                               "@" + this_host());
  fs::remove_all(doomed, ec);
  fs::rename(dir, doomed, ec);
  if (ec) {
    fs::remove_all(dir, ec);
    return;
  }
  fsync_path(dir.parent_path().string(), true);
  fs::remove_all(doomed, ec);
}

}  // namespace

std::string step_dir_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%08lld", static_cast<long long>(step));
  return buf;
}

std::string checkpoint_dir(const std::string& run_dir, int64_t step) {
  return (fs::path(run_dir) / "checkpoints" / step_dir_name(step)).string();
}

std::string checkpoint_temp_dir(const std::string& run_dir, int64_t step) {
  return (fs::path(run_dir) / "checkpoints" /
          (step_dir_name(step) + ".tmp-" + std::to_string(::getpid()) + "@" + this_host()))
      .string();
}

Resume resume_from_flag(const std::string& name) {
  if (name.empty()) return Resume::no;
  if (name == "auto") return Resume::if_any;
  if (name == "require") return Resume::require;
  throw ConfigError("--resume: expected auto (the default: start from scratch when run.dir has no checkpoint yet) or require (got \"" + name + "\")");
}

StaleTemps remove_stale_checkpoint_temps(const std::string& run_dir) {
  StaleTemps out;
  const fs::path root = fs::path(run_dir) / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  const std::string host = this_host();
  std::vector<fs::path> found;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.is_directory(ec)) found.push_back(e.path());
  std::sort(found.begin(), found.end());
  for (const fs::path& d : found) {
    const auto w = temp_writer(d.filename().string());
    if (!w) continue;
    if (w->host != host) {  // its writer's pid means nothing here: it may still be saving
      out.other_hosts.push_back(d.string());
      continue;
    }
    if (process_alive(w->pid)) continue;  // a live writer (another run on this directory)
    std::error_code rec;
    fs::remove_all(d, rec);
    if (rec)
      out.failed.push_back(d.string() + ": " + rec.message());
    else
      out.removed.push_back(d.string());
  }
  return out;
}

std::string StaleTemps::summary() const {
  std::string s;
  auto names = [](const std::vector<std::string>& v) {
    std::string r;
    for (const std::string& x : v) r += (r.empty() ? "" : ", ") + fs::path(x.substr(0, x.find(": "))).filename().string();
    return r;
  };
  if (!removed.empty())
    s += "# removed " + std::to_string(removed.size()) +
         " temporary checkpoint director" + (removed.size() == 1 ? "y" : "ies") + " of writers that are gone: " +
         names(removed) + "\n";
  for (const std::string& f : failed) s += "# could not remove a stale temporary checkpoint directory: " + f + "\n";
  if (!other_hosts.empty())
    s += "# left " + std::to_string(other_hosts.size()) + " temporary checkpoint director" +
         (other_hosts.size() == 1 ? "y" : "ies") + " written from other hosts (their writers cannot be checked from here): " +
         names(other_hosts) + "\n";
  return s;
}

void begin_checkpoint_dir(const std::string& temp_dir) {
  std::error_code ec;
  fs::remove_all(temp_dir, ec);  // a leftover of a crashed save under the same pid
  fs::create_directories(temp_dir, ec);
  if (ec) throw Error(temp_dir + ": cannot create: " + ec.message());
}

std::string commit_checkpoint_dir(const std::string& run_dir, const std::string& temp_dir, int64_t step,
                                  int keep_last) {
  fsync_path(temp_dir, true);
  const fs::path root = fs::path(run_dir) / "checkpoints";
  const fs::path final_dir = checkpoint_dir(run_dir, step);
  // Replace an older checkpoint of the same step (a rerun) only after the new one is complete.
  std::error_code ec;
  if (fs::exists(final_dir)) remove_checkpoint_whole(final_dir);
  fs::rename(temp_dir, final_dir, ec);
  if (ec) throw Error(final_dir.string() + ": cannot rename checkpoint into place: " + ec.message());
  fsync_path(root.string(), true);
  if (keep_last > 0) {
    const std::vector<std::string> all = list_checkpoints(run_dir);
    for (size_t i = static_cast<size_t>(keep_last); i < all.size(); ++i) remove_checkpoint_whole(all[i]);
  }
  return final_dir.string();
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  const fs::path root = fs::path(run_dir) / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return {};
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string n = e.path().filename().string();
    if (!e.is_directory() || n.rfind("step_", 0) != 0 || n.find(".tmp") != std::string::npos) continue;
    const std::string digits = n.substr(5);
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
    found.emplace_back(std::stoll(digits), e.path().string());
  }
  std::sort(found.begin(), found.end(), [](auto& a, auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

}  // namespace teddy
