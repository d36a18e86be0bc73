// The flow-matching noise schedules of Wan's three solvers (wan-spec "Solvers and loops"): which
// timesteps the model sees and which sigmas the solver steps between, reproduced exactly as the
// official schedulers compute them, roundings included.
#pragma once

#include <string>
#include <vector>

namespace wanbatch::model::sampling {

enum class SolverKind {
  UniPC,        // FlowUniPCMultistepScheduler, Wan's default
  DpmPlusPlus,  // FlowDPMSolverMultistepScheduler ("dpm++")
  Euler,        // Wan2.2-Lightning's EulerScheduler (few-step distilled models)
};

// "unipc", "dpm++" (also "dpm"), "euler"; throws listing them otherwise.
SolverKind parse_solver(const std::string& name);
std::string solver_name(SolverKind kind);

struct Schedule {
  // One per step: the value the model is given as its timestep (whole numbers for UniPC and
  // DPM++, which cast to int64; fractional for Euler).
  std::vector<double> timesteps;
  // steps + 1 values, each a float32 as the schedulers store them; the last is 0.
  std::vector<double> sigmas;
};

// The schedule for `steps` steps with the flow shift σ' = shift·σ / (1 + (shift − 1)·σ).
// Throws when steps < 1 or shift ≤ 0.
Schedule make_schedule(SolverKind kind, int steps, double shift);

}  // namespace wanbatch::model::sampling
