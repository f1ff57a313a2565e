//! Self-normalised importance sampling: log w = E_src - E_target (kT), with E_src = -log q
//! (plus the centre-of-mass term for molecules), optional dropping of the largest log-weights
//! and an energy cut-off, the normalised Kish ESS and the log Z estimate.

pub use crate::ess::{ess, log_sum_exp};
use serde::Serialize;

/// Settings of [`snis`].
#[derive(Clone, Copy, Debug, Serialize)]
pub struct SnisOptions {
    /// Fraction of the largest log-weights set to zero weight (the seeds drop 0.2%).
    pub drop_top: f64,
    /// Samples with a target energy above this (kT) get zero weight.
    pub energy_cutoff: Option<f64>,
    /// Truncated importance sampling (Ionides 2008): every weight is capped at sqrt(n) times
    /// the mean weight, so that no sample carries more than about 1 / sqrt(n) of the mass. The
    /// bias vanishes as n grows, and unlike dropping the largest weights it keeps the samples
    /// of thinly covered basins.
    pub truncate: bool,
}

/// `bgen sample --method snis`'s: nothing dropped, weights truncated (a test holds the two
/// equal).
impl Default for SnisOptions {
    fn default() -> Self {
        SnisOptions {
            drop_top: 0.0,
            energy_cutoff: None,
            truncate: true,
        }
    }
}

/// Outcome of [`snis`].
#[derive(Clone, Debug, Serialize)]
pub struct SnisResult {
    /// Log-weights after dropping (-inf for dropped samples).
    #[serde(skip)]
    pub log_weights: Vec<f64>,
    /// Normalised Kish ESS of those weights.
    pub ess: f64,
    /// log Z estimate from all weights before dropping: log mean w (unbiased for Z).
    pub log_z: f64,
    /// Samples dropped by the top fraction and by the energy cut-off.
    pub dropped_top: usize,
    pub dropped_energy: usize,
    /// Weights capped by the truncation.
    pub truncated: usize,
    /// The Pareto shape of the raw weights' tail ([`crate::pareto`]): above 0.7 the estimates
    /// are unreliable whatever the ESS says (None: too few weights to tell).
    pub pareto_k: Option<f64>,
}

/// Importance weights of samples with source energies `e_src` (-log q, kT) and target energies
/// `e_target` (kT).
pub fn snis(e_src: &[f64], e_target: &[f64], opts: SnisOptions) -> SnisResult {
    let n = e_src.len();
    let raw: Vec<f64> = e_src
        .iter()
        .zip(e_target)
        .map(|(s, t)| {
            let w = s - t;
            if w.is_nan() {
                f64::NEG_INFINITY
            } else {
                w
            }
        })
        .collect();
    let log_z = log_sum_exp(&raw) - (n as f64).ln();
    let pareto_k = crate::pareto::pareto_k(&raw);
    let mut lw = raw;
    let mut dropped_energy = 0;
    if let Some(cut) = opts.energy_cutoff {
        for (w, e) in lw.iter_mut().zip(e_target) {
            if *e > cut && *w > f64::NEG_INFINITY {
                *w = f64::NEG_INFINITY;
                dropped_energy += 1;
            }
        }
    }
    let k = (opts.drop_top * n as f64).floor() as usize;
    if k > 0 {
        let mut idx: Vec<usize> = (0..n).collect();
        idx.sort_by(|&a, &b| lw[b].total_cmp(&lw[a]));
        for &i in &idx[..k] {
            lw[i] = f64::NEG_INFINITY;
        }
    }
    let truncated = if opts.truncate { truncate(&mut lw) } else { 0 };
    SnisResult {
        ess: ess(&lw),
        log_weights: lw,
        log_z,
        dropped_top: k,
        dropped_energy,
        truncated,
        pareto_k,
    }
}

/// Truncated importance sampling (Ionides 2008): caps each log-weight at sqrt(n) times the
/// mean weight, so that no sample carries more than about 1/sqrt(n) of the mass; the bias
/// vanishes as n grows. Returns how many were capped.
pub fn truncate(log_w: &mut [f64]) -> usize {
    let cap = log_sum_exp(log_w) - 0.5 * (log_w.len() as f64).ln();
    let mut capped = 0;
    for w in log_w.iter_mut() {
        if *w > cap {
            *w = cap;
            capped += 1;
        }
    }
    capped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Truncation caps every weight at sqrt(n) times the mean weight: one sample with e^10
    /// times the others' weight no longer takes the whole ESS.
    #[test]
    fn truncation_caps_weights_at_sqrt_n_times_the_mean() {
        let n = 10_000;
        let mut src = vec![0.0; n];
        src[7] = 10.0;
        let e = vec![0.0; n];
        let opts = |truncate| SnisOptions {
            drop_top: 0.0,
            energy_cutoff: None,
            truncate,
        };
        let raw = snis(&src, &e, opts(false));
        let r = snis(&src, &e, opts(true));
        assert_eq!((raw.truncated, r.truncated), (0, 1));
        let mean_before = ((n - 1) as f64 + 10f64.exp()) / n as f64;
        let capped = r.log_weights[7].exp();
        assert!(
            (capped - 100.0 * mean_before).abs() < 1e-9 * capped,
            "{capped}"
        );
        assert!(raw.ess < 1e-3 && r.ess > 0.09, "{} -> {}", raw.ess, r.ess);
        // log Z is that of the raw weights.
        assert_eq!(r.log_z, raw.log_z);
    }

    /// A Gaussian proposal of width s for a standard normal target: narrower than the target,
    /// its weights exp(x^2 (1/s^2 - 1) / 2) have a Pareto tail of shape 1 - s^2 (0.84 at s = 0.4,
    /// flagged); wider, they are bounded (k well below 0.5).
    #[test]
    fn the_pareto_k_of_a_too_narrow_proposal_is_one_minus_its_variance() {
        use rand::SeedableRng;
        use rand_distr::{Distribution, StandardNormal};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(9);
        let z: Vec<f64> = (0..20_000)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        let k_of = |s: f64| {
            let x: Vec<f64> = z.iter().map(|v| s * v).collect();
            let src: Vec<f64> = x.iter().map(|v| 0.5 * (v / s).powi(2) + s.ln()).collect();
            let tgt: Vec<f64> = x.iter().map(|v| 0.5 * v * v).collect();
            snis(&src, &tgt, SnisOptions::default()).pareto_k.unwrap()
        };
        let narrow = k_of(0.4);
        assert!((narrow - 0.84).abs() < 0.12, "{narrow}");
        assert!(narrow > crate::pareto::RELIABLE_K);
        let wide = k_of(1.5);
        assert!(wide < 0.3, "{wide}");
    }

    #[test]
    fn ess_and_drop() {
        assert!((ess(&[0.0; 8]) - 1.0).abs() < 1e-12);
        let r = snis(
            &[0.0, 0.0, 0.0, 5.0],
            &[0.0; 4],
            SnisOptions {
                drop_top: 0.25,
                energy_cutoff: None,
                truncate: false,
            },
        );
        assert_eq!(r.log_weights[3], f64::NEG_INFINITY);
        assert!((r.ess - 0.75).abs() < 1e-12);
        assert!((r.log_z - ((3.0 + 5f64.exp()) / 4.0).ln()).abs() < 1e-12);
        let r = snis(
            &[0.0; 4],
            &[0.0, 9.0, 0.0, 0.0],
            SnisOptions {
                drop_top: 0.0,
                energy_cutoff: Some(5.0),
                truncate: false,
            },
        );
        assert_eq!(r.dropped_energy, 1);
        assert_eq!(r.log_weights[1], f64::NEG_INFINITY);
    }
}
