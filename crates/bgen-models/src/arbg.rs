//! ArBG: an autoregressive Boltzmann generator (a decoder-only Transformer over the 3N
//! Cartesian coordinates, discretised into bins, with uniform dequantisation inside a bin).
//!
//! Coordinates (normalised units) are read atom-major, x0 y0 z0 x1 ..., each clipped to
//! [-R, R] and binned into L equal bins of width w = 2R / L. Token t is predicted from the
//! embedding of bin t - 1 (a start token for t = 0) plus a sinusoidal position and learned axis
//! and atom embeddings of token t, through pre-RMSNorm layers (bias-free causal attention,
//! SwiGLU), a final RMSNorm and an untied head over the L bins. Sampling draws a bin from
//! softmax(logits / tau) and a uniform offset inside it, so the density of what is drawn is
//! exact: log q(x) = sum_t log softmax(logits_t / tau)(bin_t) - D ln w (zero outside \[-R, R\]^D).
//!
//! **Transferable** (with [`Conditioning`]): one model for many molecules, in internal
//! coordinates (3 per placed atom). The learned atom embedding gives way to the embedding of each
//! atom's [`Labels`] (force-field type, residue template, residue index, the molecule's length;
//! the TarFlow's), shared by its 3 coordinates. Token t's input carries token t's labels, so the
//! distribution of a coordinate is predicted knowing which atom and residue it places. Molecules
//! of different sizes share a batch padded at the end: causal attention keeps pads out of every
//! real token, and log q sums over real tokens only.

use crate::attention::{attend, KvCache};
use crate::matmul::linear;
use crate::tarflow::{Conditioning, LabelEmbedding, Labels};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// Sizes of an ArBG.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArbgConfig {
    /// Atoms of the molecule (3 tokens each).
    pub atoms: i64,
    pub width: i64,
    pub layers: i64,
    pub head_dim: i64,
    /// Bins per coordinate, L.
    pub bins: i64,
    /// Half-width R of the binned range, in normalised units (the scalar std of the data).
    pub range: f64,
    /// A transferable ArBG: the label vocabularies (None: one molecule, `atoms` fixed; else
    /// the most atoms a molecule may place).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditioning: Option<Conditioning>,
}

impl ArbgConfig {
    /// Coordinates (tokens) per sample, 3N.
    pub fn dim(&self) -> i64 {
        3 * self.atoms
    }
    /// Bin width w = 2R / L, normalised units.
    pub fn bin_width(&self) -> f64 {
        2.0 * self.range / self.bins as f64
    }
    /// SwiGLU hidden size: 8C/3 rounded up to a multiple of 8.
    fn hidden(&self) -> i64 {
        (8 * self.width / 3 + 7) / 8 * 8
    }
}

fn rms_norm(h: &Tensor, weight: &Tensor) -> Tensor {
    h.rms_norm([h.size()[2]].as_slice(), Some(weight), 1e-6)
}

#[derive(Debug)]
struct Layer {
    norm1: Tensor,
    qkv: nn::Linear,
    out: nn::Linear,
    norm2: Tensor,
    gate_up: nn::Linear,
    down: nn::Linear,
    heads: i64,
    hidden: i64,
}

impl Layer {
    fn new(p: nn::Path, c: &ArbgConfig) -> Layer {
        let (w, h) = (c.width, c.hidden());
        let nobias = nn::LinearConfig {
            bias: false,
            ..Default::default()
        };
        Layer {
            norm1: p.ones("norm1", &[w]),
            qkv: nn::linear(&p / "qkv", w, 3 * w, nobias),
            out: nn::linear(&p / "out", w, w, nobias),
            norm2: p.ones("norm2", &[w]),
            gate_up: nn::linear(&p / "gate_up", w, 2 * h, nobias),
            down: nn::linear(&p / "down", h, w, nobias),
            heads: (w / c.head_dim).max(1),
            hidden: h,
        }
    }

    /// h: (batch, t, width), causal over the t tokens; or, with a cache, one new token
    /// (batch, 1, width) attending to the cached ones and itself.
    fn forward(&self, h: &Tensor, cache: Option<&mut KvCache>) -> Tensor {
        let qkv = linear(&self.qkv, &rms_norm(h, &self.norm1));
        let o = match cache {
            Some(c) => c.step(&qkv, self.heads),
            None => attend(&qkv, self.heads),
        };
        let h = h + linear(&self.out, &o);
        let gu = linear(&self.gate_up, &rms_norm(&h, &self.norm2));
        let (g, u) = (
            gu.narrow(2, 0, self.hidden),
            gu.narrow(2, self.hidden, self.hidden),
        );
        h + linear(&self.down, &(g.silu() * u))
    }
}

/// An ArBG (weights live in the `VarStore` it was built from).
#[derive(Debug)]
pub struct Arbg {
    pub config: ArbgConfig,
    /// Embeddings of the L bins and of the start token (index L).
    bin_emb: nn::Embedding,
    axis_emb: Tensor,
    /// One molecule's atoms; a transferable model has labels instead.
    atom_emb: Option<Tensor>,
    labels: Option<Box<LabelEmbedding>>,
    /// Sinusoidal position code (3N, width), fixed.
    pos: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    head: nn::Linear,
}

/// A batch of partly generated samples: the KV caches, the tokens done and their bins.
pub struct Generation {
    caches: Vec<KvCache>,
    /// Tokens generated so far.
    pub done: i64,
    /// Bin of the last generated token (batch), or None before the first.
    last: Option<Tensor>,
    /// A transferable model's per-row context (batch, 3N, width) and real tokens (batch, 3N).
    rows: Option<(Tensor, Tensor)>,
}

impl Generation {
    /// A generation of rows `idx` (int64 on the model's device) of this one, in that order.
    pub fn rows(&self, idx: &Tensor) -> Generation {
        Generation {
            caches: self.caches.iter().map(|c| c.rows(idx)).collect(),
            done: self.done,
            last: self.last.as_ref().map(|l| l.index_select(0, idx)),
            rows: self
                .rows
                .as_ref()
                .map(|(c, r)| (c.index_select(0, idx), r.index_select(0, idx))),
        }
    }

    /// One generation of the rows of `parts` in order (generations of one model, at the same
    /// token).
    pub fn concat(parts: Vec<Generation>) -> Generation {
        let done = parts[0].done;
        assert!(
            parts.iter().all(|g| g.done == done),
            "generations at different tokens"
        );
        let layers = parts[0].caches.len();
        let mut caches: Vec<Vec<KvCache>> = (0..layers).map(|_| Vec::new()).collect();
        let (mut last, mut ctx, mut real) = (Vec::new(), Vec::new(), Vec::new());
        for g in parts {
            for (l, c) in g.caches.into_iter().enumerate() {
                caches[l].push(c);
            }
            last.extend(g.last);
            if let Some((c, r)) = g.rows {
                ctx.push(c);
                real.push(r);
            }
        }
        Generation {
            caches: caches.into_iter().map(KvCache::concat).collect(),
            done,
            last: (!last.is_empty()).then(|| Tensor::cat(&last, 0)),
            rows: (!ctx.is_empty()).then(|| (Tensor::cat(&ctx, 0), Tensor::cat(&real, 0))),
        }
    }
}

impl Arbg {
    /// A new model with variables under `p`.
    pub fn new(p: &nn::Path, config: ArbgConfig) -> Arbg {
        let (d, w) = (config.dim(), config.width);
        let mut pos = vec![0f32; (d * w) as usize];
        for t in 0..d as usize {
            for i in 0..(w as usize).div_ceil(2) {
                let f = (t as f64) / 10_000f64.powf(2.0 * i as f64 / w as f64);
                pos[t * w as usize + 2 * i] = f.sin() as f32;
                if 2 * i + 1 < w as usize {
                    pos[t * w as usize + 2 * i + 1] = f.cos() as f32;
                }
            }
        }
        let small = nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        Arbg {
            bin_emb: nn::embedding(p / "bin_emb", config.bins + 1, w, Default::default()),
            axis_emb: p.var("axis_emb", &[3, w], small),
            atom_emb: config
                .conditioning
                .is_none()
                .then(|| p.var("atom_emb", &[config.atoms, w], small)),
            labels: config
                .conditioning
                .as_ref()
                .map(|c| Box::new(LabelEmbedding::new(p / "labels", c, w))),
            pos: Tensor::from_slice(&pos).view([d, w]).to_device(p.device()),
            layers: (0..config.layers)
                .map(|l| Layer::new(p / format!("layer{l}"), &config))
                .collect(),
            norm: p.ones("norm", &[w]),
            head: nn::linear(p / "head", w, config.bins, Default::default()),
            config,
        }
    }

    /// Position, axis and atom embedding of tokens [from, from + n): (n, width); or, for a
    /// transferable model, of the first n tokens (`from` 0, `n` 3 x the atoms of `labels`) of
    /// each row of `labels` (batch, n, width), with the rows' real tokens (batch, n; 1 real, 0
    /// pad).
    fn context(&self, from: i64, n: i64, labels: Option<&Labels>) -> (Tensor, Option<Tensor>) {
        let dev = self.pos.device();
        let t = Tensor::arange_start(from, from + n, (Kind::Int64, dev));
        let common = self.pos.narrow(0, from, n).to_kind(self.axis_emb.kind())
            + self.axis_emb.index_select(0, &t.remainder(3));
        match (&self.atom_emb, &self.labels, labels) {
            (Some(atoms), None, None) => (
                common + atoms.index_select(0, &t.divide_scalar_mode(3, "floor")),
                None,
            ),
            (None, Some(emb), Some(l)) => {
                let per_atom = emb.forward(l).to_kind(common.kind());
                let per_token = per_atom.repeat_interleave_self_int(3, 1, None);
                let real = self.real(l, n).to_kind(common.kind());
                (
                    common.unsqueeze(0) + per_token * real.unsqueeze(2),
                    Some(real),
                )
            }
            (Some(_), None, Some(_)) => panic!("this ArBG is not transferable: it takes no labels"),
            _ => panic!("a transferable ArBG needs the tokens' labels"),
        }
    }

    /// Bins (batch, 3N, int64) of normalised coordinates, clipped to [-R, R].
    pub fn bins_of(&self, x: &Tensor) -> Tensor {
        let c = &self.config;
        ((x + c.range) / c.bin_width())
            .floor()
            .clamp(0, c.bins - 1)
            .to_kind(Kind::Int64)
    }

    /// Teacher-forced logits (batch, d, L) of target bins (batch, d): d is 3N, or for a
    /// transferable model 3 x the atoms of `labels` (one row per sample).
    pub fn logits(&self, bins: &Tensor, labels: Option<&Labels>) -> Tensor {
        let (b, d) = bins.size2().expect("(batch, tokens)");
        let start = Tensor::full([b, 1], self.config.bins, (Kind::Int64, bins.device()));
        let inputs = Tensor::cat(&[start, bins.narrow(1, 0, d - 1)], 1);
        let mut h = self.bin_emb.forward(&inputs) + self.context(0, d, labels).0;
        for l in &self.layers {
            h = l.forward(&h, None);
        }
        linear(&self.head, &rms_norm(&h, &self.norm))
    }

    /// log q(x) (batch) of normalised coordinates x (batch, 3N) at temperature `tau`; -inf
    /// outside [-R, R] in a real coordinate.
    pub fn log_prob(&self, x: &Tensor, tau: f64, labels: Option<&Labels>) -> Tensor {
        let mut far = x.abs().gt(self.config.range);
        if let Some(l) = labels {
            far = far.logical_and(&self.real(l, self.config.dim()));
        }
        let outside = far.any_dims([1].as_slice(), false);
        self.log_prob_clipped(x, tau, labels)
            .masked_fill(&outside, f64::NEG_INFINITY)
    }

    /// Which of the first `d` coordinates (batch, d, bool) are real in the molecules of `labels`.
    fn real(&self, l: &Labels, d: i64) -> Tensor {
        let t = Tensor::arange(d, (Kind::Int64, l.tokens.device()));
        t.unsqueeze(0).lt_tensor(&(l.tokens.unsqueeze(1) * 3))
    }

    /// A transferable batch x (batch, 3N) cut to its longest molecule's coordinates, with the
    /// labels of its atoms. Pads are last and attention is causal, so no real coordinate's
    /// logits see them: cutting them first saves their work (in a batch of mixed sizes, or
    /// one molecule smaller than the model's capacity, much of it).
    fn trim(&self, x: &Tensor, l: &Labels) -> (Tensor, Labels) {
        let n = self.config.atoms;
        let t = i64::try_from(l.tokens.max()).unwrap_or(n).clamp(1, n);
        (x.narrow(1, 0, 3 * t), l.first_tokens(t))
    }

    /// log q of x clipped to [-R, R] (the training objective: every coordinate counts); a
    /// transferable model's over each molecule's real coordinates.
    pub fn log_prob_clipped(&self, x: &Tensor, tau: f64, labels: Option<&Labels>) -> Tensor {
        let (x, labels) = match labels {
            Some(l) => {
                let (x, l) = self.trim(x, l);
                (x, Some(l))
            }
            None => (x.shallow_clone(), None),
        };
        let (x, labels) = (&x, labels.as_ref());
        let bins = self.bins_of(x);
        let logits = self.logits(&bins, labels);
        let logits = if tau == 1.0 { logits } else { logits / tau };
        let mut lp = logits
            .log_softmax(2, logits.kind())
            .gather(2, &bins.unsqueeze(2), false)
            .squeeze_dim(2);
        let dims = match labels {
            Some(l) => {
                lp *= self.real(l, x.size()[1]).to_kind(lp.kind());
                l.tokens.to_kind(x.kind()) * 3
            }
            None => Tensor::full(
                [x.size()[0]],
                self.config.dim() as f64,
                (x.kind(), x.device()),
            ),
        };
        lp.sum_dim_intlist([1].as_slice(), false, lp.kind())
            .to_kind(x.kind())
            - dims * self.config.bin_width().ln()
    }

    /// Starts generating samples; a transferable model's of the molecules of `labels` (one row
    /// per sample).
    pub fn start(&self, labels: Option<&Labels>) -> Generation {
        Generation {
            caches: self
                .layers
                .iter()
                .map(|_| KvCache::new(self.config.dim()))
                .collect(),
            done: 0,
            last: None,
            rows: labels.map(|l| {
                let (c, r) = self.context(0, self.config.dim(), Some(l));
                (c, r.expect("real tokens"))
            }),
        }
    }

    /// Logits (batch, L) of the next token of a generation, given its batch size.
    fn next_logits(&self, g: &mut Generation, batch: i64, device: Device) -> Tensor {
        let prev = match &g.last {
            Some(b) => b.view([batch, 1]),
            None => Tensor::full([batch, 1], self.config.bins, (Kind::Int64, device)),
        };
        let ctx = match &g.rows {
            Some((c, _)) => c.narrow(1, g.done, 1),
            None => self.context(g.done, 1, None).0,
        };
        let mut h = self.bin_emb.forward(&prev) + ctx;
        for (l, c) in self.layers.iter().zip(g.caches.iter_mut()) {
            h = l.forward(&h, Some(c));
        }
        linear(&self.head, &rms_norm(&h, &self.norm)).squeeze_dim(1)
    }

    /// Generates the next `n` tokens of every sample of `g` (no gradient): `u_bin`, `u_off`
    /// (batch, n) are uniform numbers in (0, 1) that pick the bin (inverse CDF of
    /// softmax(logits / tau)) and the offset inside it. Returns the coordinates (batch, n,
    /// normalised units) and the log density of the block (batch).
    pub fn extend(
        &self,
        g: &mut Generation,
        u_bin: &Tensor,
        u_off: &Tensor,
        tau: f64,
    ) -> (Tensor, Tensor) {
        let (b, n) = u_bin.size2().expect("(batch, tokens)");
        let dev = u_bin.device();
        let c = &self.config;
        tch::no_grad(|| {
            let mut xs = Vec::with_capacity(n as usize);
            let mut lq = Tensor::zeros([b], (Kind::Double, dev));
            for k in 0..n {
                let logits = self.next_logits(g, b, dev) / tau;
                let lp = logits.log_softmax(1, logits.kind());
                let cdf = lp.exp().cumsum(1, lp.kind());
                let u = u_bin.narrow(1, k, 1).to_kind(lp.kind());
                let bin = cdf
                    .lt_tensor(&u)
                    .sum_dim_intlist([1].as_slice(), false, Kind::Int64)
                    .clamp_max(c.bins - 1);
                // Pads (of a molecule shorter than the batch's longest) add nothing.
                let real = match &g.rows {
                    Some((_, r)) => r.narrow(1, g.done, 1).squeeze_dim(1).to_kind(Kind::Double),
                    None => Tensor::ones([b], (Kind::Double, dev)),
                };
                let picked = lp.gather(1, &bin.unsqueeze(1), false).squeeze_dim(1);
                lq += (picked.to_kind(Kind::Double) - c.bin_width().ln()) * &real;
                let off = u_off.narrow(1, k, 1).squeeze_dim(1).to_kind(Kind::Double);
                xs.push((bin.to_kind(Kind::Double) + off) * c.bin_width() - c.range);
                g.last = Some(bin);
                g.done += 1;
            }
            (Tensor::stack(&xs, 1), lq)
        })
    }

    /// `n` whole samples (batch, 3N, normalised units, f64) and their log q, from the uniform
    /// numbers `u_bin`, `u_off` (n, 3N); a transferable model's of the molecules of `labels`
    /// (their pads' coordinates are left as drawn and count for nothing).
    pub fn sample_from(
        &self,
        u_bin: &Tensor,
        u_off: &Tensor,
        tau: f64,
        labels: Option<&Labels>,
    ) -> (Tensor, Tensor) {
        let mut g = self.start(labels);
        self.extend(&mut g, u_bin, u_off, tau)
    }
}
