// The solvers and the sampling loop against the independent NumPy reference
// (tests/reference/sampling_reference.py, itself checked against the official schedulers):
// schedules exactly, each solver step by step (teacher forcing: the reference's sample and
// velocity in, its next sample out), and the whole T2V loop with guidance and the expert switch.
#include "model/sampling/sampler.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "fixture_path.h"
#include "io/safetensors.h"
#include "model/sampling/latent_shape.h"
#include "model/sampling/solver.h"
#include "reference_match.h"
#include "sampling_case.h"

namespace wanbatch::model::sampling {
namespace {

using core::Tensor;

std::string fixture(const std::string& name) { return wanbatch::testing::fixture_path(name); }

nlohmann::json cases(const io::SafetensorsFile& file) {
  return nlohmann::json::parse(file.metadata().at("cases"));
}

std::vector<double> as_doubles(const Tensor& t) {
  const std::vector<float> f = t.to_floats();
  return {f.begin(), f.end()};
}

TEST(Schedule, MatchesTheOfficialSchedulersExactly) {
  const auto file = io::SafetensorsFile::open(fixture("sampling_schedules.safetensors"));
  for (const auto& c : cases(*file)) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const Schedule s = make_schedule(parse_solver(c["solver"]), c["steps"], c["shift"]);
    // Compared as the float32 values the reference stores: timesteps are whole numbers (UniPC,
    // DPM++) or float32 products (Euler), sigmas float32.
    std::vector<double> timesteps, sigmas;
    for (double t : s.timesteps) timesteps.push_back(static_cast<float>(t));
    for (double sigma : s.sigmas) sigmas.push_back(static_cast<float>(sigma));
    EXPECT_EQ(timesteps, as_doubles(file->tensor(name + ".timesteps")));
    EXPECT_EQ(sigmas, as_doubles(file->tensor(name + ".sigmas")));
  }
}

TEST(Schedule, SpecExamples) {
  EXPECT_EQ(make_schedule(SolverKind::UniPC, 6, 5.0).timesteps,
            (std::vector<double>{999, 961, 908, 833, 713, 499}));
  const Schedule euler = make_schedule(SolverKind::Euler, 4, 5.0);
  ASSERT_EQ(euler.timesteps.size(), 4u);
  EXPECT_EQ(euler.timesteps[0], 1000.0);
  EXPECT_NEAR(euler.timesteps[1], 937.5, 1e-4);
  EXPECT_NEAR(euler.timesteps[3], 625.0, 1e-4);
  EXPECT_EQ(euler.sigmas.back(), 0.0);
  EXPECT_THROW(make_schedule(SolverKind::UniPC, 0, 5.0), Error);
  EXPECT_THROW(make_schedule(SolverKind::Euler, 4, 0.0), Error);
  EXPECT_THROW(parse_solver("ddim"), Error);
  EXPECT_EQ(parse_solver("dpm++"), SolverKind::DpmPlusPlus);
}

// Each step from the reference's sample and velocity must land on its next sample. The reference
// computes in float64 and stores float32; the C++ sums in double and rounds once: 2e-6 relative.
TEST(Solver, EveryStepMatchesTheReference) {
  const auto file = io::SafetensorsFile::open(fixture("sampling_steps.safetensors"));
  const core::Context ctx = core::Context::cpu();
  for (const auto& c : cases(*file)) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const int steps = c["steps"];
    auto solver = make_solver(parse_solver(c["solver"]), steps, c["shift"]);
    const Tensor xs = file->tensor(name + ".x"), preds = file->tensor(name + ".pred");
    EXPECT_EQ(solver->schedule().timesteps.size(), static_cast<size_t>(steps));
    for (int k = 0; k < steps; ++k) {
      SCOPED_TRACE(k);
      EXPECT_EQ(static_cast<float>(solver->timestep()),
                file->tensor(name + ".timesteps").to_floats()[static_cast<size_t>(k)]);
      Tensor x = xs.select(k).clone();
      solver->step(ctx, preds.select(k), x);
      EXPECT_TRUE(
          wanbatch::testing::matches_reference(x.to_floats(), xs.select(k + 1).to_floats(), 2e-6));
    }
    Tensor x = xs.select(steps).clone();
    EXPECT_THROW(solver->step(ctx, preds.select(0), x), Error);  // no steps left
  }
}

class SamplingLoop : public ::testing::TestWithParam<std::string> {};

// The whole loop with the tiny DiT: fp32 against float64 through every step; guidance scales
// differences up to 4×, so 2e-5 relative.
TEST_P(SamplingLoop, MatchesTheReferenceLoop) {
  const core::Context ctx = core::Context::cpu();
  wanbatch::testing::SamplingCase c(GetParam(), ctx);
  const SampleResult result = c.sample(ctx);
  EXPECT_EQ(std::vector<double>(result.timesteps.begin(), result.timesteps.end()),
            as_doubles(c.file->tensor("timesteps")));
  std::vector<double> experts(result.high_noise_steps.begin(), result.high_noise_steps.end());
  EXPECT_EQ(experts, as_doubles(c.file->tensor("experts")));
  EXPECT_TRUE(wanbatch::testing::matches_reference(result.latents.to_floats(),
                                                   c.file->tensor("latents").to_floats(), 2e-5));
}

INSTANTIATE_TEST_SUITE_P(Reference, SamplingLoop,
                         ::testing::Values("unipc_moe_cfg", "dpm_cfg", "euler_moe_nocfg"));
// Image-conditioned loops: TI2V (textimage2video.py: the image latent as latent frame 0 before the
// loop and after every step, timestep 0 on its tokens) and I2V-A14B (y, two experts, boundary
// 0.9).
INSTANTIATE_TEST_SUITE_P(Image, SamplingLoop, ::testing::Values("ti2v_unipc_cfg", "i2v_moe_cfg"));

// The TI2V loop ends with the image latent as frame 0, bit for bit (it is copied in, not mixed).
TEST(SamplingLoopTi2v, KeepsTheFirstFrameExactly) {
  const core::Context ctx = core::Context::cpu();
  wanbatch::testing::SamplingCase c("ti2v_unipc_cfg", ctx);
  const SampleResult result = c.sample(ctx);
  const Tensor& first = c.conditions.first_frame;
  std::vector<float> frame0;
  const std::vector<float> all = result.latents.to_floats();
  const int64_t frames = result.latents.dim(1),
                plane = result.latents.dim(2) * result.latents.dim(3);
  for (int64_t ch = 0; ch < result.latents.dim(0); ++ch) {
    const auto begin = all.begin() + ch * frames * plane;
    frame0.insert(frame0.end(), begin, begin + plane);
  }
  EXPECT_EQ(frame0, first.to_floats());
}

TEST(SamplingLoopTi2v, RejectsAFirstFrameThatDoesNotFit) {
  const core::Context ctx = core::Context::cpu();
  wanbatch::testing::SamplingCase c("ti2v_unipc_cfg", ctx);
  c.options.steps = 1;
  c.conditions.first_frame = Tensor::zeros({48, 2, 4, 6}, core::DType::F32);
  EXPECT_THROW(c.sample(ctx), Error);
  c.conditions.first_frame = Tensor::zeros({48, 1, 4, 4}, core::DType::F32);
  EXPECT_THROW(c.sample(ctx), Error);
}

// The per-step hook (tests/cuda/cuda_step_memory_test.cpp watches device memory with it): once
// per step, in order, after the step's result is in place.
TEST(SamplingLoopHook, RunsAfterEveryStepInOrder) {
  const core::Context ctx = core::Context::cpu();
  wanbatch::testing::SamplingCase c("dpm_cfg", ctx);
  std::vector<int> steps;
  c.options.after_step = [&](int step) { steps.push_back(step); };
  c.sample(ctx);
  std::vector<int> expected(static_cast<size_t>(c.options.steps));
  for (size_t k = 0; k < expected.size(); ++k) expected[k] = static_cast<int>(k);
  EXPECT_EQ(steps, expected);
}

TEST(LatentShape, FollowsTheVaeStrideAndRejectsSizesThatDoNotFit) {
  EXPECT_EQ(latent_shape(16, 832, 480, 81), (core::Shape{16, 21, 60, 104}));
  EXPECT_EQ(latent_shape(48, 1280, 704, 121), (core::Shape{48, 31, 44, 80}));
  EXPECT_EQ(latent_shape(16, 16, 16, 1), (core::Shape{16, 1, 2, 2}));
  try {
    latent_shape(16, 832, 480, 80);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("try 77 or 81"), std::string::npos) << e.what();
  }
  try {
    latent_shape(48, 1280, 720, 121);  // 720 is not a multiple of 32
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("height 720"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("try 704 or 736"), std::string::npos) << e.what();
  }
  EXPECT_THROW(latent_shape(16, 0, 480, 81), Error);
  EXPECT_THROW(latent_shape(20, 832, 480, 81), Error);
}

}  // namespace
}  // namespace wanbatch::model::sampling
