//! Proposals for tests and baselines: a Gaussian. The seam itself, [`Proposal`], lives with the
//! other seams in `bgen_system::target`.

use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

pub use bgen_system::Proposal;

/// An isotropic Gaussian N(mean, sigma^2 I).
#[derive(Clone, Debug)]
pub struct Gaussian {
    pub mean: Vec<f64>,
    pub sigma: f64,
}

impl Proposal for Gaussian {
    fn dim(&self) -> usize {
        self.mean.len()
    }

    fn sample(&self, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let d = self.dim();
        let x: Vec<f64> = (0..n * d)
            .map(|k| {
                let z: f64 = rng.sample(StandardNormal);
                self.mean[k % d] + self.sigma * z
            })
            .collect();
        let mut lq = vec![0.0; n];
        self.log_q(&x, &mut lq, None);
        (x, lq)
    }

    fn log_q(&self, x: &[f64], log_q: &mut [f64], mut grad: Option<&mut [f64]>) {
        let d = self.dim();
        let s2 = self.sigma * self.sigma;
        let norm = -0.5 * d as f64 * (2.0 * std::f64::consts::PI * s2).ln();
        for (i, lq) in log_q.iter_mut().enumerate() {
            let xi = &x[i * d..(i + 1) * d];
            let mut r2 = 0.0;
            for k in 0..d {
                let u = xi[k] - self.mean[k];
                r2 += u * u;
                if let Some(g) = grad.as_deref_mut() {
                    g[i * d + k] = -u / s2;
                }
            }
            *lq = norm - 0.5 * r2 / s2;
        }
    }
}
