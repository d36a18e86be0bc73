// core::ops dispatch on CUDA: a tensor on the wrong device is rejected by name instead of being
// read from the wrong memory.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "core/context.h"
#include "core/error.h"
#include "core/ops.h"

namespace wanbatch::core {
namespace {

void expect_error_containing(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(CudaDispatch, TensorOnAnotherDeviceIsRejected) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Context gpu = Context::cuda(0);
  Tensor host = Tensor::zeros({16}, DType::F32);
  Tensor device = Tensor::zeros({16}, DType::F32, Device::cuda(0));
  expect_error_containing([&] { ops::add(gpu, host, device, device); }, "is not on cuda:0");
  expect_error_containing([&] { ops::add(Context::cpu(), host, device, host); }, "is not on cpu");
}

}  // namespace
}  // namespace wanbatch::core
