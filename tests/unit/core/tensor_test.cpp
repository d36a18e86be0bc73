// Tensor: construction, views that share storage, reshapes, slices, copies and conversions, and the
// errors a misuse gives.
#include "core/tensor.h"

#include <gtest/gtest.h>

#include "core/context.h"
#include "core/error.h"

namespace wanbatch::core {
namespace {

TEST(Tensor, ConstructsWithShapeAndDtype) {
  Tensor t = Tensor::zeros({2, 3, 4}, DType::BF16);
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.ndim(), 3);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.nbytes(), 48u);
  EXPECT_EQ(t.dim(-1), 4);
  EXPECT_EQ(t.describe(), "[2, 3, 4] bf16 cpu");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u);  // host allocations are 64-byte aligned
  for (float v : t.to_floats()) EXPECT_EQ(v, 0.0f);
  EXPECT_FALSE(Tensor().defined());
}

TEST(Tensor, ReshapeAndSliceShareStorage) {
  Tensor t = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {3, 4});
  Tensor r = t.reshape({-1, 2});
  EXPECT_EQ(r.shape(), (Shape{6, 2}));
  Tensor rows = t.slice(1, 3);
  EXPECT_EQ(rows.shape(), (Shape{2, 4}));
  EXPECT_EQ(rows.data<float>()[0], 4.0f);
  Tensor row = t.select(2);
  EXPECT_EQ(row.shape(), (Shape{4}));
  row.data<float>()[1] = 42.0f;
  EXPECT_EQ(t.data<float>()[9], 42.0f);  // written through the view
  EXPECT_EQ(r.data<float>()[9], 42.0f);
  EXPECT_EQ(t.slice(1, 1).numel(), 0);
}

TEST(Tensor, ConvertsBetweenDtypes) {
  Tensor t = Tensor::from_vector<float>({1.0f, -0.5f, 3.140625f, 65504.0f}, {4});
  for (DType d : {DType::BF16, DType::F16, DType::F32}) {
    Tensor c = t.to(d);
    EXPECT_EQ(c.dtype(), d);
    EXPECT_EQ(c.to_floats()[0], 1.0f);
    EXPECT_EQ(c.to_floats()[1], -0.5f);
  }
  EXPECT_EQ(t.to(DType::BF16).to_floats()[3], 65536.0f);  // bf16 keeps 8 bits of mantissa
  EXPECT_EQ(t.to(DType::F16).to_floats()[3], 65504.0f);
  Tensor dst = Tensor::empty({2, 2}, DType::F16);
  dst.copy_from(t);  // different shape, same count, different dtype
  EXPECT_EQ(dst.to_floats()[2], 3.140625f);
  Tensor ids = Tensor::from_vector<int64_t>({5, 7}, {2});
  EXPECT_EQ(ids.to(DType::I32).data<int32_t>()[1], 7);
}

TEST(Tensor, CloneIsIndependent) {
  Tensor t = Tensor::from_vector<float>({1, 2}, {2});
  Tensor c = t.clone();
  c.data<float>()[0] = 9.0f;
  EXPECT_EQ(t.data<float>()[0], 1.0f);
}

TEST(Tensor, MisuseThrowsClearErrors) {
  Tensor t = Tensor::zeros({2, 3}, DType::F32);
  EXPECT_THROW(t.reshape({4, 2}), Error);
  EXPECT_THROW(t.reshape({-1, -1}), Error);
  EXPECT_THROW(t.slice(1, 3), Error);
  EXPECT_THROW(t.dim(2), Error);
  EXPECT_THROW(t.data<int32_t>(), Error);
  EXPECT_THROW(Tensor::empty({-1}, DType::F32), Error);
  Tensor small = Tensor::zeros({5}, DType::F32);
  EXPECT_THROW(small.copy_from(t), Error);
  EXPECT_THROW(Tensor::from_storage(small.storage(), 8, {5}, DType::F32), Error);
  try {
    t.reshape({7});
    FAIL() << "reshape should have thrown";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 3]"), std::string::npos) << e.what();
  }
}

TEST(Tensor, CudaWithoutDeviceIsAClearError) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
  Tensor t = Tensor::zeros({2}, DType::F32);
  EXPECT_THROW(t.to(Device::cuda(0)), Error);
  EXPECT_THROW(Context::cuda(0), Error);
}

}  // namespace
}  // namespace wanbatch::core
