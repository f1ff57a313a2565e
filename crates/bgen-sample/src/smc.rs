//! Sequential Monte Carlo from the proposal to the target: the path
//! E_t = (1 - t) E_src + t E_target for t = 1/K, 2/K, ..., 1 (ending exactly at the target),
//! Jarzynski weight increments -(E_target - E_src) dt, resampling when the ESS falls below a
//! threshold and always at the end, and Langevin moves at every level: unadjusted (ULA) or
//! Metropolis-adjusted (MALA) with the step size adapted toward a target acceptance rate.

use crate::ess::{ess, log_sum_exp};
use crate::proposal::Proposal;
use crate::resample::{gather, Scheme};
use bgen_system::Target;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
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
    /// After the final resampling, one more round of moves at t = 1 (invariant for the
    /// target), so that the copies the resampling made part ways.
    pub final_moves: bool,
}

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
            final_moves: false,
        }
    }
}

/// Outcome of [`smc`].
#[derive(Clone, Debug, Serialize)]
pub struct SmcResult {
    /// Final particles after the final resampling (equally weighted), n x dim.
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
    /// Per-sample evaluations of the target energy (with gradient) and of the model.
    pub energy_evaluations: usize,
    pub model_evaluations: usize,
    /// Wall time in the model (log q and its gradient, and the initial sampling) and in the
    /// target energy, seconds; particle-steps (particles x levels x moves) per second overall.
    pub model_seconds: f64,
    pub energy_seconds: f64,
    pub particle_steps_per_s: f64,
}

/// Energies and gradients of both ends at a batch.
struct Ends {
    src: Vec<f64>,
    tgt: Vec<f64>,
    g_src: Vec<f64>,
    g_tgt: Vec<f64>,
}

impl Ends {
    /// The rows `idx` (particles of dimension `d`), in that order.
    fn rows(&self, idx: &[usize], d: usize) -> Ends {
        Ends {
            src: idx.iter().map(|&i| self.src[i]).collect(),
            tgt: idx.iter().map(|&i| self.tgt[i]).collect(),
            g_src: gather(&self.g_src, idx, d),
            g_tgt: gather(&self.g_tgt, idx, d),
        }
    }

    /// Row `i` (dimension `d`) taken from `from`.
    fn set_row(&mut self, i: usize, from: &Ends, d: usize) {
        let r = i * d..(i + 1) * d;
        self.src[i] = from.src[i];
        self.tgt[i] = from.tgt[i];
        self.g_src[r.clone()].copy_from_slice(&from.g_src[r.clone()]);
        self.g_tgt[r.clone()].copy_from_slice(&from.g_tgt[r]);
    }
}

/// Evaluation counts and the wall time spent in the model and the target.
#[derive(Default)]
struct Counts {
    energy: usize,
    model: usize,
    model_s: f64,
    energy_s: f64,
}

fn evaluate<P: Proposal, T: Target>(p: &P, t: &T, x: &[f64], counts: &mut Counts) -> Ends {
    let n = x.len() / t.dim();
    let mut e = Ends {
        src: vec![0.0; n],
        tgt: vec![0.0; n],
        g_src: vec![0.0; x.len()],
        g_tgt: vec![0.0; x.len()],
    };
    let t0 = std::time::Instant::now();
    p.log_q(x, &mut e.src, Some(&mut e.g_src));
    counts.model_s += t0.elapsed().as_secs_f64();
    // E_src = -log q
    e.src.iter_mut().for_each(|v| *v = -*v);
    e.g_src.iter_mut().for_each(|v| *v = -*v);
    let t0 = std::time::Instant::now();
    t.energy_and_grad(x, &mut e.tgt, Some(&mut e.g_tgt));
    counts.energy_s += t0.elapsed().as_secs_f64();
    counts.energy += n;
    counts.model += n;
    e
}

/// Acceptance counts of one round of moves.
#[derive(Default)]
struct Moved {
    accepted: usize,
    tried: usize,
    ind_accepted: usize,
    ind_tried: usize,
}

/// One round of moves of every particle at annealing time `t` (level `level`, for the random
/// streams), each invariant for exp(-E_t): `opts.moves_per_step` Langevin moves (MALA, or ULA)
/// with step `h` and preconditioner `precond`, then `opts.independence` independence moves.
#[allow(clippy::too_many_arguments)]
fn move_particles<P: Proposal, T: Target>(
    proposal: &P,
    target: &T,
    x: &mut [f64],
    ends: &mut Ends,
    t: f64,
    level: usize,
    h: f64,
    precond: &[f64],
    opts: &SmcOptions,
    counts: &mut Counts,
) -> Moved {
    let d = target.dim();
    let n = x.len() / d;
    let mut mv = Moved::default();
    // Move with Langevin dynamics invariant for (MALA) or approximating (ULA) exp(-E_t).
    for sub in 0..opts.moves_per_step {
        let grad_t = |e: &Ends, k: usize| (1.0 - t) * e.g_src[k] + t * e.g_tgt[k];
        let noise = (2.0 * h).sqrt();
        let mut y = vec![0.0; x.len()];
        let mut xi = vec![0.0; x.len()];
        y.par_chunks_mut(d)
            .zip(xi.par_chunks_mut(d))
            .enumerate()
            .for_each(|(i, (yi, xii))| {
                let mut r = particle_rng(opts.seed, level, sub, i);
                for k in 0..d {
                    let z: f64 = r.sample(StandardNormal);
                    xii[k] = z;
                    let m = precond[k];
                    yi[k] = x[i * d + k] - h * m * grad_t(ends, i * d + k) + noise * m.sqrt() * z;
                }
            });
        let new = evaluate(proposal, target, &y, counts);
        let energy_t = |e: &Ends, i: usize| {
            if t >= 1.0 {
                e.tgt[i]
            } else {
                (1.0 - t) * e.src[i] + t * e.tgt[i]
            }
        };
        let mut accept = vec![true; n];
        if opts.mala {
            accept.par_iter_mut().enumerate().for_each(|(i, a)| {
                let (e0, e1) = (energy_t(ends, i), energy_t(&new, i));
                if !e1.is_finite() {
                    *a = false;
                    return;
                }
                // log q(x | y) - log q(y | x) for the Gaussian Langevin proposals.
                let (mut fwd, mut bwd) = (0.0, 0.0);
                for (k, &m) in precond.iter().enumerate() {
                    let q = i * d + k;
                    fwd += xi[q] * xi[q] * 2.0 * h; // |y - x + h M g(x)|^2 / M
                    let back = x[q] - y[q] + h * m * grad_t(&new, q);
                    bwd += back * back / m;
                }
                let log_ratio = -e1 + e0 - (bwd - fwd) / (4.0 * h);
                let u: f64 = particle_rng(opts.seed, level, sub + (1 << 20), i).random();
                *a = u.ln() < log_ratio;
            });
        } else {
            for (i, a) in accept.iter_mut().enumerate() {
                *a = energy_t(&new, i).is_finite();
            }
        }
        for (i, &a) in accept.iter().enumerate() {
            mv.tried += 1;
            if a {
                mv.accepted += 1;
                x[i * d..(i + 1) * d].copy_from_slice(&y[i * d..(i + 1) * d]);
                ends.set_row(i, &new, d);
            }
        }
    }
    // Independence moves: fresh proposals, accepted with the exact ratio for exp(-E_t).
    for sub in 0..opts.independence {
        let seed = opts.seed ^ 0x1D_E9E7 ^ ((level as u64) << 24) ^ sub as u64;
        let t0 = std::time::Instant::now();
        let (y, _) = proposal.sample(n, seed);
        counts.model_s += t0.elapsed().as_secs_f64();
        let new = evaluate(proposal, target, &y, counts);
        let log_w_of = |e: &Ends, i: usize| -(e.tgt[i] - e.src[i]);
        for i in 0..n {
            mv.ind_tried += 1;
            let ratio = t * (log_w_of(&new, i) - log_w_of(ends, i));
            let u: f64 = particle_rng(opts.seed, level, sub + (1 << 21), i).random();
            if new.tgt[i].is_finite() && u.ln() < ratio {
                mv.ind_accepted += 1;
                x[i * d..(i + 1) * d].copy_from_slice(&y[i * d..(i + 1) * d]);
                ends.set_row(i, &new, d);
            }
        }
    }
    mv
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

fn particle_rng(seed: u64, level: usize, sub: usize, i: usize) -> Xoshiro256PlusPlus {
    let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
    for v in [level as u64, sub as u64, i as u64] {
        h = (h ^ v).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 31;
    }
    Xoshiro256PlusPlus::seed_from_u64(h)
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
    let t0 = std::time::Instant::now();
    let (mut x, _) = proposal.sample(n, opts.seed);
    counts.model_s += t0.elapsed().as_secs_f64();
    let mut ends = evaluate(proposal, target, &x, &mut counts);
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
        let t = match opts.cess_target {
            None => level as f64 / k_levels as f64,
            Some(_) if level >= k_levels => 1.0,
            Some(target) => {
                let de: Vec<f64> = ends.tgt.iter().zip(&ends.src).map(|(a, b)| a - b).collect();
                t_prev + next_increment(&log_w, &de, 1.0 - t_prev, target)
            }
        };
        let dt = match opts.cess_target {
            None => 1.0 / k_levels as f64,
            Some(_) => t - t_prev,
        };
        t_prev = t;
        schedule.push(t);
        let last = t >= 1.0;
        // Reweight: particles follow E_{t - dt}; the increment takes them to E_t.
        let before = log_sum_exp(&log_w);
        for ((lw, tgt), src) in log_w.iter_mut().zip(&ends.tgt).zip(&ends.src) {
            let inc = -dt * (tgt - src);
            *lw += if inc.is_nan() { f64::NEG_INFINITY } else { inc };
        }
        log_z += log_sum_exp(&log_w) - before;
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
        if opts.mala {
            h *= (acc - opts.target_acceptance).clamp(-0.5, 0.5).exp();
        }
    }
    // The ESS before the final resampling, then the final resampling.
    let final_ess = ess(&log_w);
    let idx = opts.scheme.draw_log(&log_w, n, &mut rng);
    ancestor = idx.iter().map(|&i| ancestor[i]).collect();
    let final_lineages = distinct(&ancestor);
    let mean_acc = acc_per_step.iter().sum::<f64>() / acc_per_step.len() as f64;
    let mut x_final = gather(&x, &idx, d);
    let mut final_ends = ends.rows(&idx, d);
    if opts.final_moves {
        // Copies made by the final resampling part ways: one more round of moves at t = 1.
        let moved = move_particles(
            proposal,
            target,
            &mut x_final,
            &mut final_ends,
            1.0,
            level + 1,
            h,
            precond,
            &opts,
            &mut counts,
        );
        ind_acc += moved.ind_accepted;
        ind_tried += moved.ind_tried;
    }
    Ok(SmcResult {
        x: x_final,
        energies: final_ends.tgt,
        x_weighted: x,
        log_weights: log_w,
        ess: final_ess,
        log_z,
        acceptance: mean_acc,
        acceptance_per_step: acc_per_step,
        schedule,
        independence_acceptance: ind_acc as f64 / ind_tried as f64,
        final_step_size: h,
        resamplings,
        lineages,
        final_lineages,
        energy_evaluations: counts.energy,
        model_evaluations: counts.model,
        model_seconds: counts.model_s,
        energy_seconds: counts.energy_s,
        particle_steps_per_s: (n * level * opts.moves_per_step) as f64
            / start.elapsed().as_secs_f64(),
    })
}
