//! TarFlow: a Transformer autoregressive affine flow (Zhai et al. 2024), as the Sequential
//! Boltzmann Generators use it on all-atom Cartesian coordinates.
//!
//! Data x (batch, tokens, token_dim) maps to noise z through K blocks. Each block reads the tokens
//! in its own order (identity, then reversed, alternating), embeds them (linear + learned position
//! embedding permuted with the tokens), runs a causal pre-LayerNorm Transformer, and predicts from
//! the output at token t - 1 an affine map of token t: z_t = (x_t - b_t) exp(-a_t); token 0 has no
//! predecessor and passes unchanged. The output head starts at zero, so a new flow is the
//! identity. log q(x) = log N(z; 0, I) - sum a. The inverse runs token by token with a KV cache.

use crate::attention::{attend, KvCache};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// Sizes of a TarFlow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TarFlowConfig {
    /// Tokens per sample (atoms, or coordinates) and the dimension of each (3 or 1).
    pub tokens: i64,
    pub token_dim: i64,
    /// Transformer width, flow blocks, layers per block, head dimension.
    pub width: i64,
    pub blocks: i64,
    pub layers: i64,
    pub head_dim: i64,
    /// MLP hidden size as a multiple of the width.
    pub mlp_ratio: i64,
}

impl TarFlowConfig {
    /// Dimension of a sample.
    pub fn dim(&self) -> i64 {
        self.tokens * self.token_dim
    }
}

#[derive(Debug)]
struct Layer {
    ln1: nn::LayerNorm,
    qkv: nn::Linear,
    proj: nn::Linear,
    ln2: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    heads: i64,
}

impl Layer {
    fn new(p: nn::Path, c: &TarFlowConfig) -> Layer {
        let w = c.width;
        Layer {
            ln1: nn::layer_norm(&p / "ln1", vec![w], Default::default()),
            qkv: nn::linear(&p / "qkv", w, 3 * w, Default::default()),
            proj: nn::linear(&p / "proj", w, w, Default::default()),
            ln2: nn::layer_norm(&p / "ln2", vec![w], Default::default()),
            fc1: nn::linear(&p / "fc1", w, c.mlp_ratio * w, Default::default()),
            fc2: nn::linear(&p / "fc2", c.mlp_ratio * w, w, Default::default()),
            heads: (w / c.head_dim).max(1),
        }
    }

    /// h: (batch, t, width), causal over the t tokens; or, with a cache, one new token
    /// (batch, 1, width) attending to the cached ones and itself.
    fn forward(&self, h: &Tensor, cache: Option<&mut KvCache>) -> Tensor {
        let qkv = self.qkv.forward(&h.apply(&self.ln1));
        let o = match cache {
            Some(c) => c.step(&qkv, self.heads),
            None => attend(&qkv, self.heads),
        };
        let h = h + self.proj.forward(&o);
        let m = self
            .fc2
            .forward(&self.fc1.forward(&h.apply(&self.ln2)).gelu("none"));
        h + m
    }
}

#[derive(Debug)]
struct Block {
    proj_in: nn::Linear,
    pos: Tensor,
    layers: Vec<Layer>,
    ln_out: nn::LayerNorm,
    proj_out: nn::Linear,
    reverse: bool,
    token_dim: i64,
}

impl Block {
    fn new(p: nn::Path, c: &TarFlowConfig, reverse: bool) -> Block {
        let zero = nn::LinearConfig {
            ws_init: nn::Init::Const(0.0),
            bs_init: Some(nn::Init::Const(0.0)),
            bias: true,
        };
        Block {
            proj_in: nn::linear(&p / "proj_in", c.token_dim, c.width, Default::default()),
            pos: p.var(
                "pos",
                &[c.tokens, c.width],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            ),
            layers: (0..c.layers)
                .map(|l| Layer::new(&p / format!("layer{l}"), c))
                .collect(),
            ln_out: nn::layer_norm(&p / "ln_out", vec![c.width], Default::default()),
            proj_out: nn::linear(&p / "proj_out", c.width, 2 * c.token_dim, zero),
            reverse,
            token_dim: c.token_dim,
        }
    }

    fn order(&self, x: &Tensor) -> Tensor {
        if self.reverse {
            x.flip([1])
        } else {
            x.shallow_clone()
        }
    }

    /// The position embeddings in the block's token order (reversed with the tokens).
    fn order_positions(&self) -> Tensor {
        self.order(&self.pos.unsqueeze(0)).squeeze_dim(0)
    }

    /// Transformer output (affine parameters) for tokens in block order: (batch, t, 2 token_dim).
    fn head(&self, h: &Tensor) -> Tensor {
        self.proj_out.forward(&h.apply(&self.ln_out))
    }

    /// Data to noise: (z, sum of log|dz/dx|) for x (batch, tokens, token_dim).
    fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let xs = self.order(x);
        let (b, t, _) = xs.size3().expect("(batch, tokens, token_dim)");
        let pos = self.order_positions();
        let mut h = self.proj_in.forward(&xs) + pos;
        for l in &self.layers {
            h = l.forward(&h, None);
        }
        let out = self.head(&h.narrow(1, 0, t - 1));
        let params = Tensor::cat(
            &[
                Tensor::zeros([b, 1, 2 * self.token_dim], (x.kind(), x.device())),
                out,
            ],
            1,
        );
        let a = params.narrow(2, 0, self.token_dim);
        let bb = params.narrow(2, self.token_dim, self.token_dim);
        let z = (&xs - bb) * (-&a).exp();
        let logdet = -a.sum_dim_intlist([1, 2].as_slice(), false, x.kind());
        (self.order(&z), logdet)
    }

    /// Noise to data, token by token with a KV cache; also returns the forward log|det| at the
    /// result (-sum of the a it applied), so that sampling needs no second pass.
    fn inverse(&self, z: &Tensor) -> (Tensor, Tensor) {
        let zs = self.order(z);
        let (_, t, _) = zs.size3().expect("(batch, tokens, token_dim)");
        let pos = self.order_positions();
        let mut caches: Vec<KvCache> = self.layers.iter().map(|_| KvCache::new(t)).collect();
        let mut xs = vec![zs.narrow(1, 0, 1)];
        let mut sum_a = Tensor::zeros([zs.size()[0]], (z.kind(), z.device()));
        for s in 1..t {
            let prev = &xs[(s - 1) as usize];
            let mut h = self.proj_in.forward(prev) + pos.narrow(0, s - 1, 1);
            for (l, c) in self.layers.iter().zip(caches.iter_mut()) {
                h = l.forward(&h, Some(c));
            }
            let p = self.head(&h);
            let a = p.narrow(2, 0, self.token_dim);
            let bb = p.narrow(2, self.token_dim, self.token_dim);
            sum_a += a.sum_dim_intlist([1, 2].as_slice(), false, a.kind());
            xs.push(zs.narrow(1, s, 1) * a.exp() + bb);
        }
        (self.order(&Tensor::cat(&xs, 1)), -sum_a)
    }
}

/// Rows decoded together when sampling: a few hundred keep the KV caches (rows x tokens x
/// width per layer) in the CPU's caches while the matrix products stay efficient.
pub const DECODE_ROWS: i64 = 384;

/// A TarFlow with its blocks (weights live in the `VarStore` it was built from).
#[derive(Debug)]
pub struct TarFlow {
    pub config: TarFlowConfig,
    blocks: Vec<Block>,
}

impl TarFlow {
    /// A new flow (the identity map until trained) with variables under `p`.
    pub fn new(p: &nn::Path, config: TarFlowConfig) -> TarFlow {
        let blocks = (0..config.blocks)
            .map(|k| Block::new(p / format!("block{k}"), &config, k % 2 == 1))
            .collect();
        TarFlow { config, blocks }
    }

    fn tokens(&self, x: &Tensor) -> Tensor {
        x.view([-1, self.config.tokens, self.config.token_dim])
    }

    /// Data x (batch, dim) to noise z (batch, dim) and log|det dz/dx| (batch).
    pub fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let mut h = self.tokens(x);
        let mut logdet = Tensor::zeros([h.size()[0]], (x.kind(), x.device()));
        for b in &self.blocks {
            let (z, ld) = b.forward(&h);
            h = z;
            logdet += ld;
        }
        (h.view([-1, self.config.dim()]), logdet)
    }

    /// Noise z (batch, dim) to data x (batch, dim), and log|det dz/dx| at x (batch). Decodes
    /// `DECODE_ROWS` rows at a time, so that their KV caches stay in the CPU's caches.
    pub fn inverse_with_logdet(&self, z: &Tensor) -> (Tensor, Tensor) {
        if z.size()[0] > DECODE_ROWS {
            let parts: Vec<(Tensor, Tensor)> = z
                .split(DECODE_ROWS, 0)
                .iter()
                .map(|z| self.inverse_with_logdet(z))
                .collect();
            let (x, ld): (Vec<Tensor>, Vec<Tensor>) = parts.into_iter().unzip();
            return (Tensor::cat(&x, 0), Tensor::cat(&ld, 0));
        }
        let mut h = self.tokens(z);
        let mut logdet = Tensor::zeros([h.size()[0]], (z.kind(), z.device()));
        for b in self.blocks.iter().rev() {
            let (x, ld) = b.inverse(&h);
            h = x;
            logdet += ld;
        }
        (h.view([-1, self.config.dim()]), logdet)
    }

    /// Noise z (batch, dim) to data x (batch, dim).
    pub fn inverse(&self, z: &Tensor) -> Tensor {
        self.inverse_with_logdet(z).0
    }

    /// log N(z; 0, tau^2 I) per sample, (batch).
    fn log_prior(&self, z: &Tensor, tau: f64) -> Tensor {
        let d = self.config.dim() as f64;
        z.square().sum_dim_intlist([1].as_slice(), false, z.kind()) * (-0.5 / (tau * tau))
            - d * (tau.ln() + 0.5 * (2.0 * std::f64::consts::PI).ln())
    }

    /// log q(x) under the standard normal prior, (batch).
    pub fn log_prob(&self, x: &Tensor) -> Tensor {
        self.log_prob_at(x, 1.0)
    }

    /// log q(x) of the flow with its prior at temperature `tau`, N(0, tau^2 I), (batch).
    pub fn log_prob_at(&self, x: &Tensor, tau: f64) -> Tensor {
        let (z, logdet) = self.forward(x);
        self.log_prior(&z, tau) + logdet
    }

    /// Samples x = inverse(z) of given noise z (batch, dim) and their log q, in one pass
    /// (no gradient).
    pub fn sample_from(&self, z: &Tensor) -> (Tensor, Tensor) {
        self.sample_at(z, 1.0)
    }

    /// Samples of the flow with its prior at temperature `tau`: x = inverse(tau eps) for
    /// standard normal `eps` (batch, dim), and their log q at `tau` (no gradient).
    pub fn sample_at(&self, eps: &Tensor, tau: f64) -> (Tensor, Tensor) {
        tch::no_grad(|| {
            let z = eps * tau;
            let (x, logdet) = self.inverse_with_logdet(&z);
            let lq = self.log_prior(&z, tau) + logdet;
            (x, lq)
        })
    }

    /// `n` samples and their log q: z ~ N(0, I), x = inverse(z) (no gradient).
    pub fn sample(&self, n: i64, kind: Kind, device: tch::Device) -> (Tensor, Tensor) {
        self.sample_from(&Tensor::randn([n, self.config.dim()], (kind, device)))
    }
}
