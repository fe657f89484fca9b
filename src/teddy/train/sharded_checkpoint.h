#pragma once
// Sharded checkpoints, written by data-parallel runs (dist::DataParallelEngine):
// <run>/checkpoints/step_<NNNNNNNN>/ holding
//   shard_<RRRRR>_of_<WWWWW>.safetensors   one per rank: its contiguous range
//                          [begin, end) of the flat buffer as three F32 tensors
//                          "params", "adamw.m", "adamw.v" (the ZeRO shard; at
//                          stage 0 the same equal split)
//   manifest.json          written last, by rank 0, once every shard is durable:
//                          world size, ZeRO stage, flat size, the parameter layout,
//                          each shard's file, range, bytes and XXH3-64, step,
//                          optimizer t, data-loader state, model and run config
// The directory is assembled under a temporary name and renamed into place as the
// single-process checkpoint is (checkpoint.h), so a step directory without a valid
// manifest is never intact. Any number of readers can load any range of the flat
// buffer from the shards that overlap it (resharding: N writers, M readers), and
// load_checkpoint / inspect_checkpoint (checkpoint.h) accept both formats, so a
// single process (resume, generate, sft) loads a sharded checkpoint whole.
#include <cstdint>
#include <string>
#include <vector>

#include "teddy/model/model.h"
#include "teddy/train/checkpoint.h"

namespace teddy {

inline constexpr const char* kShardManifestFile = "manifest.json";
inline constexpr int kShardedCheckpointVersion = 1;

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

// True when `dir` holds a manifest.json, or shard files (then a missing manifest is
// reported by inspect as an incomplete checkpoint).
bool is_sharded_checkpoint(const std::string& dir);
std::string shard_file_name(int rank, int world);

// Writes rank's shard file into `dir` (fsynced) from the range's floats (each
// pointer at element `begin`). Returns its entry with size and checksum.
ShardEntry write_checkpoint_shard(const std::string& dir, int rank, int world, uint64_t begin, uint64_t end,
                                  const float* params, const float* m, const float* v);

// Rank 0, after every shard is durable in `temp_dir` (checkpoint_temp_dir from rank
// 0's pid, begin_checkpoint_dir: checkpoint.h): writes manifest.json last, then
// commit_checkpoint_dir. Returns the checkpoint directory.
std::string finish_sharded_checkpoint(const std::string& run_dir, const std::string& temp_dir,
                                      const ShardedManifest& manifest, int keep_last);

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
