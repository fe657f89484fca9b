#include "teddy/plan/device.h"

#include <cmath>
#include <string>

#include "teddy/core/error.h"
#include "teddy/plan/units.h"

namespace teddy::plan {
namespace {

// Dense bf16 tensor-core peaks from the vendors' datasheets (SXM parts, no sparsity).
struct Known { const char* name; double peak; double memory; };
constexpr Known kDevices[] = {
    {"h100", 989e12, 80e9},
    {"h200", 989e12, 141e9},
    {"a100", 312e12, 80e9},
    {"cpu", 0, 0},  // peak and memory differ per machine: give --peak-tflops / --device-mem
};

}  // namespace

Device device_preset(std::string_view name) {
  for (const Known& d : kDevices)
    if (name == d.name) return {d.name, d.peak, d.memory};
  std::string known;
  for (const Known& d : kDevices) known += (known.empty() ? "" : ", ") + std::string(d.name);
  throw ConfigError("device: unknown device '" + std::string(name) + "' (known: " + known + ")");
}

std::vector<std::string> device_names() {
  std::vector<std::string> out;
  for (const Known& d : kDevices) out.emplace_back(d.name);
  return out;
}

TrainingTime training_time(double flops_per_token, double tokens, double peak_flops, double mfu,
                           int n_devices) {
  check_range("flops per token", flops_per_token, 1e20);
  check_range("tokens", tokens, 1e18);
  if (!(peak_flops > 0))
    throw ConfigError("peak FLOP/s: unknown for this device; give --peak-tflops (got 0)");
  check_range("peak FLOP/s", peak_flops, 1e20);
  check_range("mfu", mfu, 1.0);
  if (n_devices < 1) throw ConfigError("devices: must be >= 1 (got " + std::to_string(n_devices) + ")");
  TrainingTime t;
  t.flops = flops_per_token * tokens;
  t.device_seconds = t.flops / (peak_flops * mfu);
  t.gpu_hours = t.device_seconds / 3600;
  t.wall_seconds = t.device_seconds / n_devices;
  return t;
}

}  // namespace teddy::plan
