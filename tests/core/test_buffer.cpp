// An allocation that fails names its buffer, its size and what was available, so a
// run past the memory check (or without it) says what did not fit.
#include <gtest/gtest.h>

#include <string>

#include "teddy/core/buffer.h"
#include "teddy/core/error.h"

using namespace teddy;

TEST(AlignedBuffer, AFailedAllocationNamesTheBuffer) {
  const size_t huge = size_t{1} << 62;  // no machine has 4 EiB: aligned_alloc returns null
  try {
    AlignedBuffer b(huge, "activations for 32768 rows (micro_batch x seq_len)");
    FAIL() << "allocated 4 EiB";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("out of memory allocating activations for 32768 rows (micro_batch x seq_len) (4194304.0 TiB, " +
                        std::to_string(huge) + " bytes); "),
              std::string::npos)
        << what;
    EXPECT_NE(what.find(" available ("), std::string::npos) << what;
  }
  Arena a;
  try {
    a.allocate(huge, "the KV cache for 9 positions");
    FAIL() << "allocated 4 EiB";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of memory allocating the KV cache for 9 positions ("), std::string::npos) << e.what();
  }
  AlignedBuffer small(100, "parameters");  // and an ordinary size still works, zeroed
  EXPECT_EQ(small.bytes(), 100u);
  EXPECT_EQ(small.as<unsigned char>()[99], 0);
}
