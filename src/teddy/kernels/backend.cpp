// The registry of compiled-in backends: a constant list, no registration at run time.
#include "teddy/kernels/backend.h"

#include <string>

#include "teddy/core/error.h"
#include "teddy/kernels/kernels.h"

namespace teddy::kernels {

std::span<const Backend* const> available_backends() {
  static const Backend* const all[] = {&ref::table(), &cpu::table()};
  return all;
}

const Backend& backend(std::string_view name) {
  std::string known;
  for (const Backend* b : available_backends()) {
    if (name == b->name) return *b;
    known += (known.empty() ? "" : ", ") + std::string(b->name);
  }
  throw ConfigError("backend: unknown '" + std::string(name) + "' (available: " + known + ")");
}

const Backend& default_backend() { return cpu::table(); }

}  // namespace teddy::kernels
