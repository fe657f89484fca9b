// The step engine's start-up report and end-of-run summary (gathered from every rank).
#include <sstream>
#include <vector>

#include "teddy/distributed/zero_trainer.h"

namespace teddy::dist {

namespace {
std::string mib(double b) {
  std::ostringstream os;
  os.precision(2);
  os << std::fixed << b / (1024.0 * 1024.0) << " MiB";
  return os.str();
}
}  // namespace

std::string ZeroTrainer::report(const ParallelLayout& layout) {
  const int W = comm_.size();
  const StateBytes mem = memory();
  const StateBytes want = ZeroTrainer::expected_memory(model_.flat_size(), layout.zero, W);
  const std::vector<double> all = gather_per_rank<double>(
      comm_, {static_cast<double>(mem.params), static_cast<double>(mem.grads), static_cast<double>(mem.optimizer)});
  std::ostringstream os;
  os << "# parallel: " << layout.describe() << " (" << W << " ranks; global batch = micro_batch x grad_accum x " << W
     << "), " << buckets() << " gradient buckets\n";
  os << "# ZeRO-" << layout.zero << " fp32 formula per rank: params " << mib(want.params) << ", grads "
     << mib(want.grads) << ", optimizer " << mib(want.optimizer) << "\n";
  for (int r = 0; r < W; ++r)
    os << "#   rank " << r << " holds: params " << mib(all[3 * r]) << ", grads " << mib(all[3 * r + 1])
       << ", optimizer " << mib(all[3 * r + 2]) << "\n";
  // Payload: the buffer volume the collectives work on (what teddy measures per
  // call); wire: the ring model's bytes a rank sends, (W-1)/W of the volume, an
  // all-reduce counting twice (reduce-scatter + all-gather).
  const double psi = static_cast<double>(model_.flat_size()) * 4.0, ring = static_cast<double>(W - 1) / W;
  const double outer = static_cast<double>(outer_floats()) * 4.0;
  if (layout.zero == 0)
    os << "# expected communication per step and rank: payload " << mib(psi) << " (one all-reduce of psi), wire "
       << mib(2 * psi * ring) << " (2 psi (W-1)/W, ring model)\n";
  else if (layout.zero <= 2)
    os << "# expected communication per step and rank: payload " << mib(2 * psi)
       << " (reduce-scatter psi + all-gather psi" << (layout.zero == 2 ? "; stage 2: a reduce-scatter per micro-batch" : "")
       << "), wire " << mib(2 * psi * ring) << " (2 psi (W-1)/W, ring model)\n";
  else
    os << "# expected communication per micro-batch and rank: payload " << mib(3 * psi - outer)
       << " (3 psi less the non-block tensors gathered once instead of twice), wire " << mib((3 * psi - outer) * ring)
       << " (ring model)\n";
  return os.str();
}

std::string ZeroTrainer::summary() {
  const int W = comm_.size();
  const CommStats st = comm_.stats();  // before the gather adds its own call
  const std::vector<double> all = gather_per_rank<double>(
      comm_, {static_cast<double>(st.payload_bytes), static_cast<double>(st.bytes_sent), st.seconds,
              static_cast<double>(st.calls)});
  std::ostringstream os;
  for (int r = 0; r < W; ++r)
    os << "rank " << r << " communication: payload " << mib(all[4 * r]) << " (measured), sent " << mib(all[4 * r + 1])
       << " (ring model), " << all[4 * r + 2] << " s in " << static_cast<uint64_t>(all[4 * r + 3]) << " calls\n";
  return os.str();
}

}  // namespace teddy::dist
