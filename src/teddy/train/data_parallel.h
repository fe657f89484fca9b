#pragma once
// What the pretraining loop needs from a data-parallel engine. dist/ implements it
// over a communicator (dist::DataParallelEngine); train/ only sees this interface,
// so the library dependency stays dist -> train. A null engine is the plain
// single-process run.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "teddy/model/model.h"
#include "teddy/train/adamw.h"
#include "teddy/train/checkpoint.h"
#include "teddy/train/train_step.h"

namespace teddy {

class DataParallel {
 public:
  virtual ~DataParallel() = default;
  virtual int rank() const = 0;   // data-parallel rank (the loader's slice)
  virtual int world() const = 0;  // data-parallel size
  // Builds the (possibly sharded) optimizer for `model`; called once, before any step.
  // The engine keeps hooks on the model: it must not outlive it.
  virtual void attach(Model& model, const AdamWConfig& cfg) = 0;
  // One optimizer step over this rank's micro-batches; loss and grad norm are global.
  virtual StepStats step(std::span<const Batch> micro_batches, float lr, float max_grad_norm) = 0;
  // In-place sum over ranks (validation loss).
  virtual void sum(double* values, size_t n) = 0;
  // Start-up lines: layout, per-rank state bytes against ZeRO's formulas (gathered).
  virtual std::string report() = 0;
  // End-of-run lines: every rank's communication totals (gathered; every rank calls).
  virtual std::string summary() = 0;
  // Communication of the last step: bytes this rank sent (ring model), payload
  // bytes it handed to the collectives (measured) and seconds inside calls.
  virtual uint64_t last_step_bytes() const = 0;
  virtual uint64_t last_step_payload_bytes() const = 0;
  virtual double last_step_comm_seconds() const = 0;
  // Checkpoints (every rank calls): each rank writes its shard, plus a manifest
  // (sharded_checkpoint.h), so a run saved with N ranks loads with M ranks or in one
  // process. Loading also takes the single-process format.
  virtual std::string save_checkpoint(const std::string& run_dir, const CheckpointState& state, int keep_last) = 0;
  virtual CheckpointInfo load_checkpoint(const std::string& dir) = 0;
  // latest_intact_checkpoint (checkpoint.h) with the checksum work split among the
  // ranks; every rank gets the same answer.
  virtual std::optional<std::string> latest_intact_checkpoint(const std::string& run_dir,
                                                              std::vector<std::string>* skipped) = 0;
};

}  // namespace teddy
