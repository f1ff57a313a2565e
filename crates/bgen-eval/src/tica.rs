//! Time-lagged independent component analysis (TICA): the linear projections of features that
//! decorrelate slowest. Fitted on a trajectory with a lag in frames by the symmetrised
//! generalised eigenproblem C(tau) v = lambda C(0) v, whitening C(0) first.

use nalgebra::{DMatrix, SymmetricEigen};

/// A fitted TICA model.
#[derive(Clone, Debug)]
pub struct Tica {
    pub mean: Vec<f64>,
    /// Components as columns (dim x k), sorted by decreasing eigenvalue; scaled so that the
    /// projections have unit variance in the fitting data.
    pub components: DMatrix<f64>,
    /// Autocorrelations at the lag of each component.
    pub eigenvalues: Vec<f64>,
}

/// Smallest variance of a kept direction, in squared feature units (nm^2 for distances): below
/// it a direction is round-off, and whitening it would blow round-off up to any size.
pub const MIN_VARIANCE: f64 = 1e-12;

impl Tica {
    /// Fits on `x` (frames x dim, row-major, in time order) with `lag` frames, keeping `k`
    /// components. Directions with C(0) eigenvalues below 1e-10 of the largest, or below
    /// [`MIN_VARIANCE`], are dropped (frames that never move have no components at all).
    pub fn fit(x: &[f64], dim: usize, lag: usize, k: usize) -> Tica {
        let t = x.len() / dim;
        assert!(
            t > lag + 1,
            "TICA needs more frames ({t}) than the lag ({lag}) plus one"
        );
        let mut mean = vec![0.0; dim];
        for row in x.chunks(dim) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= t as f64);
        let centred = DMatrix::from_row_iterator(
            t,
            dim,
            x.iter().enumerate().map(|(q, v)| v - mean[q % dim]),
        );
        let c0 = centred.transpose() * &centred / t as f64;
        let a = centred.rows(0, t - lag);
        let b = centred.rows(lag, t - lag);
        let ct = a.transpose() * b;
        let ct = (&ct + ct.transpose()) / (2.0 * (t - lag) as f64);
        let e0 = SymmetricEigen::new(c0);
        let max = e0.eigenvalues.iter().fold(0.0f64, |m, v| m.max(*v));
        let keep: Vec<usize> = (0..dim)
            .filter(|&i| e0.eigenvalues[i] > 1e-10 * max && e0.eigenvalues[i] > MIN_VARIANCE)
            .collect();
        if keep.is_empty() {
            // Frames that never move (one structure, or one translated): no component.
            return Tica {
                mean,
                components: DMatrix::zeros(dim, 0),
                eigenvalues: Vec::new(),
            };
        }
        let mut w = DMatrix::zeros(dim, keep.len());
        for (c, &i) in keep.iter().enumerate() {
            let s = 1.0 / e0.eigenvalues[i].sqrt();
            w.set_column(c, &(e0.eigenvectors.column(i) * s));
        }
        let m = w.transpose() * ct * &w;
        let m = (&m + m.transpose()) / 2.0;
        let e = SymmetricEigen::new(m);
        let mut order: Vec<usize> = (0..keep.len()).collect();
        order.sort_by(|&p, &q| e.eigenvalues[q].total_cmp(&e.eigenvalues[p]));
        let k = k.min(order.len());
        let mut components = DMatrix::zeros(dim, k);
        for (c, &i) in order.iter().take(k).enumerate() {
            components.set_column(c, &(&w * e.eigenvectors.column(i)));
        }
        Tica {
            mean,
            components,
            eigenvalues: order.iter().take(k).map(|&i| e.eigenvalues[i]).collect(),
        }
    }

    /// Projects `x` (frames x dim) onto the components: frames x k, row-major.
    pub fn transform(&self, x: &[f64]) -> Vec<f64> {
        let dim = self.mean.len();
        let k = self.components.ncols();
        let mut out = Vec::with_capacity(x.len() / dim * k);
        for row in x.chunks(dim) {
            for c in 0..k {
                let col = self.components.column(c);
                out.push(
                    row.iter()
                        .zip(&self.mean)
                        .zip(col.iter())
                        .map(|((v, m), w)| (v - m) * w)
                        .sum(),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames that never move have no component (and no panic in the eigen-solver).
    #[test]
    fn frames_without_motion_have_no_component() {
        let x: Vec<f64> = (0..300).flat_map(|_| [0.1, 0.2, 0.3]).collect();
        let t = Tica::fit(&x, 3, 5, 2);
        assert_eq!((t.components.ncols(), t.eigenvalues.len()), (0, 0));
        assert!(t.transform(&x[..6]).is_empty());
    }

    /// A slow AR(1) (0.99) and a fast one (0.2), mixed by a rotation plus a constant feature:
    /// the first component is the slow direction with eigenvalue 0.99^lag.
    #[test]
    fn recovers_a_known_slow_mode() {
        let mut s = 9u64;
        let mut gauss = move || {
            let mut u = || {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
            };
            (-2.0 * u().ln()).sqrt() * (std::f64::consts::TAU * u()).cos()
        };
        let (t, lag) = (200_000, 5);
        let (mut slow, mut fast) = (0.0, 0.0);
        let th = 0.6f64;
        let mut x = Vec::with_capacity(3 * t);
        for _ in 0..t {
            slow = 0.99 * slow + (1.0f64 - 0.99 * 0.99).sqrt() * gauss();
            fast = 0.2 * fast + (1.0f64 - 0.04).sqrt() * gauss();
            x.push(th.cos() * slow - th.sin() * fast * 3.0);
            x.push(th.sin() * slow + th.cos() * fast * 3.0);
            x.push(1.0); // constant: dropped, not a NaN
        }
        let tica = Tica::fit(&x, 3, lag, 2);
        let want = 0.99f64.powi(lag as i32);
        assert!(
            (tica.eigenvalues[0] - want).abs() < 0.01,
            "{:?}",
            tica.eigenvalues
        );
        assert!(tica.eigenvalues[1].abs() < 0.02, "{:?}", tica.eigenvalues);
        // The projection on the first component is the slow process up to sign.
        let y = tica.transform(&x);
        let (mut sxy, mut syy) = (0.0, 0.0);
        let mut sl = 0.0;
        for q in 0..t {
            let p = y[2 * q];
            let rebuilt = th.cos() * x[3 * q] + th.sin() * x[3 * q + 1]; // = slow
            sxy += p * rebuilt;
            syy += p * p;
            sl += rebuilt * rebuilt;
        }
        let corr = sxy / (syy * sl).sqrt();
        assert!(corr.abs() > 0.999, "correlation {corr}");
    }
}
