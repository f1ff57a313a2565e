//! Training by energy: the reverse KL divergence KL(q || p) of a transferable TarFlow's draws
//! of a training molecule to that molecule's Boltzmann density, which maximum likelihood on MD
//! frames never sees. Likelihood learns where the frames are; the energy says how strained a
//! draw is, and a proposal's importance weights exp(-U/kT) / q are ruled by exactly that (a
//! draw that clashes or strains stiff coordinates weighs nothing).
//!
//! For draws y = f^-1(eps) in the model's features (standardised internal coordinates),
//! KL(q || p) = E_eps[log q(y) + E(y)] + const, with E(y) = U(x(y)) / kT - log|det dx/dy|
//! (`bgen_system::InternalTarget` for the map to internal coordinates and on to Cartesian ones,
//! [`Internal::to_model`] for the standardisation). Its gradient with respect to the weights
//! goes through the draws themselves (the flow's inverse is differentiable): the loss
//! mean(E'(y) . y + log q(y)) with the energy's gradient E'(y) held fixed has it.
//!
//! A draw's energy above the molecule's typical one by more than [`SOFT_KT`] counts only
//! logarithmically beyond it, so that one clash (10^5 kT) does not make the step; a draw
//! outside the map's domain is pulled back toward the standardised centre.

use crate::internal::Internal;
use crate::tarflow::{Labels, TarFlow};
use bgen_system::{InternalTarget, System, Target, ZMatrix};
use tch::{Kind, Tensor};

/// Energies more than this above the molecule's typical level (kT) grow only logarithmically
/// in the loss: clashes only (10^3-10^5 kT). Lower, a broad proposal pays too little for its
/// strained draws (at 20 kT, fine-tuning spread QW's draws from a median 40 kT above MD's to
/// 230 kT, its KL estimate falling all the while).
pub const SOFT_KT: f64 = 500.0;

/// A training molecule as training by energy needs it.
pub struct KlMolecule {
    pub name: String,
    pub system: System,
    pub zmatrix: ZMatrix,
    /// Its standardisation into model features.
    pub internal: Internal,
    /// Its tokens' labels (one row, at the model's temperature).
    pub labels: Labels,
    /// Mean energy E (kT) of its MD frames in model features: where [`SOFT_KT`] starts from.
    pub typical: f64,
}

impl KlMolecule {
    /// A molecule with its mean energy over `frames` (n x N x 3, nm; a few dozen suffice).
    pub fn new(
        name: &str,
        system: System,
        zmatrix: ZMatrix,
        internal: Internal,
        labels: Labels,
        frames: &[f64],
    ) -> KlMolecule {
        let mut m = KlMolecule {
            name: name.to_string(),
            system,
            zmatrix,
            internal,
            labels,
            typical: 0.0,
        };
        // E = U_ic + log|dy/d ic| straight from the frames' internal coordinates (no
        // gradient, no round trip through the features).
        let ic = m.internal.from_cartesian(frames);
        let mut y = vec![0.0; ic.len()];
        let logdet = m.internal.to_model(&ic, &mut y, None);
        let mut e = vec![0.0; logdet.len()];
        m.target().energy_and_grad(&ic, &mut e, None);
        let finite: Vec<f64> = e
            .iter()
            .zip(&logdet)
            .map(|(u, l)| u + l)
            .filter(|v| v.is_finite())
            .collect();
        m.typical = finite.iter().sum::<f64>() / finite.len().max(1) as f64;
        m
    }

    /// Its Boltzmann density on internal coordinates (energy U - log|det J|, kT).
    fn target(&self) -> InternalTarget<'_, System> {
        InternalTarget {
            target: &self.system,
            zmatrix: &self.zmatrix,
        }
    }

    /// Model features (rows x dim).
    pub fn dim(&self) -> usize {
        self.internal.dim()
    }

    /// E(y) = U(x(y)) / kT - log|det dx/dy| of model features `y` (rows x dim), and its gradient
    /// dE/dy (rows x dim); +inf and a zero gradient outside the map's domain.
    pub fn energy_and_grad(&self, y: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let d = self.dim();
        let n = y.len() / d;
        let mut ic = vec![0.0; y.len()];
        self.internal.from_model(y, &mut ic);
        let (mut e, mut g) = (vec![0.0; n], vec![0.0; y.len()]);
        self.target().energy_and_grad(&ic, &mut e, Some(&mut g));
        // E = U_ic + log|dy/d ic|; dE/dy = (dU_ic/d ic + d log|dy/d ic| / d ic) / (dy/d ic).
        let (mut y2, mut dy, mut dl) = (vec![0.0; y.len()], vec![0.0; y.len()], vec![0.0; y.len()]);
        let logdet = self
            .internal
            .to_model(&ic, &mut y2, Some((&mut dy, &mut dl)));
        for i in 0..n {
            e[i] += logdet[i];
            for q in i * d..(i + 1) * d {
                g[q] = match e[i].is_finite() {
                    true => (g[q] + dl[q]) / dy[q],
                    false => 0.0,
                };
            }
        }
        (e, g)
    }
}

/// [`SOFT_KT`]'s regularisation of energy `e` above `typical`: (E, dE_reg/dE).
pub fn soften(e: f64, typical: f64) -> (f64, f64) {
    let top = typical + SOFT_KT;
    match e > top {
        true => (top + (1.0 + e - top).ln(), 1.0 / (1.0 + e - top)),
        false => (e, 1.0),
    }
}

/// What one batch of draws said: the mean of log q + E over the draws kept (the reverse KL up
/// to a constant, kT), their share, and the ESS of their weights exp(-E - log q) per draw.
#[derive(Clone, Copy, Debug)]
pub struct KlReport {
    pub kl: f64,
    pub kept: f64,
    pub ess: f64,
}

/// The reverse-KL loss of `draws` draws of molecule `m` (noise from `seed`), per real
/// dimension, whose gradient with respect to the flow's weights is that of KL(q || p); and
/// what the draws said.
pub fn loss(flow: &TarFlow, m: &KlMolecule, draws: usize, seed: u64) -> (Tensor, KlReport) {
    let width = flow.config.dim();
    let d = m.dim();
    let eps = Tensor::from_slice(&crate::data::normals(draws * width as usize, seed))
        .view([draws as i64, width])
        .to_kind(Kind::Float);
    let labels = m.labels.repeat(draws as i64);
    let (y, log_q) = flow.sample_differentiable(&eps, Some(&labels));
    let real = y.narrow(1, 0, d as i64);
    let yv = Vec::<f64>::try_from(real.detach().to_kind(Kind::Double).reshape([-1])).expect("f64");
    let (e, g) = m.energy_and_grad(&yv);
    let lq = Vec::<f64>::try_from(log_q.detach().to_kind(Kind::Double)).expect("f64");
    let mut keep = vec![0f32; draws];
    let mut grad = vec![0f32; draws * d];
    let (mut kl, mut kept, mut log_w) = (0.0, 0usize, Vec::new());
    for i in 0..draws {
        if !lq[i].is_finite() {
            continue;
        }
        let row = &yv[i * d..(i + 1) * d];
        if !e[i].is_finite() {
            // Outside the map's domain (an angle beyond pi, say): no energy, so a pull back
            // toward the standardised centre, as from a standard normal.
            for q in 0..d {
                grad[i * d + q] = row[q] as f32;
            }
            keep[i] = 1.0;
            continue;
        }
        let (soft, slope) = soften(e[i], m.typical);
        keep[i] = 1.0;
        kept += 1;
        kl += soft + lq[i];
        log_w.push(-e[i] - lq[i]);
        for q in 0..d {
            grad[i * d + q] = (slope * g[i * d + q]) as f32;
        }
    }
    let keep_t = Tensor::from_slice(&keep);
    let grad_t = Tensor::from_slice(&grad).view([draws as i64, d as i64]);
    let per_draw = (real * grad_t).sum_dim_intlist([1].as_slice(), false, Kind::Float) + log_q;
    let included = keep.iter().filter(|&&k| k > 0.0).count().max(1) as f64;
    let loss = (per_draw * keep_t).sum(Kind::Float) * (1.0 / (included * d as f64));
    let n = kept.max(1) as f64;
    let report = KlReport {
        kl: kl / n,
        kept: kept as f64 / draws as f64,
        ess: bgen_system::ess::ess(&log_w) * kept as f64 / draws as f64,
    };
    (loss, report)
}
