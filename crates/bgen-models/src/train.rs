//! Maximum-likelihood training of a TarFlow or an ArBG: NLL per dimension, AdamW, a one-cycle learning
//! rate, gradient clipping, an exponential moving average of the weights (used for sampling),
//! and versioned checkpoints (`ckpt-STEP/` written in full, then `latest.json` switched to it
//! atomically), so that a killed run resumes from its last checkpoint.

use crate::data::{augment, Normalizer};
use crate::internal::Internal;
use crate::model::{Model, ModelConfig};
use crate::tarflow::{Labels, TarFlow};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

pub use crate::error::Error;

fn ck(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Checkpoint {
        file: path.display().to_string(),
        msg: msg.to_string(),
    }
}

/// The optimiser and its schedule (steps, batch, learning rate, AdamW, EMA, clipping, seed):
/// what a checkpoint records as `train` (the stage settings are [`crate::TrainArgs`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    pub steps: i64,
    pub batch_size: i64,
    /// Peak learning rate of the one-cycle schedule.
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    /// Fraction of the steps spent warming up from lr/500.
    pub warmup: f64,
    /// Largest gradient norm.
    pub clip: f64,
    /// EMA decay of the weights used for sampling (warmed up as min(ema, (1+t)/(10+t))).
    pub ema: f64,
    pub seed: u64,
    /// The training step's matrix products in bfloat16 ([`crate::matmul`]); a checkpoint
    /// without it trained in f32.
    #[serde(default)]
    pub bf16: bool,
    /// Weight of training by energy ([`crate::kl`]) beside the likelihood (0: none).
    #[serde(default)]
    pub kl_weight: f64,
    /// Draws of one training molecule per step of training by energy.
    #[serde(default = "default_kl_draws")]
    pub kl_draws: usize,
}

fn default_kl_draws() -> usize {
    KL_DRAWS
}

/// Draws per step of training by energy by default.
pub const KL_DRAWS: usize = 32;

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            steps: 10_000,
            batch_size: 256,
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.95,
            weight_decay: 4e-4,
            warmup: 0.05,
            clip: 1.0,
            ema: 0.999,
            seed: 0,
            bf16: false,
            kl_weight: 0.0,
            kl_draws: KL_DRAWS,
        }
    }
}

/// One-cycle learning rate at `step` (0-based): linear warm-up from lr/500 to lr over the first
/// `warmup` fraction, then a cosine back down to lr/500 at the last step.
pub fn learning_rate(c: &OptimConfig, step: i64) -> f64 {
    let lo = c.lr / 500.0;
    let warm = ((c.warmup * c.steps as f64).round() as i64).max(1);
    if step < warm {
        lo + (c.lr - lo) * step as f64 / warm as f64
    } else {
        let t = (step - warm) as f64 / ((c.steps - warm).max(1)) as f64;
        lo + (c.lr - lo) * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
    }
}

/// The norm of all of `grads` together.
fn global_norm(grads: &[Tensor]) -> f64 {
    let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
    match norms.is_empty() {
        true => 0.0,
        false => f64::try_from(Tensor::stack(&norms, 0).norm()).unwrap_or(0.0),
    }
}

/// Name of an AdamW moment of variable `n` (variable names may not contain dots).
fn moment_name(which: &str, n: &str) -> String {
    format!("{which}__{}", n.replace('.', "__"))
}

/// What a checkpoint holds besides tensors.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub model: ModelConfig,
    pub train: OptimConfig,
    pub normalizer: Normalizer,
    /// Internal coordinates, when the model works in them (else in Cartesian coordinates
    /// through `normalizer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<Internal>,
    /// A transferable model: the per-class standards of its internal coordinates and the
    /// molecules it was trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Transfer>,
    /// Steps done.
    pub step: i64,
    /// (step, training loss, validation NLL per dimension) history.
    pub history: Vec<(i64, f64, Option<f64>)>,
}

/// What a transferable model carries besides its weights.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Transfer {
    pub standards: crate::transfer::Standards,
    /// The force field whose type and template indices the labels are.
    pub forcefield: String,
    pub temperature_k: f64,
    /// The molecules of the training set, by [`bgen_system::peptide::identity`] (runs from
    /// before it recorded shard names, which for zwitterions built from sequences are the same).
    pub trained_on: Vec<String>,
    /// How each molecule's Z-matrix closes its rings (models from before the choice: chain).
    #[serde(default)]
    pub ring_closure: bgen_system::RingClosure,
    /// CRC-32 of the merged dataset.json the run trains on, checked on resume (none: one
    /// molecule's MD, or a run from before the check).
    #[serde(default)]
    pub data_crc: Option<u32>,
    /// Raised replica-exchange rungs each molecule trains on beside the target temperature's
    /// (`--raised-rungs`), kept by a resume (none: a run from before they were recorded).
    #[serde(default)]
    pub raised_rungs: Option<usize>,
    /// How its frames split into training and validation, kept by a resume (none: a run from
    /// before the record, which split by frames).
    #[serde(default)]
    pub validation: Option<crate::transfer::ValidationSplit>,
    /// Molecules drawn more than once per epoch (`--oversample`: name -> draws of each of its
    /// training frames per epoch), kept by a resume; the others once.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub oversample: std::collections::BTreeMap<String, u32>,
}

impl State {
    /// The model's coordinates: internal for a model with a Z-matrix or a transferable one
    /// (each molecule's own), else Cartesian.
    pub fn coords(&self) -> crate::Coords {
        match self.internal.is_some() || self.transfer.is_some() {
            true => crate::Coords::Internal,
            false => crate::Coords::Cartesian,
        }
    }

    /// The model's features of Cartesian frames (n x N x 3, nm) as an (n, dim) f32 tensor:
    /// centred and scaled, or internal coordinates standardised (for an ArBG, binned as
    /// [`Internal::to_binned`] says).
    pub fn features(&self, frames: &[f64]) -> Tensor {
        match &self.internal {
            None => self.normalizer.to_model(frames, Kind::Float),
            Some(t) => {
                let ic = t.from_cartesian(frames);
                let mut y = vec![0.0; ic.len()];
                match &self.model {
                    ModelConfig::Arbg(c) => {
                        t.to_binned(&ic, 0..t.dim(), &mut y, c.range);
                    }
                    ModelConfig::TarFlow(_) => {
                        t.to_model(&ic, &mut y, None);
                    }
                }
                Tensor::from_slice(&y)
                    .view([-1, t.dim() as i64])
                    .to_kind(Kind::Float)
            }
        }
    }
}

/// What a fine-tune adds to the model it starts from (`bgen train --init`): labels a
/// transferable TarFlow lacks, and flow blocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Additions {
    /// Each frame's temperature (`--temperature-label`).
    pub temperature: bool,
    /// The whole sequence at every token (`--sequence-label`).
    pub sequence: bool,
    /// A TarFlow's blocks in all (`--grow-blocks`): the new ones follow the others, each the
    /// identity until trained (its output layer starts at zero), so the grown flow starts as
    /// the same map.
    pub blocks: Option<i64>,
}

/// A model being trained: weights, EMA weights and AdamW moments.
pub struct Trainer {
    pub state: State,
    pub vs: nn::VarStore,
    pub model: Model,
    pub ema_vs: nn::VarStore,
    pub ema_model: Model,
    moments: nn::VarStore,
    names: Vec<String>,
    /// Copies of the model for data-parallel gradients (the main model is worker 0).
    replicas: Vec<(nn::VarStore, Model)>,
}

impl Trainer {
    /// A fresh trainer on `device` (float32).
    pub fn new(
        model: impl Into<ModelConfig>,
        train: OptimConfig,
        normalizer: Normalizer,
        device: Device,
    ) -> Trainer {
        let model: ModelConfig = model.into();
        tch::manual_seed(train.seed as i64);
        let vs = nn::VarStore::new(device);
        let net = Model::new(&vs.root(), &model);
        let mut ema_vs = nn::VarStore::new(device);
        let ema_net = Model::new(&ema_vs.root(), &model);
        ema_vs.copy(&vs).expect("same structure");
        ema_vs.freeze();
        let moments = nn::VarStore::new(device);
        let vars = variables_by_name(&vs);
        let names: Vec<String> = vars.iter().map(|(n, _)| n.clone()).collect();
        {
            let root = moments.root();
            for (n, v) in &vars {
                let shape = v.size();
                let _ = root.zeros_no_train(&moment_name("m", n), &shape);
                let _ = root.zeros_no_train(&moment_name("v", n), &shape);
            }
        }
        Trainer {
            state: State {
                model,
                train,
                normalizer,
                internal: None,
                transfer: None,
                step: 0,
                history: Vec::new(),
            },
            vs,
            model: net,
            ema_vs,
            ema_model: ema_net,
            moments,
            names,
            replicas: Vec::new(),
        }
    }

    /// Computes each step's gradients on `n` worker threads, each with its own copy of the
    /// model and a slice of the batch (libtorch should then run single-threaded in each). The
    /// steps are those of one worker up to float round-off. Not saved in checkpoints.
    pub fn set_workers(&mut self, n: usize) {
        self.replicas = (1..n.max(1))
            .map(|_| {
                let mut vs = nn::VarStore::new(self.vs.device());
                let m = Model::new(&vs.root(), &self.state.model);
                vs.copy(&self.vs)
                    .expect("same configuration, same variables");
                (vs, m)
            })
            .collect();
    }

    /// Gradient-computing threads.
    pub fn workers(&self) -> usize {
        1 + self.replicas.len()
    }

    /// One optimisation step on a batch of centred, normalised samples (batch, dim); returns the
    /// training NLL per dimension.
    pub fn step(&mut self, batch: &Tensor) -> f64 {
        self.step_labelled(batch, None)
    }

    /// [`Trainer::step`] of a transferable flow: `labels` say what each row's tokens are, and
    /// the loss is per real dimension.
    pub fn step_labelled(&mut self, batch: &Tensor, labels: Option<&Labels>) -> f64 {
        self.step_with(batch, labels, None)
    }

    /// [`Trainer::step_labelled`] with the gradient of another loss added to the likelihood's:
    /// `extra(model)` on the main model (training by energy, [`crate::kl`]). Returns the
    /// likelihood's loss per dimension.
    pub fn step_with(
        &mut self,
        batch: &Tensor,
        labels: Option<&Labels>,
        extra: Option<&dyn Fn(&Model) -> Tensor>,
    ) -> f64 {
        let c = self.state.train.clone();
        let t = self.state.step;
        // Cartesian models learn rotations and the CoM from augmentation; internal
        // coordinates (a transferable model's too) have neither.
        let cartesian = self.state.coords() == crate::Coords::Cartesian;
        let x = match cartesian {
            true => augment(
                batch,
                self.state.normalizer.n_atoms,
                c.seed.wrapping_mul(1_000_003).wrapping_add(t as u64),
            ),
            false => batch.shallow_clone(),
        };
        let (loss_v, mut grads) = self.gradients(&x, labels);
        if let Some(extra) = extra {
            let vars = self.vs.variables();
            let params: Vec<&Tensor> = self.names.iter().map(|n| &vars[n]).collect();
            let more = Tensor::run_backward(&[&extra(&self.model)], &params, false, false);
            // The other loss's gradient never outweighs the likelihood's (a strained draw's
            // can be orders of magnitude larger, and the global clip would then silence the
            // likelihood): scaled down to the likelihood's norm where it is larger.
            tch::no_grad(|| {
                let (ml, other) = (global_norm(&grads), global_norm(&more));
                let scale = if other > ml { ml / other } else { 1.0 };
                for (a, b) in grads.iter_mut().zip(more) {
                    *a += b * scale;
                }
            });
        }
        let vars = self.vs.variables();
        let lr = learning_rate(&c, t);
        let mvars = self.moments.variables();
        tch::no_grad(|| {
            // Global gradient-norm clipping (one synchronisation for all parameters).
            let total = global_norm(&grads);
            let scale = if total > c.clip { c.clip / total } else { 1.0 };
            let step = (t + 1) as f64;
            let (b1c, b2c) = (1.0 - c.beta1.powf(step), 1.0 - c.beta2.powf(step));
            let evars = self.ema_vs.variables();
            let ema_decay = c.ema.min((1.0 + t as f64) / (10.0 + t as f64));
            for (n, g) in self.names.iter().zip(&grads) {
                let mut p = vars[n].shallow_clone();
                let g = if scale < 1.0 {
                    g * scale
                } else {
                    g.shallow_clone()
                };
                let mut m = mvars[&moment_name("m", n)].shallow_clone();
                let mut v = mvars[&moment_name("v", n)].shallow_clone();
                // m <- beta1 m + (1 - beta1) g; v <- beta2 v + (1 - beta2) g^2
                let _ = m.lerp_(&g, 1.0 - c.beta1);
                let _ = v
                    .g_mul_scalar_(c.beta2)
                    .addcmul_(&g, &(&g * (1.0 - c.beta2)));
                // decoupled weight decay, then p <- p - lr m_hat / (sqrt(v_hat) + eps)
                let _ = p.g_mul_scalar_(1.0 - lr * c.weight_decay);
                let denom = v.sqrt() / b2c.sqrt() + 1e-8;
                let _ = p.addcdiv_(&(&m * (-lr / b1c)), &denom);
                // EMA of the weights, with the usual warm-up of the decay so that the
                // initial weights do not linger: decay_t = min(ema, (1 + t) / (10 + t)).
                let _ = evars[n].shallow_clone().lerp_(&p, 1.0 - ema_decay);
            }
        });
        for (vs, _) in &mut self.replicas {
            vs.copy(&self.vs).expect("same variables");
        }
        self.state.step += 1;
        loss_v
    }

    /// The training loss per dimension on `x` (augmented batch) and its gradients with respect
    /// to the variables in name order: on this thread, or summed over the workers' slices.
    fn gradients(&mut self, x: &Tensor, labels: Option<&Labels>) -> (f64, Vec<Tensor>) {
        let dim = self.state.model.dim() as f64;
        let total = x.size()[0];
        // A transferable batch: its real dimensions.
        let real = labels.map(|l| {
            f64::try_from(l.tokens.sum(Kind::Double)).unwrap_or(f64::NAN)
                * (self.state.model.dim() / self.model_tokens()) as f64
        });
        // The slice's share of the batch-mean loss; gradients as fresh tensors (autograd.grad),
        // so there is nothing to zero or accumulate into.
        let bf16 = self.state.train.bf16;
        let slice_grads = |model: &Model, vs: &nn::VarStore, x: &Tensor, l: Option<Labels>| {
            let loss = crate::matmul::with(bf16, || match (&l, real) {
                (Some(l), Some(real)) => {
                    -model.log_prob_labelled(x, l).sum(Kind::Float) * (1.0 / real)
                }
                _ => {
                    let share = x.size()[0] as f64 / total as f64;
                    -model.training_log_prob(x).mean(Kind::Float) * (share / dim)
                }
            });
            let vars = vs.variables();
            let params: Vec<&Tensor> = self.names.iter().map(|n| &vars[n]).collect();
            let grads = Tensor::run_backward(&[&loss], &params, false, false);
            (f64::try_from(&loss).unwrap_or(f64::NAN), grads)
        };
        let rows = |start: i64, len: i64| labels.map(|l| l.narrow(start, len));
        if self.replicas.is_empty() {
            return slice_grads(&self.model, &self.vs, x, rows(0, total));
        }
        let parts = x.chunk(self.workers() as i64, 0);
        let mut starts = vec![0i64];
        for p in &parts {
            starts.push(starts.last().copied().unwrap_or(0) + p.size()[0]);
        }
        let slices: Vec<Option<Labels>> = parts
            .iter()
            .zip(&starts)
            .map(|(p, &s)| rows(s, p.size()[0]))
            .collect();
        let mut slices = slices.into_iter();
        let first_labels = slices.next().flatten();
        let (first, rest) = parts.split_first().expect("a non-empty batch");
        let (model, vs) = (&self.model, &self.vs);
        let ((mut loss, mut grads), others) = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .replicas
                .iter_mut()
                .zip(rest.iter().map(|t| t.shallow_clone()))
                .zip(slices)
                .map(|(((vs, m), x), l)| {
                    let f = &slice_grads;
                    s.spawn(move || f(m, vs, &x, l))
                })
                .collect();
            let mine = slice_grads(model, vs, first, first_labels);
            let others: Vec<(f64, Vec<Tensor>)> = handles
                .into_iter()
                .map(|h| h.join().expect("a gradient worker panicked"))
                .collect();
            (mine, others)
        });
        tch::no_grad(|| {
            for (l, g) in others {
                loss += l;
                for (a, b) in grads.iter_mut().zip(g) {
                    *a += b;
                }
            }
        });
        (loss, grads)
    }

    /// Tokens per sample of the model (a TarFlow's; an ArBG's per-coordinate count).
    fn model_tokens(&self) -> i64 {
        match &self.state.model {
            ModelConfig::TarFlow(c) => c.tokens,
            ModelConfig::Arbg(c) => c.dim(),
        }
    }

    /// NLL per real dimension of a transferable flow's labelled rows; `ema` picks the EMA
    /// weights.
    pub fn nll_labelled(&self, data: &Tensor, labels: &Labels, ema: bool) -> f64 {
        let model = if ema { &self.ema_model } else { &self.model };
        let per_token = self.state.model.dim() / self.model_tokens();
        let (n, mut total, mut dims) = (data.size()[0], 0.0, 0.0);
        tch::no_grad(|| {
            let mut s = 0;
            while s < n {
                // Small chunks: each is cut to its longest molecule (rows sorted by size).
                let b = (n - s).min(256);
                let l = labels.narrow(s, b);
                let lq = model.log_prob_labelled(&data.narrow(0, s, b), &l);
                total += f64::try_from(lq.sum(Kind::Double)).unwrap_or(f64::NAN);
                dims += f64::try_from(l.tokens.sum(Kind::Double)).unwrap_or(f64::NAN)
                    * per_token as f64;
                s += b;
            }
        });
        -total / dims
    }

    /// NLL per dimension (normalised units, model density) of centred, normalised data without
    /// augmentation; `ema` picks the EMA weights.
    pub fn nll(&self, data: &Tensor, ema: bool) -> f64 {
        nll(if ema { &self.ema_model } else { &self.model }, data)
    }

    /// Writes `dir/ckpt-STEP/` (weights, EMA weights, optimiser moments, state.json), then
    /// switches `dir/latest.json` to it and removes older checkpoints.
    pub fn save(&self, dir: &Path) -> Result<PathBuf, Error> {
        let io = |p: &Path| {
            let f = p.display().to_string();
            move |error| Error::Io {
                file: f.clone(),
                error,
            }
        };
        let name = format!("ckpt-{:08}", self.state.step);
        let tmp = dir.join(format!("{name}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        for (vs, file) in [
            (&self.vs, "weights.safetensors"),
            (&self.ema_vs, "ema.safetensors"),
            (&self.moments, "optimizer.safetensors"),
        ] {
            vs.save(tmp.join(file))
                .map_err(|e| ck(&tmp.join(file), e))?;
        }
        let state = serde_json::to_string_pretty(&self.state).expect("serialisable");
        std::fs::write(tmp.join("state.json"), state).map_err(io(&tmp))?;
        bgen_system::manifest::write(&tmp, MANIFEST, &CHECKPOINT_FILES).map_err(|e| ck(&tmp, e))?;
        let done = dir.join(&name);
        let _ = std::fs::remove_dir_all(&done);
        std::fs::rename(&tmp, &done).map_err(io(&done))?;
        let latest = dir.join("latest.json");
        let ltmp = dir.join("latest.json.tmp");
        std::fs::write(&ltmp, serde_json::json!({ "checkpoint": name }).to_string())
            .map_err(io(&ltmp))?;
        std::fs::rename(&ltmp, &latest).map_err(io(&latest))?;
        for e in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if n.starts_with("ckpt-") && n != name {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        Ok(done)
    }

    /// The EMA model (for sampling), or with `ema` false the raw weights, consuming the
    /// trainer.
    pub fn into_model(self, ema: bool) -> Model {
        if ema {
            self.ema_model
        } else {
            self.model
        }
    }

    /// The trained TarFlow (EMA weights with `ema`); None for an ArBG.
    pub fn into_flow(self, ema: bool) -> Option<TarFlow> {
        match self.into_model(ema) {
            Model::TarFlow(f) => Some(f),
            Model::Arbg(_) => None,
        }
    }

    /// Loads the checkpoint that `dir/latest.json` names, checking every tensor's presence and
    /// shape against the configuration.
    pub fn load(dir: &Path, device: Device) -> Result<Trainer, Error> {
        let (cdir, mut t) = Trainer::unloaded(dir, device)?;
        for (vs, file) in [
            (&mut t.vs, "weights.safetensors"),
            (&mut t.ema_vs, "ema.safetensors"),
            (&mut t.moments, "optimizer.safetensors"),
        ] {
            load_vars(vs, &cdir.join(file))?;
        }
        Ok(t)
    }

    /// The checkpoint directory that `dir/latest.json` names, and a trainer of its state whose
    /// tensors are still to be loaded.
    /// The state (settings, step, a transferable model's record) of the latest checkpoint in
    /// `dir`, without building the model or reading its weights.
    pub fn load_state(dir: &Path) -> Result<State, Error> {
        Ok(read_state(dir)?.1)
    }

    fn unloaded(dir: &Path, device: Device) -> Result<(PathBuf, Trainer), Error> {
        let (cdir, state) = read_state(dir)?;
        Ok((cdir, Trainer::unloaded_from(state, device)))
    }

    /// A trainer of `state` whose tensors are still to be loaded.
    fn unloaded_from(state: State, device: Device) -> Trainer {
        let mut t = Trainer::new(
            state.model.clone(),
            state.train.clone(),
            state.normalizer.clone(),
            device,
        );
        t.state = state;
        t
    }

    /// Loads the last checkpoint to train it further (fine-tuning): as [`Trainer::load`], but a
    /// checkpoint that holds only the moving average of the weights (a shipped model) starts
    /// from the average as both weights and average, with fresh optimiser moments. A
    /// transferable model not yet conditioned on what `add` asks for (temperature, sequence)
    /// gains those embeddings, and a TarFlow the blocks `add` asks for: new (zero at the start,
    /// so the model is unchanged) with fresh moments.
    pub fn load_weights(dir: &Path, device: Device, add: Additions) -> Result<Trainer, Error> {
        let (cdir, mut state) = read_state(dir)?;
        let mut added: Vec<String> = grow_blocks(&mut state.model, add.blocks, &cdir)?;
        let conditioning = match &mut state.model {
            ModelConfig::TarFlow(c) => c.conditioning.as_mut(),
            ModelConfig::Arbg(c) => c.conditioning.as_mut(),
        };
        if let Some(k) = conditioning {
            if add.temperature && !k.temperature {
                k.temperature = true;
                added.push("temperature_".into());
            }
            if add.sequence && !k.sequence {
                k.sequence = true;
                added.push("sequence_".into());
            }
        }
        let mut t = Trainer::unloaded_from(state, device);
        let load = |vs: &mut nn::VarStore, p: &Path| match added.is_empty() {
            false => load_vars_adding(vs, p, &added),
            true => load_vars(vs, p),
        };
        let raw = cdir.join("weights.safetensors");
        let ema = cdir.join("ema.safetensors");
        if raw.exists() {
            load(&mut t.vs, &raw)?;
            load(&mut t.moments, &cdir.join("optimizer.safetensors"))?;
        } else {
            load(&mut t.vs, &ema)?;
        }
        load(&mut t.ema_vs, &ema)?;
        Ok(t)
    }

    /// Loads only the model of the last checkpoint for sampling: its EMA weights (`ema`) or its
    /// raw weights. A checkpoint made for shipping may hold only `ema.safetensors`.
    pub fn load_model(dir: &Path, device: Device, ema: bool) -> Result<(State, Model), Error> {
        let (state, mut models) = Trainer::load_models(dir, device, ema, 1)?;
        Ok((state, models.remove(0)))
    }

    /// As [`Trainer::load_model`], as `copies` independent copies (one per worker thread).
    pub fn load_models(
        dir: &Path,
        device: Device,
        ema: bool,
        copies: usize,
    ) -> Result<(State, Vec<Model>), Error> {
        let (cdir, state) = read_state(dir)?;
        let mut vs = nn::VarStore::new(device);
        let model = Model::new(&vs.root(), &state.model);
        let file = if ema {
            "ema.safetensors"
        } else {
            "weights.safetensors"
        };
        load_vars(&mut vs, &cdir.join(file))?;
        vs.freeze();
        let mut models = copies_of(&state.model, &vs, copies.max(1) - 1);
        models.insert(0, model);
        Ok((state, models))
    }

    /// `n` independent copies of the model being trained (its EMA weights with `ema`), frozen,
    /// for sampling on worker threads.
    pub fn copies(&self, n: usize, ema: bool) -> Vec<Model> {
        copies_of(
            &self.state.model,
            if ema { &self.ema_vs } else { &self.vs },
            n,
        )
    }
}

/// `n` frozen copies of the model `config` whose weights are in `src`, each in its own store.
fn copies_of(config: &ModelConfig, src: &nn::VarStore, n: usize) -> Vec<Model> {
    (0..n)
        .map(|_| {
            let mut vs = nn::VarStore::new(src.device());
            let m = Model::new(&vs.root(), config);
            vs.copy(src).expect("same configuration, same variables");
            vs.freeze();
            m
        })
        .collect()
}

/// The files of a checkpoint, listed with their checksums in its manifest.
const CHECKPOINT_FILES: [&str; 4] = [
    "weights.safetensors",
    "ema.safetensors",
    "optimizer.safetensors",
    "state.json",
];
const MANIFEST: &str = "manifest.txt";

/// Checks a checkpoint file against its checkpoint's manifest (when it has one).
fn verify(p: &Path) -> Result<(), Error> {
    let (Some(dir), Some(name)) = (p.parent(), p.file_name().and_then(|n| n.to_str())) else {
        return Ok(());
    };
    bgen_system::manifest::verify(dir, MANIFEST, name).map_err(|e| Error::Checkpoint {
        file: p.display().to_string(),
        msg: e.to_string(),
    })
}

/// A checkpoint file that exists and matches its manifest.
fn checked(p: &Path) -> Result<(), Error> {
    if !p.exists() {
        return Err(ck(p, "missing"));
    }
    verify(p)
}

fn load_vars(vs: &mut nn::VarStore, p: &Path) -> Result<(), Error> {
    checked(p)?;
    vs.load(p).map_err(|e| {
        // libtorch's message ends in a C++ stack trace: its first line says what is wrong.
        let e = e.to_string();
        let first = e.lines().next().unwrap_or_default();
        ck(
            p,
            format!("corrupt or does not match the configuration in state.json: {first}"),
        )
    })?;
    all_finite(vs, p)
}

/// A store's variables in name order. `VarStore::variables()` is a hash map, whose order
/// changes from run to run: whatever visits the variables in turn (drawing random numbers for
/// each, naming the first bad one) visits them in this order, so that it is reproducible.
pub fn variables_by_name(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Every loaded tensor finite: a NaN weight passes the checksums (it was saved so) and would
/// make every sample and log q NaN downstream.
fn all_finite(vs: &nn::VarStore, p: &Path) -> Result<(), Error> {
    let bad = variables_by_name(vs)
        .into_iter()
        .find(|(_, t)| !bool::try_from(t.isfinite().all()).unwrap_or(false));
    match bad {
        Some((name, _)) => Err(ck(
            p,
            format!(
                "{name} holds NaN or infinite values (saved from a run that diverged, or edited)"
            ),
        )),
        None => Ok(()),
    }
}

/// Sets a TarFlow's blocks to `blocks` (more than it has) and returns the new blocks' variable
/// prefixes; nothing without `blocks`. `dir` names the checkpoint in errors.
fn grow_blocks(
    model: &mut ModelConfig,
    blocks: Option<i64>,
    dir: &Path,
) -> Result<Vec<String>, Error> {
    let Some(n) = blocks else {
        return Ok(Vec::new());
    };
    let ModelConfig::TarFlow(c) = model else {
        return Err(ck(dir, "--grow-blocks: an ArBG has no flow blocks"));
    };
    if n <= c.blocks {
        return Err(ck(
            dir,
            format!(
                "--grow-blocks {n}: the model has {} blocks already",
                c.blocks
            ),
        ));
    }
    // A block's variables, and their optimiser moments (named with "__" for ".").
    let added = (c.blocks..n)
        .flat_map(|k| [format!("block{k}."), format!("__block{k}__")])
        .collect();
    c.blocks = n;
    Ok(added)
}

/// As [`load_vars`], where the variables whose names contain one of `new` may be missing from
/// the file (they keep their initial values); any other missing one is an error.
fn load_vars_adding(vs: &mut nn::VarStore, p: &Path, new: &[String]) -> Result<(), Error> {
    checked(p)?;
    let missing = vs
        .load_partial(p)
        .map_err(|e| ck(p, format!("corrupt: {e}")))?;
    match missing
        .iter()
        .find(|n| !new.iter().any(|k| n.contains(k.as_str())))
    {
        Some(n) => Err(ck(p, format!("does not match the configuration: no {n}"))),
        None => all_finite(vs, p),
    }
}

/// NLL per dimension (normalised units) of centred, normalised data (n, 3N) under `model`.
pub fn nll(model: &Model, data: &Tensor) -> f64 {
    let (n, dim) = (data.size()[0], data.size()[1] as f64);
    let mut total = 0.0;
    tch::no_grad(|| {
        let mut s = 0;
        while s < n {
            let b = (n - s).min(1024);
            let lq = model.log_prob(&data.narrow(0, s, b));
            total += f64::try_from(lq.sum(Kind::Double)).unwrap_or(f64::NAN);
            s += b;
        }
    });
    -total / (n as f64 * dim)
}

/// The directory and state of the checkpoint that `dir/latest.json` names.
fn read_state(dir: &Path) -> Result<(PathBuf, State), Error> {
    let latest = dir.join("latest.json");
    let text = std::fs::read_to_string(&latest).map_err(|e| {
        let hint = if dir.join("run.json").exists() {
            "the run stopped before its first checkpoint: start it again without --resume"
        } else {
            "not a training run"
        };
        ck(&latest, format!("no checkpoint ({e}); {hint}"))
    })?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ck(&latest, format!("corrupt: {e}")))?;
    let name = v["checkpoint"]
        .as_str()
        .ok_or_else(|| ck(&latest, "corrupt: no checkpoint name"))?;
    let cdir = dir.join(name);
    let sp = cdir.join("state.json");
    verify(&sp)?;
    let st = std::fs::read_to_string(&sp).map_err(|e| ck(&sp, e))?;
    let state: State = serde_json::from_str(&st).map_err(|e| ck(&sp, format!("corrupt: {e}")))?;
    Ok((cdir, state))
}
