#include "teddy/distributed/communicator.h"

#include <cstdlib>

#include "teddy/core/error.h"

namespace teddy::dist {

void SelfCommunicator::send(const void*, size_t, int to, int) {
  throw Error("SelfCommunicator: no rank " + std::to_string(to) + " to send to (world size 1)");
}
void SelfCommunicator::recv(void*, size_t, int from, int) {
  throw Error("SelfCommunicator: no rank " + std::to_string(from) + " to receive from (world size 1)");
}
void SelfCommunicator::abort(int code, const std::string&) {
  // The caller has reported why; one process has nobody else to stop.
  std::_Exit(code);
}

}  // namespace teddy::dist
