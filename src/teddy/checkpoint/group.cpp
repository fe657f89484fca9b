#include "teddy/checkpoint/group.h"

#include <exception>
#include <filesystem>

#include "teddy/checkpoint/shards.h"
#include "teddy/core/error.h"

namespace teddy {

CheckpointGroup CheckpointGroup::single() {
  CheckpointGroup g;
  g.gather = [](const std::vector<int64_t>& mine) { return mine; };
  g.broadcast = [](const std::string& value, int) { return value; };
  return g;
}

void CheckpointGroup::all_or_none(const std::string& prefix, const std::function<void()>& f) const {
  // kind: 0 none, 1 Error (or anything else), 2 ConfigError, 3 FormatError.
  int64_t kind = 0;
  std::string error;
  try {
    f();
  } catch (const ConfigError& e) {
    kind = 2, error = e.what();
  } catch (const FormatError& e) {
    kind = 3, error = e.what();
  } catch (const std::exception& e) {
    kind = 1, error = e.what();
  }
  const std::vector<int64_t> failed = gather({kind});
  int first = -1;
  for (int r = 0; r < size && first < 0; ++r)
    if (failed[static_cast<size_t>(r)]) first = r;
  if (first < 0) return;
  // The failed rank's message goes to everyone, so whichever rank reports names the file.
  const std::string msg = prefix + (size > 1 ? "rank " + std::to_string(first) + ": " : std::string()) +
                          broadcast(rank == first ? error : std::string(), first);
  switch (failed[static_cast<size_t>(first)]) {
    case 2: throw ConfigError(msg);
    case 3: throw FormatError(msg);
    default: throw Error(msg);
  }
}

namespace {
std::string write_sharded_checkpoint(const CheckpointGroup& g, const std::string& run_dir, const std::string& tmp,
                                     const Model& model, const ShardPiece& mine, const CheckpointMeta& meta, int keep_last,
                                     const std::function<void(const std::string&)>& after_file);
}  // namespace

std::string save_sharded_checkpoint(const CheckpointGroup& g, const std::string& run_dir, const Model& model,
                                    const ShardPiece& mine, const CheckpointMeta& meta, int keep_last,
                                    const std::function<void(const std::string&)>& after_file) {
  // Rank 0's pid and host name the temporary directory; every rank writes into it.
  const std::string tmp = g.broadcast(g.rank == 0 ? checkpoint_temp_dir(run_dir, meta.state.step) : std::string(), 0);
  g.all_or_none("checkpoint: ", [&] {
    if (g.rank == 0) begin_checkpoint_dir(tmp);
  });
  try {
    return write_sharded_checkpoint(g, run_dir, tmp, model, mine, meta, keep_last, after_file);
  } catch (const Error& e) {
    // Every rank throws here together (all_or_none), so no rank still writes into tmp:
    // rank 0 removes it, and a failed save (a full disk) leaves no litter holding the
    // space whose lack made it fail.
    if (g.rank != 0) throw;
    std::error_code ec;
    std::string what = e.what();
    if (std::filesystem::exists(tmp, ec)) {  // gone when the failure came after the rename into place
      std::filesystem::remove_all(tmp, ec);
      what += ec ? "; its temporary directory " + tmp + " could not be removed: " + ec.message()
                 : "; its temporary directory was removed";
    }
    if (dynamic_cast<const ConfigError*>(&e)) throw ConfigError(what);
    if (dynamic_cast<const FormatError*>(&e)) throw FormatError(what);
    throw Error(what);
  }
}

namespace {

// The shards into tmp, then the manifest and the commit (rank 0).
std::string write_sharded_checkpoint(const CheckpointGroup& g, const std::string& run_dir, const std::string& tmp,
                                     const Model& model, const ShardPiece& mine, const CheckpointMeta& meta, int keep_last,
                                     const std::function<void(const std::string&)>& after_file) {
  ShardEntry entry;
  g.all_or_none("checkpoint: ", [&] {
    entry = write_checkpoint_shard(tmp, g.rank, g.size, mine.begin, mine.end, mine.params, mine.m, mine.v);
    if (after_file) after_file(entry.file);
  });
  // Ranges, sizes and checksums to rank 0: the barrier before the manifest.
  const std::vector<int64_t> all =
      g.gather({static_cast<int64_t>(entry.begin), static_cast<int64_t>(entry.end), static_cast<int64_t>(entry.bytes),
                static_cast<int64_t>(entry.xxh3)});
  std::string dir = checkpoint_dir(run_dir, meta.state.step);
  g.all_or_none("checkpoint: ", [&] {
    if (g.rank != 0) return;
    ShardedManifest man;
    man.world_size = g.size;
    man.zero_stage = meta.zero_stage;
    man.flat_size = model.flat_size();
    man.optimizer_t = meta.optimizer_t;
    man.state = meta.state;
    man.model_config = model.config();
    man.layout = model.layout().params;
    for (int r = 0; r < g.size; ++r) {
      const int64_t* x = all.data() + 4 * r;
      man.shards.push_back({shard_file_name(r, g.size), static_cast<uint64_t>(x[0]), static_cast<uint64_t>(x[1]),
                            static_cast<uint64_t>(x[2]), static_cast<uint64_t>(x[3])});
    }
    dir = finish_sharded_checkpoint(run_dir, tmp, man, keep_last, after_file);
  });
  return dir;
}

}  // namespace

std::optional<VerifiedCheckpoint> find_latest_checkpoint(const CheckpointGroup& g, const std::string& run_dir,
                                                         std::vector<std::string>* skipped) {
  for (const std::string& d : list_checkpoints(run_dir)) {
    std::optional<VerifiedCheckpoint> mine;
    try {
      g.all_or_none("", [&] { mine = verify_checkpoint_part(d, g.rank, g.size); });
      return mine;
    } catch (const Error& e) {
      if (skipped) skipped->push_back(d + ": " + e.what());
    }
  }
  return std::nullopt;
}

void read_checkpoint_ranges(const CheckpointGroup& g, const VerifiedCheckpoint& c, const Model& model, uint64_t begin,
                            uint64_t end, float* params, float* m, float* v) {
  g.all_or_none("", [&] {
    check_checkpoint_fits(c, model);
    read_checkpoint_range(c, begin, end, params, m, v);
  });
}

}  // namespace teddy
