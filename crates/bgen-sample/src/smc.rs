//! Sequential Monte Carlo from the proposal to the target: the path
//! E_t = (1 - t) E_src + t E_target for t = 1/K, 2/K, ..., 1 (ending exactly at the target),
//! Jarzynski weight increments -(E_target - E_src) dt, resampling when the ESS falls below a
//! threshold and always at the end, and Langevin moves at every level: unadjusted (ULA) or
//! Metropolis-adjusted (MALA) with the step size adapted toward a target acceptance rate.

mod kernel;

use crate::ess::{ess, log_sum_exp};
use crate::proposal::Proposal;
use crate::resample::{gather, Scheme};
use bgen_system::Target;
use kernel::{draw, drawn, hmc_round, move_particles, Counts, Ends, Trajectory};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

/// Settings of [`smc`].
#[derive(Clone, Copy, Debug, Serialize)]
pub struct SmcOptions {
    /// Annealing levels K (t_k = k / K).
    pub steps: usize,
    /// Langevin moves per level.
    pub moves_per_step: usize,
    /// Initial Langevin step size h (coordinate units^2 per kT): x' = x - h grad E + sqrt(2h) xi.
    pub step_size: f64,
    /// Metropolis-adjust the moves (MALA) and adapt h toward `target_acceptance`.
    pub mala: bool,
    pub target_acceptance: f64,
    /// Resample when ESS / n falls below this.
    pub ess_threshold: f64,
    pub scheme: Scheme,
    pub seed: u64,
    /// Adaptive schedule: each next level is chosen (by bisection) so that the conditional
    /// ESS of its weight increment is this fraction of the particles (Zhou, Johansen & Aston
    /// 2016); `steps` is then the most levels (the last one jumps to t = 1). None: the fixed
    /// schedule t_k = k / steps.
    pub cess_target: Option<f64>,
    /// Independence moves per level: fresh draws y from the proposal, accepted with the exact
    /// Metropolis-Hastings ratio for exp(-E_t), min(1, exp(t (log w(y) - log w(x)))), with
    /// log w = -E_target + log q. They let particles jump between basins.
    pub independence: usize,
    /// Rounds of moves at t = 1 after the final resampling (invariant for the target), so that
    /// the copies the resampling made part ways and relax in their basins. They need the
    /// target's gradient only; the model only draws the independence moves' proposals (their
    /// log q comes with them, no pass of its own), still most of a round's time: without
    /// independence moves a round costs energies alone, about 1% of an annealing level.
    pub final_rounds: usize,
    /// Skip the final resampling: the final rounds move every particle with its weight, which
    /// moves invariant for the target leave unchanged (`x` then pairs with `log_weights`). No
    /// copies, so every draw relaxes in its own basin; the estimate is SNIS's, not a subset.
    pub keep_weights: bool,
    /// The final resampling draws from the final weights truncated as SNIS's
    /// ([`crate::snis::truncate`]: each capped at sqrt(n) times the mean). With a proposal far
    /// from the target (ESS 1e-3), the raw weights hand the population to a few draws, chosen
    /// by strain in stiff coordinates more than by basin, and the basins come out wrong.
    pub truncate: bool,
    /// Leapfrog steps of each final round's Hamiltonian Monte Carlo trajectory on the target
    /// ([`kernel::hmc_round`]; 0: the final rounds are `moves_per_step` Langevin moves).
    pub leapfrog: usize,
    /// Particles the final resampling keeps (None: all n). Fewer than drawn: the weights come
    /// from every draw (their ESS grows with the draws), while the final rounds, most of
    /// resample-move's time, move only the kept ones.
    pub keep: Option<usize>,
}

/// A plain SMC for the library: 100 equal levels of one MALA move each, the step adapted from
/// 1e-4; `bgen sample`'s choices (an adaptive schedule, more moves, independence and final
/// rounds, a step by coordinates) are made in [`crate::stage`] from its settings.
impl Default for SmcOptions {
    fn default() -> Self {
        SmcOptions {
            steps: 100,
            moves_per_step: 1,
            step_size: 1e-4,
            mala: true,
            target_acceptance: 0.6,
            ess_threshold: 0.5,
            scheme: Scheme::Systematic,
            seed: 0,
            cess_target: None,
            independence: 0,
            final_rounds: 0,
            keep_weights: false,
            truncate: false,
            leapfrog: 0,
            keep: None,
        }
    }
}

/// Outcome of [`smc`].
#[derive(Clone, Debug, Serialize)]
pub struct SmcResult {
    /// Final particles after the final resampling (equally weighted), n x dim; with
    /// `keep_weights`, the particles moved without it, weighted by `log_weights`.
    #[serde(skip)]
    pub x: Vec<f64>,
    /// Target energies (kT) of the final particles.
    #[serde(skip)]
    pub energies: Vec<f64>,
    /// Log-weights before the final resampling (with their particles in `x_weighted`).
    #[serde(skip)]
    pub log_weights: Vec<f64>,
    #[serde(skip)]
    pub x_weighted: Vec<f64>,
    /// Normalised ESS before the final resampling.
    pub ess: f64,
    /// log Z estimate: sum over levels of the log mean weight increment.
    pub log_z: f64,
    /// Mean acceptance of the moves (1 for ULA), and per level.
    pub acceptance: f64,
    pub acceptance_per_step: Vec<f64>,
    /// Mean acceptance of the Langevin moves of the final rounds at t = 1 (NaN without them).
    pub final_acceptance: f64,
    /// The annealing times t of the levels (the last is 1).
    pub schedule: Vec<f64>,
    /// Mean acceptance of the independence moves (NaN without them).
    pub independence_acceptance: f64,
    pub final_step_size: f64,
    pub resamplings: usize,
    /// Distinct initial particles (lineages) that the population descends from after each
    /// intermediate resampling, and after the final one: a population that descends from a
    /// handful of proposals has collapsed, whatever its ESS says.
    pub lineages: Vec<usize>,
    pub final_lineages: usize,
    /// Final weights capped by the truncation (0 without it); `ess` is before it.
    pub truncated: usize,
    /// The Pareto shape of the final weights' tail before truncation ([`crate::pareto`]):
    /// above 0.7 they are unreliable whatever the ESS says (None: too few to tell).
    pub pareto_k: Option<f64>,
    /// Per-sample evaluations of the target energy (with gradient) and of the model.
    pub energy_evaluations: usize,
    pub model_evaluations: usize,
    /// Wall time in the model (log q and its gradient, and the initial sampling) and in the
    /// target energy, seconds; particle-steps (particles x levels x moves) per second overall.
    pub model_seconds: f64,
    pub energy_seconds: f64,
    pub particle_steps_per_s: f64,
}

/// The largest increment dt in (0, max_dt] of the annealing time whose weight increments
/// exp(-dt de_i) keep the conditional ESS (sum W u)^2 / sum W u^2 (W the normalised current
/// weights) at `target` or above; bisection in dt.
fn next_increment(log_w: &[f64], de: &[f64], max_dt: f64, target: f64) -> f64 {
    let m = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let shifted: Vec<f64> = log_w.iter().map(|lw| lw - m).collect();
    let log_total = log_sum_exp(&shifted);
    let cess = |dt: f64| {
        // In logs, shifted by the largest term, for stability.
        let terms: Vec<f64> = log_w
            .iter()
            .zip(de)
            .map(|(lw, e)| {
                let v = lw - m - dt * e;
                if v.is_nan() {
                    f64::NEG_INFINITY
                } else {
                    v
                }
            })
            .collect();
        let a = log_sum_exp(&terms);
        let two: Vec<f64> = log_w
            .iter()
            .zip(&terms)
            .map(|(lw, t)| 2.0 * t - (lw - m))
            .map(|v| if v.is_nan() { f64::NEG_INFINITY } else { v })
            .collect();
        let b = log_sum_exp(&two);
        (2.0 * a - b - log_total).exp()
    };
    if cess(max_dt) >= target {
        return max_dt;
    }
    let (mut lo, mut hi) = (0.0, max_dt);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if cess(mid) >= target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // Never stall: at least a tiny step.
    lo.max(max_dt * 1e-9)
}

/// Number of distinct values.
fn distinct(v: &[usize]) -> usize {
    let mut s = v.to_vec();
    s.sort_unstable();
    s.dedup();
    s.len()
}

/// SMC stopped: at annealing level `t` every particle had zero weight (the target is +inf, or
/// not finite, wherever the particles are).
#[derive(Clone, Copy, Debug)]
pub struct Degenerate {
    pub t: f64,
}

impl std::fmt::Display for Degenerate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SMC: every particle has zero weight at t = {:.4}: the target's energy is infinite or \
             not finite wherever the proposal put them",
            self.t
        )
    }
}

impl std::error::Error for Degenerate {}

/// The annealing time of `level` after `t_prev`: evenly spaced over `opts.steps` levels, or
/// (with a conditional-ESS target) the largest step that keeps the conditional ESS at the
/// target, reaching 1 at the last level.
fn next_time(opts: &SmcOptions, level: usize, t_prev: f64, log_w: &[f64], ends: &Ends) -> f64 {
    let k_levels = opts.steps.max(1);
    match opts.cess_target {
        None => level as f64 / k_levels as f64,
        Some(_) if level >= k_levels => 1.0,
        Some(target) => {
            let de: Vec<f64> = ends.tgt.iter().zip(&ends.src).map(|(a, b)| a - b).collect();
            t_prev + next_increment(log_w, &de, 1.0 - t_prev, target)
        }
    }
}

/// Jarzynski reweighting: particles follow E_{t - dt}, the increment -dt (E_tgt - E_src) takes
/// them to E_t (a NaN energy weighs nothing). Returns the increment of log Z.
fn reweight(log_w: &mut [f64], ends: &Ends, dt: f64) -> f64 {
    let before = log_sum_exp(log_w);
    for ((lw, tgt), src) in log_w.iter_mut().zip(&ends.tgt).zip(&ends.src) {
        let inc = -dt * (tgt - src);
        *lw += if inc.is_nan() { f64::NEG_INFINITY } else { inc };
    }
    log_sum_exp(log_w) - before
}
/// A step size after a round of moves with acceptance `acc`, moved toward `target`: larger
/// when more were accepted, by at most a factor e^0.5 a round.
fn toward(step: f64, acc: f64, target: f64) -> f64 {
    step * (acc - target).clamp(-0.5, 0.5).exp()
}

/// The MALA step size after a round of moves with acceptance `acc` (ULA keeps its step).
fn adapted(h: f64, acc: f64, opts: &SmcOptions) -> f64 {
    if opts.mala {
        toward(h, acc, opts.target_acceptance)
    } else {
        h
    }
}

/// The acceptance HMC's step is adapted toward (Beskos et al. 2013: 0.65 is optimal for long
/// trajectories in high dimension; a little above keeps clashes rare).
const HMC_ACCEPTANCE: f64 = 0.7;

/// Runs SMC with `n` particles drawn from `proposal` toward `target`.
pub fn smc<P: Proposal, T: Target>(
    proposal: &P,
    target: &T,
    n: usize,
    opts: SmcOptions,
) -> crate::Result<SmcResult> {
    let d = target.dim();
    assert_eq!(proposal.dim(), d, "proposal and target dimensions differ");
    let k_levels = opts.steps.max(1);
    let start = std::time::Instant::now();
    let mut counts = Counts::default();
    let (mut x, log_q) = draw(proposal, n, opts.seed, &mut counts);
    // The model's gradient is asked for by the first moves below t = 1, not here: a schedule
    // whose first level is t = 1 (SNIS, then moves on the target) never needs it.
    let mut ends = drawn(target, &x, &log_q, &mut counts);
    let mut log_w = vec![0.0; n];
    let mut log_z = 0.0;
    let mut h = opts.step_size;
    let mut acc_per_step = Vec::with_capacity(k_levels);
    let mut resamplings = 0;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(opts.seed ^ 0xA5A5_A5A5);
    // Diagonal preconditioner M (the proposal's squared coordinate scales): moves are
    // x' = x - h M grad E + sqrt(2 h M) xi.
    let precond: Vec<f64> = match proposal.scale() {
        Some(s) => s.iter().map(|v| v * v).collect(),
        None => vec![1.0; d],
    };
    let precond = &precond;
    // Which initial particle each particle descends from.
    let mut ancestor: Vec<usize> = (0..n).collect();
    let mut lineages = Vec::new();
    let mut schedule = Vec::new();
    let (mut ind_acc, mut ind_tried) = (0usize, 0usize);
    let mut t_prev = 0.0;
    let mut level = 0;
    while t_prev < 1.0 {
        level += 1;
        let t = next_time(&opts, level, t_prev, &log_w, &ends);
        let dt = match opts.cess_target {
            None => 1.0 / k_levels as f64,
            Some(_) => t - t_prev,
        };
        t_prev = t;
        schedule.push(t);
        let last = t >= 1.0;
        log_z += reweight(&mut log_w, &ends, dt);
        if !log_w.iter().any(|v| v.is_finite()) {
            return Err(Degenerate { t }.into());
        }
        // Resample when the weights have degenerated (not at the last level: see below).
        if !last && ess(&log_w) < opts.ess_threshold {
            let idx = opts.scheme.draw_log(&log_w, n, &mut rng);
            ancestor = idx.iter().map(|&i| ancestor[i]).collect();
            lineages.push(distinct(&ancestor));
            x = gather(&x, &idx, d);
            ends = ends.rows(&idx, d);
            log_w.iter_mut().for_each(|v| *v = 0.0);
            resamplings += 1;
        }
        // Move with Langevin dynamics invariant for (MALA) or approximating (ULA) exp(-E_t).
        let moved = move_particles(
            proposal,
            target,
            &mut x,
            &mut ends,
            t,
            level,
            h,
            precond,
            &opts,
            &mut counts,
        );
        let (accepted, tried) = (moved.accepted, moved.tried);
        ind_acc += moved.ind_accepted;
        ind_tried += moved.ind_tried;
        let acc = accepted as f64 / tried.max(1) as f64;
        acc_per_step.push(acc);
        h = adapted(h, acc, &opts);
    }
    // The ESS before the final resampling, then the final resampling.
    let final_ess = ess(&log_w);
    let pareto_k = crate::pareto::pareto_k(&log_w);
    let truncated = if opts.truncate {
        crate::snis::truncate(&mut log_w)
    } else {
        0
    };
    let idx = if opts.keep_weights {
        (0..n).collect()
    } else {
        opts.scheme
            .draw_log(&log_w, opts.keep.unwrap_or(n), &mut rng)
    };
    ancestor = idx.iter().map(|&i| ancestor[i]).collect();
    let final_lineages = distinct(&ancestor);
    let mean_acc = acc_per_step.iter().sum::<f64>() / acc_per_step.len() as f64;
    let mut x_final = gather(&x, &idx, d);
    let mut final_ends = ends.rows(&idx, d);
    let last = final_moves(
        proposal,
        target,
        &mut x_final,
        &mut final_ends,
        level,
        h,
        precond,
        &opts,
        &mut counts,
    );
    ind_acc += last.ind_accepted;
    ind_tried += last.ind_tried;
    Ok(SmcResult {
        x: x_final,
        energies: final_ends.tgt,
        x_weighted: x,
        log_weights: log_w,
        ess: final_ess,
        log_z,
        acceptance: mean_acc,
        acceptance_per_step: acc_per_step,
        final_acceptance: last.acceptance,
        schedule,
        independence_acceptance: ind_acc as f64 / ind_tried as f64,
        final_step_size: last.step,
        resamplings,
        lineages,
        final_lineages,
        truncated,
        pareto_k,
        energy_evaluations: counts.energy,
        model_evaluations: counts.model,
        model_seconds: counts.model_s,
        energy_seconds: counts.energy_s,
        particle_steps_per_s: (n * level * opts.moves_per_step) as f64
            / start.elapsed().as_secs_f64(),
    })
}

/// What the final rounds did: their mean acceptance, the step they ended with (Langevin's h,
/// or HMC's leapfrog step) and the independence moves they tried and accepted.
struct FinalMoves {
    acceptance: f64,
    step: f64,
    ind_accepted: usize,
    ind_tried: usize,
}

/// The `opts.final_rounds` rounds of moves at t = 1 after the final resampling, invariant for
/// the target: Langevin moves (as in the annealing, from its last step `h`) or, with
/// `opts.leapfrog` > 0, HMC trajectories on the target alone, each round adapting the step.
/// `level` is the annealing's last, so the rounds' random streams follow on from it.
#[allow(clippy::too_many_arguments)]
fn final_moves<P: Proposal, T: Target>(
    proposal: &P,
    target: &T,
    x: &mut [f64],
    ends: &mut Ends,
    level: usize,
    mut h: f64,
    precond: &[f64],
    opts: &SmcOptions,
    counts: &mut Counts,
) -> FinalMoves {
    // HMC's step: Langevin's step h moves a coordinate by about sqrt(2 h M), as does a
    // leapfrog step of sqrt(2 h).
    let mut eps = (2.0 * h).sqrt();
    let mut trajectory = Trajectory::default();
    let (mut acc_sum, mut ind_accepted, mut ind_tried) = (0.0, 0, 0);
    for round in 0..opts.final_rounds {
        let stream = level + 1 + round;
        let moved = match opts.leapfrog {
            0 => move_particles(
                proposal, target, x, ends, 1.0, stream, h, precond, opts, counts,
            ),
            l => hmc_round(
                target,
                x,
                ends,
                &mut trajectory,
                stream,
                eps,
                l,
                precond,
                opts.seed,
                counts,
            ),
        };
        ind_accepted += moved.ind_accepted;
        ind_tried += moved.ind_tried;
        let acc = moved.accepted as f64 / moved.tried.max(1) as f64;
        acc_sum += acc;
        match opts.leapfrog {
            0 => h = adapted(h, acc, opts),
            _ => eps = toward(eps, acc, HMC_ACCEPTANCE),
        }
    }
    FinalMoves {
        acceptance: acc_sum / opts.final_rounds as f64,
        step: if opts.leapfrog > 0 { eps } else { h },
        ind_accepted,
        ind_tried,
    }
}
