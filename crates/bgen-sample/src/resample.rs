//! Resampling: indices of offspring drawn in proportion to normalised weights.

use crate::ess::log_sum_exp;
use rand::RngExt;

/// Multinomial resampling: `n` independent draws from the weights (normalised, summing to 1).
pub fn multinomial(weights: &[f64], n: usize, rng: &mut impl rand::Rng) -> Vec<usize> {
    let mut cum = Vec::with_capacity(weights.len());
    let mut c = 0.0;
    for w in weights {
        c += w;
        cum.push(c);
    }
    (0..n)
        .map(|_| {
            let u: f64 = rng.random::<f64>() * c;
            cum.partition_point(|&v| v <= u).min(weights.len() - 1)
        })
        .collect()
}

/// Systematic resampling: one uniform offset, `n` evenly spaced points through the CDF (lower
/// variance than multinomial, still unbiased: E(count_i) = n w_i).
pub fn systematic(weights: &[f64], n: usize, rng: &mut impl rand::Rng) -> Vec<usize> {
    let total: f64 = weights.iter().sum();
    let u0: f64 = rng.random::<f64>();
    let mut out = Vec::with_capacity(n);
    let (mut i, mut c) = (0, weights[0] / total);
    for k in 0..n {
        let u = (k as f64 + u0) / n as f64;
        while u > c && i + 1 < weights.len() {
            i += 1;
            c += weights[i] / total;
        }
        out.push(i);
    }
    out
}

/// Resampling scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Multinomial,
    Systematic,
}

impl Scheme {
    /// Offspring indices under this scheme.
    pub fn draw(self, weights: &[f64], n: usize, rng: &mut impl rand::Rng) -> Vec<usize> {
        match self {
            Scheme::Multinomial => multinomial(weights, n, rng),
            Scheme::Systematic => systematic(weights, n, rng),
        }
    }

    /// Offspring indices drawn in proportion to exp(log_w) (at least one finite).
    pub fn draw_log(self, log_w: &[f64], n: usize, rng: &mut impl rand::Rng) -> Vec<usize> {
        let lz = log_sum_exp(log_w);
        let w: Vec<f64> = log_w.iter().map(|v| (v - lz).exp()).collect();
        self.draw(&w, n, rng)
    }
}

/// Rows `idx` (in that order, repeats allowed) of a row-major array with rows of `d` values.
pub fn gather(x: &[f64], idx: &[usize], d: usize) -> Vec<f64> {
    idx.iter()
        .flat_map(|&i| x[i * d..(i + 1) * d].iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Both schemes are unbiased: the mean offspring count of particle i over many draws is n w_i.
    #[test]
    fn resampling_is_unbiased() {
        let w = [0.05, 0.4, 0.1, 0.3, 0.15];
        let n = 5;
        for scheme in [Scheme::Multinomial, Scheme::Systematic] {
            let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(1);
            let reps = 200_000;
            let mut counts = [0.0; 5];
            for _ in 0..reps {
                for i in scheme.draw(&w, n, &mut rng) {
                    counts[i] += 1.0;
                }
            }
            for i in 0..5 {
                let mean = counts[i] / reps as f64;
                // binomial standard error of the mean count is below sqrt(n w (1-w) / reps)
                let se = (n as f64 * w[i] * (1.0 - w[i]) / reps as f64).sqrt();
                assert!(
                    (mean - n as f64 * w[i]).abs() < 5.0 * se,
                    "{scheme:?} {i}: {mean}"
                );
            }
        }
    }

    /// Systematic resampling gives each particle floor(n w) or ceil(n w) offspring.
    #[test]
    fn systematic_counts_are_within_one_of_expectation() {
        let w = [0.05, 0.4, 0.1, 0.3, 0.15];
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(2);
        for _ in 0..1000 {
            let mut c = [0usize; 5];
            for i in systematic(&w, 20, &mut rng) {
                c[i] += 1;
            }
            for i in 0..5 {
                assert!((c[i] as f64 - 20.0 * w[i]).abs() < 1.0 + 1e-9);
            }
        }
    }
}
