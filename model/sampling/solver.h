// Flow-matching solvers (wan-spec "Solvers and loops"). The model predicts the flow velocity v at
// the sample x and sigma σ; the solvers step x from one sigma of the schedule to the next. UniPC
// and DPM++ work on the data prediction x0 = x − σ·v and keep the last two of them.
//
// Coefficients are computed in double from the float32 sigmas (the official schedulers compute
// some of them in float32: the two differ by about 1e-7 relative) and each update is one
// core::ops::linear_combination, so the solvers run wherever the tensors live.
#pragma once

#include <memory>

#include "core/context.h"
#include "core/tensor.h"
#include "model/sampling/schedule.h"

namespace wanbatch::model::sampling {

class Solver {
 public:
  explicit Solver(Schedule schedule) : schedule_(std::move(schedule)) {}
  virtual ~Solver() = default;

  const Schedule& schedule() const { return schedule_; }
  int steps() const { return static_cast<int>(schedule_.timesteps.size()); }
  // Steps taken so far; the next step starts from sigmas[step_index()].
  int step_index() const { return step_index_; }
  double timestep() const { return schedule_.timesteps.at(static_cast<size_t>(step_index_)); }

  // x ← the sample at the next sigma, given the velocity predicted at x for this step.
  void step(const core::Context& ctx, const core::Tensor& velocity, core::Tensor& x);

 protected:
  virtual void update(const core::Context& ctx, const core::Tensor& velocity, core::Tensor& x) = 0;
  double sigma(int index) const { return schedule_.sigmas.at(static_cast<size_t>(index)); }

 private:
  Schedule schedule_;
  int step_index_ = 0;
};

std::unique_ptr<Solver> make_solver(SolverKind kind, int steps, double shift);

}  // namespace wanbatch::model::sampling
