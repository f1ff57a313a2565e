//! Trained models as proposals over molecular coordinates in nm: sampling, exact log q (and for
//! a TarFlow its gradient), in f64 at the seam (the networks run in their own precision); for an
//! ArBG also block-by-block generation of particles for twisted SMC.

use crate::arbg::{Arbg, Generation};
use crate::data::{uniforms, Normalizer};
use crate::internal::Internal;
use crate::model::Model;
use crate::tarflow::{Labels, TarFlow};
use bgen_system::{Autoregressive, Proposal};
use std::sync::Mutex;
use tch::{Device, Kind, Tensor};

/// A flow with its coordinates: Cartesian (densities per nm^(3N), through the normaliser) or,
/// with `internal`, internal coordinates (densities per nm^(N-1) rad^(2N-5): samples and log q
/// are on the internal coordinates themselves).
pub struct FlowProposal {
    pub flow: TarFlow,
    pub normalizer: Normalizer,
    /// Internal coordinates: the model's features are these, standardised.
    pub internal: Option<Internal>,
    pub device: Device,
    pub kind: Kind,
    /// Samples per network pass.
    pub batch: usize,
    /// Temperature of the prior, N(0, tau^2 I) (1: the trained model; below 1 trades the
    /// tails for fewer high-energy samples, with log q exact at that tau).
    pub tau: f64,
    /// A transferable flow: the molecule's token labels (one row; the flow's other tokens
    /// are padding).
    pub labels: Option<Labels>,
}

impl FlowProposal {
    /// The molecule's labels for `rows` rows, and the flow's padded width (dims).
    fn labelled(&self, rows: usize) -> Option<(Labels, i64)> {
        self.labels
            .as_ref()
            .map(|l| (l.repeat(rows as i64), self.flow.config.dim()))
    }

    /// Coordinates per sample: 3N Cartesian, or 3N - 6 internal.
    pub fn dim(&self) -> usize {
        match &self.internal {
            Some(t) => t.dim(),
            None => self.normalizer.dim(),
        }
    }

    fn to_tensor(&self, y: &[f64]) -> Tensor {
        Tensor::from_slice(y)
            .view([-1, self.dim() as i64])
            .to_kind(self.kind)
            .to_device(self.device)
    }

    /// Chunk `chunk` of `n` samples drawn reproducibly from `seed`: rows [chunk batch,
    /// min(n, (chunk + 1) batch)) as (x (rows x dim, nm or internal), log q).
    pub fn sample_chunk(&self, n: usize, seed: u64, chunk: usize) -> (Vec<f64>, Vec<f64>) {
        let d = self.dim();
        let b = (n - chunk * self.batch).min(self.batch);
        let (ys, l) = match self.labelled(b) {
            None => {
                let z = Tensor::from_slice(&crate::data::normals(b * d, chunk_seed(seed, chunk)))
                    .view([b as i64, d as i64])
                    .to_kind(self.kind)
                    .to_device(self.device);
                self.flow.sample(&z, self.tau, None)
            }
            Some((labels, width)) => {
                // The molecule's dimensions first; the padding's noise is never used.
                let w = width as usize;
                let z = Tensor::from_slice(&crate::data::normals(b * w, chunk_seed(seed, chunk)))
                    .view([b as i64, width])
                    .to_kind(self.kind)
                    .to_device(self.device);
                let labels = labels.to(self.device);
                let (ys, l) = self.flow.sample(&z, self.tau, Some(&labels));
                (ys.narrow(1, 0, d as i64), l)
            }
        };
        let y = Vec::<f64>::try_from(ys.to_kind(Kind::Double).view([-1])).expect("f64");
        let l: Vec<f64> = Vec::try_from(l.to_kind(Kind::Double)).expect("f64");
        match &self.internal {
            None => {
                let jac = self.normalizer.log_jacobian();
                let mut x = y;
                self.normalizer.from_units(&mut x);
                (x, l.into_iter().map(|v| v + jac).collect())
            }
            Some(t) => {
                let mut ic = vec![0.0; y.len()];
                let ld = t.from_model(&y, &mut ic);
                (ic, l.iter().zip(&ld).map(|(a, b)| a + b).collect())
            }
        }
    }

    /// log q of `x` (rows x dim, at most `batch` rows: one network pass) into `out` and, with
    /// `grad`, d log q / dx.
    pub fn log_q_rows(&self, x: &[f64], out: &mut [f64], grad: Option<&mut [f64]>) {
        let want_grad = grad.is_some();
        // Features, log|dy/dx| per row, and (for the gradient) dy/dx and d log|dy/dx| / dx.
        let (y, ld, deriv) = match &self.internal {
            None => {
                let y = self.normalizer.to_units(x);
                let ld = vec![self.normalizer.log_jacobian(); out.len()];
                (y, ld, None)
            }
            Some(t) => {
                let mut y = vec![0.0; x.len()];
                if want_grad {
                    let (mut dy, mut dl) = (vec![0.0; x.len()], vec![0.0; x.len()]);
                    let ld = t.to_model(x, &mut y, Some((&mut dy, &mut dl)));
                    (y, ld, Some((dy, dl)))
                } else {
                    let ld = t.to_model(x, &mut y, None);
                    (y, ld, None)
                }
            }
        };
        let ys = self.to_tensor(&y);
        let labelled = self.labelled(out.len());
        let log_prob = |ys: &Tensor| match &labelled {
            None => self.flow.log_prob(ys, self.tau, None),
            Some((labels, width)) => {
                let rows = ys.size()[0];
                let pad = Tensor::zeros([rows, width - ys.size()[1]], (ys.kind(), ys.device()));
                let padded = Tensor::cat(&[ys.shallow_clone(), pad], 1);
                self.flow
                    .log_prob(&padded, self.tau, Some(&labels.to(self.device)))
            }
        };
        let (l, g) = match want_grad {
            true => {
                let ys = ys.set_requires_grad(true);
                let l = log_prob(&ys);
                let g = Tensor::run_backward(&[l.sum(l.kind())], &[&ys], false, false).remove(0);
                (l.detach(), Some(g))
            }
            false => (tch::no_grad(|| log_prob(&ys)), None),
        };
        let l: Vec<f64> = Vec::try_from(l.to_kind(Kind::Double)).expect("f64");
        for ((o, v), j) in out.iter_mut().zip(l).zip(&ld) {
            *o = v + j;
        }
        if let (Some(g), Some(dst)) = (g, grad) {
            g.to_kind(Kind::Double).view([-1]).copy_data(dst, dst.len());
            match deriv {
                None => self.normalizer.grad_to_nm(dst),
                Some((dy, dl)) => {
                    for ((v, a), b) in dst.iter_mut().zip(&dy).zip(&dl) {
                        *v = *v * a + b;
                    }
                }
            }
        }
    }
}

/// The seed of chunk `chunk` of a draw seeded `seed`.
fn chunk_seed(seed: u64, chunk: usize) -> u64 {
    seed.wrapping_mul(0x1000_0001).wrapping_add(chunk as u64)
}

/// An ArBG with its coordinates: Cartesian (densities per nm^(3N), through the normaliser) or,
/// with `internal`, internal coordinates binned as [`Internal::to_binned`] says (torsion bins
/// tile the circle). log q is piecewise constant, so its gradient is zero almost everywhere.
pub struct ArbgProposal {
    pub model: Arbg,
    pub normalizer: Normalizer,
    /// Internal coordinates: the model's tokens are these (bonds, angles, torsions).
    pub internal: Option<Internal>,
    pub device: Device,
    /// Sampling temperature tau of the bin distributions (1: the trained model).
    pub tau: f64,
    /// Samples per network pass.
    pub batch: usize,
    /// A transferable model's molecule: its tokens' labels (one row).
    pub labels: Option<Labels>,
}

/// Particles of an ArBG being generated (twisted SMC), in contiguous slices of rows: one
/// generation per worker of the pool.
pub struct ArbgParticles {
    parts: Vec<Generation>,
    n: usize,
    seed: u64,
    /// Resamplings so far (new random numbers after each).
    epoch: u64,
}

/// `n` rows in contiguous slices of `batch` rows (the last one shorter; one empty slice for no
/// rows). The slices, and so the shapes every network pass sees, do not depend on the number
/// of workers: libtorch's kernels may round differently for another number of rows (they do
/// with AVX2 kernels), which would make the results depend on it.
fn row_slices(n: usize, batch: usize) -> Vec<std::ops::Range<usize>> {
    let b = batch.max(1);
    (0..n.div_ceil(b).max(1))
        .map(|k| k * b..((k + 1) * b).min(n))
        .collect()
}

impl ArbgProposal {
    fn uniform(&self, rows: usize, cols: usize, seed: u64) -> Tensor {
        Tensor::from_slice(&uniforms(rows * cols, seed))
            .view([rows as i64, cols as i64])
            .to_device(self.device)
    }

    /// Coordinates per sample: 3N Cartesian, or 3N - 6 internal.
    pub fn dim(&self) -> usize {
        match &self.internal {
            Some(t) => t.dim(),
            None => self.normalizer.dim(),
        }
    }

    /// Coordinates (nm or internal) of model tokens `y` (rows x cols.len()) of columns `cols`,
    /// in place; returns log|det dy/dx| per row.
    fn tokens_to_coords(&self, y: &mut [f64], cols: std::ops::Range<usize>) -> f64 {
        match &self.internal {
            None => {
                self.normalizer.from_units(y);
                self.normalizer.log_jacobian_of(cols.len())
            }
            Some(t) => {
                let tokens = y.to_vec();
                t.from_binned(&tokens, cols, y, self.model.config.range)
            }
        }
    }

    /// Chunk `chunk` of `n` samples drawn reproducibly from `seed`: rows [chunk batch,
    /// min(n, (chunk + 1) batch)) as (x (rows x dim, nm or internal), log q).
    pub fn sample_chunk(&self, n: usize, seed: u64, chunk: usize) -> (Vec<f64>, Vec<f64>) {
        let d = self.dim();
        let b = (n - chunk * self.batch).min(self.batch);
        let s = chunk_seed(seed, chunk);
        // A transferable model generates the molecule's tokens only (its pads come after).
        let labels = self.labels.as_ref().map(|l| l.repeat(b as i64));
        let (ys, l) = self.model.sample_from(
            &self.uniform(b, d, s),
            &self.uniform(b, d, s ^ 0x0FF5_E700),
            self.tau,
            labels.as_ref(),
        );
        let mut x = Vec::<f64>::try_from(ys.view([-1])).expect("f64");
        let jac = self.tokens_to_coords(&mut x, 0..d);
        let l: Vec<f64> = Vec::try_from(l).expect("f64");
        (x, l.into_iter().map(|v| v + jac).collect())
    }

    /// log q of `x` (rows x dim, nm or internal, at most `batch` rows) at the proposal's tau
    /// into `out`; -inf outside the binned range.
    pub fn log_q_rows(&self, x: &[f64], out: &mut [f64]) {
        let d = self.dim();
        let (y, jac) = match &self.internal {
            None => (self.normalizer.to_units(x), self.normalizer.log_jacobian()),
            Some(t) => {
                let mut y = vec![0.0; x.len()];
                let jac = t.to_binned(x, 0..d, &mut y, self.model.config.range);
                (y, jac)
            }
        };
        let mut t = Tensor::from_slice(&y)
            .view([-1, d as i64])
            .to_kind(Kind::Float)
            .to_device(self.device);
        let rows = t.size()[0];
        let labels = self.labels.as_ref().map(|l| l.repeat(rows));
        let full = self.model.config.dim();
        if labels.is_some() && full > d as i64 {
            // A transferable model's pads, which count for nothing.
            let pads = Tensor::zeros([rows, full - d as i64], (Kind::Float, self.device));
            t = Tensor::cat(&[t, pads], 1);
        }
        let l = tch::no_grad(|| self.model.log_prob(&t, self.tau, labels.as_ref()));
        let l: Vec<f64> = Vec::try_from(l.to_kind(Kind::Double)).expect("f64");
        for (o, v) in out.iter_mut().zip(l) {
            *o = v + jac;
        }
    }

    /// Appends tokens `cols` to generation `g` from uniform numbers `u_bin`, `u_off` (rows x
    /// tokens): writes their coordinates (nm or internal) into `x` (rows x tokens) and the log q
    /// of the block into `log_q`.
    fn extend_rows(
        &self,
        g: &mut Generation,
        cols: std::ops::Range<usize>,
        u_bin: &Tensor,
        u_off: &Tensor,
        x: &mut [f64],
        log_q: &mut [f64],
    ) {
        let (ys, l) = self.model.extend(g, u_bin, u_off, self.tau);
        ys.view([-1]).copy_data(x, x.len());
        let jac = self.tokens_to_coords(x, cols);
        let l: Vec<f64> = Vec::try_from(l).expect("f64");
        for (o, v) in log_q.iter_mut().zip(l) {
            *o = v + jac;
        }
    }
}

/// Copies of a libtorch model proposal, one per worker thread: libtorch tensors may not be
/// shared between threads, while the samplers' seams are `Sync`. Sampling and log q split
/// their rows, in chunks of the proposal's `batch`, over the copies (each runs libtorch on its
/// own thread), and the results do not depend on how many there are. Twisted SMC runs on the
/// first copy.
pub struct Pool<T>(Vec<Mutex<T>>);

impl<T: Send> Pool<T> {
    /// A pool of the given copies (at least one).
    pub fn new(copies: Vec<T>) -> Pool<T> {
        assert!(!copies.is_empty(), "a pool needs a model");
        Pool(copies.into_iter().map(Mutex::new).collect())
    }

    /// A pool of one copy: everything runs on the calling thread.
    pub fn one(model: T) -> Pool<T> {
        Pool::new(vec![model])
    }

    /// Worker threads (copies).
    pub fn workers(&self) -> usize {
        self.0.len()
    }

    /// The first copy, for exclusive use.
    pub fn get(&self) -> std::sync::MutexGuard<'_, T> {
        lock(&self.0[0])
    }

    /// `f(copy, item)` for every item, item i on worker i mod workers; results in item order.
    pub fn map<I: Send, R: Send>(
        &self,
        items: Vec<I>,
        f: impl Fn(&mut T, I) -> R + Sync,
    ) -> Vec<R> {
        let w = self.0.len();
        if w == 1 || items.len() == 1 {
            let mut m = self.get();
            return items.into_iter().map(|i| f(&mut m, i)).collect();
        }
        let n = items.len();
        let mut per: Vec<Vec<(usize, I)>> = (0..w).map(|_| Vec::new()).collect();
        for (k, i) in items.into_iter().enumerate() {
            per[k % w].push((k, i));
        }
        let f = &f;
        let mut out: Vec<(usize, R)> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .0
                .iter()
                .zip(per)
                .map(|(m, items)| {
                    s.spawn(move || {
                        let mut m = lock(m);
                        items
                            .into_iter()
                            .map(|(k, i)| (k, f(&mut m, i)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("a model worker panicked"))
                .collect()
        });
        out.sort_by_key(|(k, _)| *k);
        debug_assert_eq!(out.len(), n);
        out.into_iter().map(|(_, r)| r).collect()
    }
}

/// Copies of a trained model of either family, one per worker thread, as a proposal.
pub enum Pooled {
    Flow(Pool<FlowProposal>),
    Arbg(Pool<ArbgProposal>),
}

impl Pooled {
    /// Wraps `copies` of one model (from [`crate::train::Trainer::load_models`] or
    /// [`crate::train::Trainer::copies`]) with their normaliser, sampling at temperature `tau`
    /// (a TarFlow's prior, an ArBG's bin distributions), `batch` samples per network pass;
    /// TarFlows run in f32.
    pub fn new(
        copies: Vec<Model>,
        normalizer: &Normalizer,
        internal: Option<&Internal>,
        device: Device,
        batch: usize,
        tau: f64,
    ) -> Pooled {
        Pooled::labelled(copies, normalizer, internal, None, device, batch, tau)
    }

    /// [`Pooled::new`] of a transferable TarFlow for the molecule whose token labels are
    /// `labels` (one row).
    pub fn labelled(
        copies: Vec<Model>,
        normalizer: &Normalizer,
        internal: Option<&Internal>,
        labels: Option<&Labels>,
        device: Device,
        batch: usize,
        tau: f64,
    ) -> Pooled {
        let normalizer = normalizer.clone();
        match &copies[0] {
            Model::TarFlow(_) => Pooled::Flow(Pool::new(
                copies
                    .into_iter()
                    .filter_map(|m| match m {
                        Model::TarFlow(flow) => Some(FlowProposal {
                            flow,
                            normalizer: normalizer.clone(),
                            internal: internal.cloned(),
                            device,
                            kind: Kind::Float,
                            batch,
                            tau,
                            labels: labels.map(|l| l.to(device)),
                        }),
                        Model::Arbg(_) => None,
                    })
                    .collect(),
            )),
            Model::Arbg(_) => Pooled::Arbg(Pool::new(
                copies
                    .into_iter()
                    .filter_map(|m| match m {
                        Model::Arbg(model) => Some(ArbgProposal {
                            model,
                            normalizer: normalizer.clone(),
                            internal: internal.cloned(),
                            device,
                            tau,
                            batch,
                            labels: labels.map(|l| l.to(device)),
                        }),
                        Model::TarFlow(_) => None,
                    })
                    .collect(),
            )),
        }
    }

    /// The model as a plain proposal.
    pub fn proposal(&self) -> &dyn Proposal {
        match self {
            Pooled::Flow(f) => f,
            Pooled::Arbg(a) => a,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Draws `n` samples chunk by chunk over a pool and joins them in order.
fn pooled_sample<T: Send>(
    pool: &Pool<T>,
    batch: usize,
    n: usize,
    f: impl Fn(&mut T, usize) -> (Vec<f64>, Vec<f64>) + Sync,
) -> (Vec<f64>, Vec<f64>) {
    let parts = pool.map((0..n.div_ceil(batch)).collect(), f);
    let (x, lq): (Vec<Vec<f64>>, Vec<Vec<f64>>) = parts.into_iter().unzip();
    (x.concat(), lq.concat())
}

impl Proposal for Pool<FlowProposal> {
    fn dim(&self) -> usize {
        self.get().dim()
    }
    fn scale(&self) -> Option<Vec<f64>> {
        self.get().internal.as_ref().map(|t| t.spread.clone())
    }
    fn sample(&self, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let batch = self.get().batch;
        pooled_sample(self, batch, n, |p, c| p.sample_chunk(n, seed, c))
    }
    fn log_q(&self, x: &[f64], out: &mut [f64], grad: Option<&mut [f64]>) {
        let (d, b) = {
            let p = self.get();
            (p.dim(), p.batch)
        };
        let rows: Vec<_> = match grad {
            Some(g) => x
                .chunks(b * d)
                .zip(out.chunks_mut(b))
                .zip(g.chunks_mut(b * d).map(Some))
                .collect(),
            None => x
                .chunks(b * d)
                .zip(out.chunks_mut(b))
                .map(|r| (r, None))
                .collect(),
        };
        self.map(rows, |p, ((x, o), g)| p.log_q_rows(x, o, g));
    }
}

impl Proposal for Pool<ArbgProposal> {
    fn dim(&self) -> usize {
        self.get().dim()
    }
    fn sample(&self, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let batch = self.get().batch;
        pooled_sample(self, batch, n, |p, c| p.sample_chunk(n, seed, c))
    }
    /// log q is piecewise constant: its gradient is zero almost everywhere.
    fn log_q(&self, x: &[f64], out: &mut [f64], grad: Option<&mut [f64]>) {
        let (d, b) = {
            let p = self.get();
            (p.dim(), p.batch)
        };
        let rows: Vec<_> = x.chunks(b * d).zip(out.chunks_mut(b)).collect();
        self.map(rows, |p, (x, o)| p.log_q_rows(x, o));
        if let Some(g) = grad {
            g.fill(0.0);
        }
    }
}

/// Twisted SMC over the pool: the particles are cut into slices of the proposal's `batch`
/// rows, which the workers extend in parallel; resampling regroups the chosen rows into new
/// slices. The particles do not depend on the number of workers.
impl Autoregressive for Pool<ArbgProposal> {
    type State = ArbgParticles;
    fn dim(&self) -> usize {
        Proposal::dim(self)
    }
    fn start(&self, n: usize, seed: u64) -> ArbgParticles {
        let p = self.get();
        ArbgParticles {
            parts: row_slices(n, p.batch)
                .iter()
                .map(|r| {
                    let labels = p.labels.as_ref().map(|l| l.repeat(r.len() as i64));
                    p.model.start(labels.as_ref())
                })
                .collect(),
            n,
            seed,
            epoch: 0,
        }
    }
    fn extend(&self, s: &mut ArbgParticles, from: usize, to: usize, x: &mut [f64], lq: &mut [f64]) {
        assert_eq!(s.parts[0].done as usize, from, "blocks in order");
        let w = to - from;
        let seed = s.seed ^ (s.epoch << 32) ^ (from as u64).wrapping_mul(0x9E37_79B9);
        let (ub, uo) = {
            let p = self.get();
            (
                p.uniform(s.n, w, seed),
                p.uniform(s.n, w, seed ^ 0x0FF5_E700),
            )
        };
        let slices = row_slices(s.n, self.get().batch);
        assert_eq!(slices.len(), s.parts.len(), "one generation per slice");
        let (mut xs, mut ls) = (x, lq);
        let mut items = Vec::with_capacity(slices.len());
        for (g, r) in s.parts.iter_mut().zip(&slices) {
            let (xa, xb) = std::mem::take(&mut xs).split_at_mut(r.len() * w);
            let (la, lb) = std::mem::take(&mut ls).split_at_mut(r.len());
            let rows = |u: &Tensor| u.narrow(0, r.start as i64, r.len() as i64);
            items.push((g, rows(&ub), rows(&uo), xa, la));
            (xs, ls) = (xb, lb);
        }
        self.map(items, |p, (g, ub, uo, x, l)| {
            p.extend_rows(g, from..to, &ub, &uo, x, l)
        });
    }
    fn select(&self, s: &mut ArbgParticles, idx: &[usize]) {
        let all = Generation::concat(std::mem::take(&mut s.parts));
        let idx: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
        let idx = Tensor::from_slice(&idx).to_device(self.get().device);
        s.parts = row_slices(idx.size()[0] as usize, self.get().batch)
            .into_iter()
            .map(|r| all.rows(&idx.narrow(0, r.start as i64, r.len() as i64)))
            .collect();
        s.n = idx.size()[0] as usize;
        s.epoch += 1;
    }
}
