#pragma once
// The sharded format's pieces (checkpoint.h describes the directory): one shard
// file per writer, the manifest that makes the directory a checkpoint, their
// verification and range reads. group.h runs the save and load protocols over a
// group of ranks with these; tests use them directly to write what W ranks write.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "teddy/model/model.h"
#include "teddy/checkpoint/checkpoint.h"

namespace teddy {

inline constexpr const char* kShardManifestFile = "manifest.json";
// 2: manifest.json ends with its own checksum (manifest_checksum_text); 1 (still read): without.
inline constexpr int kShardedCheckpointVersion = 2;

struct ShardEntry {
  std::string file;             // relative to the checkpoint directory
  uint64_t begin = 0, end = 0;  // flat range, in floats
  uint64_t bytes = 0;           // file size
  uint64_t xxh3 = 0;            // XXH3-64 of the whole file
};

struct ShardedManifest {
  int world_size = 1;
  int zero_stage = 0;
  uint64_t flat_size = 0;
  int64_t optimizer_t = 0;
  CheckpointState state;
  ModelConfig model_config;
  std::vector<ParamInfo> layout;  // name, shape, offset, numel (checked against the model on load)
  std::vector<ShardEntry> shards;
};

// True unless `dir` holds the single-file format's state.json: a directory without a
// manifest.json (shard files only, or nothing) is an incomplete sharded checkpoint.
bool is_sharded_checkpoint(const std::string& dir);
std::string shard_file_name(int rank, int world);

// Writes rank's shard file into `dir` (fsynced) from the range's floats (each
// pointer at element `begin`). Returns its entry with size and checksum.
ShardEntry write_checkpoint_shard(const std::string& dir, int rank, int world, uint64_t begin, uint64_t end,
                                  const float* params, const float* m, const float* v);

// Rank 0, after every shard is durable in `temp_dir` (checkpoint_temp_dir from rank
// 0's pid, begin_checkpoint_dir: checkpoint.h): writes manifest.json last (then
// after_file("manifest.json"), when given), then commit_checkpoint_dir. Returns the
// checkpoint directory.
std::string finish_sharded_checkpoint(const std::string& run_dir, const std::string& temp_dir,
                                      const ShardedManifest& manifest, int keep_last,
                                      const std::function<void(const std::string&)>& after_file = {});

// The manifest's own checksum: `json` (a JSON object as dumped, ending in "}") gains a
// last field "manifest_xxh3_64" holding the XXH3-64 of every byte before that field,
// so a flipped digit in "step" or "optimizer_t" is caught before the state is used.
std::string seal_manifest_text(const std::string& json);
// Checks a sealed manifest's checksum: FormatError naming `path` on a mismatch or a
// malformed tail. Returns false when the text has no checksum field (version 1).
bool check_manifest_seal(const std::string& text, const std::string& path);

// Parses and validates manifest.json (fields, shards covering [0, flat_size)
// exactly, layout inside the buffer). FormatError naming the file otherwise.
ShardedManifest read_shard_manifest(const std::string& dir);
// Checks size and checksum of the shard files i with i % parts == part (so `parts`
// readers share the work); FormatError naming the file.
void verify_shards(const std::string& dir, const ShardedManifest& manifest, int part, int parts);
// Copies floats [begin, end) of the flat parameter buffer and of m and v (null
// pointers: skipped; each destination at element `begin`) from the shards that
// overlap the range, touching only those bytes of the files.
void read_shard_range(const std::string& dir, const ShardedManifest& manifest, uint64_t begin, uint64_t end,
                      float* params, float* m, float* v);
// Throws ConfigError / FormatError when `model` cannot take the manifest's state
// (different model config, different flat layout).
void check_shard_manifest_fits(const std::string& dir, const ShardedManifest& manifest, const Model& model);

CheckpointInfo checkpoint_info(const std::string& dir, const ShardedManifest& manifest);

}  // namespace teddy
