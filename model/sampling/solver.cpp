#include "model/sampling/solver.h"

#include <cmath>

#include "core/error.h"
#include "core/ops.h"

namespace wanbatch::model::sampling {
namespace {

using core::Tensor;

// λ(σ) = log(α/σ) with α = 1 − σ: +∞ at the final σ = 0, where the updates below reduce to x0.
double lambda(double sigma) { return std::log(1.0 - sigma) - std::log(sigma); }

// The last two data predictions x0 = x − σ·v, newest last, in buffers allocated once.
class History {
 public:
  // The buffer the next prediction goes into (it holds the oldest one, which is dropped);
  // push() then makes it the newest.
  Tensor& next(const core::Context& ctx, const core::Shape& shape) {
    if (!newest_.defined() || newest_.shape() != shape) {
      newest_ = Tensor::empty(shape, core::DType::F32, ctx.device());
      older_ = Tensor::empty(shape, core::DType::F32, ctx.device());
      count_ = 0;
    }
    return older_;
  }
  void push() {
    std::swap(newest_, older_);
    ++count_;
  }
  const Tensor& newest() const { return newest_; }  // m0
  const Tensor& older() const { return older_; }    // m1
  int count() const { return count_; }

 private:
  Tensor newest_, older_;
  int count_ = 0;
};

// x0 = x − σ·v into `out`.
void data_prediction(const core::Context& ctx, const Tensor& x, const Tensor& velocity,
                     double sigma, Tensor& out) {
  core::ops::linear_combination(ctx, {1.0, -sigma}, {&x, &velocity}, out);
}

// UniPC (FlowUniPCMultistepScheduler: order 2, bh2, predict x0, lower-order final steps): on every
// step but the first a corrector (UniC) refines the incoming sample with the new prediction, then
// the predictor (UniP) steps on.
class UniPCSolver : public Solver {
 public:
  using Solver::Solver;

 protected:
  void update(const core::Context& ctx, const Tensor& velocity, Tensor& x) override {
    const int k = step_index();
    if (!model_t_.defined() || model_t_.shape() != x.shape()) {
      model_t_ = Tensor::empty(x.shape(), core::DType::F32, ctx.device());
      last_sample_ = Tensor::empty(x.shape(), core::DType::F32, ctx.device());
    }
    // The new prediction comes from the sample as given; the corrector needs it while the
    // history still holds the previous ones, and the history keeps it (not one from the
    // corrected sample).
    data_prediction(ctx, x, velocity, sigma(k), model_t_);
    if (k > 0) correct(ctx, x);
    // Copies as ops, queued on the context's stream (Tensor::copy_from would wait for the device).
    core::ops::cast(ctx, model_t_, history_.next(ctx, x.shape()));
    history_.push();
    // Order 2 once two predictions exist, 1 on the final step (lower_order_final).
    order_ = std::min({2, steps() - k, history_.count()});
    core::ops::cast(ctx, x, last_sample_);
    predict(ctx, x);
  }

 private:
  // B(h) = e^{-h} − 1 (bh2), h φ1 = e^{-h} − 1, and the b vector of the UniC linear system.
  struct Coefficients {
    double h, h_phi_1, b_h;
    std::vector<double> b;
  };
  static Coefficients coefficients(double h, int order) {
    Coefficients c;
    c.h = h;
    const double hh = -h;  // predict x0
    c.h_phi_1 = std::expm1(hh);
    c.b_h = std::expm1(hh);
    double h_phi_k = c.h_phi_1 / hh - 1.0;
    double factorial = 1.0;
    for (int i = 1; i <= order; ++i) {
      c.b.push_back(h_phi_k * factorial / c.b_h);
      factorial *= i + 1;
      h_phi_k = h_phi_k / hh - 1.0 / factorial;
    }
    return c;
  }

  // UniP from sigma k to k + 1 with the history's predictions.
  void predict(const core::Context& ctx, Tensor& x) {
    const int k = step_index();
    const double sigma_t = sigma(k + 1), sigma_s0 = sigma(k), alpha_t = 1.0 - sigma_t;
    const Coefficients c = coefficients(lambda(sigma_t) - lambda(sigma_s0), order_);
    // x_t = σt/σs0·x − αt·hφ1·m0 − αt·B(h)·ρ·D1 with D1 = (m1 − m0)/r1 and ρ = 0.5 for order 2.
    double coef_m0 = -alpha_t * c.h_phi_1, coef_m1 = 0.0;
    if (order_ == 2) {
      const double r1 = (lambda(sigma(k - 1)) - lambda(sigma_s0)) / c.h;
      const double d = alpha_t * c.b_h * 0.5 / r1;
      coef_m0 += d;
      coef_m1 = -d;
    }
    const double coef_x = sigma_t / sigma_s0;
    if (order_ == 2) {
      core::ops::linear_combination(ctx, {coef_x, coef_m0, coef_m1},
                                    {&x, &history_.newest(), &history_.older()}, x);
    } else {
      core::ops::linear_combination(ctx, {coef_x, coef_m0}, {&x, &history_.newest()}, x);
    }
  }

  // UniC at step k: the sample x (predicted from sigma k − 1 out of last_sample_) corrected with
  // model_t_, the new prediction at x, using the order the predictor had.
  void correct(const core::Context& ctx, Tensor& x) {
    const int k = step_index(), order = order_;
    const double sigma_t = sigma(k), sigma_s0 = sigma(k - 1), alpha_t = 1.0 - sigma_t;
    const Coefficients c = coefficients(lambda(sigma_t) - lambda(sigma_s0), order);
    // ρ solves R·ρ = b with R rows rks^(i−1), rks = (r1, 1); order 1 uses ρ = 0.5.
    double rho_d1 = 0.0, rho_t = 0.5, r1 = 1.0;
    if (order == 2) {
      r1 = (lambda(sigma(k - 2)) - lambda(sigma_s0)) / c.h;
      // [[1, 1], [r1, 1]]·(ρ0, ρ1) = (b0, b1)
      rho_d1 = (c.b[0] - c.b[1]) / (1.0 - r1);
      rho_t = c.b[0] - rho_d1;
    }
    // x_t = σt/σs0·x_last − αt·hφ1·m0 − αt·B(h)·(ρ0·(m1 − m0)/r1 + ρ1·(model_t − m0))
    const double a = alpha_t * c.b_h;
    const double coef_x = sigma_t / sigma_s0;
    const double coef_m0 = -alpha_t * c.h_phi_1 + a * rho_d1 / r1 + a * rho_t;
    const double coef_t = -a * rho_t;
    if (order == 2) {
      core::ops::linear_combination(
          ctx, {coef_x, coef_m0, -a * rho_d1 / r1, coef_t},
          {&last_sample_, &history_.newest(), &history_.older(), &model_t_}, x);
    } else {
      core::ops::linear_combination(ctx, {coef_x, coef_m0, coef_t},
                                    {&last_sample_, &history_.newest(), &model_t_}, x);
    }
  }

  History history_;
  Tensor model_t_, last_sample_;
  int order_ = 1;
};

// DPM-Solver++ (FlowDPMSolverMultistepScheduler: order 2, midpoint, lower-order final steps): the
// first step, the last (final sigma 0) and, below 15 steps, nothing else are first order.
class DpmSolver : public Solver {
 public:
  using Solver::Solver;

 protected:
  void update(const core::Context& ctx, const Tensor& velocity, Tensor& x) override {
    const int k = step_index();
    data_prediction(ctx, x, velocity, sigma(k), history_.next(ctx, x.shape()));
    history_.push();
    const double sigma_t = sigma(k + 1), sigma_s0 = sigma(k), alpha_t = 1.0 - sigma_t;
    const double h = lambda(sigma_t) - lambda(sigma_s0);
    const double coef_x = sigma_t / sigma_s0;
    const double phi = -alpha_t * std::expm1(-h);  // −αt·(e^{−h} − 1)
    const bool first_order = history_.count() < 2 || k == steps() - 1;
    if (first_order) {
      core::ops::linear_combination(ctx, {coef_x, phi}, {&x, &history_.newest()}, x);
      return;
    }
    // D0 = m0, D1 = (m0 − m1)/r0 with r0 = h0/h; x_t = σt/σs0·x + φ·D0 + 0.5·φ·D1.
    const double r0 = (lambda(sigma_s0) - lambda(sigma(k - 1))) / h;
    const double d = 0.5 * phi / r0;
    core::ops::linear_combination(ctx, {coef_x, phi + d, -d},
                                  {&x, &history_.newest(), &history_.older()}, x);
  }

 private:
  History history_;
};

// Euler (Lightning): x ← x + (σ_next − σ)·v, the difference taken in float32 as the reference does.
class EulerSolver : public Solver {
 public:
  using Solver::Solver;

 protected:
  void update(const core::Context& ctx, const Tensor& velocity, Tensor& x) override {
    const int k = step_index();
    const float delta = static_cast<float>(sigma(k + 1)) - static_cast<float>(sigma(k));
    core::ops::linear_combination(ctx, {1.0, delta}, {&x, &velocity}, x);
  }
};

}  // namespace

void Solver::step(const core::Context& ctx, const Tensor& velocity, Tensor& x) {
  WB_CHECK(step_index_ < steps(), "solver: all ", steps(), " steps were already taken");
  WB_CHECK(velocity.shape() == x.shape(), "solver: velocity ", velocity.describe(),
           " does not match the sample ", x.describe());
  update(ctx, velocity, x);
  ++step_index_;
}

std::unique_ptr<Solver> make_solver(SolverKind kind, int steps, double shift) {
  Schedule schedule = make_schedule(kind, steps, shift);
  switch (kind) {
    case SolverKind::UniPC:
      return std::make_unique<UniPCSolver>(std::move(schedule));
    case SolverKind::DpmPlusPlus:
      return std::make_unique<DpmSolver>(std::move(schedule));
    case SolverKind::Euler:
      return std::make_unique<EulerSolver>(std::move(schedule));
  }
  throw make_error("unknown solver");
}

}  // namespace wanbatch::model::sampling
