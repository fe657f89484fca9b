#pragma once
// Checkpoints, one format for every run: <run>/checkpoints/step_<NNNNNNNN>/ holding
//   shard_<RRRRR>_of_<WWWWW>.safetensors   one per writer (a rank; one process is a
//                          world of one and writes one shard): its contiguous range
//                          [begin, end) of the flat buffer as three F32 tensors
//                          "params", "adamw.m", "adamw.v"
//   manifest.json          written last, once every shard is durable: world size,
//                          ZeRO stage, flat size, the parameter layout, each shard's
//                          file, range, bytes and XXH3-64, step, optimizer t, loader
//                          state, model and run config (shards.h)
// The directory is assembled under a temporary name (step_N.tmp-<pid>@<host>, the
// first writer's pid and host), every file fsynced, then renamed into place and the
// parent fsynced, so a crash at any point leaves either no new checkpoint or a
// complete one; a directory without a valid manifest is never intact.
//
// Reading takes both that format and the single-file one teddy wrote before
// (model.safetensors + optimizer.safetensors + state.json, legacy.h): verification,
// the newest intact checkpoint, and any range of the flat buffer (read_checkpoint_range),
// so N writers' checkpoint loads with M readers, in one process, for `teddy generate`
// and as `teddy sft`'s init. Engines hand the writer their rank's range (group.h
// coordinates the ranks); one process uses save_checkpoint below.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "teddy/model/model.h"
#include "teddy/train/optim/adamw.h"

namespace teddy {

inline constexpr int kCheckpointVersion = 1;  // the single-file format's state.json

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

struct ShardedManifest;  // shards.h

// A checkpoint whose files have been checked (sizes and checksums, or the share of
// them one reader of several hashed), with what reading it needs, so a load does
// not hash the files a second time.
struct VerifiedCheckpoint {
  CheckpointInfo info;
  std::shared_ptr<const ShardedManifest> manifest;  // null: the single-file format
  // Found by a search of a run directory: the newer checkpoints it passed over,
  // "dir: why" (checksum mismatch, size, missing file), so callers can name them.
  std::vector<std::string> skipped;
};

// ---- Writing (always the sharded format) ------------------------------------------

// One process: writes a checkpoint of one shard (the whole flat buffer: parameters,
// opt's m and v) for state.step and then deletes all but the newest `keep_last`
// (0 keeps all). `after_file` (tests) is called with each file name once it is
// durable in the temporary directory (the shard, then manifest.json). Returns the
// checkpoint directory. Several ranks: save_sharded_checkpoint (group.h).
std::string save_checkpoint(const std::string& run_dir, const Model& model, const AdamW& opt,
                            const CheckpointState& state, int keep_last,
                            const std::function<void(const std::string&)>& after_file = {});

// A checkpoint directory's life cycle: the files go into checkpoint_temp_dir
// (begin_checkpoint_dir creates it empty; the pid and host keep concurrent writers
// apart), then commit_checkpoint_dir fsyncs it, renames it to checkpoint_dir(run_dir,
// step) (replacing an older checkpoint of that step only now), fsyncs the parent and
// deletes all but the newest keep_last (0 keeps all). Returns the checkpoint directory.
std::string checkpoint_temp_dir(const std::string& run_dir, int64_t step);  // "step_N.tmp-<pid>@<host>"
std::string checkpoint_dir(const std::string& run_dir, int64_t step);
void begin_checkpoint_dir(const std::string& temp_dir);
std::string commit_checkpoint_dir(const std::string& run_dir, const std::string& temp_dir, int64_t step,
                                  int keep_last);

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

// ---- Reading (both formats) -------------------------------------------------------

// Reads and verifies a checkpoint directory (manifest.json and every shard, or
// state.json and its two files), keeping what a load needs. Throws FormatError
// naming the file and what is wrong.
VerifiedCheckpoint verify_checkpoint(const std::string& dir);
// The same checks with the data files split among `parts` readers: this one hashes
// the files i with i % parts == part (every part reads the manifest / state file).
VerifiedCheckpoint verify_checkpoint_part(const std::string& dir, int part, int parts);
// verify_checkpoint's info alone.
CheckpointInfo inspect_checkpoint(const std::string& dir);

// Checkpoint directories under <run>/checkpoints, newest step first (intact or not).
std::vector<std::string> list_checkpoints(const std::string& run_dir);
// The newest checkpoint that passes inspect_checkpoint, or nullopt. Broken ones are
// reported through `skipped` ("dir: why") when given.
std::optional<std::string> latest_intact_checkpoint(const std::string& run_dir,
                                                    std::vector<std::string>* skipped = nullptr);
// The same search, returning what it verified (a resume loads it with the overload below).
std::optional<VerifiedCheckpoint> latest_verified_checkpoint(const std::string& run_dir,
                                                             std::vector<std::string>* skipped = nullptr);

// Throws ConfigError naming the first differing field when `model`'s config is not
// the checkpoint's, FormatError when the flat layouts differ.
void check_checkpoint_fits(const VerifiedCheckpoint& checkpoint, const Model& model);
// Copies floats [begin, end) of the flat parameter buffer and of AdamW's m and v
// (null pointers: skipped; each destination points at element `begin`), whatever
// the format and however many wrote it; only the bytes of that range are read.
// Alignment padding reads as zero. A file whose size changed since it was verified,
// or whose contents do not parse, is refused.
void read_checkpoint_range(const VerifiedCheckpoint& checkpoint, uint64_t begin, uint64_t end, float* params,
                           float* m, float* v);

// Loads parameters (and, if opt != nullptr, the optimizer state) into a model whose
// config equals the checkpoint's (check_checkpoint_fits). The directory form
// verifies the checkpoint first; the other loads one verified already.
CheckpointInfo load_checkpoint(const std::string& dir, Model& model, AdamW* opt);
CheckpointInfo load_checkpoint(const VerifiedCheckpoint& checkpoint, Model& model, AdamW* opt);

// First differing field of two model configs ("field (checkpoint X, run Y)"), or "".
std::string model_config_difference(const ModelConfig& run, const ModelConfig& checkpoint);

// Accepts a checkpoint directory (verified: errors thrown) or a run directory (its
// newest intact checkpoint). Each file is hashed once.
VerifiedCheckpoint resolve_verified_checkpoint(const std::string& path);

// XXH3-64 of a whole file, streamed (the checksum checkpoints record per file); its
// size in bytes goes to *size when non-null. Throws FormatError if it cannot be opened.
uint64_t file_checksum(const std::string& path, uint64_t* size = nullptr);
// "step_00000120": a checkpoint's directory name; "%016llx" of a checksum as recorded.
std::string step_dir_name(int64_t step);
std::string hex64(uint64_t v);

}  // namespace teddy
