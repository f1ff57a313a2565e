//! TarFlow: a Transformer autoregressive affine flow (Zhai et al. 2024), as the Sequential
//! Boltzmann Generators use it on all-atom Cartesian coordinates.
//!
//! Data x (batch, tokens, token_dim) maps to noise z through K blocks. Each block reads the tokens
//! in its own order (identity, then reversed, alternating), embeds them (linear + learned position
//! embedding permuted with the tokens), runs a causal pre-LayerNorm Transformer, and predicts from
//! the output at token t - 1 an affine map of token t: z_t = (x_t - b_t) exp(-a_t); token 0 has no
//! predecessor and passes unchanged. The output head starts at zero, so a new flow is the
//! identity. log q(x) = log N(z; 0, I) - sum a. The inverse runs token by token with a KV cache.
//!
//! **Transferable** (with [`Conditioning`]): one flow for many molecules. Each token also carries
//! [`Labels`] (the force-field type of the atom it places, its residue's template, the residue's
//! index and the molecule's length), embedded and added to the token's input together with the
//! next token's (whose affine map the position predicts). Molecules of different sizes share a
//! batch padded at the end: a block reverses each molecule's real tokens only, so pads stay last,
//! causal attention keeps them out of every real token, and their maps are the identity outside
//! the density (log q counts real dimensions only). A flow conditioned on temperature also
//! embeds each row's [`temperature_feature`] (0 at the model's own temperature, where the
//! embedding is exactly zero), so that it learns every replica-exchange rung as its own
//! distribution and samples the target temperature's. A flow conditioned on the sequence adds
//! to every token the sum of each residue's (index, template) embedding: labels per token reach
//! a token only from the tokens before it, so without it a reversed block's first residue never
//! learns what the others are.

use crate::attention::{attend, KvCache};
use crate::matmul::linear;
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
    /// A transferable flow: the label vocabularies (None: one molecule, `tokens` fixed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditioning: Option<Conditioning>,
}

/// Vocabulary sizes of a transferable flow's labels (index 0 of each is padding).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conditioning {
    /// Force-field atom types + 1, residue templates + 1, most residues in a molecule.
    pub atom_types: i64,
    pub residue_types: i64,
    pub max_residues: i64,
    /// Each row also carries the temperature of its frame ([`Labels::temperature`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub temperature: bool,
    /// Every token also carries the whole sequence (each residue's template at its index), so
    /// that every block, whichever its order, sees what the other residues are.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sequence: bool,
}

impl Conditioning {
    /// The vocabularies of force field `setup` (its atom types and residue templates), for
    /// molecules of up to `max_residues` residues, without the temperature and sequence labels.
    pub fn of(setup: bgen_system::Setup, max_residues: i64) -> Conditioning {
        let ff = setup.data();
        Conditioning {
            atom_types: ff.types.len() as i64 + 1,
            residue_types: ff.templates.len() as i64 + 1,
            max_residues,
            temperature: false,
            sequence: false,
        }
    }
}

/// How a frame's temperature T (K) enters a flow conditioned on temperature, for a model of
/// temperature `model_k`: 4 ln(T / model_k), 0 at the model's own temperature and about 1.5 at
/// the top of a 310-450 K ladder.
pub fn temperature_feature(t_k: f64, model_k: f64) -> f64 {
    4.0 * (t_k / model_k).ln()
}

/// What each token of a transferable batch is (batch b, token t). Pad tokens: labels 0.
#[derive(Debug)]
pub struct Labels {
    /// (batch, tokens) i64: the atom type of the atom the token places (1-based).
    pub atom: Tensor,
    /// (batch, tokens) i64: the template of its residue (1-based).
    pub residue: Tensor,
    /// (batch, tokens) i64: its residue's index in the chain (0-based).
    pub index: Tensor,
    /// (batch) i64: residues of the molecule, and its real tokens (the rest are padding).
    pub residues: Tensor,
    pub tokens: Tensor,
    /// (batch) f32: [`temperature_feature`] of the row's frame (0 at the model's temperature;
    /// read only by a flow conditioned on temperature).
    pub temperature: Tensor,
}

/// Embeddings of the labels, summed per token.
#[derive(Debug)]
pub(crate) struct LabelEmbedding {
    atom: nn::Embedding,
    residue: nn::Embedding,
    index: nn::Embedding,
    length: nn::Embedding,
    /// A flow conditioned on temperature: feature -> width -> gelu -> width, without biases and
    /// with the second map zero at the start, so that the embedding is 0 at the model's
    /// temperature and a fine-tuned model starts as the one it came from.
    temperature: Option<(nn::Linear, nn::Linear)>,
    /// A flow conditioned on the sequence: each residue's (index, template) embedded, summed over
    /// the molecule's residues -> gelu -> width, the second map zero at the start (a fine-tuned
    /// model starts as the one it came from).
    sequence: Option<(nn::Embedding, nn::Linear)>,
    residue_types: i64,
}

impl LabelEmbedding {
    pub(crate) fn new(p: nn::Path, c: &Conditioning, width: i64) -> LabelEmbedding {
        let e = |name: &str, n: i64| nn::embedding(&p / name, n, width, Default::default());
        let zero = nn::LinearConfig {
            ws_init: nn::Init::Const(0.0),
            bs_init: None,
            bias: false,
        };
        LabelEmbedding {
            atom: e("atom", c.atom_types),
            residue: e("residue", c.residue_types),
            index: e("index", c.max_residues),
            length: e("length", c.max_residues + 1),
            temperature: c.temperature.then(|| {
                let no_bias = |ws_init| nn::LinearConfig {
                    ws_init,
                    bs_init: None,
                    bias: false,
                };
                let first = no_bias(nn::Init::Randn {
                    mean: 0.0,
                    stdev: 1.0,
                });
                (
                    nn::linear(&p / "temperature_in", 1, width, first),
                    nn::linear(&p / "temperature_out", width, width, zero),
                )
            }),
            sequence: c.sequence.then(|| {
                (
                    e("sequence_in", c.max_residues * c.residue_types),
                    nn::linear(&p / "sequence_out", width, width, zero),
                )
            }),
            residue_types: c.residue_types,
        }
    }

    /// (batch, tokens, width).
    pub(crate) fn forward(&self, l: &Labels) -> Tensor {
        let e = self.atom.forward(&l.atom)
            + self.residue.forward(&l.residue)
            + self.index.forward(&l.index)
            + self.length.forward(&l.residues).unsqueeze(1);
        let e = match &self.sequence {
            Some((a, b)) => {
                e + b
                    .forward(&self.sequence_sum(a, l).gelu("none"))
                    .unsqueeze(1)
            }
            None => e,
        };
        match &self.temperature {
            Some((a, b)) => {
                let f = l.temperature.to_kind(self.atom.ws.kind()).unsqueeze(1);
                e + b.forward(&a.forward(&f).gelu("none")).unsqueeze(1)
            }
            None => e,
        }
    }

    /// The sum over each row's residues of their (index, template) embeddings (batch, width):
    /// which (index, template) pairs the row's real tokens hold, each once, times the table.
    fn sequence_sum(&self, table: &nn::Embedding, l: &Labels) -> Tensor {
        let (rows, t) = (l.index.size()[0], l.index.size()[1]);
        let pos = Tensor::arange(t, (Kind::Int64, l.index.device())).unsqueeze(0);
        let real = pos
            .lt_tensor(&l.tokens.unsqueeze(1))
            .to_kind(table.ws.kind());
        let key = &l.index * self.residue_types + &l.residue;
        let presence = Tensor::zeros(
            [rows, table.ws.size()[0]],
            (table.ws.kind(), l.index.device()),
        )
        .scatter_add(1, &key, &real)
        .clamp_max(1.0);
        presence.matmul(&table.ws)
    }
}

/// A batch's conditioning as the blocks use it.
struct Context {
    /// Label embeddings (batch, tokens, width).
    labels: Tensor,
    /// 1 for real tokens, 0 for padding (batch, tokens, 1).
    mask: Tensor,
    /// Token t of a reversing block reads token reversed[b, t]: each molecule's real tokens
    /// reversed, its pads in place (an involution).
    reversed: Tensor,
}

impl Context {
    fn new(l: &Labels, emb: &LabelEmbedding, t: i64, kind: Kind) -> Context {
        let device = l.atom.device();
        let pos = Tensor::arange(t, (Kind::Int64, device)).unsqueeze(0);
        let len = l.tokens.unsqueeze(1);
        let real = pos.lt_tensor(&len);
        let reversed = (&len - 1 - &pos).where_self(&real, &pos);
        Context {
            labels: emb.forward(l).to_kind(kind),
            mask: real.to_kind(kind).unsqueeze(2),
            reversed,
        }
    }

    /// `x` (batch, tokens, k) in a reversing block's order.
    fn reverse(&self, x: &Tensor) -> Tensor {
        let k = x.size()[2];
        let idx = self.reversed.unsqueeze(2).expand([-1, -1, k], false);
        x.gather(1, &idx, false)
    }
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
        let qkv = linear(&self.qkv, &h.apply(&self.ln1));
        let o = match cache {
            Some(c) => c.step(&qkv, self.heads),
            None => attend(&qkv, self.heads),
        };
        let h = h + linear(&self.proj, &o);
        let m = linear(
            &self.fc2,
            &linear(&self.fc1, &h.apply(&self.ln2)).gelu("none"),
        );
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
    /// Transferable: the next token's labels into this token's input.
    next: Option<nn::Linear>,
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
            next: c
                .conditioning
                .as_ref()
                .map(|_| nn::linear(&p / "next", c.width, c.width, Default::default())),
            reverse,
            token_dim: c.token_dim,
        }
    }

    fn order(&self, x: &Tensor, ctx: Option<&Context>) -> Tensor {
        match (self.reverse, ctx) {
            (false, _) => x.shallow_clone(),
            (true, None) => x.flip([1]),
            (true, Some(c)) => c.reverse(x),
        }
    }

    /// What each position adds to its token's embedding, in block order (batch or 1, t, width):
    /// the position embedding (reversed with the tokens), and for a transferable flow the
    /// token's labels and the next token's.
    fn inputs(&self, b: i64, t: i64, ctx: Option<&Context>) -> Tensor {
        let pos = self.pos.narrow(0, 0, t).unsqueeze(0);
        match (ctx, &self.next) {
            (Some(c), Some(next)) => {
                let pos = self.order(&pos.expand([b, -1, -1], false), ctx);
                let lab = self.order(&c.labels, ctx);
                let t = lab.size()[1];
                let ahead = Tensor::cat(
                    &[
                        lab.narrow(1, 1, t - 1),
                        lab.narrow(1, t - 1, 1).zeros_like(),
                    ],
                    1,
                );
                pos + &lab + next.forward(&ahead)
            }
            _ => self.order(&pos, None),
        }
    }

    /// Transformer output (affine parameters) for tokens in block order: (batch, t, 2 token_dim).
    fn head(&self, h: &Tensor) -> Tensor {
        self.proj_out.forward(&h.apply(&self.ln_out))
    }

    /// Data to noise: (z, sum of log|dz/dx|) for x (batch, tokens, token_dim).
    fn forward(&self, x: &Tensor, ctx: Option<&Context>) -> (Tensor, Tensor) {
        let xs = self.order(x, ctx);
        let (b, t, _) = xs.size3().expect("(batch, tokens, token_dim)");
        let mut h = self.proj_in.forward(&xs) + self.inputs(b, t, ctx);
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
        // Pads (last in either order) map to themselves.
        let params = match ctx {
            Some(c) => params * &c.mask,
            None => params,
        };
        let a = params.narrow(2, 0, self.token_dim);
        let bb = params.narrow(2, self.token_dim, self.token_dim);
        let z = (&xs - bb) * (-&a).exp();
        let logdet = -a.sum_dim_intlist([1, 2].as_slice(), false, x.kind());
        (self.order(&z, ctx), logdet)
    }

    /// Noise to data, token by token with a KV cache; also returns the forward log|det| at the
    /// result (-sum of the a it applied), so that sampling needs no second pass.
    fn inverse(&self, z: &Tensor, ctx: Option<&Context>) -> (Tensor, Tensor) {
        let zs = self.order(z, ctx);
        let (b, t, _) = zs.size3().expect("(batch, tokens, token_dim)");
        let inputs = self.inputs(b, t, ctx);
        let mut caches: Vec<KvCache> = self.layers.iter().map(|_| KvCache::new(t)).collect();
        let mut xs = vec![zs.narrow(1, 0, 1)];
        let mut sum_a = Tensor::zeros([zs.size()[0]], (z.kind(), z.device()));
        for s in 1..t {
            let prev = &xs[(s - 1) as usize];
            let mut h = self.proj_in.forward(prev) + inputs.narrow(1, s - 1, 1);
            for (l, c) in self.layers.iter().zip(caches.iter_mut()) {
                h = l.forward(&h, Some(c));
            }
            let p = match ctx {
                Some(c) => self.head(&h) * c.mask.narrow(1, s, 1),
                None => self.head(&h),
            };
            let a = p.narrow(2, 0, self.token_dim);
            let bb = p.narrow(2, self.token_dim, self.token_dim);
            sum_a += a.sum_dim_intlist([1, 2].as_slice(), false, a.kind());
            xs.push(zs.narrow(1, s, 1) * a.exp() + bb);
        }
        (self.order(&Tensor::cat(&xs, 1), ctx), -sum_a)
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
    /// Transferable: the label embeddings.
    labels: Option<Box<LabelEmbedding>>,
}

impl Labels {
    /// Rows of several batches, in order.
    pub fn cat(parts: &[Labels]) -> Labels {
        let f =
            |g: fn(&Labels) -> &Tensor| Tensor::cat(&parts.iter().map(g).collect::<Vec<_>>(), 0);
        Labels {
            atom: f(|l| &l.atom),
            residue: f(|l| &l.residue),
            index: f(|l| &l.index),
            residues: f(|l| &l.residues),
            tokens: f(|l| &l.tokens),
            temperature: f(|l| &l.temperature),
        }
    }

    /// On `device`.
    pub fn to(&self, device: tch::Device) -> Labels {
        Labels {
            atom: self.atom.to_device(device),
            residue: self.residue.to_device(device),
            index: self.index.to_device(device),
            residues: self.residues.to_device(device),
            tokens: self.tokens.to_device(device),
            temperature: self.temperature.to_device(device),
        }
    }

    /// The rows `idx` (an i64 tensor).
    pub fn select(&self, idx: &Tensor) -> Labels {
        Labels {
            atom: self.atom.index_select(0, idx),
            residue: self.residue.index_select(0, idx),
            index: self.index.index_select(0, idx),
            residues: self.residues.index_select(0, idx),
            tokens: self.tokens.index_select(0, idx),
            temperature: self.temperature.index_select(0, idx),
        }
    }

    /// One row (a molecule's labels) repeated `rows` times.
    pub fn repeat(&self, rows: i64) -> Labels {
        let e = |t: &Tensor| t.expand([rows, -1], false).contiguous();
        let s = |t: &Tensor| t.expand([rows], false).contiguous();
        Labels {
            atom: e(&self.atom),
            residue: e(&self.residue),
            index: e(&self.index),
            residues: s(&self.residues),
            tokens: s(&self.tokens),
            temperature: s(&self.temperature),
        }
    }

    /// The first `t` tokens of every row.
    pub fn first_tokens(&self, t: i64) -> Labels {
        Labels {
            atom: self.atom.narrow(1, 0, t),
            residue: self.residue.narrow(1, 0, t),
            index: self.index.narrow(1, 0, t),
            residues: self.residues.shallow_clone(),
            tokens: self.tokens.shallow_clone(),
            temperature: self.temperature.shallow_clone(),
        }
    }

    /// Rows `start..start + len` of the batch.
    pub fn narrow(&self, start: i64, len: i64) -> Labels {
        Labels {
            atom: self.atom.narrow(0, start, len),
            residue: self.residue.narrow(0, start, len),
            index: self.index.narrow(0, start, len),
            residues: self.residues.narrow(0, start, len),
            tokens: self.tokens.narrow(0, start, len),
            temperature: self.temperature.narrow(0, start, len),
        }
    }
}

impl TarFlow {
    /// A new flow (the identity map until trained) with variables under `p`.
    pub fn new(p: &nn::Path, config: TarFlowConfig) -> TarFlow {
        let blocks = (0..config.blocks)
            .map(|k| Block::new(p / format!("block{k}"), &config, k % 2 == 1))
            .collect();
        let labels = config
            .conditioning
            .as_ref()
            .map(|c| Box::new(LabelEmbedding::new(p / "labels", c, config.width)));
        TarFlow {
            config,
            blocks,
            labels,
        }
    }

    /// x (batch, t token_dim) as (batch, t, token_dim); t is the flow's tokens, or fewer for a
    /// transferable batch cut to its longest molecule ([`TarFlow::trim`]).
    fn tokens(&self, x: &Tensor) -> Tensor {
        x.view([x.size()[0], -1, self.config.token_dim])
    }

    /// A transferable batch cut to its longest molecule's tokens, and that count. Trailing pads
    /// change nothing (a block's pads stay last, attention is causal, their maps are the
    /// identity), so cutting them first saves their work: with molecules of mixed sizes most
    /// of a batch's tokens can be pads.
    fn trim(&self, x: &Tensor, l: &Labels) -> (Tensor, Labels, i64) {
        let t = i64::try_from(l.tokens.max()).unwrap_or(self.config.tokens);
        let t = t.clamp(1, self.config.tokens);
        let k = self.config.token_dim;
        (x.narrow(1, 0, t * k), l.first_tokens(t), t)
    }

    /// `out` (batch, t token_dim) widened to the flow's dimension with the pads of `like`
    /// (every map is the identity on pads).
    fn untrim(&self, out: Tensor, like: &Tensor) -> Tensor {
        let (w, d) = (out.size()[1], self.config.dim());
        match w < d {
            true => Tensor::cat(&[out, like.narrow(1, w, d - w)], 1),
            false => out,
        }
    }

    /// The conditioning of a batch: labels are required by a transferable flow and refused by
    /// a single-molecule one.
    fn context(&self, labels: Option<&Labels>, t: i64, kind: Kind) -> Option<Context> {
        match (&self.labels, labels) {
            (Some(emb), Some(l)) => Some(Context::new(l, emb, t, kind)),
            (None, None) => None,
            (Some(_), None) => panic!("a transferable TarFlow needs the tokens' labels"),
            (None, Some(_)) => panic!("this TarFlow is not transferable: it takes no labels"),
        }
    }

    /// Data x (batch, dim) to noise z (batch, dim) and log|det dz/dx| (batch); a transferable
    /// flow's tokens are `labels` (one row per sample).
    pub fn forward(&self, x: &Tensor, labels: Option<&Labels>) -> (Tensor, Tensor) {
        let full = x;
        let (x, labels, t) = match labels {
            Some(l) => {
                let (x, l, t) = self.trim(full, l);
                (x, Some(l), t)
            }
            None => (full.shallow_clone(), None, self.config.tokens),
        };
        let ctx = self.context(labels.as_ref(), t, x.kind());
        let mut h = self.tokens(&x);
        let mut logdet = Tensor::zeros([h.size()[0]], (x.kind(), x.device()));
        for b in &self.blocks {
            let (z, ld) = b.forward(&h, ctx.as_ref());
            h = z;
            logdet += ld;
        }
        let z = h.view([x.size()[0], -1]);
        (self.untrim(z, full), logdet)
    }

    /// Noise z (batch, dim) to data x (batch, dim), and log|det dz/dx| at x (batch); a
    /// transferable flow's tokens are `labels`. Decodes `DECODE_ROWS` rows at a time, so that
    /// their KV caches stay in the CPU's caches.
    pub fn inverse(&self, z: &Tensor, labels: Option<&Labels>) -> (Tensor, Tensor) {
        let n = z.size()[0];
        if n > DECODE_ROWS {
            let mut parts = Vec::new();
            let mut start = 0;
            while start < n {
                let len = DECODE_ROWS.min(n - start);
                let l = labels.map(|l| l.narrow(start, len));
                parts.push(self.inverse(&z.narrow(0, start, len), l.as_ref()));
                start += len;
            }
            let (x, ld): (Vec<Tensor>, Vec<Tensor>) = parts.into_iter().unzip();
            return (Tensor::cat(&x, 0), Tensor::cat(&ld, 0));
        }
        let full = z;
        let (z, labels, t) = match labels {
            Some(l) => {
                let (z, l, t) = self.trim(full, l);
                (z, Some(l), t)
            }
            None => (full.shallow_clone(), None, self.config.tokens),
        };
        let ctx = self.context(labels.as_ref(), t, z.kind());
        let mut h = self.tokens(&z);
        let mut logdet = Tensor::zeros([h.size()[0]], (z.kind(), z.device()));
        for b in self.blocks.iter().rev() {
            let (x, ld) = b.inverse(&h, ctx.as_ref());
            h = x;
            logdet += ld;
        }
        let x = h.view([z.size()[0], -1]);
        (self.untrim(x, full), logdet)
    }

    /// log N(z; 0, tau^2 I) per sample over its real dimensions, (batch).
    fn log_prior(&self, z: &Tensor, tau: f64, labels: Option<&Labels>) -> Tensor {
        let Some(l) = labels else {
            let d = self.config.dim() as f64;
            return z.square().sum_dim_intlist([1].as_slice(), false, z.kind())
                * (-0.5 / (tau * tau))
                - d * (tau.ln() + 0.5 * (2.0 * std::f64::consts::PI).ln());
        };
        let real = self.tokens(z).ones_like() * self.context_mask(l, z.kind());
        let d = l.tokens.to_kind(z.kind()) * self.config.token_dim as f64;
        (z.square() * real.view([-1, self.config.dim()])).sum_dim_intlist(
            [1].as_slice(),
            false,
            z.kind(),
        ) * (-0.5 / (tau * tau))
            - d * (tau.ln() + 0.5 * (2.0 * std::f64::consts::PI).ln())
    }

    /// 1 for real tokens, 0 for padding (batch, tokens, 1).
    fn context_mask(&self, l: &Labels, kind: Kind) -> Tensor {
        let pos = Tensor::arange(self.config.tokens, (Kind::Int64, l.tokens.device()));
        pos.unsqueeze(0)
            .lt_tensor(&l.tokens.unsqueeze(1))
            .to_kind(kind)
            .unsqueeze(2)
    }

    /// log q(x) with the prior at temperature `tau`, N(0, tau^2 I) (1: as trained), (batch);
    /// a transferable flow's over each molecule's real dimensions.
    pub fn log_prob(&self, x: &Tensor, tau: f64, labels: Option<&Labels>) -> Tensor {
        let (z, logdet) = self.forward(x, labels);
        self.log_prior(&z, tau, labels) + logdet
    }

    /// Samples x = inverse(eps) of standard normal `eps` (batch, dim) with their log q, both
    /// differentiable with respect to the flow's weights through the whole inverse (training by
    /// energy, [`crate::kl`]).
    pub fn sample_differentiable(&self, eps: &Tensor, labels: Option<&Labels>) -> (Tensor, Tensor) {
        let (x, logdet) = self.inverse(eps, labels);
        (x, self.log_prior(eps, 1.0, labels) + logdet)
    }

    /// Samples x = inverse(tau eps) of standard normal `eps` (batch, dim) with their log q at
    /// `tau`, in one pass (no gradient); a transferable flow's pads of x are eps's.
    pub fn sample(&self, eps: &Tensor, tau: f64, labels: Option<&Labels>) -> (Tensor, Tensor) {
        tch::no_grad(|| {
            let z = eps * tau;
            let (x, logdet) = self.inverse(&z, labels);
            let lq = self.log_prior(&z, tau, labels) + logdet;
            (x, lq)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn embedding(sequence: bool) -> (nn::VarStore, LabelEmbedding) {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let c = Conditioning {
            atom_types: 6,
            residue_types: 4,
            max_residues: 3,
            temperature: false,
            sequence,
        };
        let e = LabelEmbedding::new(vs.root(), &c, 8);
        (vs, e)
    }

    /// Two molecules of 5 tokens (residue 0: 3 tokens, residue 1: 2) and of 3, padded to 6.
    fn labels(second_residue: i64) -> Labels {
        let t = |v: &[i64]| Tensor::from_slice(v).view([2, 6]);
        Labels {
            atom: t(&[1, 2, 3, 4, 5, 0, 2, 2, 3, 0, 0, 0]),
            residue: t(&[1, 1, 1, second_residue, second_residue, 0, 3, 3, 3, 0, 0, 0]),
            index: t(&[0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0]),
            residues: Tensor::from_slice(&[2i64, 1]),
            tokens: Tensor::from_slice(&[5i64, 3]),
            temperature: Tensor::zeros([2], (Kind::Float, Device::Cpu)),
        }
    }

    /// The sequence label is the sum of each residue's (index, template) embedding, however
    /// many tokens the residue has; every token carries it, so the first atom's embedding
    /// changes with the last residue's template; a new one adds nothing (a fine-tune starts as
    /// the model it came from).
    #[test]
    fn the_sequence_label_is_each_residue_once_at_every_token() {
        let (vs, e) = embedding(true);
        let (table, _) = e.sequence.as_ref().unwrap();
        let sum = e.sequence_sum(table, &labels(2));
        let row = |k: i64| table.ws.get(k);
        let want0 = row(1) + row(4 + 2);
        assert!(f64::try_from((sum.get(0) - want0).abs().max()).unwrap() < 1e-6);
        assert!(f64::try_from((sum.get(1) - row(3)).abs().max()).unwrap() < 1e-6);
        let (_, plain) = embedding(false);
        let diff = |a: &Tensor, b: &Tensor| f64::try_from((a - b).abs().max()).unwrap();
        assert!(diff(&e.forward(&labels(2)), &plain.forward(&labels(2))) < 1e-6);
        tch::no_grad(|| {
            for (name, mut v) in crate::train::variables_by_name(&vs) {
                if name.contains("sequence_out") {
                    let _ = v.f_add_(&(v.randn_like() * 0.5)).unwrap();
                }
            }
        });
        let (a, b) = (e.forward(&labels(2)), e.forward(&labels(3)));
        assert!(diff(&a.get(0).get(0), &b.get(0).get(0)) > 1e-3);
        assert!(diff(&a.get(1), &b.get(1)) < 1e-9);
    }
}
