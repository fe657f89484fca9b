#pragma once
// Communicator over NCCL, for GPU ranks (one GPU per rank). Built only when CMake
// finds the CUDA toolkit and NCCL (option TEDDY_NCCL, target teddy_distributed_nccl, which
// defines TEDDY_HAVE_NCCL). Buffers passed to it are device pointers; every call is
// enqueued on the communicator's stream and synchronised before returning, keeping
// the blocking contract of Communicator. The NCCL unique id travels over `bootstrap`
// (the MPI communicator of the same job), the way NCCL's own examples do it.
#include <memory>

#include "teddy/distributed/communicator.h"

namespace teddy::dist {

// `device`: the CUDA device this rank uses (usually local rank).
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device);

}  // namespace teddy::dist
