#include "model/sampling/schedule.h"

#include <cmath>
#include <cstdint>

#include "core/error.h"

namespace wanbatch::model::sampling {
namespace {

constexpr int kTrainTimesteps = 1000;

// numpy.linspace(start, stop, num) with its endpoint: start + i·step, the last value exactly stop.
std::vector<double> linspace(double start, double stop, int num) {
  std::vector<double> values(static_cast<size_t>(num));
  const double step = num > 1 ? (stop - start) / (num - 1) : 0.0;
  for (int i = 0; i < num; ++i) values[static_cast<size_t>(i)] = i * step + start;
  if (num > 1) values.back() = stop;
  return values;
}

double shifted(double shift, double sigma) { return shift * sigma / (1 + (shift - 1) * sigma); }

// UniPC and DPM++ share the tail of set_timesteps: shifted float64 sigmas → int64 timesteps
// (truncated), sigmas stored as float32 with a final 0.
Schedule integer_schedule(const std::vector<double>& sigmas) {
  Schedule s;
  for (double sigma : sigmas) {
    s.timesteps.push_back(static_cast<double>(static_cast<int64_t>(sigma * kTrainTimesteps)));
    s.sigmas.push_back(static_cast<float>(sigma));
  }
  s.sigmas.push_back(0.0);
  return s;
}

}  // namespace

SolverKind parse_solver(const std::string& name) {
  if (name == "unipc") return SolverKind::UniPC;
  if (name == "dpm++" || name == "dpm") return SolverKind::DpmPlusPlus;
  if (name == "euler") return SolverKind::Euler;
  throw make_error("unknown solver '", name, "' (known: unipc, dpm++, euler)");
}

std::string solver_name(SolverKind kind) {
  switch (kind) {
    case SolverKind::UniPC:
      return "unipc";
    case SolverKind::DpmPlusPlus:
      return "dpm++";
    case SolverKind::Euler:
      return "euler";
  }
  return "?";
}

Schedule make_schedule(SolverKind kind, int steps, double shift) {
  WB_CHECK(steps >= 1, "sampling steps must be at least 1, got ", steps);
  WB_CHECK(shift > 0 && std::isfinite(shift), "the flow shift must be positive, got ", shift);
  switch (kind) {
    case SolverKind::UniPC: {
      // The scheduler is built with shift 1: its training sigmas 1 − linspace(1, 1/1000, 1000)
      // reversed, as float32, give sigma_max = float32(0.999) and sigma_min = 0; set_timesteps then
      // spaces steps + 1 values between them in float64, drops the last and applies the shift.
      const double sigma_max = static_cast<float>(1.0 - 1.0 / kTrainTimesteps);
      std::vector<double> sigmas = linspace(sigma_max, 0.0, steps + 1);
      sigmas.pop_back();
      for (double& sigma : sigmas) sigma = shifted(shift, sigma);
      return integer_schedule(sigmas);
    }
    case SolverKind::DpmPlusPlus: {
      // get_sampling_sigmas: linspace(1, 0, steps + 1) without its last value, shifted; the
      // scheduler's own shift is 1.
      std::vector<double> sigmas = linspace(1.0, 0.0, steps + 1);
      sigmas.pop_back();
      for (double& sigma : sigmas) sigma = shifted(shift, sigma);
      return integer_schedule(sigmas);
    }
    case SolverKind::Euler: {
      // Lightning's EulerScheduler works in float32 throughout: timesteps linspace(1000, 0) as
      // float32, σ = t / 1000, shifted, and t = σ·1000; the loop skips the final t = 0. It runs
      // on CUDA, where PyTorch divides a tensor by a scalar as a product with the float32
      // reciprocal: hence t · float32(1/1000), which gives 937.50006 where t / 1000 gives 937.5.
      Schedule s;
      const float f_shift = static_cast<float>(shift);
      const float f_shift_minus_one = static_cast<float>(shift - 1);
      const float inverse = 1.0f / static_cast<float>(kTrainTimesteps);
      for (double t : linspace(kTrainTimesteps, 0.0, steps + 1)) {
        const float sigma = static_cast<float>(t) * inverse;
        const float shifted_sigma = f_shift * sigma / (1.0f + f_shift_minus_one * sigma);
        s.sigmas.push_back(shifted_sigma);
        s.timesteps.push_back(shifted_sigma * static_cast<float>(kTrainTimesteps));
      }
      s.timesteps.pop_back();
      return s;
    }
  }
  throw make_error("unknown solver");
}

}  // namespace wanbatch::model::sampling
