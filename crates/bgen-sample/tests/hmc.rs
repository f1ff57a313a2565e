//! Final rounds of Hamiltonian Monte Carlo on the target (`SmcOptions::leapfrog`) against a
//! known answer: an ill-conditioned Gaussian, N(0, diag(s_k^2)) with s_k from 0.05 to 1 (a
//! molecule's stiff bonds beside its soft torsions), with no preconditioner to hide the spread.
//!
//! The particles come from a proposal that reports the target's own density as its log q, so
//! every weight is equal and the resampling keeps every particle: what the particles look like
//! after the final rounds is the moves' doing alone. With no shift the proposal draws the
//! target itself (the moves must keep it); with a shift along the soft coordinates the
//! particles start away from equilibrium (the moves must bring them back).

use bgen_sample::{smc, Proposal, SmcOptions};
use bgen_system::Target;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

const D: usize = 20;

fn spread(k: usize) -> f64 {
    0.05 * (20f64).powf(k as f64 / (D - 1) as f64)
}

struct Ridge;

impl Target for Ridge {
    fn dim(&self) -> usize {
        D
    }
    fn energy_and_grad(&self, x: &[f64], energy: &mut [f64], mut grad: Option<&mut [f64]>) {
        for (i, e) in energy.iter_mut().enumerate() {
            *e = 0.0;
            for k in 0..D {
                let v = x[i * D + k] / (spread(k) * spread(k));
                *e += 0.5 * x[i * D + k] * v;
                if let Some(g) = grad.as_deref_mut() {
                    g[i * D + k] = v;
                }
            }
        }
    }
}

/// Draws N(shift on the soft half, diag(s^2)) but reports log q = -E_target: equal weights.
struct Displaced {
    shift: f64,
}

impl Proposal for Displaced {
    fn dim(&self) -> usize {
        D
    }
    fn sample(&self, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut r = Xoshiro256PlusPlus::seed_from_u64(seed);
        let x: Vec<f64> = (0..n * D)
            .map(|q| {
                let k = q % D;
                let z: f64 = r.sample(StandardNormal);
                let shift = if k >= D / 2 {
                    self.shift * spread(k)
                } else {
                    0.0
                };
                shift + spread(k) * z
            })
            .collect();
        let mut lq = vec![0.0; n];
        self.log_q(&x, &mut lq, None);
        (x, lq)
    }
    fn log_q(&self, x: &[f64], log_q: &mut [f64], grad: Option<&mut [f64]>) {
        assert!(
            grad.is_none(),
            "resample-move never asks for the model's gradient"
        );
        let mut e = vec![0.0; log_q.len()];
        Ridge.energy_and_grad(x, &mut e, None);
        for (l, e) in log_q.iter_mut().zip(e) {
            *l = -e;
        }
    }
}

/// Resample-move: one level to t = 1, then `rounds` final rounds; HMC with `leapfrog` > 0.
fn relax(shift: f64, rounds: usize, leapfrog: usize, seed: u64) -> Vec<f64> {
    let o = SmcOptions {
        steps: 1,
        moves_per_step: 3,
        step_size: 1e-3,
        final_rounds: rounds,
        leapfrog,
        seed,
        ..Default::default()
    };
    let r = smc(&Displaced { shift }, &Ridge, 4000, o).unwrap();
    assert_eq!(r.final_lineages, 4000, "equal weights keep every particle");
    assert!(
        r.final_acceptance > 0.5,
        "acceptance {}",
        r.final_acceptance
    );
    r.x
}

/// Per coordinate, the mean and the variance in units of the target's (0 and 1 at equilibrium).
fn moments(x: &[f64]) -> Vec<(f64, f64)> {
    let n = (x.len() / D) as f64;
    (0..D)
        .map(|k| {
            let col: Vec<f64> = x.iter().skip(k).step_by(D).map(|v| v / spread(k)).collect();
            let m = col.iter().sum::<f64>() / n;
            (m, col.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n)
        })
        .collect()
}

/// Started at the target, 30 HMC trajectories keep it: every coordinate's variance within 10%
/// of the target's (its standard error at 4,000 particles is 2%; leapfrog steps accepted
/// without the Metropolis test would sample a shadow of the target, its stiffest variances
/// inflated by a third or more at this acceptance) and its mean within 0.1 s.
#[test]
fn hmc_rounds_keep_the_target() {
    let x = relax(0.0, 30, 10, 7);
    for (k, (m, v)) in moments(&x).into_iter().enumerate() {
        assert!(m.abs() < 0.1, "coordinate {k}: mean {m} s");
        assert!((v - 1.0).abs() < 0.1, "coordinate {k}: variance {v} s^2");
    }
}

/// Started 3 s off along the soft coordinates, 30 trajectories of 10 leapfrog steps bring every
/// coordinate back (mean within 0.15 s, variance within 20%), where 100 rounds of 3 Langevin
/// moves, as many gradients, leave the softest still more than 1.5 s off: their step is set by
/// the stiffest coordinate, and they diffuse where momentum travels.
#[test]
fn hmc_relaxes_soft_coordinates_that_langevin_moves_do_not() {
    let hmc = moments(&relax(3.0, 30, 10, 8));
    for (k, &(m, v)) in hmc.iter().enumerate() {
        assert!(m.abs() < 0.15, "HMC, coordinate {k}: mean {m} s");
        assert!(
            (v - 1.0).abs() < 0.2,
            "HMC, coordinate {k}: variance {v} s^2"
        );
    }
    let mala = moments(&relax(3.0, 100, 0, 8));
    let (m, _) = mala[D - 1];
    assert!(m > 1.5, "Langevin, softest coordinate: mean {m} s");
}
