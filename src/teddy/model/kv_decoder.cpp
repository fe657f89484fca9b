#include "teddy/model/kv_decoder.h"

#include <string>
#include <vector>

#include "teddy/core/error.h"

namespace teddy {

namespace {
int checked_rows(int capacity, int max_rows) {
  if (max_rows <= 0 || max_rows > capacity)
    throw Error("kv cache: max_rows must be in [1, capacity] (got " + std::to_string(max_rows) + ")");
  return max_rows;
}
}  // namespace

// One sequence; with LoRA its adapter is the model's own parameters (read at each call).
KvDecoder::KvDecoder(Model& model, int capacity, int max_rows)
    : dec_(model, 1, capacity, checked_rows(capacity, max_rows),
           model.lora() ? std::vector<const float*>{model.params()} : std::vector<const float*>{}) {
  dec_.start(0, model.lora() ? 0 : -1);
}

}  // namespace teddy
