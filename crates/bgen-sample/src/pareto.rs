//! How heavy the tail of importance weights is: the shape k of a generalized Pareto
//! distribution fitted to the largest weights (the Pareto-smoothed importance sampling
//! diagnostic of Vehtari, Simpson, Gelman, Yao and Gabry). The weights' variance is finite for
//! k < 1/2; up to about 0.7 self-normalised estimates still converge at a practical rate; above
//! 0.7 they do not, whatever the ESS says, and above 1 not even the mean weight exists. A
//! proposal with k above 0.7 has to come closer to the target (or be annealed toward it): more
//! draws do not help.

/// Above this k the weights' estimates are unreliable (the PSIS threshold for a few thousand
/// draws or more).
pub const RELIABLE_K: f64 = 0.7;

/// The Pareto shape k of the tail of `log_w` (finite entries; -inf are zero weights): fitted to
/// the M = min(n / 5, 3 sqrt(n)) largest weights' excesses over the next one. None with fewer
/// than 5 tail weights or a tail of equal weights (no tail to fit).
pub fn pareto_k(log_w: &[f64]) -> Option<f64> {
    let mut lw: Vec<f64> = log_w.iter().copied().filter(|v| v.is_finite()).collect();
    let n = lw.len();
    let m = ((n as f64 / 5.0).min(3.0 * (n as f64).sqrt())) as usize;
    if m < 5 {
        return None;
    }
    lw.sort_by(f64::total_cmp);
    let top = lw[n - 1];
    let cut = (lw[n - m - 1] - top).exp();
    // Weights relative to the largest (the shape does not depend on their scale).
    let excess: Vec<f64> = lw[n - m..].iter().map(|v| (v - top).exp() - cut).collect();
    if excess[m - 1] <= 0.0 {
        return None;
    }
    Some(shrunk(gpd_shape(&excess), m))
}

/// The shape k of a generalized Pareto fitted to `x` (ascending, positive excesses) by Zhang
/// and Stephens' (2009) posterior mean over a grid of theta = -k / sigma, weighted by its
/// profile likelihood.
fn gpd_shape(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let grid = 30 + (n.sqrt() as usize);
    let quartile = x[((n / 4.0 + 0.5) as usize).saturating_sub(1)];
    let largest = x[x.len() - 1];
    // k(theta) = mean log(1 - theta x), the profile maximum of the shape for a given theta.
    let k_of = |theta: f64| x.iter().map(|v| (-theta * v).ln_1p()).sum::<f64>() / n;
    let thetas: Vec<f64> = (1..=grid)
        .map(|j| {
            let spread = 1.0 - (grid as f64 / (j as f64 - 0.5)).sqrt();
            1.0 / largest + spread / (3.0 * quartile)
        })
        .collect();
    // The profile log-likelihood of each theta, then its normalised weight.
    let log_l: Vec<f64> = thetas
        .iter()
        .map(|&t| {
            let k = k_of(t);
            n * ((-t / k).ln() - k - 1.0)
        })
        .collect();
    let weight = |j: usize| {
        let s: f64 = log_l.iter().map(|l| (l - log_l[j]).exp()).sum();
        1.0 / s
    };
    let theta: f64 = (0..grid).map(|j| thetas[j] * weight(j)).sum();
    k_of(theta)
}

/// `k` of a tail of `m` weights shrunk toward 1/2 as by a prior worth 10 weights, which steadies
/// small tails (as PSIS does).
fn shrunk(k: f64, m: usize) -> f64 {
    let m = m as f64;
    (m * k + 10.0 * 0.5) / (m + 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    /// log-weights of n draws whose weights are Pareto with shape k: w = u^(-k).
    fn pareto_log_w(k: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        (0..n)
            .map(|_| -k * rng.random::<f64>().max(1e-300).ln())
            .collect()
    }

    /// The fitted shape recovers the Pareto shape of the weights, light and heavy.
    #[test]
    fn recovers_the_shape_of_pareto_weights() {
        for (k, seed) in [(0.3, 1), (0.8, 2), (1.5, 3)] {
            let got = pareto_k(&pareto_log_w(k, 10_000, seed)).unwrap();
            assert!((got - k).abs() < 0.15, "k {k}: fitted {got}");
        }
    }

    /// Nearly equal weights (log-normal with a small spread) have a short tail: k well below
    /// the threshold; zero weights (-inf) are left out, and too few weights give no k.
    #[test]
    fn light_tails_pass_and_small_samples_give_none() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
        let mut lw: Vec<f64> = (0..10_000)
            .map(|_| {
                let (u, v): (f64, f64) = (rng.random(), rng.random());
                0.3 * (-2.0 * u.max(1e-300).ln()).sqrt() * (std::f64::consts::TAU * v).cos()
            })
            .collect();
        lw.extend([f64::NEG_INFINITY; 100]);
        let k = pareto_k(&lw).unwrap();
        assert!(k < 0.3, "{k}");
        assert!(pareto_k(&pareto_log_w(1.0, 20, 5)).is_none());
        assert!(pareto_k(&[0.0; 1000]).is_none());
    }
}
