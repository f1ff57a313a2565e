//! SMC's Markov kernel: one round of moves of every particle at an annealing level, each
//! invariant for exp(-E_t) with E_t = (1 - t) E_src + t E_target. Langevin moves (MALA, or
//! unadjusted ULA) preconditioned per coordinate, then independence moves (fresh proposals
//! accepted with the exact ratio). The loop around it (weights, schedule, resampling) is in
//! `smc.rs`.

use super::SmcOptions;
use crate::proposal::Proposal;
use crate::resample::gather;
use bgen_system::Target;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

/// Energies and gradients of both ends at a batch.
pub(super) struct Ends {
    pub(super) src: Vec<f64>,
    pub(super) tgt: Vec<f64>,
    pub(super) g_src: Vec<f64>,
    pub(super) g_tgt: Vec<f64>,
    /// Whether `g_src` holds the model's gradient (else zeros: it was not asked for).
    pub(super) has_g_src: bool,
}

impl Ends {
    /// Zeros for `n` particles of `len` coordinates in all, no gradient of the model.
    fn zeros(n: usize, len: usize) -> Ends {
        Ends {
            src: vec![0.0; n],
            tgt: vec![0.0; n],
            g_src: vec![0.0; len],
            g_tgt: vec![0.0; len],
            has_g_src: false,
        }
    }

    /// The rows `idx` (particles of dimension `d`), in that order.
    pub(super) fn rows(&self, idx: &[usize], d: usize) -> Ends {
        Ends {
            src: idx.iter().map(|&i| self.src[i]).collect(),
            tgt: idx.iter().map(|&i| self.tgt[i]).collect(),
            g_src: gather(&self.g_src, idx, d),
            g_tgt: gather(&self.g_tgt, idx, d),
            has_g_src: self.has_g_src,
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
pub(super) struct Counts {
    pub(super) energy: usize,
    pub(super) model: usize,
    pub(super) model_s: f64,
    pub(super) energy_s: f64,
}

/// What of the proposal's end a move needs: below t = 1 E_src and its gradient; at t = 1 (where
/// E_t is the target alone) only E_src itself, and that only for independence moves, whose
/// ratio is the importance weight; or nothing (the model is not evaluated at all).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Src {
    WithGradient,
    Value,
    Skip,
}

impl Src {
    /// What moves at annealing time `t` need, with `independence` moves among them.
    pub(super) fn at(t: f64, independence: bool) -> Src {
        match (t >= 1.0, independence) {
            (false, _) => Src::WithGradient,
            (true, true) => Src::Value,
            (true, false) => Src::Skip,
        }
    }
}

/// E_src = -log q and E_target with their gradients at every particle of `x` (of E_src only
/// what `src` asks for; the rest stays 0).
pub(super) fn evaluate<P: Proposal, T: Target>(
    p: &P,
    t: &T,
    x: &[f64],
    src: Src,
    counts: &mut Counts,
) -> Ends {
    let mut e = Ends::zeros(x.len() / t.dim(), x.len());
    if src != Src::Skip {
        model_end(p, x, &mut e, src == Src::WithGradient, counts);
    }
    target_end(t, x, &mut e, counts);
    e
}

/// E_src = -log q (and, when `gradient`, its gradient) into `e`.
fn model_end<P: Proposal>(p: &P, x: &[f64], e: &mut Ends, gradient: bool, counts: &mut Counts) {
    let t0 = std::time::Instant::now();
    p.log_q(x, &mut e.src, gradient.then_some(&mut e.g_src[..]));
    counts.model_s += t0.elapsed().as_secs_f64();
    counts.model += e.src.len();
    e.src.iter_mut().for_each(|v| *v = -*v);
    e.g_src.iter_mut().for_each(|v| *v = -*v);
    e.has_g_src = gradient;
}

/// The ends at fresh draws `x` of the proposal with their own `log_q` (as `sample` returns
/// them): E_src without the model's gradient, which costs a pass of the model of its own.
pub(super) fn drawn<T: Target>(t: &T, x: &[f64], log_q: &[f64], counts: &mut Counts) -> Ends {
    let mut e = Ends::zeros(log_q.len(), x.len());
    e.src.iter_mut().zip(log_q).for_each(|(s, l)| *s = -l);
    target_end(t, x, &mut e, counts);
    e
}

/// `n` fresh draws of the proposal with their log q, timed and counted as model evaluations.
pub(super) fn draw<P: Proposal>(
    p: &P,
    n: usize,
    seed: u64,
    counts: &mut Counts,
) -> (Vec<f64>, Vec<f64>) {
    let t0 = std::time::Instant::now();
    let drawn = p.sample(n, seed);
    counts.model_s += t0.elapsed().as_secs_f64();
    counts.model += n;
    drawn
}

/// E_target and its gradient into `e`.
fn target_end<T: Target>(t: &T, x: &[f64], e: &mut Ends, counts: &mut Counts) {
    let t0 = std::time::Instant::now();
    t.energy_and_grad(x, &mut e.tgt, Some(&mut e.g_tgt));
    counts.energy_s += t0.elapsed().as_secs_f64();
    counts.energy += e.tgt.len();
}

/// Acceptance counts of one round of moves.
#[derive(Default)]
pub(super) struct Moved {
    pub(super) accepted: usize,
    pub(super) tried: usize,
    pub(super) ind_accepted: usize,
    pub(super) ind_tried: usize,
}

/// One round of moves of every particle at annealing time `t` (level `level`, for the random
/// streams), each invariant for exp(-E_t): `opts.moves_per_step` Langevin moves (MALA, or ULA)
/// with step `h` and preconditioner `precond`, then `opts.independence` independence moves.
#[allow(clippy::too_many_arguments)]
pub(super) fn move_particles<P: Proposal, T: Target>(
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
    let src = Src::at(t, opts.independence > 0);
    if src == Src::WithGradient && !ends.has_g_src {
        model_end(proposal, x, ends, true, counts);
    }
    // Move with Langevin dynamics invariant for (MALA) or approximating (ULA) exp(-E_t).
    // Every sub-move overwrites the proposals, their noise and the decisions in full.
    let (mut y, mut xi) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    let mut accept = vec![true; n];
    for sub in 0..opts.moves_per_step {
        let grad_t = |e: &Ends, k: usize| (1.0 - t) * e.g_src[k] + t * e.g_tgt[k];
        let noise = (2.0 * h).sqrt();
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
        let new = evaluate(proposal, target, &y, src, counts);
        let energy_t = |e: &Ends, i: usize| {
            if t >= 1.0 {
                e.tgt[i]
            } else {
                (1.0 - t) * e.src[i] + t * e.tgt[i]
            }
        };
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
        let (y, log_q) = draw(proposal, n, seed, counts);
        // Below t = 1 the accepted draws need the model's gradient for the next Langevin moves;
        // at t = 1 their own log q is all the ratio needs.
        let new = match src {
            Src::WithGradient => evaluate(proposal, target, &y, src, counts),
            _ => drawn(target, &y, &log_q, counts),
        };
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

/// A random stream per (seed, level, move, particle): the particles' moves do not depend on
/// how the work is split over threads.
fn particle_rng(seed: u64, level: usize, sub: usize, i: usize) -> Xoshiro256PlusPlus {
    let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
    for v in [level as u64, sub as u64, i as u64] {
        h = (h ^ v).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 31;
    }
    Xoshiro256PlusPlus::seed_from_u64(h)
}

/// Buffers of one Hamiltonian trajectory for every particle, reused across rounds: positions,
/// momenta, and the target's energies and gradients along it.
#[derive(Default)]
pub(super) struct Trajectory {
    y: Vec<f64>,
    p: Vec<f64>,
    e: Vec<f64>,
    g: Vec<f64>,
    h0: Vec<f64>,
    /// Each particle's step this round.
    eps: Vec<f64>,
}

/// One round of Hamiltonian Monte Carlo on the target alone (t = 1), invariant for
/// exp(-E_target): every particle draws a momentum p ~ N(0, M^-1) (M = `precond`, the inverse
/// mass), takes `leapfrog` steps of its own size, drawn uniformly in [eps / 2, 3 eps / 2] (a
/// fixed trajectory length would turn some modes by whole half-periods and never relax them),
/// and is accepted with min(1, exp(-dH)), H = E + p M p / 2. One evaluation of the target's
/// energy and gradient per step, none of the model. Momentum carries a particle along soft
/// directions that Langevin moves, whose step the stiffest coordinates limit, only diffuse
/// along: strained rings relax in fewer evaluations.
#[allow(clippy::too_many_arguments)]
pub(super) fn hmc_round<T: Target>(
    target: &T,
    x: &mut [f64],
    ends: &mut Ends,
    buf: &mut Trajectory,
    round: usize,
    eps: f64,
    leapfrog: usize,
    precond: &[f64],
    seed: u64,
    counts: &mut Counts,
) -> Moved {
    let d = target.dim();
    let n = x.len() / d;
    let Trajectory {
        y,
        p,
        e,
        g,
        h0,
        eps: step,
    } = buf;
    y.clear();
    y.extend_from_slice(x);
    g.clear();
    g.extend_from_slice(&ends.g_tgt);
    p.resize(x.len(), 0.0);
    e.resize(n, 0.0);
    h0.resize(n, 0.0);
    step.resize(n, 0.0);
    let kinetic = |p: &[f64]| -> f64 { p.iter().zip(precond).map(|(v, m)| 0.5 * m * v * v).sum() };
    p.par_chunks_mut(d)
        .zip(h0.par_iter_mut())
        .zip(step.par_iter_mut())
        .enumerate()
        .for_each(|(i, ((pi, h), s))| {
            let mut r = particle_rng(seed, round, 1 << 22, i);
            for (v, m) in pi.iter_mut().zip(precond) {
                let z: f64 = r.sample(StandardNormal);
                *v = z / m.sqrt();
            }
            *h = ends.tgt[i] + kinetic(pi);
            *s = eps * (0.5 + r.random::<f64>());
        });
    let half_kick = |p: &mut [f64], g: &[f64], step: &[f64]| {
        p.par_chunks_mut(d)
            .zip(g.par_chunks(d))
            .zip(step.par_iter())
            .for_each(|((pi, gi), s)| {
                pi.iter_mut().zip(gi).for_each(|(v, gk)| *v -= 0.5 * s * gk);
            });
    };
    for _ in 0..leapfrog {
        half_kick(p, g, step);
        y.par_chunks_mut(d)
            .zip(p.par_chunks(d))
            .zip(step.par_iter())
            .for_each(|((yi, pi), s)| {
                for ((v, m), pk) in yi.iter_mut().zip(precond).zip(pi) {
                    *v += s * m * pk;
                }
            });
        let t0 = std::time::Instant::now();
        target.energy_and_grad(y, e, Some(g));
        counts.energy_s += t0.elapsed().as_secs_f64();
        counts.energy += n;
        half_kick(p, g, step);
    }
    let mut mv = Moved::default();
    for i in 0..n {
        let r = i * d..(i + 1) * d;
        let h1 = e[i] + kinetic(&p[r.clone()]);
        let u: f64 = particle_rng(seed, round, 1 << 23, i).random();
        mv.tried += 1;
        // A NaN anywhere on the way (a clash's infinite energy) makes h1 NaN: rejected.
        if h1.is_finite() && u.ln() < h0[i] - h1 {
            mv.accepted += 1;
            x[r.clone()].copy_from_slice(&y[r.clone()]);
            ends.tgt[i] = e[i];
            ends.g_tgt[r.clone()].copy_from_slice(&g[r]);
        }
    }
    mv
}
