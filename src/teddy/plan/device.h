#pragma once
// Devices and wall-clock: how long a FLOP budget takes at a given peak and MFU.
#include <string>
#include <string_view>
#include <vector>

namespace teddy::plan {

// A compute device for time estimates: peak dense FLOP/s at the training precision.
struct Device {
  std::string name;
  double peak_flops = 0;   // FLOP/s, dense (no sparsity)
  double memory_bytes = 0; // per device (decimal GB as sold: H100 80 GB = 80e9 here)
};
// h100 (989 TFLOP/s bf16, 80 GB), h200 (989, 141 GB), a100 (312, 80 GB), cpu
// (peak 0 and memory 0: the user must give them). Throws ConfigError listing names.
Device device_preset(std::string_view name);
std::vector<std::string> device_names();

struct TrainingTime {
  double flops = 0;        // total model FLOPs
  double device_seconds = 0;  // flops / (peak * mfu): one device's time
  double gpu_hours = 0;    // device_seconds / 3600 (independent of device count)
  double wall_seconds = 0; // device_seconds / n_devices (perfect scaling at this MFU)
};
// flops_per_token * tokens at the given MFU on n_devices. Validates every input.
TrainingTime training_time(double flops_per_token, double tokens, double peak_flops, double mfu,
                           int n_devices);

}  // namespace teddy::plan
