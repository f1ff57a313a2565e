//! Trained models as proposals over molecular coordinates in nm: sampling, exact log q (and for
//! a TarFlow its gradient), in f64 at the seam (the networks run in their own precision); for an
//! ArBG also block-by-block generation of particles for twisted SMC.

use crate::arbg::{Arbg, Generation};
use crate::data::{uniforms, Normalizer};
use crate::tarflow::TarFlow;
use bgen_sample::{Autoregressive, Proposal};
use std::sync::Mutex;
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
    fn to_tensor(&self, x: &[f64]) -> Tensor {
        (Tensor::from_slice(x).view([-1, self.normalizer.dim() as i64]) / self.normalizer.std)
            .to_kind(self.kind)
            .to_device(self.device)
    }

    /// `n` samples (n x 3N, nm) and their log q (1/nm^3N), reproducibly from `seed`.
    pub fn sample(&self, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let d = self.normalizer.dim();
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
        let d = self.normalizer.dim();
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
}

/// An ArBG with its normaliser: densities are per nm^(3N). log q is piecewise constant in x,
/// so its gradient is zero almost everywhere.
pub struct ArbgProposal {
    pub model: Arbg,
    pub normalizer: Normalizer,
    pub device: Device,
    /// Sampling temperature tau of the bin distributions (1: the trained model).
    pub tau: f64,
    /// Samples per network pass.
    pub batch: usize,
}

/// Particles of an ArBG being generated (twisted SMC).
pub struct ArbgParticles {
    generation: Generation,
    n: usize,
    seed: u64,
    /// Resamplings so far (new random numbers after each).
    epoch: u64,
}

impl ArbgProposal {
    fn uniform(&self, rows: usize, cols: usize, seed: u64) -> Tensor {
        Tensor::from_slice(&uniforms(rows * cols, seed))
            .view([rows as i64, cols as i64])
            .to_device(self.device)
    }

    /// `n` samples (n x 3N, nm) and their log q (1/nm^3N), reproducibly from `seed`.
    pub fn sample(&self, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let d = self.normalizer.dim();
        let (mut x, mut lq) = (Vec::with_capacity(n * d), Vec::with_capacity(n));
        let mut chunk = 0u64;
        while x.len() < n * d {
            let b = (n - lq.len()).min(self.batch);
            let s = seed.wrapping_mul(0x1000_0001).wrapping_add(chunk);
            let (xs, l) = self.model.sample_from(
                &self.uniform(b, d, s),
                &self.uniform(b, d, s ^ 0x0FF5_E700),
                self.tau,
            );
            x.extend(Vec::<f64>::try_from((xs * self.normalizer.std).view([-1])).expect("f64"));
            let l: Vec<f64> = Vec::try_from(l).expect("f64");
            lq.extend(l.into_iter().map(|v| v + self.normalizer.log_jacobian()));
            chunk += 1;
        }
        (x, lq)
    }

    /// log q (1/nm^3N) of `x` (n x 3N, nm) at the proposal's tau; -inf outside the binned range.
    pub fn log_q(&self, x: &[f64], out: &mut [f64]) {
        let d = self.normalizer.dim();
        for (xs, o) in x.chunks(self.batch * d).zip(out.chunks_mut(self.batch)) {
            let t = (Tensor::from_slice(xs).view([-1, d as i64]) / self.normalizer.std)
                .to_kind(Kind::Float)
                .to_device(self.device);
            let l = tch::no_grad(|| self.model.log_prob(&t, self.tau));
            let l: Vec<f64> = Vec::try_from(l.to_kind(Kind::Double)).expect("f64");
            for (o, v) in o.iter_mut().zip(l) {
                *o = v + self.normalizer.log_jacobian();
            }
        }
    }

    /// Starts `n` empty particles.
    pub fn start(&self, n: usize, seed: u64) -> ArbgParticles {
        ArbgParticles {
            generation: self.model.start(),
            n,
            seed,
            epoch: 0,
        }
    }

    /// Appends coordinates [from, to) (nm) to every particle; writes them into `x`
    /// (n x (to - from)) and log q of the block (1/nm^(to - from)) into `log_q`.
    pub fn extend(
        &self,
        p: &mut ArbgParticles,
        from: usize,
        to: usize,
        x: &mut [f64],
        log_q: &mut [f64],
    ) {
        assert_eq!(p.generation.done as usize, from, "blocks in order");
        let w = to - from;
        let s = p.seed ^ (p.epoch << 32) ^ (from as u64).wrapping_mul(0x9E37_79B9);
        let (xs, l) = self.model.extend(
            &mut p.generation,
            &self.uniform(p.n, w, s),
            &self.uniform(p.n, w, s ^ 0x0FF5_E700),
            self.tau,
        );
        let xs: Vec<f64> = Vec::try_from((xs * self.normalizer.std).view([-1])).expect("f64");
        x.copy_from_slice(&xs);
        let l: Vec<f64> = Vec::try_from(l).expect("f64");
        let jac = -(w as f64) * self.normalizer.std.ln();
        for (o, v) in log_q.iter_mut().zip(l) {
            *o = v + jac;
        }
    }

    /// Keeps particles `idx` in that order (resampling).
    pub fn select(&self, p: &mut ArbgParticles, idx: &[usize]) {
        let idx: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
        self.model.select(
            &mut p.generation,
            &Tensor::from_slice(&idx).to_device(self.device),
        );
        p.n = idx.len();
        p.epoch += 1;
    }
}

/// A libtorch model behind a mutex: its tensors are not shared between threads, while the
/// samplers' seams are `Sync`.
pub struct Locked<T>(pub Mutex<T>);

impl<T> Locked<T> {
    /// Wraps a model.
    pub fn new(model: T) -> Locked<T> {
        Locked(Mutex::new(model))
    }

    /// The model, for exclusive use.
    pub fn get(&self) -> std::sync::MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Proposal for Locked<FlowProposal> {
    fn dim(&self) -> usize {
        self.get().normalizer.dim()
    }
    fn sample(&self, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        self.get().sample(n, seed)
    }
    fn log_q(&self, x: &[f64], out: &mut [f64], grad: Option<&mut [f64]>) {
        self.get().log_q(x, out, grad)
    }
}

impl Proposal for Locked<ArbgProposal> {
    fn dim(&self) -> usize {
        self.get().normalizer.dim()
    }
    fn sample(&self, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        self.get().sample(n, seed)
    }
    /// log q is piecewise constant: its gradient is zero almost everywhere.
    fn log_q(&self, x: &[f64], out: &mut [f64], grad: Option<&mut [f64]>) {
        self.get().log_q(x, out);
        if let Some(g) = grad {
            g.fill(0.0);
        }
    }
}

impl Autoregressive for Locked<ArbgProposal> {
    type State = ArbgParticles;
    fn dim(&self) -> usize {
        Proposal::dim(self)
    }
    fn start(&self, n: usize, seed: u64) -> ArbgParticles {
        self.get().start(n, seed)
    }
    fn extend(&self, s: &mut ArbgParticles, from: usize, to: usize, x: &mut [f64], lq: &mut [f64]) {
        self.get().extend(s, from, to, x, lq)
    }
    fn select(&self, s: &mut ArbgParticles, idx: &[usize]) {
        self.get().select(s, idx)
    }
}
