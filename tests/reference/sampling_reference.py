#!/usr/bin/python3
"""Independent NumPy reference for the flow-matching solvers and the text-to-video sampling loop.

Writes, into the directory given as argv[1]:
  sampling_schedules.safetensors    for every case "<solver>_<steps>_<shift>" (e.g. "unipc_6_5.0",
                                    "dpm++_50_5.0", "euler_4_5.0"): "<case>.timesteps" [steps] F32,
                                    the exact values the model sees, and "<case>.sigmas" [steps+1]
                                    F32, the float32 sigmas the solver steps with (last one 0).
                                    Metadata "cases": JSON list of
                                    {"name","solver","steps","shift"}.
  sampling_steps.safetensors        teacher-forced solver trajectories on a [4,3,5] latent driven by
                                    a synthetic model that depends on x and t: "<case>.x"
                                    [steps+1,4,3,5] (the sample before each step, then the result),
                                    "<case>.pred" [steps,4,3,5] (the velocity given to each step),
                                    "<case>.timesteps" [steps], "<case>.sigmas" [steps+1]. Solver
                                    step k, given pred[k] and x[k] (after steps 0..k-1 were given
                                    pred[0..k-1] and x[0..k-1]), must return x[k+1].
                                    Metadata "cases" (each entry also has "shape").
  sampling_loop_high.weights.safetensors, sampling_loop_low.weights.safetensors
                                    random weights of two tiny Wan T2V DiTs (the high- and the
                                    low-noise expert; dit_reference.py's tiny config, 16 -> 16
                                    channels), official names, F32.
  sampling_loop_<case>.safetensors  the whole T2V loop for <case> in unipc_moe_cfg, dpm_cfg,
                                    euler_moe_nocfg: inputs "noise" [16,2,4,6], "context" [7,32],
                                    "context_null" [5,32]; expected "latents" [16,2,4,6] (final),
                                    "timesteps" [steps], "experts" [steps] (1 high, 0 low), and as
                                    debugging aids "trajectory" [steps+1,16,2,4,6] (the latents
                                    before each step, then the final) and "preds" [steps,16,2,4,6]
                                    (the guided velocity of each step). Metadata solver, steps,
                                    shift, guide_low, guide_high, boundary ("" for one expert),
                                    num_heads, high_weights, low_weights (file names, "" if unused).
  sampling_loop_ti2v.weights.safetensors, sampling_loop_i2v_{high,low}.weights.safetensors
                                    tiny TI2V (48 -> 48 channels) and I2V (36 -> 16) DiTs.
  sampling_loop_<case>.safetensors  image-conditioned loops, the same tensors and metadata:
                                    ti2v_unipc_cfg (wan/textimage2video.py i2v(): noise
                                    [48,3,4,6] and "first_frame" [48,1,4,6], the image latent that
                                    replaces latent frame 0 before the loop and after every step,
                                    timestep 0 on that frame's tokens), i2v_moe_cfg (Wan2.2
                                    wan/image2video.py: noise [16,3,4,6], "y" [20,3,4,6] = the
                                    frame mask of 9 frames and stand-in latents, two experts,
                                    boundary 0.9).

Where each detail comes from (official code; wan-spec.md "Solvers and loops" summarises it):
- UniPC: Wan2.2 wan/utils/fm_solvers_unipc.py, FlowUniPCMultistepScheduler (order 2, bh2,
  predict_x0, lower_order_final, empty disable_corrector, final_sigmas_type "zero"), built as
  wan/text2video.py builds it: shift=1 in the constructor, set_timesteps(steps, shift=shift).
- DPM++: Wan2.2 wan/utils/fm_solvers.py, FlowDPMSolverMultistepScheduler ("dpmsolver++",
  midpoint, order 2, lower_order_final, final_sigmas_type "zero"), shift=1 in the constructor,
  sigmas from get_sampling_sigmas(steps, shift) through retrieve_timesteps(sigmas=...).
- Euler: Wan2.2-Lightning wan/utils/fm_solvers_euler.py (EulerScheduler) and the "euler" branch of
  its wan/text2video.py (timesteps[:-1]; no unconditional pass when the guide scale is 1).
- The loop: wan/text2video.py (Wan2.2 and Lightning): expert and guide scale picked by
  t >= boundary*1000. Image loops: Wan2.2 wan/image2video.py (y to every DiT call, the msk
  construction) and wan/textimage2video.py i2v() with masks_like of wan/utils/utils.py.
The solver coefficients are computed in float64 from the float32 sigmas (the official code
computes them in float32 torch scalars; wanbatch does them in float64). The DiT is
dit_reference.py's float64 forward. Nothing here is derived from the C++ implementation.

This reference was checked once against the official scheduler classes themselves (run by
PyTorch 2.11 on an H200, with a stand-in for the few diffusers base classes they import): every
schedule here equals the official CUDA one bit for bit, and replaying the step fixtures through
the official step() reproduces x[k+1] to within 4e-7 relative (float32 torch) / 1e-7 (float64).
"""

import json
import os
import sys

import numpy as np

sys.dont_write_bytecode = True  # importing the sibling scripts leaves no __pycache__ behind
from dit_reference import HEADS, TEXT_DIM, dit_forward, random_weights, weight_specs
from safetensors_np import read_safetensors, write_safetensors

SEED = 20250613
NUM_TRAIN_TIMESTEPS = 1000
F32 = np.float32


def f32(a):
    """Rounds to float32 (what a file holds) and returns it as float64 for the reference."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def case_name(solver, steps, shift):
    return f"{solver}_{steps}_{float(shift)!r}"


# ---------------------------------------------------------------- schedules

def shifted(sigma, shift):
    """The timestep shift, written in the official operand order (numpy float64 here)."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def train_sigma_range():
    """sigma_max / sigma_min of the constructors of both multistep schedulers with shift=1.

    alphas = linspace(1, 1/1000, 1000) reversed, sigmas = 1 - alphas (float64), then
    torch float32. The constructor's shift (1) is the identity in float32 (1*s/(1+0*s) = s).
    sigma_max = float32(1 - 0.001) = 0.99900001..., sigma_min = 0 exactly."""
    alphas = np.linspace(1, 1 / NUM_TRAIN_TIMESTEPS, NUM_TRAIN_TIMESTEPS)[::-1].copy()
    sigmas = (1.0 - alphas).astype(np.float32)
    return float(sigmas[0]), float(sigmas[-1])


def finish_multistep(sigmas64):
    """set_timesteps' tail, common to both multistep schedulers (final_sigmas_type "zero"):
    timesteps = sigmas*1000 in float64, then torch .to(int64), which truncates toward zero;
    sigmas get a final 0 and are stored as float32."""
    timesteps = (sigmas64 * NUM_TRAIN_TIMESTEPS).astype(np.int64)
    sigmas = np.concatenate([sigmas64, [0.0]]).astype(np.float32)
    return timesteps.astype(np.float32), sigmas


def unipc_schedule(steps, shift):
    sigma_max, sigma_min = train_sigma_range()
    s = np.linspace(sigma_max, sigma_min, steps + 1).copy()[:-1]  # float64
    return finish_multistep(shifted(s, shift))


def dpm_schedule(steps, shift):
    # get_sampling_sigmas: linspace(1, 0) without the last point, shifted (float64). The first
    # sigma is 1 (timestep 1000), unlike UniPC's 0.999. set_timesteps then applies the
    # constructor's shift=1, the identity in float64 too.
    s = shifted(np.linspace(1, 0, steps + 1)[:steps], shift)
    s = shifted(s, 1)
    return finish_multistep(s)


def euler_schedule(steps, shift):
    """EulerScheduler.set_timesteps + set_shift, emulating torch float32 on CUDA (the official
    scheduler lives on the GPU): linspace(1000, 0, steps+1, dtype=float32) (numpy: float64, then
    cast); sigmas = timesteps / 1000, which PyTorch's CUDA kernel for a tensor divided by a
    Python scalar computes as timesteps * float32(1/1000) (a * reciprocal(b); on the CPU it would
    be a true division, which differs in the last bit for e.g. 750: 0.75000006 against 0.75);
    then shift*s / (1 + (shift-1)*s) and sigmas*1000, every operation rounded to float32.
    Returns (the loop's timesteps = all but the last, the steps+1 sigmas)."""
    t = np.linspace(NUM_TRAIN_TIMESTEPS, 0, steps + 1, dtype=np.float32)
    inv = F32(1.0) / F32(NUM_TRAIN_TIMESTEPS)
    s = t * inv
    s = (F32(shift) * s) / (F32(1.0) + F32(shift - 1) * s)
    timesteps = s * F32(NUM_TRAIN_TIMESTEPS)
    assert s.dtype == np.float32 and timesteps.dtype == np.float32
    return timesteps[:-1].copy(), s


SCHEDULES = {"unipc": unipc_schedule, "dpm++": dpm_schedule, "euler": euler_schedule}


def schedule(solver, steps, shift):
    timesteps, sigmas = SCHEDULES[solver](steps, shift)
    assert timesteps.shape == (steps,) and sigmas.shape == (steps + 1,)
    assert timesteps.dtype == np.float32 and sigmas.dtype == np.float32
    # The multistep schedulers find their first step index by looking the first timestep up in
    # the schedule (index_for_timestep: the SECOND match if it occurs twice); every case here has
    # a unique first timestep, so they start at index 0.
    assert np.count_nonzero(timesteps == timesteps[0]) == 1
    return timesteps, sigmas


# ---------------------------------------------------------------- solvers (float64)

def lam(sigma):
    """log-SNR lambda = log(alpha) - log(sigma) with alpha = 1 - sigma. sigma = 0 gives +inf
    and sigma = 1 gives -inf, which the formulas below then carry through IEEE arithmetic exactly
    as the official code does in float32: the final step returns the x0 prediction, and a step
    from sigma = 1 reduces to first order."""
    with np.errstate(divide="ignore"):
        return np.log(1.0 - sigma) - np.log(sigma)


class UniPC:
    """FlowUniPCMultistepScheduler.step: order 2, bh2, predict_x0, lower_order_final, corrector on
    every step but the first. sigmas: the float32 schedule incl. the final 0."""

    def __init__(self, sigmas):
        self.s = np.asarray(sigmas, dtype=np.float64)
        self.n = len(sigmas) - 1  # len(timesteps)
        self.m = []  # x0 predictions of the latest steps, newest last (model_outputs)
        self.last_sample = None
        self.this_order = None
        self.lower_order_nums = 0
        self.i = 0  # step_index

    def _coeffs(self, t, s0):
        h = lam(self.s[t]) - lam(self.s[s0])
        hh = -h  # predict_x0
        h_phi_1 = np.expm1(hh)
        return h, hh, h_phi_1, np.expm1(hh)  # B(h) = expm1(hh) for bh2

    def _predictor(self, x, order):
        """multistep_uni_p_bh_update from sigma_i to sigma_{i+1}; m[-1] is this step's x0."""
        i = self.i
        h, hh, h_phi_1, b_h = self._coeffs(i + 1, i)
        alpha_t, sig_t, sig_s0 = 1.0 - self.s[i + 1], self.s[i + 1], self.s[i]
        m0 = self.m[-1]
        x_t = sig_t / sig_s0 * x - alpha_t * h_phi_1 * m0
        if order == 2:
            rk = (lam(self.s[i - 1]) - lam(self.s[i])) / h
            d1 = (self.m[-2] - m0) / rk
            # The official code fixes rhos_p = [0.5] for order 2 (no linear solve).
            x_t = x_t - alpha_t * b_h * (0.5 * d1)
        return x_t

    def _corrector(self, model_t, last_sample, order):
        """multistep_uni_c_bh_update: re-does the last step sigma_{i-1} -> sigma_i from
        last_sample with the new x0 prediction model_t; m[-1] is the previous step's x0."""
        i = self.i
        h, hh, h_phi_1, b_h = self._coeffs(i, i - 1)
        alpha_t, sig_t, sig_s0 = 1.0 - self.s[i], self.s[i], self.s[i - 1]
        m0 = self.m[-1]
        rks, d1s = [], []
        if order == 2:
            rk = (lam(self.s[i - 2]) - lam(self.s[i - 1])) / h
            rks.append(rk)
            d1s.append((self.m[-2] - m0) / rk)
        rks.append(1.0)
        rks = np.array(rks)
        # R[k-1] = rks^(k-1); b[k-1] = h_phi_k * k! / B(h), h_phi_k built by the recurrence
        # h_phi_{k+1} = h_phi_k / hh - 1/(k+1)!.
        R, b = [], []
        h_phi_k = h_phi_1 / hh - 1.0
        factorial = 1
        for k in range(1, order + 1):
            R.append(rks ** (k - 1))
            b.append(h_phi_k * factorial / b_h)
            factorial *= k + 1
            h_phi_k = h_phi_k / hh - 1.0 / factorial
        if order == 1:
            rhos_c = np.array([0.5])  # fixed, not the solve (whose answer would be b[0])
        else:
            rhos_c = np.linalg.solve(np.stack(R), np.array(b))
        x_t = sig_t / sig_s0 * last_sample - alpha_t * h_phi_1 * m0
        corr = sum(r * d for r, d in zip(rhos_c[:-1], d1s)) if d1s else 0.0
        return x_t - alpha_t * b_h * (corr + rhos_c[-1] * (model_t - m0))

    def step(self, pred, x):
        i = self.i
        # convert_model_output: x0 from the sample as given (before the corrector touches it).
        x0 = x - self.s[i] * pred
        if i > 0 and self.last_sample is not None:
            x = self._corrector(x0, self.last_sample, self.this_order)
        self.m = (self.m + [x0])[-2:]
        # lower_order_final applies whatever the step count (no "< 15" test in this scheduler),
        # so the last step is always first order; warm-up limits the order to steps done + 1.
        order = min(2, self.n - i, self.lower_order_nums + 1)
        self.this_order = order
        self.last_sample = x  # the corrected sample
        out = self._predictor(x, order)
        self.lower_order_nums = min(self.lower_order_nums + 1, 2)
        self.i += 1
        return out


class DPMpp:
    """FlowDPMSolverMultistepScheduler.step: "dpmsolver++", midpoint, order 2."""

    def __init__(self, sigmas):
        self.s = np.asarray(sigmas, dtype=np.float64)
        self.n = len(sigmas) - 1
        self.m = []
        self.lower_order_nums = 0
        self.i = 0

    def step(self, pred, x):
        i = self.i
        x0 = x - self.s[i] * pred
        self.m = (self.m + [x0])[-2:]
        # lower_order_final: the last step is first order (final_sigmas_type "zero" alone
        # forces it). lower_order_second (second-to-last step, < 15 steps) only demotes third
        # order to second, so with solver_order 2 it changes nothing.
        final = i == self.n - 1
        sig_t, sig_s0 = self.s[i + 1], self.s[i]
        alpha_t = 1.0 - sig_t
        h = lam(sig_t) - lam(sig_s0)
        if self.lower_order_nums < 1 or final:
            x_t = sig_t / sig_s0 * x - alpha_t * (np.exp(-h) - 1.0) * x0
        else:
            h_0 = lam(sig_s0) - lam(self.s[i - 1])
            r0 = h_0 / h
            d0, d1 = self.m[-1], (1.0 / r0) * (self.m[-1] - self.m[-2])
            # From sigma_{i-1} = 1 (the first dpm++ sigma) h_0 = inf, so D1 = 0: the second step
            # is in effect first order too.
            x_t = (sig_t / sig_s0 * x - alpha_t * (np.exp(-h) - 1.0) * d0
                   - 0.5 * alpha_t * (np.exp(-h) - 1.0) * d1)
        self.lower_order_nums = min(self.lower_order_nums + 1, 2)
        self.i += 1
        return x_t


class Euler:
    """EulerScheduler.step: x + (sigma_next - sigma) * pred. (Officially the difference is a
    float32 subtraction; here float64 of the float32 sigmas.)"""

    def __init__(self, sigmas):
        self.s = np.asarray(sigmas, dtype=np.float64)
        self.i = 0

    def step(self, pred, x):
        out = x + (self.s[self.i + 1] - self.s[self.i]) * pred
        self.i += 1
        return out


SOLVERS = {"unipc": UniPC, "dpm++": DPMpp, "euler": Euler}


def run_solver(solver, sigmas, x, model, timesteps):
    """Plain (not teacher-forced) float64 run; model(x, t, sigma) -> velocity."""
    sch = SOLVERS[solver](sigmas)
    with np.errstate(invalid="raise"):
        for k, t in enumerate(timesteps):
            x = sch.step(model(x, t, sigmas[k]), x)
    return x


# ---------------------------------------------------------------- self-checks

def self_check_schedules():
    # wan-spec.md "Solvers and loops": UniPC 6 steps shift 5 -> 999, 961, 908, ...
    t, s = schedule("unipc", 6, 5.0)
    assert list(t[:3]) == [999, 961, 908], t
    assert s[-1] == 0 and np.all(np.diff(s) < 0)
    s_max = float(F32(0.999))  # the constructor's float32 sigma_max, 0.99900001287...
    assert s[0] == F32(5 * s_max / (1 + 4 * s_max))
    # Lightning Euler 4 steps shift 5 -> 1000, 937.5, 833.33, 625 (937.50006 in float32 on CUDA).
    t, s = schedule("euler", 4, 5.0)
    assert np.allclose(t, [1000, 937.5, 833.3333, 625], rtol=0, atol=1e-4), t
    assert t[1] == np.float32(937.50006) and t[0] == 1000 and t[3] == 625
    # ... which is the exact formula up to float32 rounding.
    tt = np.linspace(1000, 0, 5)
    exact = 1000 * shifted(tt / 1000, 5.0)
    assert np.allclose(s * 1000, exact, rtol=1e-6) and np.allclose(t, exact[:-1], rtol=1e-6)
    # DPM++ starts at sigma 1 (timestep 1000) and truncates like UniPC.
    t, s = schedule("dpm++", 6, 5.0)
    assert t[0] == 1000 and s[0] == 1 and s[-1] == 0
    assert np.array_equal(t, np.floor(1000 * shifted(np.linspace(1, 0, 7)[:6], 5.0)))
    # Shift 1 UniPC: linspace from 0.999 down, truncated.
    t, _ = schedule("unipc", 4, 1.0)
    assert list(t) == [999, 749, 499, 249], t


def self_check_solvers(rng):
    # A straight-line flow x = (1-sigma) D + sigma E with the exact velocity E - D: every solver
    # is exact at every step, whatever its order (the higher-order terms vanish).
    D, E = rng.normal(size=7), rng.normal(size=7)
    for solver, steps, shift in [("unipc", 7, 5.0), ("dpm++", 7, 5.0), ("euler", 4, 5.0),
                                 ("unipc", 2, 3.0), ("dpm++", 1, 5.0)]:
        t, s = schedule(solver, steps, shift)
        sch = SOLVERS[solver](s)
        x = (1 - float(s[0])) * D + float(s[0]) * E
        for k in range(steps):
            x = sch.step(E - D, x)
            sk = float(s[k + 1])
            assert np.allclose(x, (1 - sk) * D + sk * E, rtol=0, atol=1e-12), (solver, k)
        assert np.allclose(x, D, rtol=0, atol=1e-12)

    # A first-order data-prediction step is the Euler step: the first UniPC and DPM++ steps.
    x, v = rng.normal(size=7), rng.normal(size=7)
    for solver in ("unipc", "dpm++"):
        t, s = schedule(solver, 7, 5.0)
        got = SOLVERS[solver](s).step(v, x)
        assert np.allclose(got, Euler(s).step(v, x), rtol=0, atol=1e-13), solver

    # Convergence on a known trajectory x(sigma) = (1-sigma) D(sigma) + sigma E, D = cos(3 sigma)
    # + sigma^2, whose velocity the 'model' returns (ignoring x): the exact answer is x(0) = 1.
    # Euler's error halves when the steps double; the second-order multistep solvers end far
    # closer and converge faster than first order (a sign or factor slip in their second-order
    # terms breaks that).
    def velocity(x, t, sig):
        sig = float(sig)
        d, dd = np.cos(3 * sig) + sig ** 2, -3 * np.sin(3 * sig) + 2 * sig
        return np.array([-d + (1 - sig) * dd + E[0]])

    errors = {}
    for solver in ("euler", "unipc", "dpm++"):
        errs = []
        for steps in (10, 20, 40):
            t, s = schedule(solver, steps, 1.0)
            s0 = float(s[0])
            x = np.array([(1 - s0) * (np.cos(3 * s0) + s0 ** 2) + s0 * E[0]])
            errs.append(abs(run_solver(solver, s, x, velocity, t)[0] - 1.0))
        errors[solver] = errs
    rates = {k: (e[0] / e[1], e[1] / e[2]) for k, e in errors.items()}
    assert all(1.7 < r < 2.3 for r in rates["euler"]), errors
    for solver in ("unipc", "dpm++"):
        assert min(rates[solver]) > 3.0, errors
        assert errors[solver][2] < 0.1 * errors["euler"][2], errors

    # The last UniPC / DPM++ step returns the x0 prediction of the sample it was given (for
    # UniPC: of the sample before the corrector, as convert_model_output sees it).
    for solver in ("unipc", "dpm++"):
        t, s = schedule(solver, 5, 5.0)
        sch = SOLVERS[solver](s)
        x = rng.normal(size=7)
        for k in range(5):
            v = rng.normal(size=7)
            out = sch.step(v, x)
            if k == 4:
                assert np.array_equal(out, x - float(s[4]) * v), solver
            x = out


# ---------------------------------------------------------------- fixture A: schedules

SCHEDULE_CASES = [("unipc", 6, 5.0), ("unipc", 50, 8.0), ("unipc", 40, 12.0), ("unipc", 1, 5.0),
                  ("unipc", 2, 3.0), ("dpm++", 6, 5.0), ("dpm++", 50, 5.0), ("dpm++", 1, 5.0),
                  ("euler", 4, 5.0), ("euler", 8, 3.0), ("euler", 1, 5.0)]


def case_list(cases):
    return [{"name": case_name(*c), "solver": c[0], "steps": c[1], "shift": c[2]} for c in cases]


def write_schedules(outdir):
    tensors = {}
    for solver, steps, shift in SCHEDULE_CASES:
        t, s = schedule(solver, steps, shift)
        name = case_name(solver, steps, shift)
        tensors[name + ".timesteps"] = t
        tensors[name + ".sigmas"] = s
    meta = {"wanbatch": "sampling_reference.py solver schedules",
            "cases": json.dumps(case_list(SCHEDULE_CASES))}
    path = os.path.join(outdir, "sampling_schedules.safetensors")
    write_safetensors(path, tensors, meta)
    check_file(path, tensors)
    return tensors


# ---------------------------------------------------------------- fixture B: solver steps

STEP_CASES = [("unipc", 7, 5.0), ("dpm++", 7, 5.0), ("euler", 4, 5.0), ("unipc", 3, 8.0),
              ("dpm++", 2, 3.0)]
STEP_SHAPE = (4, 3, 5)


def synthetic_model(target):
    """A deterministic 'model' whose velocity depends on x and t (so each step's prediction
    depends on the solver's history): it pulls x towards `target` with a t-dependent wobble."""
    def model(x, t):
        return 0.9 * x - target + 0.25 * np.sin(2.0 * x + t / 200.0)
    return model


def write_steps(outdir, rng):
    target = rng.normal(size=STEP_SHAPE)
    model = synthetic_model(target)
    x_init = f32(rng.normal(size=STEP_SHAPE))
    tensors = {}
    for solver, steps, shift in STEP_CASES:
        t, s = schedule(solver, steps, shift)
        sch = SOLVERS[solver](s)
        xs, preds = [x_init], []
        for k in range(steps):
            pred = f32(model(xs[k], float(t[k])))
            # Teacher forcing: the solver gets exactly the float32 values the file holds.
            with np.errstate(invalid="raise"):
                out = sch.step(pred, xs[k])
            assert np.all(np.isfinite(out))
            if solver == "euler":
                assert np.array_equal(out, xs[k] + (float(s[k + 1]) - float(s[k])) * pred)
            if solver != "euler" and k == steps - 1:
                assert np.array_equal(out, xs[k] - float(s[k]) * pred), "last step = x0"
            if k == 0:
                assert np.allclose(out, xs[0] + (float(s[1]) - float(s[0])) * pred, atol=1e-12)
            preds.append(pred)
            xs.append(f32(out))
        name = case_name(solver, steps, shift)
        tensors[name + ".x"] = np.stack(xs).astype(np.float32)
        tensors[name + ".pred"] = np.stack(preds).astype(np.float32)
        tensors[name + ".timesteps"] = t
        tensors[name + ".sigmas"] = s
    # The solvers' higher-order terms matter on this model: UniPC and DPM++ trajectories differ
    # from Euler steps taken with the same predictions.
    for solver, steps, shift in STEP_CASES[:2]:
        name = case_name(solver, steps, shift)
        x, p, s = tensors[name + ".x"], tensors[name + ".pred"], tensors[name + ".sigmas"]
        eul = x[2].astype(np.float64) + (float(s[3]) - float(s[2])) * p[2]
        assert np.max(np.abs(eul - x[3])) > 1e-3, name
    cases = case_list(STEP_CASES)
    for c in cases:
        c["shape"] = list(STEP_SHAPE)
    meta = {"wanbatch": "sampling_reference.py teacher-forced solver steps",
            "cases": json.dumps(cases)}
    path = os.path.join(outdir, "sampling_steps.safetensors")
    write_safetensors(path, tensors, meta)
    check_file(path, tensors)
    return tensors


# ---------------------------------------------------------------- fixture C: the T2V loop

NOISE_SHAPE = (16, 2, 4, 6)
LOOP_CASES = [
    # name, solver, steps, shift, guide (low, high), boundary (None: the low expert alone)
    ("unipc_moe_cfg", "unipc", 6, 5.0, (3.0, 4.0), 0.875),
    ("dpm_cfg", "dpm++", 5, 5.0, (5.0, 5.0), None),
    ("euler_moe_nocfg", "euler", 4, 5.0, (1.0, 1.0), 0.875),
]
WEIGHT_FILES = {"high": "sampling_loop_high.weights.safetensors",
                "low": "sampling_loop_low.weights.safetensors"}


def t2v_loop(experts, noise, context, context_null, solver, steps, shift, guide, boundary,
             y=None, first_frame=None):
    """wan/text2video.py generate(): noise -> latents, everything in float64. With y: Wan2.2
    wan/image2video.py's loop (the same, y given to every DiT call). With first_frame (the image
    latent z [C,1,h,w]): wan/textimage2video.py's i2v loop (see ti2v_mask_and_timesteps)."""
    timesteps, sigmas = schedule(solver, steps, shift)
    sch = SOLVERS[solver](sigmas)
    x = noise
    if first_frame is not None:
        mask2 = ti2v_mask(noise)
        x = (1.0 - mask2) * first_frame + mask2 * x
    traj, preds, used = [x], [], []
    for t in timesteps:
        t = float(t)
        high = boundary is not None and t >= boundary * NUM_TRAIN_TIMESTEPS
        p = experts["high" if high else "low"]
        g = guide[1] if high else guide[0]  # guide_scale = (low, high)
        ts = np.array([t]) if first_frame is None else ti2v_timesteps(mask2, t)
        cond = dit_forward(p, x, ts, context, y=y)
        # Wan2.2 always runs the unconditional pass; Lightning skips it when the scale is 1
        # (use_cfg: |g - 1| > 1e-6), which gives the same result up to rounding.
        if g != 1.0:
            uncond = dit_forward(p, x, ts, context_null, y=y)
            pred = uncond + g * (cond - uncond)
        else:
            pred = cond
        x = sch.step(pred, x)
        if first_frame is not None:
            x = (1.0 - mask2) * first_frame + mask2 * x
        traj.append(x)
        preds.append(pred)
        used.append(1.0 if high else 0.0)
    return x, timesteps, np.array(used, dtype=np.float32), np.stack(traj), np.stack(preds)


def ti2v_mask(latent):
    """masks_like([noise], zero=True)[1][0] (wan/utils/utils.py, no generator): ones shaped like
    the latent, latent frame 0 zeroed."""
    mask2 = np.ones_like(latent)
    mask2[:, 0] = 0.0
    return mask2


def ti2v_timesteps(mask2, t, seq_len=None):
    """textimage2video.py's temp_ts: (mask2[0][:, ::2, ::2] * t).flatten() (channel 0 of the
    mask, subsampled by the 1x2x2 patch: one value per token in (f, h, w) order), padded with t
    to seq_len (the sequence-parallel padding; none here)."""
    ts = (mask2[0][:, ::2, ::2] * t).reshape(-1)
    seq_len = ts.size if seq_len is None else seq_len
    return np.concatenate([ts, np.full(seq_len - ts.size, t)])


def i2v_mask(frames, lat_h, lat_w):
    """Wan2.2 wan/image2video.py's msk, step by step: ones [1, F, h, w], frames 1.. zeroed, frame
    0 repeated 4 times in front of the rest, viewed [1, (F+3)/4, 4, h, w], transposed to
    [4, (F-1)/4+1, h, w]."""
    msk = np.ones((1, frames, lat_h, lat_w))
    msk[:, 1:] = 0
    msk = np.concatenate([np.repeat(msk[:, 0:1], 4, axis=1), msk[:, 1:]], axis=1)
    msk = msk.reshape(1, msk.shape[1] // 4, 4, lat_h, lat_w)
    return np.ascontiguousarray(msk.transpose(0, 2, 1, 3, 4)[0])


# Image-conditioned loops: the TI2V-5B loop with a given image latent (one 48 -> 48 model), and
# the I2V-A14B loop with y (two 36 -> 16 experts, the I2V boundary 0.9).
IMAGE_LOOP_CASES = [
    # name, solver, steps, shift, guide (low, high), boundary, latent channels, video frames
    ("ti2v_unipc_cfg", "unipc", 4, 5.0, (5.0, 5.0), None, 48, 9),
    ("i2v_moe_cfg", "unipc", 4, 5.0, (3.0, 4.0), 0.9, 16, 9),
]
IMAGE_WEIGHT_FILES = {"ti2v": "sampling_loop_ti2v.weights.safetensors",
                      "i2v_high": "sampling_loop_i2v_high.weights.safetensors",
                      "i2v_low": "sampling_loop_i2v_low.weights.safetensors"}
IMAGE_LATENT_HW = (4, 6)


def write_image_loops(outdir, context, context_null):
    specs = {"ti2v": weight_specs(48, 48, False), "i2v_high": weight_specs(36, 16, False),
             "i2v_low": weight_specs(36, 16, False)}
    w64 = {}
    for i, (which, fname) in enumerate(IMAGE_WEIGHT_FILES.items()):
        w32 = random_weights(np.random.default_rng([SEED, 10 + i]), specs[which])
        path = os.path.join(outdir, fname)
        write_safetensors(path, w32, {"format": "pt",
                                      "wanbatch": f"sampling_reference.py {which} model"})
        check_file(path, w32)
        w64[which] = {n: a.astype(np.float64) for n, a in w32.items()}

    rng = np.random.default_rng([SEED, 20])
    report = []
    for name, solver, steps, shift, guide, boundary, channels, frames in IMAGE_LOOP_CASES:
        f = (frames - 1) // 4 + 1
        noise = f32(rng.normal(size=(channels, f) + IMAGE_LATENT_HW))
        tensors = {"noise": noise, "context": context, "context_null": context_null}
        extra = {}
        if name.startswith("ti2v"):
            experts = {"low": w64["ti2v"]}
            first = f32(rng.normal(size=(channels, 1) + IMAGE_LATENT_HW))
            tensors["first_frame"] = first
            extra["first_frame"] = first
            weights = {"high": "", "low": IMAGE_WEIGHT_FILES["ti2v"]}
        else:
            experts = {"high": w64["i2v_high"], "low": w64["i2v_low"]}
            mask = i2v_mask(frames, *IMAGE_LATENT_HW)
            # The mask: channel c of latent frame j is 1 exactly for j = 0.
            assert mask.shape == (4, f) + IMAGE_LATENT_HW
            assert np.all(mask[:, 0] == 1) and np.all(mask[:, 1:] == 0)
            # Stand-in VAE latents of [image; zeros] (the VAE has its own test).
            y = np.concatenate([mask, f32(rng.normal(size=(16, f) + IMAGE_LATENT_HW))])
            tensors["y"] = y
            extra["y"] = y
            weights = {"high": IMAGE_WEIGHT_FILES["i2v_high"], "low": IMAGE_WEIGHT_FILES["i2v_low"]}
        latents, timesteps, used, traj, preds = t2v_loop(
            experts, noise, context, context_null, solver, steps, shift, guide, boundary, **extra)
        if boundary is not None:
            assert 0 < used.sum() < steps, f"{name}: both experts must be used ({used})"
        assert np.all(np.isfinite(latents)) and 0.05 < np.std(latents) < 20, name
        plain = t2v_loop(experts, noise, context, context_null, solver, steps, shift,
                         (1.0, 1.0), boundary, **extra)[0]
        assert np.max(np.abs(plain - latents)) > 1e-2 * np.max(np.abs(latents)), name
        if "first_frame" in extra:
            # The loop returns the image latent as frame 0, exactly.
            assert np.array_equal(latents[:, :1], extra["first_frame"]), name
            # The per-token timesteps matter: the first frame's tokens at t instead of 0 change
            # the other frames visibly.
            x = (1.0 - ti2v_mask(noise)) * extra["first_frame"] + ti2v_mask(noise) * noise
            t0 = float(timesteps[0])
            a = dit_forward(experts["low"], x, ti2v_timesteps(ti2v_mask(noise), t0), context)
            b = dit_forward(experts["low"], x, np.array([t0]), context)
            assert np.max(np.abs(a[:, 1:] - b[:, 1:])) > 1e-3 * np.max(np.abs(b)), name
        else:
            # y matters: other condition latents give another result.
            other = dict(extra, y=np.concatenate([extra["y"][:4], 0.5 * extra["y"][4:]]))
            alt = t2v_loop(experts, noise, context, context_null, solver, steps, shift, guide,
                           boundary, **other)[0]
            assert np.max(np.abs(alt - latents)) > 1e-2 * np.max(np.abs(latents)), name
        tensors.update({"latents": latents, "timesteps": timesteps, "experts": used,
                        "trajectory": traj, "preds": preds})
        meta = {"wanbatch": f"sampling_reference.py image loop {name}", "case": name,
                "solver": solver, "steps": str(steps), "shift": repr(float(shift)),
                "guide_low": repr(float(guide[0])), "guide_high": repr(float(guide[1])),
                "boundary": "" if boundary is None else repr(float(boundary)),
                "num_heads": str(HEADS), "high_weights": weights["high"],
                "low_weights": weights["low"]}
        path = os.path.join(outdir, f"sampling_loop_{name}.safetensors")
        write_safetensors(path, tensors, meta)
        check_file(path, tensors, meta)
        report.append((name, timesteps, used, latents))
    return report


def write_loops(outdir):
    specs = weight_specs(16, 16, False)
    w32 = {"high": random_weights(np.random.default_rng([SEED, 1]), specs),
           "low": random_weights(np.random.default_rng([SEED, 2]), specs)}
    for which, fname in WEIGHT_FILES.items():
        path = os.path.join(outdir, fname)
        meta = {"format": "pt", "wanbatch": f"sampling_reference.py {which}-noise expert"}
        write_safetensors(path, w32[which], meta)
        check_file(path, w32[which])
    experts = {k: {n: a.astype(np.float64) for n, a in w.items()} for k, w in w32.items()}

    rng = np.random.default_rng([SEED, 3])
    noise = f32(rng.normal(size=NOISE_SHAPE))
    # Contexts with std 3: 7 or 5 real rows among 512 (the zero padding rows are attended to too),
    # so wider values make the conditional and unconditional predictions differ more visibly.
    context = f32(rng.normal(0.0, 3.0, size=(7, TEXT_DIM)))
    context_null = f32(rng.normal(0.0, 3.0, size=(5, TEXT_DIM)))

    # CFG with scale 1 is the conditional prediction (what skipping the unconditional pass uses).
    p = experts["low"]
    cond = dit_forward(p, noise, np.array([500.0]), context)
    uncond = dit_forward(p, noise, np.array([500.0]), context_null)
    assert np.allclose(uncond + 1.0 * (cond - uncond), cond, rtol=0, atol=1e-13)
    assert np.max(np.abs(cond - uncond)) > 1e-2  # ... and the two contexts do differ

    report = []
    for name, solver, steps, shift, guide, boundary in LOOP_CASES:
        latents, timesteps, used, traj, preds = t2v_loop(
            experts, noise, context, context_null, solver, steps, shift, guide, boundary)
        if boundary is not None:
            assert 0 < used.sum() < steps, f"{name}: both experts must be used ({used})"
        else:
            assert used.sum() == 0
        assert np.all(np.isfinite(latents)) and 0.05 < np.std(latents) < 20, name
        if guide != (1.0, 1.0):
            # Guidance visibly changes the result (a test can tell a skipped or swapped pass).
            plain = t2v_loop(experts, noise, context, context_null, solver, steps, shift,
                             (1.0, 1.0), boundary)[0]
            assert np.max(np.abs(plain - latents)) > 1e-2 * np.max(np.abs(latents)), name
        tensors = {"noise": noise, "context": context, "context_null": context_null,
                   "latents": latents, "timesteps": timesteps, "experts": used,
                   "trajectory": traj, "preds": preds}
        meta = {"wanbatch": f"sampling_reference.py T2V loop {name}", "case": name,
                "solver": solver, "steps": str(steps), "shift": repr(float(shift)),
                "guide_low": repr(float(guide[0])), "guide_high": repr(float(guide[1])),
                "boundary": "" if boundary is None else repr(float(boundary)),
                "num_heads": str(HEADS),
                "high_weights": WEIGHT_FILES["high"] if boundary is not None else "",
                "low_weights": WEIGHT_FILES["low"]}
        path = os.path.join(outdir, f"sampling_loop_{name}.safetensors")
        write_safetensors(path, tensors, meta)
        check_file(path, tensors, meta)
        report.append((name, timesteps, used, latents))
    return report + write_image_loops(outdir, context, context_null)


def check_file(path, tensors, meta=None):
    """Reads the file back: it holds exactly the float32 values the reference used."""
    got, got_meta, dtypes = read_safetensors(path)
    assert list(got) == list(tensors), path
    for k, v in tensors.items():
        assert dtypes[k] == "F32" and np.array_equal(got[k], np.asarray(v, np.float32)), (path, k)
    for k, v in (meta or {}).items():
        assert got_meta[k] == v, (path, k)


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUTPUT_DIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    self_check_schedules()
    self_check_solvers(np.random.default_rng([SEED, 100]))
    sched = write_schedules(outdir)
    write_steps(outdir, np.random.default_rng([SEED, 4]))
    report = write_loops(outdir)
    print("sampling_reference: unipc_6_5.0 timesteps", sched["unipc_6_5.0.timesteps"].tolist())
    print("sampling_reference: euler_4_5.0 timesteps", sched["euler_4_5.0.timesteps"].tolist())
    for name, timesteps, used, latents in report:
        print(f"sampling_reference: loop {name}: timesteps {timesteps.tolist()} experts "
              f"{used.astype(int).tolist()} latents std {np.std(latents):.4f}")


if __name__ == "__main__":
    main()
