#pragma once
// Checkpoints: <run>/checkpoints/step_<NNNNNNNN>/ holding
//   model.safetensors      parameters by name (F32), model config in the metadata
//   optimizer.safetensors  AdamW m and v (flat, the parameters' layout)
//   state.json             step, optimizer t, data-loader state, run config, and the
//                          XXH3-64 checksum and size of each file above
// A checkpoint is written into a temporary sibling directory, every file fsynced,
// then renamed into place (and the parent fsynced), so a crash at any point leaves
// either no new checkpoint or a complete one; state.json is written last, so a
// directory without a valid state.json is never considered intact.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "teddy/model/model.h"
#include "teddy/train/adamw.h"

namespace teddy {

inline constexpr int kCheckpointVersion = 1;

struct CheckpointState {
  int64_t step = 0;               // optimizer steps completed
  int64_t tokens_processed = 0;   // tokens (B*T*accum) consumed so far
  uint64_t seed = 0;
  std::string loader_state;       // DataLoader state as JSON
  std::string run_config;         // resolved run config (TOML text)
  std::string loss_scaler;        // fp16: the LossScaler state as JSON; empty otherwise
};

struct CheckpointInfo {
  std::string dir;
  CheckpointState state;
  ModelConfig model_config;
  int64_t optimizer_t = 0;
};

struct ShardedManifest;  // sharded_checkpoint.h

// A checkpoint whose files have all been checked (sizes and checksums) by
// verify_checkpoint, with what loading it needs: load_checkpoint(VerifiedCheckpoint)
// reads it without hashing the files a second time.
struct VerifiedCheckpoint {
  CheckpointInfo info;
  std::shared_ptr<const ShardedManifest> manifest;  // sharded checkpoints; null for the single-process format
};

// Writes a checkpoint for state.step and then deletes all but the newest `keep_last`
// (0 keeps all). `after_file` (tests) is called with each file name once it is
// durable in the temporary directory. Returns the checkpoint directory.
std::string save_checkpoint(const std::string& run_dir, const Model& model, const AdamW& opt,
                            const CheckpointState& state, int keep_last,
                            const std::function<void(const std::string&)>& after_file = {});

// A checkpoint directory's life cycle, both formats (sharded_checkpoint.h too): the
// files go into checkpoint_temp_dir (begin_checkpoint_dir creates it empty; the pid
// and host keep concurrent writers apart), then commit_checkpoint_dir fsyncs it, renames it
// to checkpoint_dir(run_dir, step) (replacing an older checkpoint of that step only
// now), fsyncs the parent and deletes all but the newest keep_last (0 keeps all).
// Returns the checkpoint directory.
std::string checkpoint_temp_dir(const std::string& run_dir, int64_t step);  // "step_N.tmp-<pid>@<host>"

// A save killed mid-way leaves its temporary directory behind. At a run's start the
// writer removes those whose writer is gone: on this host and its pid no longer alive
// (a live pid, even a reused one, is left alone). Directories written from another
// host are left and listed: their writer cannot be checked from here.
struct StaleTemps {
  std::vector<std::string> removed, failed, other_hosts;
  std::string summary() const;  // "# ..." lines for the run's start report, "" when nothing to say
};
StaleTemps remove_stale_checkpoint_temps(const std::string& run_dir);

// `--resume`: continue from the newest intact checkpoint. `if_any` starts from scratch
// (and says so) when run.dir holds no checkpoint at all, so a requeued job can run the
// same command every time; `require` fails then. Both fail when checkpoints exist but
// none is intact (starting over would throw the run away).
enum class Resume { no, if_any, require };
// The --resume flag's value: "" (flag absent) -> no, "auto" -> if_any, "require";
// anything else throws ConfigError.
Resume resume_from_flag(const std::string& value);
std::string checkpoint_dir(const std::string& run_dir, int64_t step);
void begin_checkpoint_dir(const std::string& temp_dir);
std::string commit_checkpoint_dir(const std::string& run_dir, const std::string& temp_dir, int64_t step,
                                  int keep_last);

// Reads and verifies a checkpoint directory (state.json, sizes and checksums; or,
// for a sharded checkpoint, manifest.json and every shard: sharded_checkpoint.h).
// Throws FormatError naming the file and what is wrong.
CheckpointInfo inspect_checkpoint(const std::string& dir);
// The same checks with the data files split among `parts` readers: this one hashes
// the files i with i % parts == part (every part reads the state/manifest file).
CheckpointInfo inspect_checkpoint_part(const std::string& dir, int part, int parts);

// inspect_checkpoint, keeping what a load needs (the sharded manifest).
VerifiedCheckpoint verify_checkpoint(const std::string& dir);

// Checkpoint directories under <run>/checkpoints, newest step first (intact or not).
std::vector<std::string> list_checkpoints(const std::string& run_dir);
// The newest checkpoint that passes inspect_checkpoint, or nullopt. Broken ones are
// reported through `skipped` ("dir: why") when given.
std::optional<std::string> latest_intact_checkpoint(const std::string& run_dir,
                                                    std::vector<std::string>* skipped = nullptr);
// The same search, returning what it verified (a resume loads it with the overload below).
std::optional<VerifiedCheckpoint> latest_verified_checkpoint(const std::string& run_dir,
                                                             std::vector<std::string>* skipped = nullptr);

// Loads parameters (and, if opt != nullptr, the optimizer state) into a model whose
// config equals the checkpoint's; throws ConfigError naming the first differing
// field otherwise. Sharded checkpoints are assembled from all their shards. The
// directory form verifies the checkpoint first (verify_checkpoint); the other loads
// one verified already: its files are not hashed again, but a file whose size
// changed since, or whose contents do not parse, is still refused.
CheckpointInfo load_checkpoint(const std::string& dir, Model& model, AdamW* opt);
CheckpointInfo load_checkpoint(const VerifiedCheckpoint& checkpoint, Model& model, AdamW* opt);

// First differing field of two model configs ("field (checkpoint X, run Y)"), or "".
std::string model_config_difference(const ModelConfig& run, const ModelConfig& checkpoint);

// Accepts a checkpoint directory or a run directory (then: its newest intact checkpoint).
std::string resolve_checkpoint_path(const std::string& path);
// The same, verified: a checkpoint directory is verified (errors thrown), a run
// directory gives its newest intact checkpoint. Each file is hashed once.
VerifiedCheckpoint resolve_verified_checkpoint(const std::string& path);

// XXH3-64 of a whole file, streamed (the checksum checkpoints record per file); its
// size in bytes goes to *size when non-null. Throws FormatError if it cannot be opened.
uint64_t file_checksum(const std::string& path, uint64_t* size = nullptr);
// "step_00000120": a checkpoint's directory name; "%016llx" of a checksum as recorded.
std::string step_dir_name(int64_t step);
std::string hex64(uint64_t v);

}  // namespace teddy
