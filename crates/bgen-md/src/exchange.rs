//! Temperature replica exchange (parallel tempering): one replica per rung of a temperature
//! ladder; every exchange interval, neighbouring rungs (even pairs, then odd pairs, alternately)
//! swap configurations with the Metropolis probability min(1, exp((b_k - b_k+1)(U_k - U_k+1))),
//! b = 1/kT. The product of the rungs' Boltzmann distributions is invariant, so the lowest rung
//! samples its temperature exactly while hot rungs carry it over barriers. Each configuration is
//! followed as a walker, and a walker's trips between the ladder's ends (the usual measure of how
//! well a ladder mixes) are counted. Several independent ladders of the same temperatures may run
//! side by side (replica r is rung r % len of ladder r / len): more replicas of one molecule,
//! which step together in SIMD lanes, and independent chains at every temperature. Temperatures
//! K, energies kJ/mol.

use crate::langevin::Stream;
use rand::RngExt;
use serde::{Deserialize, Serialize};

/// A geometric ladder of `n` temperatures from `t_min` to `t_max` K (equal ratios between rungs,
/// which gives roughly equal acceptance when the heat capacity is constant).
pub fn geometric_ladder(t_min: f64, t_max: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![t_min];
    }
    let r = (t_max / t_min).powf(1.0 / (n - 1) as f64);
    (0..n)
        .map(|k| {
            if k + 1 == n {
                t_max
            } else {
                t_min * r.powi(k as i32)
            }
        })
        .collect()
}

/// The state of the exchanges (saved in checkpoints, so that a resumed run is exact).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Exchange {
    /// Random stream of the acceptance tests.
    pub rng: Stream,
    /// Rounds attempted so far (even rounds try pairs (0,1), (2,3), ...; odd rounds (1,2), ...).
    pub rounds: u64,
    /// Per neighbour pair (k, k+1): swaps attempted and accepted.
    pub tried: Vec<u64>,
    pub accepted: Vec<u64>,
    /// The walker (original configuration) now at each rung.
    pub walker: Vec<usize>,
    /// Per walker: the end of the ladder it touched last (0 bottom, 1 top, -1 neither yet).
    pub last_end: Vec<i8>,
    /// Trips of any walker from one end of its ladder to the other.
    pub end_to_end: u64,
    /// Rungs per ladder (the replicas are ladders of this many rungs side by side); 0 (a
    /// checkpoint from before ladders could be repeated): one ladder of all the rungs.
    #[serde(default)]
    pub ladder_len: usize,
}

/// What a finished run reports about its exchanges (in `run.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ExchangeSummary {
    /// Per neighbour pair: fraction of attempted swaps accepted.
    pub acceptance: Vec<f64>,
    /// Round trips bottom -> top -> bottom (end-to-end trips / 2) of all walkers together.
    pub round_trips: f64,
    /// Exchange rounds attempted.
    pub rounds: u64,
}

impl Exchange {
    /// Exchanges for one ladder of `rungs` rungs, drawing from `rng`.
    pub fn new(rungs: usize, rng: Stream) -> Exchange {
        Exchange::ladders(rungs, 1, rng)
    }

    /// Exchanges for `ladders` independent ladders of `len` rungs each (replica r is rung
    /// r % len of ladder r / len), drawing from `rng`.
    pub fn ladders(len: usize, ladders: usize, rng: Stream) -> Exchange {
        let n = len * ladders;
        let last_end = (0..n)
            .map(|r| match r % len {
                0 => 0,
                k if k + 1 == len => 1,
                _ => -1,
            })
            .collect();
        Exchange {
            rng,
            rounds: 0,
            tried: vec![0; n.saturating_sub(1)],
            accepted: vec![0; n.saturating_sub(1)],
            walker: (0..n).collect(),
            last_end,
            end_to_end: 0,
            ladder_len: len,
        }
    }

    /// Number of rungs, all ladders together.
    pub fn rungs(&self) -> usize {
        self.walker.len()
    }

    /// Rungs per ladder.
    pub fn ladder_len(&self) -> usize {
        match self.ladder_len {
            0 => self.rungs(),
            len => len,
        }
    }

    /// One round: given each rung's potential energy `energy` (kJ/mol) and inverse temperature
    /// `beta` (mol/kJ), decides which neighbour pairs of this round's parity swap, in every
    /// ladder. Returns the lower rung k of every accepted pair (k, k+1); the caller swaps the
    /// configurations.
    pub fn round(&mut self, energy: &[f64], beta: &[f64]) -> Vec<usize> {
        let (n, len) = (self.rungs(), self.ladder_len());
        assert!(energy.len() == n && beta.len() == n);
        let mut swaps = Vec::new();
        for base in (0..n).step_by(len) {
            let mut k = base + (self.rounds % 2) as usize;
            while k + 1 < base + len {
                self.tried[k] += 1;
                let log_ratio = (beta[k] - beta[k + 1]) * (energy[k] - energy[k + 1]);
                let u: f64 = self.rng.random();
                if log_ratio >= 0.0 || u.ln() < log_ratio {
                    self.accepted[k] += 1;
                    self.walker.swap(k, k + 1);
                    swaps.push(k);
                }
                k += 2;
            }
            for (end, rung) in [(0i8, base), (1, base + len - 1)] {
                let w = self.walker[rung];
                if self.last_end[w] != end {
                    if self.last_end[w] >= 0 {
                        self.end_to_end += 1;
                    }
                    self.last_end[w] = end;
                }
            }
        }
        self.rounds += 1;
        swaps
    }

    /// Acceptance per neighbour pair of a ladder (all ladders together) and round trips so far.
    pub fn summary(&self) -> ExchangeSummary {
        let len = self.ladder_len();
        let acceptance = (0..len.saturating_sub(1))
            .map(|j| {
                let pairs = (j..self.tried.len()).step_by(len);
                let t: u64 = pairs.clone().map(|k| self.tried[k]).sum();
                let a: u64 = pairs.map(|k| self.accepted[k]).sum();
                if t == 0 {
                    0.0
                } else {
                    a as f64 / t as f64
                }
            })
            .collect();
        ExchangeSummary {
            acceptance,
            round_trips: self.end_to_end as f64 / 2.0,
            rounds: self.rounds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::langevin::stream;

    #[test]
    fn ladder_is_geometric_with_exact_ends() {
        let t = geometric_ladder(300.0, 600.0, 8);
        assert_eq!((t[0], t[7]), (300.0, 600.0));
        for k in 1..7 {
            let (a, b) = (t[k] / t[k - 1], t[k + 1] / t[k]);
            assert!((a - b).abs() < 1e-12);
        }
        assert_eq!(geometric_ladder(300.0, 600.0, 1), vec![300.0]);
    }

    /// A two-state toy: state 0 has energy 0, state 1 energy 2. The replicas at temperatures
    /// below 2.5 can never change state by themselves (a barrier); the hotter ones flip freely
    /// (exact Gibbs draws, in replica order). Runs `sweeps` rounds of `ex` with replica r at
    /// `temps[r]`, starting from `state`, calls `swapped` with each accepted pair's lower
    /// replica, and checks that every replica holds its own Boltzmann population within `tol`.
    fn toy(
        ex: &mut Exchange,
        temps: &[f64],
        mut state: Vec<usize>,
        (sweeps, tol, seed): (usize, f64, u64),
        mut swapped: impl FnMut(usize),
    ) {
        let gap = 2.0;
        let beta: Vec<f64> = temps.iter().map(|t| 1.0 / t).collect();
        let mut rng = stream(seed, 0);
        let mut counts = vec![0usize; temps.len()];
        for _ in 0..sweeps {
            for k in (0..temps.len()).filter(|&k| temps[k] >= 2.5) {
                let p1 = 1.0 / (1.0 + (beta[k] * gap).exp());
                let u: f64 = rng.random();
                state[k] = usize::from(u < p1);
            }
            let energy: Vec<f64> = state.iter().map(|&s| s as f64 * gap).collect();
            for k in ex.round(&energy, &beta) {
                swapped(k);
                state.swap(k, k + 1);
            }
            for (c, s) in counts.iter_mut().zip(&state) {
                *c += s;
            }
        }
        for (k, c) in counts.iter().enumerate() {
            let exact = 1.0 / (1.0 + (beta[k] * gap).exp());
            let got = *c as f64 / sweeps as f64;
            assert!(
                (got - exact).abs() < tol,
                "rung {k}: population {got:.4}, Boltzmann {exact:.4}"
            );
        }
    }

    /// The toy on one ladder: with exchanges, every rung, the cold ones included, holds its own
    /// Boltzmann population. A wrong sign or a missing factor in the acceptance ratio fails this.
    #[test]
    fn exchanges_give_every_rung_its_boltzmann_population() {
        let mut ex = Exchange::new(4, stream(7, 1));
        let temps = [1.0, 1.6, 2.5, 4.0];
        toy(
            &mut ex,
            &temps,
            vec![0, 1, 0, 1],
            (400_000, 0.01, 7),
            |_| {},
        );
        let s = ex.summary();
        assert!(s.acceptance.iter().all(|&a| a > 0.3 && a <= 1.0));
        assert!(s.round_trips > 1000.0, "{}", s.round_trips);
        // Walkers are a permutation of the rungs.
        let mut w = ex.walker.clone();
        w.sort();
        assert_eq!(w, vec![0, 1, 2, 3]);
    }

    /// Three ladders of the toy's four temperatures side by side: every rung of every ladder
    /// holds its Boltzmann population, no walker leaves its ladder, no pair across two ladders
    /// is tried, and one ladder made by `ladders` draws exactly as `new` (old runs resume bit
    /// for bit).
    #[test]
    fn side_by_side_ladders_stay_apart_and_each_samples_its_temperatures() {
        let mut ex = Exchange::ladders(4, 3, stream(9, 1));
        let temps: Vec<f64> = (0..12).map(|r| [1.0, 1.6, 2.5, 4.0][r % 4]).collect();
        toy(&mut ex, &temps, vec![0; 12], (200_000, 0.012, 9), |k| {
            assert_ne!(k % 4, 3, "a swap across two ladders")
        });
        for (r, &w) in ex.walker.iter().enumerate() {
            assert_eq!(r / 4, w / 4, "walker {w} left its ladder");
        }
        assert!([3, 7].iter().all(|&k| ex.tried[k] == 0));
        let s = ex.summary();
        assert_eq!(s.acceptance.len(), 3);
        assert!(s.acceptance.iter().all(|&a| a > 0.3 && a <= 1.0));
        assert!(s.round_trips > 1000.0, "{}", s.round_trips);

        let (mut one, mut old) = (
            Exchange::ladders(5, 1, stream(3, 2)),
            Exchange::new(5, stream(3, 2)),
        );
        let e = [1.0, -2.0, 0.5, 3.0, -1.0];
        let b = [1.0, 0.8, 0.6, 0.5, 0.4];
        for _ in 0..50 {
            assert_eq!(one.round(&e, &b), old.round(&e, &b));
        }
        assert_eq!(one.summary(), old.summary());
    }
}
