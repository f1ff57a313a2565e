//! Sample-quality numbers: effective sample size and basin populations with error bars.

use std::collections::BTreeMap;

/// Normalised weights exp(log_w - max) / sum from log-weights; non-finite log-weights get 0.
pub fn weights_from_log(log_w: &[f64]) -> Vec<f64> {
    let max = log_w
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = log_w
        .iter()
        .map(|&l| if l.is_finite() { (l - max).exp() } else { 0.0 })
        .collect();
    let t: f64 = w.iter().sum();
    w.into_iter().map(|v| v / t).collect()
}

/// Normalised Kish effective sample size (sum w)^2 / (n sum w^2) of log-weights: the samplers'
/// own definition ([`bgen_sample::ess::ess`]).
pub use bgen_sample::ess::ess as kish_ess;

/// A population (or free-energy difference) with its standard error.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Estimate {
    pub value: f64,
    pub se: f64,
}

/// Weighted populations of `labels` (one per sample) with standard errors from `blocks`
/// contiguous blocks (honest for correlated MD frames as well as for independent samples).
pub fn populations(
    labels: &[&str],
    weights: &[f64],
    names: &[&str],
    blocks: usize,
) -> BTreeMap<String, Estimate> {
    let n = labels.len();
    let blocks = blocks.clamp(1, n.max(1));
    let frac = |lo: usize, hi: usize, name: &str| {
        let tot: f64 = weights[lo..hi].iter().sum();
        // fold from +0.0: an empty f64 sum is -0.0
        let hit = (lo..hi)
            .filter(|&i| labels[i] == name)
            .fold(0.0, |s, i| s + weights[i]);
        if tot > 0.0 {
            hit / tot
        } else {
            f64::NAN
        }
    };
    names
        .iter()
        .map(|&name| {
            let value = frac(0, n, name);
            let per: Vec<f64> = (0..blocks)
                .map(|b| frac(b * n / blocks, (b + 1) * n / blocks, name))
                .filter(|v| v.is_finite())
                .collect();
            let k = per.len() as f64;
            let mean = per.iter().sum::<f64>() / k;
            let var = per.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1.0).max(1.0);
            (
                name.to_string(),
                Estimate {
                    value,
                    se: (var / k).sqrt(),
                },
            )
        })
        .collect()
}

/// Free-energy differences F_k - F_ref = -ln(p_k / p_ref) in kT with propagated errors.
pub fn free_energies(
    pops: &BTreeMap<String, Estimate>,
    reference: &str,
) -> BTreeMap<String, Estimate> {
    let r = pops[reference];
    pops.iter()
        .map(|(k, p)| {
            let value = -(p.value / r.value).ln() + 0.0; // + 0.0: no -0.0
            let se = ((p.se / p.value).powi(2) + (r.se / r.value).powi(2)).sqrt();
            (k.clone(), Estimate { value, se })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ess_of_known_weights() {
        assert!((kish_ess(&[0.0; 10]) - 1.0).abs() < 1e-12);
        // one weight dominates: ESS -> 1/n
        let mut lw = vec![-1000.0; 10];
        lw[3] = 0.0;
        assert!((kish_ess(&lw) - 0.1).abs() < 1e-12);
        // weights 1,1,2,2 (log): (6)^2 / (4 * 10) = 0.9
        let lw = [0.0, 0.0, 2f64.ln(), 2f64.ln()];
        assert!((kish_ess(&lw) - 0.9).abs() < 1e-12);
        // shift invariance and a -inf weight counts as zero
        let lw2: Vec<f64> = lw
            .iter()
            .map(|v| v + 700.0)
            .chain([f64::NEG_INFINITY])
            .collect();
        assert!((kish_ess(&lw2) - 0.9 * 4.0 / 5.0).abs() < 1e-12);
    }

    #[test]
    fn weighted_populations_and_free_energies() {
        let labels = ["a", "b", "a", "b"];
        let w = [1.0, 1.0, 1.0, 3.0];
        let p = populations(&labels, &w, &["a", "b"], 2);
        assert!((p["a"].value - 1.0 / 3.0).abs() < 1e-12);
        assert!((p["b"].value - 2.0 / 3.0).abs() < 1e-12);
        let f = free_energies(&p, "a");
        assert!((f["b"].value + 2f64.ln()).abs() < 1e-12);
        assert_eq!(f["a"].value, 0.0);
    }
}
