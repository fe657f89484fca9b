#pragma once
// Saving and loading a checkpoint over a group of writers: the ranks of the step
// engine (dist::ZeroTrainer builds the group over its communicator), one process
// being a group of one. Each rank hands its range of the flat buffer; the protocol
// (who creates the temporary directory, when the manifest may be written, how a
// failure on one rank reaches all) lives here, next to the format it writes.
//
// save: rank 0 names and creates step_N.tmp-<pid>@<host> (the name is broadcast);
// every rank writes its shard (fsynced) and hashes it; sizes and checksums reach
// rank 0 (a gather, which is also the barrier: no manifest before every shard is
// durable); rank 0 writes manifest.json, renames the directory into place and
// prunes. Any rank that fails a step makes every rank throw the same error, naming
// the rank and the file, before anyone waits in a later collective.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "teddy/checkpoint/checkpoint.h"

namespace teddy {

// What the protocols need from the ranks (every member is collective: all ranks call).
struct CheckpointGroup {
  int rank = 0, size = 1;
  // Every rank's `mine` (the same length k on every rank) on every rank, rank r's
  // values at [r*k, (r+1)*k); exact for any int64 bit pattern.
  std::function<std::vector<int64_t>(const std::vector<int64_t>& mine)> gather;
  // `root`'s `value` on every rank (the others' `value` is ignored).
  std::function<std::string(const std::string& value, int root)> broadcast;

  static CheckpointGroup single();  // one process
  // Runs f on this rank; when it throws on any rank, every rank throws the lowest
  // failed rank's error: the same kind (ConfigError, FormatError, Error), its message
  // after `prefix` and, when size > 1, "rank R: ". Collective.
  void all_or_none(const std::string& prefix, const std::function<void()>& f) const;
};

// A writer's range of the flat buffer; each pointer points at element `begin`.
struct ShardPiece {
  uint64_t begin = 0, end = 0;
  const float* params = nullptr;
  const float* m = nullptr;
  const float* v = nullptr;
};

// What the manifest records besides the shards (rank 0's values are written).
struct CheckpointMeta {
  CheckpointState state;
  int64_t optimizer_t = 0;
  int zero_stage = 0;  // of the writer (informational)
};

// Every rank calls it with its piece; the pieces tile [0, model.flat_size()) in rank
// order (empty ones allowed). `after_file` is called on each rank with its shard's
// file name once it is durable, and on rank 0 with "manifest.json". Returns the
// checkpoint directory (on every rank).
std::string save_sharded_checkpoint(const CheckpointGroup& group, const std::string& run_dir, const Model& model,
                                    const ShardPiece& mine, const CheckpointMeta& meta, int keep_last,
                                    const std::function<void(const std::string&)>& after_file = {});

// latest_verified_checkpoint with the hashing split among the ranks (rank r hashes
// the files i with i % size == r); a checkpoint is intact when no rank objects, and
// every rank gets the same answer. Broken ones go to `skipped` ("dir: why").
std::optional<VerifiedCheckpoint> find_latest_checkpoint(const CheckpointGroup& group, const std::string& run_dir,
                                                         std::vector<std::string>* skipped);

// Every rank reads [begin, end) of the checkpoint's parameters, m and v (null:
// skipped; pointers at element `begin`) after check_checkpoint_fits against `model`;
// a failure on any rank throws the same error on every rank.
void read_checkpoint_ranges(const CheckpointGroup& group, const VerifiedCheckpoint& checkpoint, const Model& model,
                            uint64_t begin, uint64_t end, float* params, float* m, float* v);

}  // namespace teddy
