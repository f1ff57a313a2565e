//! Twisted SMC over partial molecules, for autoregressive proposals (ArBG): particles are built
//! block by block (residue by residue); after block k each is weighted by
//! exp(-(U_k - U_{k-1})) / q(block k | earlier blocks), with U_k the partial energy (kT) of what
//! is placed, and the population is resampled when its ESS falls. The increments telescope to
//! the ordinary importance weight exp(-U) / q of the whole sample, so the result is exact, while
//! particles whose first residues are already bad are dropped before the model spends time on
//! the rest. The CoM term (see [`crate::com`]) joins at the last block.

use crate::com::{com_log_density, ComForm};
use crate::ess::{ess, log_sum_exp};
use crate::resample::{gather, Scheme};
use bgen_system::PartialTarget;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;
use std::time::Instant;

pub use bgen_system::Autoregressive;

/// Settings of [`twisted_smc`].
#[derive(Clone, Copy, Debug, Serialize)]
pub struct TwistedOptions {
    /// Resample after a block when ESS / n falls below this.
    pub ess_threshold: f64,
    pub scheme: Scheme,
    pub seed: u64,
    /// CoM term of the last block: form, noise scale (nm) and atoms.
    pub com: ComForm,
    pub com_sigma: f64,
    pub n_atoms: usize,
}

/// Outcome of [`twisted_smc`].
#[derive(Clone, Debug, Serialize)]
pub struct TwistedResult {
    /// Final particles after the final resampling (equally weighted), n x dim.
    #[serde(skip)]
    pub x: Vec<f64>,
    /// Their target energies (kT).
    #[serde(skip)]
    pub energies: Vec<f64>,
    /// Particles and log-weights before the final resampling.
    #[serde(skip)]
    pub x_weighted: Vec<f64>,
    #[serde(skip)]
    pub log_weights: Vec<f64>,
    /// Normalised ESS before the final resampling, and after each block (before its
    /// resampling, if any).
    pub ess: f64,
    pub ess_per_block: Vec<f64>,
    /// log Z estimate (product over resampling epochs of the mean weight).
    pub log_z: f64,
    pub resamplings: usize,
    /// Partial-energy evaluations (all blocks) and whole-molecule ones, per sample.
    pub energy_evaluations: usize,
    pub model_evaluations: usize,
    pub model_seconds: f64,
    pub energy_seconds: f64,
}

/// Runs twisted SMC with `n` particles of `model` toward `target`, block boundaries `ends`
/// (coordinate counts, increasing, the last equal to the dimension).
pub fn twisted_smc<M: Autoregressive, T: PartialTarget>(
    model: &M,
    target: &T,
    n: usize,
    ends: &[usize],
    opts: TwistedOptions,
) -> TwistedResult {
    let d = model.dim();
    assert_eq!(
        ends.last().copied(),
        Some(d),
        "the last block ends at the dimension"
    );
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(opts.seed ^ 0x7715_7ED0);
    let mut state = model.start(n, opts.seed);
    let mut x = vec![0.0; n * d];
    let (mut log_w, mut prev_e) = (vec![0.0; n], vec![0.0; n]);
    let (mut e, mut lq) = (vec![0.0; n], vec![0.0; n]);
    let mut log_z = 0.0;
    let (mut model_s, mut energy_s) = (0.0, 0.0);
    let mut ess_per_block = Vec::with_capacity(ends.len());
    let mut resamplings = 0;
    let mut from = 0;
    let mut prefix = Vec::with_capacity(n * d);
    for (b, &to) in ends.iter().enumerate() {
        let w = to - from;
        let mut xb = vec![0.0; n * w];
        let t0 = Instant::now();
        model.extend(&mut state, from, to, &mut xb, &mut lq);
        model_s += t0.elapsed().as_secs_f64();
        for i in 0..n {
            x[i * d + from..i * d + to].copy_from_slice(&xb[i * w..(i + 1) * w]);
        }
        prefix.clear();
        for i in 0..n {
            prefix.extend_from_slice(&x[i * d..i * d + to]);
        }
        let t0 = Instant::now();
        target.partial_energy(&prefix, to, &mut e);
        energy_s += t0.elapsed().as_secs_f64();
        for i in 0..n {
            let inc = -(e[i] - prev_e[i]) - lq[i];
            log_w[i] += if inc.is_nan() { f64::NEG_INFINITY } else { inc };
        }
        if to == d && opts.com != ComForm::None {
            let mut a = vec![0.0; n];
            com_log_density(opts.com, opts.com_sigma, opts.n_atoms, &x, &mut a, None);
            log_w.iter_mut().zip(&a).for_each(|(l, a)| *l += a);
        }
        prev_e.copy_from_slice(&e);
        let s = ess(&log_w);
        ess_per_block.push(s);
        let last = b + 1 == ends.len();
        if !last && s < opts.ess_threshold {
            let lz = log_sum_exp(&log_w);
            if lz == f64::NEG_INFINITY {
                break; // every particle is dead; reported as ESS 0
            }
            log_z += lz - (n as f64).ln();
            let idx = opts.scheme.draw_log(&log_w, n, &mut rng);
            x = gather(&x, &idx, d);
            prev_e = idx.iter().map(|&i| prev_e[i]).collect();
            model.select(&mut state, &idx);
            log_w.fill(0.0);
            resamplings += 1;
        }
        from = to;
    }
    let complete = from == d;
    let final_ess = if complete { ess(&log_w) } else { 0.0 };
    let lz = log_sum_exp(&log_w);
    log_z += lz - (n as f64).ln();
    let (x_final, energies) = if complete && lz > f64::NEG_INFINITY {
        let idx = opts.scheme.draw_log(&log_w, n, &mut rng);
        (
            gather(&x, &idx, d),
            idx.iter().map(|&i| prev_e[i]).collect(),
        )
    } else {
        (x.clone(), prev_e)
    };
    TwistedResult {
        x: x_final,
        energies,
        x_weighted: x,
        log_weights: log_w,
        ess: final_ess,
        ess_per_block,
        log_z: if complete { log_z } else { f64::NEG_INFINITY },
        resamplings,
        energy_evaluations: n * ends.len(),
        model_evaluations: n,
        model_seconds: model_s,
        energy_seconds: energy_s,
    }
}
