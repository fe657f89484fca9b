#pragma once
// Kernel test bodies that run once per backend: a parameterized fixture over
// kernels::available_backends() (ref, cpu, and each further one as it lands). A body
// calls the ops through the table under test and compares with the reference
// templates (kernels/ref/<op>.h) exactly as a single-backend test would:
//
//   class LinearBackend : public teddy::test::BackendTest {};
//   TEDDY_BACKEND_SUITE(LinearBackend);
//   TEST_P(LinearBackend, MatchesReference) {
//     kb->linear_forward(out, x, w, b, N, C, OC);   // compared with kr::linear_forward
//   }
//
// Each instance is named after its backend: Backends/LinearBackend.MatchesReference/cpu,
// so `--gtest_filter='*/cpu'` runs one backend. For the ref backend the comparison is
// the table against the templates it instantiates (it checks the dispatch, the +=
// and Grad conventions and misaligned pointers, not the arithmetic).
#include <gtest/gtest.h>

#include <string>

#include "teddy/kernels/backend.h"

namespace teddy::test {

class BackendTest : public ::testing::TestWithParam<const kernels::Backend*> {
 protected:
  const kernels::Backend* const kb = GetParam();  // the backend under test
};

inline std::string backend_test_name(const ::testing::TestParamInfo<const kernels::Backend*>& info) {
  std::string n = info.param->name;  // gtest names take [A-Za-z0-9_]: onednn-bf16 -> onednn_bf16
  for (char& c : n)
    if (c == '-') c = '_';
  return n;
}

}  // namespace teddy::test

#define TEDDY_BACKEND_SUITE(Suite)                                                                          \
  INSTANTIATE_TEST_SUITE_P(Backends, Suite, ::testing::ValuesIn(::teddy::kernels::available_backends()), \
                           ::teddy::test::backend_test_name)
