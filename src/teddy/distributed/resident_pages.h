#pragma once
// Freeing and measuring parts of a flat buffer page by page. ZeRO-2/3 keep the
// model's flat gradient (and, at stage 3, parameter) buffers allocated as address
// space but give the pages outside this rank's shard back to the OS once a bucket
// or layer is done (madvise MADV_DONTNEED: a later touch maps a fresh zero page).
// The state bytes teddy reports are then measured (mincore), not assumed.
#include <cstddef>

#include "teddy/distributed/flat_shards.h"

namespace teddy::dist {

// Zeroes floats [r.begin, r.end) of `base` that lie outside `keep`, returning every
// whole page among them to the OS (partial pages at the edges are zeroed in place).
void release_range(float* base, Range r, Range keep);

// Bytes of [p, p + bytes) whose pages are resident in memory.
size_t resident_bytes(const void* p, size_t bytes);

}  // namespace teddy::dist
