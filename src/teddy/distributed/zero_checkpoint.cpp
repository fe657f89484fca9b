// The step engine's checkpoints: each rank hands its ranges to the checkpoint
// writer group (checkpoint/group.h) and restores from its range of any checkpoint.
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "teddy/core/error.h"
#include "teddy/distributed/zero_trainer.h"

namespace teddy::dist {

CheckpointGroup ZeroTrainer::checkpoint_group() {
  CheckpointGroup g;
  g.rank = comm_.rank();
  g.size = comm_.size();
  Communicator* comm = &comm_;
  g.gather = [comm](const std::vector<int64_t>& mine) { return gather_per_rank<int64_t>(*comm, mine); };
  g.broadcast = [comm](const std::string& value, int root) {
    uint64_t len = value.size();
    comm->broadcast(&len, sizeof len, root);
    std::string out = comm->rank() == root ? value : std::string(len, '\0');
    comm->broadcast(out.data(), len, root);
    return out;
  };
  return g;
}

std::string ZeroTrainer::save_checkpoint(const std::string& run_dir, CheckpointState state, int keep_last) {
  if (scaler_)
    state.loss_scaler = nlohmann::json{{"scale", scaler_->scale()}, {"streak", scaler_->clean_streak()},
                                       {"skipped", scaler_->skipped()}}
                            .dump();
  CheckpointMeta meta;
  meta.state = std::move(state);
  meta.optimizer_t = optimizer_t();
  meta.zero_stage = stage_;
  // Every stage holds its own range of parameters; m and v are whole at stage 0.
  const size_t moff = stage_ == 0 ? own_.begin : 0;
  const ShardPiece mine{own_.begin, own_.end, model_.params() + own_.begin, m() + moff, v() + moff};
  return save_sharded_checkpoint(checkpoint_group(), run_dir, model_, mine, meta, keep_last);
}

std::optional<VerifiedCheckpoint> ZeroTrainer::latest_checkpoint(const std::string& run_dir,
                                                                 std::vector<std::string>* skipped) {
  return find_latest_checkpoint(checkpoint_group(), run_dir, skipped);
}

CheckpointInfo ZeroTrainer::load_checkpoint(const VerifiedCheckpoint& c) {
  const size_t n = model_.flat_size();
  std::vector<float> m(stage_ == 0 ? n : own_.size()), v(m.size());  // stage 0: whole buffers
  const size_t moff = stage_ == 0 ? own_.begin : 0;
  read_checkpoint_ranges(checkpoint_group(), c, model_, own_.begin, own_.end, model_.params() + own_.begin,
                         m.data() + moff, v.data() + moff);
  const std::vector<size_t> counts = shards_.counts({0, n});
  if (stage_ <= 2 && comm_.size() > 1) comm_.all_gather(model_.params(), counts);
  if (stage_ == 0) {
    if (comm_.size() > 1) {
      comm_.all_gather(m.data(), counts);
      comm_.all_gather(v.data(), counts);
    }
    set_state(c.info.optimizer_t, m.data(), v.data());
  } else {
    set_own_state(c.info.optimizer_t, m.data(), v.data());
  }
  if (scaler_ && !c.info.state.loss_scaler.empty()) {  // the scale, streak and skip count carry over exactly
    try {
      const auto j = nlohmann::json::parse(c.info.state.loss_scaler);
      scaler_->set_state(j.at("scale").get<float>(), j.at("streak").get<int64_t>(), j.at("skipped").get<int64_t>());
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(c.info.dir + ": bad loss_scaler state (" + e.what() + ")");
    }
  }
  return c.info;
}

}  // namespace teddy::dist
