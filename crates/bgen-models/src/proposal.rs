//! A trained TarFlow as a proposal over molecular coordinates in nm: sampling, exact log q and
//! its gradient, in f64 at the seam (the network runs in its own precision).

use crate::data::Normalizer;
use crate::tarflow::TarFlow;
use tch::{Device, Kind, Tensor};

/// A flow with its normaliser: densities are per nm^(3N).
pub struct FlowProposal {
    pub flow: TarFlow,
    pub normalizer: Normalizer,
    pub device: Device,
    pub kind: Kind,
    /// Samples per network pass.
    pub batch: usize,
}

impl FlowProposal {
    fn dim(&self) -> usize {
        3 * self.normalizer.n_atoms as usize
    }

    fn to_tensor(&self, x: &[f64]) -> Tensor {
        (Tensor::from_slice(x).view([-1, self.dim() as i64]) / self.normalizer.std)
            .to_kind(self.kind)
            .to_device(self.device)
    }

    /// `n` samples (n x 3N, nm) and their log q (1/nm^3N), reproducibly from `seed`.
    pub fn sample(&self, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let d = self.dim();
        let (mut x, mut lq) = (Vec::with_capacity(n * d), Vec::with_capacity(n));
        let mut done = 0;
        let mut chunk = 0u64;
        while done < n {
            let b = (n - done).min(self.batch);
            let z = Tensor::from_slice(&crate::data::normals(
                b * d,
                seed.wrapping_mul(0x1000_0001).wrapping_add(chunk),
            ))
            .view([b as i64, d as i64])
            .to_kind(self.kind)
            .to_device(self.device);
            let (xs, l) = self.flow.sample_from(&z);
            let xs: Vec<f64> =
                Vec::try_from((xs.to_kind(Kind::Double) * self.normalizer.std).view([-1]))
                    .expect("f64");
            let l: Vec<f64> = Vec::try_from(l.to_kind(Kind::Double)).expect("f64");
            x.extend(xs);
            lq.extend(l.into_iter().map(|v| v + self.normalizer.log_jacobian()));
            done += b;
            chunk += 1;
        }
        (x, lq)
    }

    /// log q (1/nm^3N) of `x` (n x 3N, nm) and, with `grad`, d log q / dx (1/nm).
    pub fn log_q(&self, x: &[f64], out: &mut [f64], mut grad: Option<&mut [f64]>) {
        let d = self.dim();
        let n = x.len() / d;
        let mut s = 0;
        while s < n {
            let b = (n - s).min(self.batch);
            let xs = self.to_tensor(&x[s * d..(s + b) * d]);
            let (l, g) = match grad.is_some() {
                true => {
                    let xs = xs.set_requires_grad(true);
                    let l = self.flow.log_prob(&xs);
                    let g =
                        Tensor::run_backward(&[l.sum(l.kind())], &[&xs], false, false).remove(0);
                    (l.detach(), Some(g / self.normalizer.std))
                }
                false => (tch::no_grad(|| self.flow.log_prob(&xs)), None),
            };
            let l: Vec<f64> = Vec::try_from(l.to_kind(Kind::Double)).expect("f64");
            for (k, v) in l.into_iter().enumerate() {
                out[s + k] = v + self.normalizer.log_jacobian();
            }
            if let (Some(g), Some(dst)) = (g, grad.as_deref_mut()) {
                let g: Vec<f64> = Vec::try_from(g.to_kind(Kind::Double).view([-1])).expect("f64");
                dst[s * d..(s + b) * d].copy_from_slice(&g);
            }
            s += b;
        }
    }

    /// The centre-of-mass term of the SBG paper's Proposition 1, Gaussian form: the flow saw CoM
    /// noise N(0, I/N) in normalised units, so a target that is flat in the CoM is given this
    /// CoM density: returns log N(c; 0, std^2/N I) (c = mean position, nm) and adds its gradient
    /// to `grad` when given.
    pub fn com_log_density(&self, x: &[f64], out: &mut [f64], mut grad: Option<&mut [f64]>) {
        let na = self.normalizer.n_atoms as usize;
        let var = self.normalizer.std * self.normalizer.std / na as f64;
        let d = 3 * na;
        for (i, o) in out.iter_mut().enumerate() {
            let c = crate::data::centre(&x[i * d..(i + 1) * d], na);
            let r2: f64 = c.iter().map(|v| v * v).sum();
            *o = -0.5 * r2 / var - 1.5 * (2.0 * std::f64::consts::PI * var).ln();
            if let Some(g) = grad.as_deref_mut() {
                for a in 0..na {
                    for k in 0..3 {
                        g[i * d + 3 * a + k] += -c[k] / var / na as f64;
                    }
                }
            }
        }
    }
}
