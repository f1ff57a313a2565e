//! The centre-of-mass term of the SBG paper's Proposition 1. A model trained on centred
//! frames plus CoM noise N(0, sigma^2 I) (sigma = std / sqrt(N) in nm) has a density over the
//! CoM c (mean atom position) as well, while the Boltzmann target is flat in c. Importance
//! weights stay exact when the target is given a fixed CoM density A(c): the proposal energy
//! becomes E_src(x) = -log q(x) + A(x).
//!
//! - Gaussian form (default): A = log N(c; 0, sigma^2 I), the density the training noise had.
//! - Chi form: A = log chi_3(|c|; sigma), the density of the CoM's distance from the origin
//!   (a chi distribution with 3 degrees of freedom scaled by sigma). It differs from the
//!   Gaussian form by 2 ln |c| + const, i.e. it gives the target a CoM density proportional to
//!   chi_3(|c|); both give consistent self-normalised weights.

use crate::proposal::Proposal;

/// Which CoM density the target is given (`gaussian`, `chi` or `none` on the command line and
/// in files).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ComForm {
    /// No CoM term (a proposal that is itself centred).
    None,
    /// log N(c; 0, sigma^2 I), the density of the training noise (the default).
    #[default]
    Gaussian,
    /// log chi_3(|c|; sigma).
    Chi,
}

bgen_system::display_as_value!(ComForm);

/// A(x) for a batch of molecules x (n x 3N, nm) into `out` (n); with `grad`, dA/dx is added
/// to it. `sigma` is the CoM noise scale in nm.
pub fn com_log_density(
    form: ComForm,
    sigma: f64,
    n_atoms: usize,
    x: &[f64],
    out: &mut [f64],
    mut grad: Option<&mut [f64]>,
) {
    if form == ComForm::None {
        // Nothing to add (and `x` need not be Cartesian).
        return out.fill(0.0);
    }
    let d = 3 * n_atoms;
    let var = sigma * sigma;
    let ln2pi = (2.0 * std::f64::consts::PI).ln();
    for (i, o) in out.iter_mut().enumerate() {
        let xi = &x[i * d..(i + 1) * d];
        let mut c = [0.0; 3];
        for a in 0..n_atoms {
            for k in 0..3 {
                c[k] += xi[3 * a + k] / n_atoms as f64;
            }
        }
        let r2: f64 = c.iter().map(|v| v * v).sum();
        // dA/dc
        let (a, dc) = match form {
            ComForm::None => (0.0, [0.0; 3]),
            ComForm::Gaussian => (
                -0.5 * r2 / var - 1.5 * (ln2pi + var.ln()),
                c.map(|v| -v / var),
            ),
            // chi_3(r; sigma) = sqrt(2/pi) r^2 exp(-r^2 / (2 sigma^2)) / sigma^3
            ComForm::Chi => (
                0.5 * (2.0 / std::f64::consts::PI).ln() + r2.ln()
                    - 0.5 * r2 / var
                    - 3.0 * sigma.ln(),
                c.map(|v| 2.0 * v / r2 - v / var),
            ),
        };
        *o = a;
        if let Some(g) = grad.as_deref_mut() {
            for at in 0..n_atoms {
                for k in 0..3 {
                    g[i * d + 3 * at + k] += dc[k] / n_atoms as f64;
                }
            }
        }
    }
}

/// A proposal with the CoM term folded in: log q'(x) = log q(x) - A(x), so that
/// E_src = -log q' = -log q + A. (q' is not normalised; SNIS and SMC do not need it to be.)
pub struct ComAdjusted<P> {
    pub inner: P,
    pub form: ComForm,
    /// CoM noise scale, nm.
    pub sigma: f64,
    pub n_atoms: usize,
}

impl<P: Proposal> Proposal for ComAdjusted<P> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn scale(&self) -> Option<Vec<f64>> {
        self.inner.scale()
    }

    fn sample(&self, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let (x, mut lq) = self.inner.sample(n, seed);
        let mut a = vec![0.0; n];
        com_log_density(self.form, self.sigma, self.n_atoms, &x, &mut a, None);
        lq.iter_mut().zip(&a).for_each(|(l, a)| *l -= a);
        (x, lq)
    }

    fn log_q(&self, x: &[f64], out: &mut [f64], mut grad: Option<&mut [f64]>) {
        self.inner.log_q(x, out, grad.as_deref_mut());
        let mut a = vec![0.0; out.len()];
        match grad {
            Some(g) => {
                // grad log q' = grad log q - grad A: negate, add grad A, negate back.
                g.iter_mut().for_each(|v| *v = -*v);
                com_log_density(
                    self.form,
                    self.sigma,
                    self.n_atoms,
                    x,
                    &mut a,
                    Some(&mut *g),
                );
                g.iter_mut().for_each(|v| *v = -*v);
            }
            None => com_log_density(self.form, self.sigma, self.n_atoms, x, &mut a, None),
        }
        out.iter_mut().zip(&a).for_each(|(l, a)| *l -= a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gradient matches central differences for both forms.
    #[test]
    fn gradient_matches_finite_differences() {
        let n_atoms = 3;
        let x: Vec<f64> = (0..9).map(|k| 0.05 * (k as f64 - 3.7)).collect();
        for form in [ComForm::Gaussian, ComForm::Chi] {
            let mut g = vec![0.0; 9];
            let mut a = [0.0];
            com_log_density(form, 0.04, n_atoms, &x, &mut a, Some(&mut g));
            for k in 0..9 {
                let h = 1e-6;
                let (mut p, mut m) = (x.clone(), x.clone());
                p[k] += h;
                m[k] -= h;
                let (mut ap, mut am) = ([0.0], [0.0]);
                com_log_density(form, 0.04, n_atoms, &p, &mut ap, None);
                com_log_density(form, 0.04, n_atoms, &m, &mut am, None);
                let fd = (ap[0] - am[0]) / (2.0 * h);
                assert!(
                    (fd - g[k]).abs() < 1e-6 * fd.abs().max(1.0),
                    "{form:?} {k}: {fd} vs {}",
                    g[k]
                );
            }
        }
    }

    /// Both densities are normalised: the Gaussian over R^3, the chi over r in (0, inf).
    #[test]
    fn densities_are_normalised() {
        let sigma = 0.07;
        let (mut chi, mut radial_gauss) = (0.0, 0.0);
        let dr = 1e-5;
        for k in 0..100_000 {
            let r = (k as f64 + 0.5) * dr;
            // One "molecule" of one atom at (r, 0, 0): its CoM is the atom.
            let (mut ac, mut ag) = ([0.0], [0.0]);
            com_log_density(ComForm::Chi, sigma, 1, &[r, 0.0, 0.0], &mut ac, None);
            com_log_density(ComForm::Gaussian, sigma, 1, &[r, 0.0, 0.0], &mut ag, None);
            chi += ac[0].exp() * dr;
            radial_gauss += ag[0].exp() * 4.0 * std::f64::consts::PI * r * r * dr;
        }
        assert!((chi - 1.0).abs() < 1e-8, "{chi}");
        assert!((radial_gauss - 1.0).abs() < 1e-8, "{radial_gauss}");
    }
}
