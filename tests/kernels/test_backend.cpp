// The backend registry and the table: ref and cpu are available in that order, names
// look up, an unknown name lists the available ones, every table entry is filled, and
// a table entry is the backend namespace's function itself (no wrapper in between).
#include <gtest/gtest.h>
#include <omp.h>

#include <string>

#include "teddy/core/error.h"
#include "teddy/kernels/backend.h"
#include "teddy/kernels/context.h"
#include "teddy/kernels/kernels.h"

namespace {

namespace k = teddy::kernels;

TEST(Backend, RefAndCpuAreAvailableInOrder) {
  const auto all = k::available_backends();
  ASSERT_GE(all.size(), 2u);
  EXPECT_STREQ(all[0]->name, "ref");
  EXPECT_STREQ(all[1]->name, "cpu");
  for (const k::Backend* b : all) {
    SCOPED_TRACE(b->name);
    EXPECT_EQ(&k::backend(b->name), b);
    EXPECT_NE(std::string(b->summary), "");
  }
  EXPECT_EQ(&k::default_backend(), &k::backend("cpu"));
}

TEST(Backend, UnknownNameListsTheAvailableOnes) {
  try {
    k::backend("cuda-but-not-built");
    FAIL() << "no throw";
  } catch (const teddy::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("cuda-but-not-built"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("available: ref, cpu"), std::string::npos) << e.what();
  }
}

TEST(Backend, TablesHoldTheNamespacesFunctions) {
  const k::Backend& ref = k::backend("ref");
  const k::Backend& cpu = k::backend("cpu");
#define TEDDY_OP(R, OP, ARGS)       \
  EXPECT_EQ(ref.OP, &k::ref::OP) << #OP; \
  EXPECT_EQ(cpu.OP, &k::cpu::OP) << #OP;
#include "teddy/kernels/ops.inc"
}

TEST(Context, DefaultsToCpuAndTheCallersThreads) {
  const teddy::Context ctx;
  EXPECT_EQ(ctx.backend, &k::backend("cpu"));
  EXPECT_EQ(ctx.threads, 0);
  EXPECT_EQ(ctx.stream, nullptr);
}

TEST(Context, ThreadScopeSetsAndRestores) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(3);
  {
    const teddy::ThreadScope none(teddy::Context{});  // threads 0: leaves the setting alone
    EXPECT_EQ(omp_get_max_threads(), 3);
  }
  {
    const teddy::ThreadScope one(teddy::Context{.threads = 1});
    EXPECT_EQ(omp_get_max_threads(), 1);
  }
  EXPECT_EQ(omp_get_max_threads(), 3);
  omp_set_num_threads(saved);
}

}  // namespace
