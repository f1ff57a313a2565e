//! The training stage as a function of typed, serialisable settings: [`run`] trains a TarFlow
//! or an ArBG by maximum likelihood on MD frames, resumably (`bgen train`, `bgen run`'s training
//! stage, `bgen.train(...)` in Python). Also the model presets and the run's record
//! ([`RunInfo`]) that the sampling stage reads back.

mod single;
mod train_loop;
mod transferable;

pub use transferable::{TRANSFER_HEADROOM, TRANSFER_MAX_RESIDUES, TRANSFER_RING_CLOSURE};

use crate::matmul::Matmul;
use crate::tarflow::Labels;
use crate::train::{OptimConfig, Trainer};
use crate::{ArbgConfig, Coords, DeviceChoice, Family, Result, TarFlowConfig};
use bgen_system::bail;
use bgen_system::error::Context;
use bgen_system::options::{count, non_negative, positive};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::Tensor;

/// The settings of `bgen train` (and of `bgen run`'s training stage, which builds them with
/// [`TrainArgs::new`]).
/// Python's `bgen.train(...)` keywords (deserialised; unknown keys are refused).
#[derive(Args, Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainArgs {
    /// Model family: tarflow (default) or arbg.
    #[arg(long, value_enum)]
    pub model: Option<Family>,
    /// Training frames: a data-set or run directory (from `bgen md` / `bgen dataset split`) or
    /// a (frames, atoms, 3) .npy in nm or an .xtc. A sibling `val/` directory is used for validation,
    /// else the last 10% of the frames.
    #[arg(long)]
    pub data: PathBuf,
    /// More training frames of the same molecule, added to --data's (repeatable): e.g. MD at a
    /// raised temperature, which crosses barriers that MD at the target temperature rarely
    /// does; the importance weights correct to the target temperature. Of a replica-exchange
    /// run, the replicas above the lowest (whose frames are the data). The system, force field
    /// and temperature still come from --data.
    #[arg(long)]
    pub extra_data: Vec<PathBuf>,
    /// A transferable model on replica-exchange data: each molecule also trains on the frames of
    /// this many of its raised rungs, lowest first (its validation stays at the target
    /// temperature). Broader data covers rare basins that the weights then correct.
    #[arg(long, default_value_t = 0)]
    pub raised_rungs: usize,
    /// A transferable model: condition it on each frame's temperature (its rung's), so that the
    /// raised rungs train a distribution of their own rather than widening the target
    /// temperature's; sampling is at the model's temperature. Fine-tuning a model without it
    /// (--init) adds it.
    #[arg(long)]
    pub temperature_label: bool,
    /// A transferable model: give every token the whole sequence (each residue's template at
    /// its index), so that every block sees what the other residues are, whatever its order
    /// (labels per atom reach a token only through the atoms before it). Fine-tuning a model
    /// without it (--init) adds it.
    #[arg(long)]
    pub sequence_label: bool,
    /// Output run directory (checkpoints, run.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Size preset. TarFlow: tiny (smoke tests), small (CPU, 64 wide, 4 blocks x 2 layers, 8000
    /// steps: about 40 min on one core for aldp), aldp (256 wide, 4x4), peptide (384, 6x6),
    /// chignolin (384, 8x8); transferable: dipeptides (CPU, 128 wide, 4x2, 20,000 steps), prose
    /// (GPU, 1024 wide, 8x3, about SBG's Prose's 285M parameters). ArBG (one molecule's or,
    /// on a merged data set, transferable): tiny, small (CPU), base (256 wide x 8 layers),
    /// medium (512 x 12). Default: small.
    #[arg(long)]
    pub preset: Option<String>,
    /// ArBG: bins per coordinate (overrides the preset's).
    #[arg(long, value_parser = count::<i64>, allow_hyphen_values = true)]
    pub bins: Option<i64>,
    /// ArBG: half-width of the binned range in units of the data's std (default 5 in internal
    /// coordinates, the preset's 3 in Cartesian ones); data beyond it has zero density.
    #[arg(long, value_parser = arbg_range, allow_hyphen_values = true)]
    pub range: Option<f64>,
    /// One token per coordinate (3N tokens of dimension 1) instead of one per atom; for the
    /// smallest systems.
    #[arg(long)]
    pub per_coordinate: bool,
    /// Coordinates the model works in: internal (the Z-matrix's bonds, angles and torsions;
    /// the default, as in `bgen run`: on aldp a TarFlow's SNIS ESS went from 4e-4 in Cartesian
    /// coordinates to 0.07-0.12, an ArBG's from 1e-4 to 0.014) or cartesian (centred, with
    /// rotation and CoM augmentation, as in the SBG paper).
    #[arg(long, value_enum)]
    pub coords: Option<Coords>,
    /// Training steps (overrides the preset's).
    #[arg(long, value_parser = count::<i64>, allow_hyphen_values = true)]
    pub steps: Option<i64>,
    #[arg(long, value_parser = count::<i64>, allow_hyphen_values = true)]
    pub batch_size: Option<i64>,
    #[arg(long, value_parser = positive, allow_hyphen_values = true)]
    pub lr: Option<f64>,
    /// Seed of the initialisation and the batches (default 0).
    #[arg(long)]
    pub seed: Option<u64>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value_t)]
    pub device: DeviceChoice,
    /// Worker threads on the CPU: each computes the gradients of a slice of every batch on its
    /// own copy of the model, with libtorch single-threaded inside (the steps do not depend on
    /// it beyond round-off). Default: all cores.
    #[arg(long, default_value_t = bgen_system::options::cores(), hide_default_value = true, value_parser = bgen_system::options::threads, allow_hyphen_values = true)]
    pub threads: usize,
    /// Matrix products of a training step: auto (bf16 on a CPU with native bfloat16,
    /// AVX512-BF16: 1.5x faster steps for the dipeptides TarFlow, 1.08x for the small ArBG, the
    /// same validation NLL; else f32), f32 or bf16. Validation and sampling stay f32. A resumed
    /// run keeps its own.
    #[arg(long, value_enum)]
    pub matmul: Option<Matmul>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Seconds between checkpoints (and validation).
    #[arg(long, default_value_t = TRAIN_CHECKPOINT_SECS, value_parser = non_negative, allow_hyphen_values = true)]
    pub checkpoint_secs: f64,
    /// The system the frames belong to (default: from the data's run.json or topology.pdb).
    #[arg(long)]
    pub system: Option<String>,
    /// Fine-tune a transferable model: start from the weights of this run (`bgen train` on a
    /// merged data set), or of the shipped model of that name (`dipeptides`), and train them on
    /// --data (one molecule's MD run, or a merged data set); the result stays transferable and
    /// counts --data's molecules as seen.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// A transferable TarFlow: add this weight of the reverse KL divergence of its draws to
    /// each training molecule's Boltzmann density (training by energy, which likelihood on MD
    /// frames never sees: draws that clash or strain stiff coordinates) to every step; each
    /// step draws --kl-draws of one training molecule. Default 0 (likelihood alone).
    #[arg(long, value_parser = non_negative, allow_hyphen_values = true)]
    pub kl_weight: Option<f64>,
    /// Draws per step of training by energy (--kl-weight).
    #[arg(long, value_parser = bgen_system::options::count::<usize>, allow_hyphen_values = true)]
    pub kl_draws: Option<usize>,
    /// A transferable model: a file of lines `NAME DRAWS` (a training molecule's name in the
    /// merged data set, and how many times per epoch each of its training frames is drawn, 1 to
    /// 100; `#` starts a comment). Molecules not listed are drawn once. For giving the
    /// molecules that the model fits worst more of the gradient; a resume keeps the run's.
    #[arg(long)]
    pub oversample: Option<PathBuf>,
    /// With --init: grow the TarFlow to this many flow blocks in all. The new blocks follow the
    /// others, alternating order as they do, each the identity until trained, so the grown flow
    /// starts as the model it grows from (log q equal to round-off) with more capacity (a step
    /// takes about blocks / old blocks as long).
    #[arg(long, value_parser = count::<i64>, allow_hyphen_values = true)]
    pub grow_blocks: Option<i64>,
}

/// The preset of `bgen train` (and `bgen run`) without --preset.
pub const DEFAULT_PRESET: &str = "small";

/// Seconds between training checkpoints by default.
const TRAIN_CHECKPOINT_SECS: f64 = 120.0;

impl TrainArgs {
    /// The defaults of `bgen train --data DATA --out OUT`.
    pub fn new(data: PathBuf, out: PathBuf) -> TrainArgs {
        TrainArgs {
            model: None,
            data,
            extra_data: Vec::new(),
            raised_rungs: 0,
            temperature_label: false,
            sequence_label: false,
            out,
            preset: None,
            bins: None,
            range: None,
            per_coordinate: false,
            coords: None,
            steps: None,
            batch_size: None,
            lr: None,
            seed: None,
            device: DeviceChoice::Cpu,
            threads: bgen_system::options::cores(),
            matmul: None,
            resume: false,
            checkpoint_secs: TRAIN_CHECKPOINT_SECS,
            system: None,
            init: None,
            kl_weight: None,
            kl_draws: None,
            oversample: None,
            grow_blocks: None,
        }
    }
}

impl Default for TrainArgs {
    fn default() -> Self {
        TrainArgs::new(PathBuf::new(), PathBuf::new())
    }
}

impl TrainArgs {
    /// Refuses settings that would break a run, naming them (the command line's parsers do the
    /// same; this covers settings from TOML or Python).
    pub fn check(&self) -> Result<()> {
        use bgen_system::options::check;
        if self.data.as_os_str().is_empty() {
            bail!("data: give the training frames");
        }
        if self.out.as_os_str().is_empty() {
            bail!("out: give an output directory");
        }
        for (k, v) in [
            ("bins", self.bins),
            ("steps", self.steps),
            ("batch_size", self.batch_size),
        ] {
            if let Some(v) = v {
                check::count(k, v)?;
            }
        }
        if let Some(v) = self.lr {
            check::positive("lr", v)?;
        }
        if let Some(r) = self.range {
            arbg_range(&format!("{r:?}")).map_err(|e| format!("range = {e}"))?;
        }
        check::threads("threads", self.threads as i64)?;
        check::non_negative("checkpoint_secs", self.checkpoint_secs)?;
        Ok(())
    }
}

/// What the training stage did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainResult {
    /// The run directory (checkpoints, run.json).
    pub out: PathBuf,
    /// Steps trained in all (a resumed run counts the earlier ones).
    pub steps: i64,
    pub n_train: usize,
    pub n_val: usize,
    /// Validation NLL per dimension of the model's coordinates (EMA weights): normalised
    /// Cartesian units or standardised internal coordinates.
    pub val_nll: f64,
    /// Cartesian models: the same in nm units.
    pub val_nll_nm: Option<f64>,
}

/// What `bgen sample` needs to know about a run besides the checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunInfo {
    pub model: Family,
    pub preset: String,
    /// Embedded system name, or "pdb" with topology.pdb in the run directory.
    pub system: String,
    pub forcefield: String,
    pub temperature_k: f64,
    pub data: String,
    pub n_train: usize,
    pub n_val: usize,
    /// The model's coordinates (a run from before internal coordinates has none: Cartesian).
    #[serde(default = "cartesian")]
    pub coords: Coords,
}

fn cartesian() -> Coords {
    Coords::Cartesian
}

/// (model, training) configuration of a preset for `tokens` atoms.
pub fn preset(name: &str, tokens: i64) -> Result<(TarFlowConfig, OptimConfig)> {
    // The CPU presets train for few steps and use a 10x higher peak learning rate than the
    // paper's 1e-4 (on aldp, small: validation NLL -0.66 per dim at 1e-4 after 8,000 steps,
    // -1.04 at 1e-3 after 2,800).
    let (width, blocks, layers, head_dim, steps, batch, lr) = match name {
        "tiny" => (32, 2, 1, 16, 200, 64, 1e-3),
        "small" => (64, 4, 2, 32, 8_000, 256, 1e-3),
        "aldp" => (256, 4, 4, 64, 100_000, 256, 1e-4),
        "peptide" => (384, 6, 6, 64, 200_000, 256, 1e-4),
        "chignolin" => (384, 8, 8, 64, 300_000, 256, 1e-4),
        // Transferable: dipeptides on a CPU, and 2-8 residues on a GPU at about the size of
        // SBG's Prose (285M parameters: 8 blocks x 3 layers of width 1024, ~12 w^2 each).
        "dipeptides" => (128, 4, 2, 32, 20_000, 256, 1e-3),
        "prose" => (1024, 8, 3, 64, 500_000, 512, 1e-4),
        other => bail!(
            "unknown preset '{other}' (tiny, small, aldp, peptide, chignolin; transferable: dipeptides, prose)"
        ),
    };
    Ok((
        TarFlowConfig {
            tokens,
            token_dim: 3,
            width,
            blocks,
            layers,
            head_dim,
            mlp_ratio: 4,
            conditioning: None,
        },
        OptimConfig {
            steps,
            batch_size: batch,
            lr,
            ..Default::default()
        },
    ))
}

/// An ArBG of `preset` for `atoms` atoms (tokens of 3) with `--bins` and `--range` applied; in
/// internal coordinates the range defaults to [`INTERNAL_ARBG_RANGE`]: bonds and angles in std
/// units, +-5 std holding all but ~1e-6 of each (a torsion fills the range whatever it is).
fn arbg_sized(
    a: &TrainArgs,
    preset: &str,
    atoms: i64,
    internal: bool,
) -> Result<(ArbgConfig, OptimConfig)> {
    let (mut m, tc) = arbg_preset(preset, atoms)?;
    m.bins = a.bins.unwrap_or(m.bins);
    m.range = a.range.unwrap_or(if internal {
        INTERNAL_ARBG_RANGE
    } else {
        m.range
    });
    if m.bins < 2 || m.range <= 0.0 {
        bail!("--bins must be at least 2 and --range positive");
    }
    Ok((m, tc))
}

/// Half-width (std units) of an ArBG's bins over standardised bonds and angles.
pub const INTERNAL_ARBG_RANGE: f64 = 5.0;

/// The narrowest and widest `--range` (std units) an ArBG takes: the model bins in f32, where
/// a half-width of 1e-300 is 0 and 1e300 is inf (bins of NaN).
pub const MIN_ARBG_RANGE: f64 = 1e-3;
pub const MAX_ARBG_RANGE: f64 = 1e3;

/// `--range`: a number in [`MIN_ARBG_RANGE`, `MAX_ARBG_RANGE`].
fn arbg_range(s: &str) -> std::result::Result<f64, String> {
    let r = positive(s)?;
    match (MIN_ARBG_RANGE..=MAX_ARBG_RANGE).contains(&r) {
        true => Ok(r),
        false => Err(format!(
            "{s}: must lie in [{MIN_ARBG_RANGE}, {MAX_ARBG_RANGE}] (std units)"
        )),
    }
}

/// (model, training) configuration of an ArBG preset for `atoms` atoms.
pub fn arbg_preset(name: &str, atoms: i64) -> Result<(ArbgConfig, OptimConfig)> {
    let (width, layers, head_dim, bins, steps, batch, lr) = match name {
        "tiny" => (32, 1, 16, 256, 200, 64, 1e-3),
        "small" => (64, 4, 32, 1024, 8_000, 128, 1e-3),
        "base" => (256, 8, 64, 4096, 200_000, 256, 3e-4),
        "medium" => (512, 12, 64, 8192, 300_000, 256, 3e-4),
        other => bail!("unknown ArBG preset '{other}' (tiny, small, base, medium)"),
    };
    Ok((
        ArbgConfig {
            atoms,
            width,
            layers,
            head_dim,
            bins,
            range: 3.0,
            conditioning: None,
        },
        OptimConfig {
            steps,
            batch_size: batch,
            lr,
            ..Default::default()
        },
    ))
}

/// The system label, force field and temperature recorded with the data, if any.
fn data_system(data: &Path) -> Option<(String, String, f64)> {
    let rj = [data.join("run.json"), data.join("../run.json")]
        .into_iter()
        .find(|p| p.exists())?;
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(rj).ok()?).ok()?;
    let s = &v["settings"];
    Some((
        s["system"].as_str()?.to_string(),
        s["forcefield"].as_str()?.to_string(),
        s["temperature_k"].as_f64()?,
    ))
}

/// Trains (or resumes, with `resume`) the model of `a.out` on `a.data`, checkpointing every
/// `checkpoint_secs`: one molecule's model, or a transferable one on a merged data set (or
/// fine-tuned from `--init`).
pub fn run(a: TrainArgs) -> Result<TrainResult> {
    a.check()?;
    let dev = a.device.open()?;
    // Data-parallel over the batch rather than inside libtorch: at these model sizes its
    // intra-op threads scale poorly (2 threads: 1.2-1.4x slower per step than 2 workers).
    tch::set_num_threads(1);
    let mut job = if a.init.is_some() || merged_dataset(&a.data).is_some() || resumes_transfer(&a) {
        transferable::prepare(&a, dev)?
    } else {
        single::prepare(&a, dev)?
    };
    if dev == tch::Device::Cpu {
        job.trainer.set_workers(a.threads);
    }
    let rows = &job.rows;
    train_loop::train_loop(
        &mut job.trainer,
        &a,
        &rows.train,
        rows.train_labels.as_ref(),
        rows.pool.as_deref(),
        &job.by_energy,
        &|t: &Trainer, ema: bool| rows.val_nll(t, ema),
    )?;
    Ok(job.finish(&a.out))
}

/// Whether `a` resumes a transferable run (one fine-tuned on one molecule's MD has neither
/// --init nor a merged data set to say so).
fn resumes_transfer(a: &TrainArgs) -> bool {
    a.resume
        && Trainer::load_state(&a.out)
            .map(|s| s.transfer.is_some())
            .unwrap_or(false)
}

/// A training run ready for its loop: the trainer, its rows and the lock on its directory.
struct Job {
    trainer: Trainer,
    rows: Rows,
    /// The molecules of training by energy (none without --kl-weight).
    by_energy: Vec<crate::kl::KlMolecule>,
    /// Training and validation frames (all of them; a transferable run validates on a subset).
    counts: (usize, usize),
    _lock: bgen_system::outdir::DirLock,
}

/// The model's training and validation rows, with a transferable flow's labels.
struct Rows {
    train: Tensor,
    train_labels: Option<Labels>,
    /// The training rows an epoch draws, a row as often as it appears (none: each row once).
    pool: Option<Vec<i64>>,
    val: Tensor,
    val_labels: Option<Labels>,
}

impl Rows {
    /// The validation NLL per dimension, of the EMA weights with `ema`.
    fn val_nll(&self, t: &Trainer, ema: bool) -> f64 {
        match &self.val_labels {
            Some(l) => t.nll_labelled(&self.val, l, ema),
            None => t.nll(&self.val, ema),
        }
    }
}

impl Job {
    /// The final validation NLL (the last checkpoint's), reported.
    fn finish(&self, out: &Path) -> TrainResult {
        let t = &self.trainer;
        let val = match t.state.history.last() {
            Some(&(step, _, Some(v))) if step == t.state.step => v,
            _ => self.rows.val_nll(t, true),
        };
        let cartesian = t.state.coords() == Coords::Cartesian;
        let val_nm = cartesian.then(|| t.state.normalizer.nll_in_nm(val));
        match val_nm {
            Some(nm) => bgen_system::say!(
                "done: validation NLL {val:.4} per dim in normalised units ({nm:.4} per dim in nm units); {}",
                out.display()
            ),
            None => bgen_system::say!(
                "done: validation NLL {val:.4} per dim of the standardised internal coordinates; {}",
                out.display()
            ),
        }
        TrainResult {
            out: out.to_path_buf(),
            steps: t.state.step,
            n_train: self.counts.0,
            n_val: self.counts.1,
            val_nll: val,
            val_nll_nm: val_nm,
        }
    }
}

/// Where a run's weights start.
enum Start {
    /// The run in `--out`, from its last checkpoint (`--resume`).
    Resume,
    /// A transferable model's weights and moments, with a fresh schedule (`--init`).
    FineTune(PathBuf),
    /// A new model of the preset.
    Fresh,
}

/// The trainer of every training run: resumed from `--out` (its settings checked against the
/// run's), fine-tuned from `--init` or built new by `fresh(preset)`, which applies
/// [`overrides`]. A new or fine-tuned run never overwrites another and writes its `run.json`
/// (`counts`: its training and validation frames). `adopt` checks an earlier model against the
/// data (and records what it now trains on) before it trains on them. Returns the trainer and
/// its preset.
fn prepare_trainer(
    a: &TrainArgs,
    dev: tch::Device,
    counts: (usize, usize),
    adopt: impl FnOnce(&mut Trainer, &Start) -> Result<()>,
    fresh: impl FnOnce(&str) -> Result<(Trainer, RunInfo)>,
) -> Result<(Trainer, String)> {
    let start = match (a.resume, &a.init) {
        (true, _) => Start::Resume,
        (false, Some(init)) => Start::FineTune(init_dir(init)),
        (false, None) => Start::Fresh,
    };
    if !matches!(start, Start::Resume) {
        refuse_existing(&a.out)?;
    }
    if a.grow_blocks.is_some() && !matches!(start, Start::FineTune(_)) {
        bail!("--grow-blocks: for a fine-tune (--init RUN); a new model takes its blocks from --preset");
    }
    let (trainer, info) = match &start {
        Start::Resume => {
            let mut t = Trainer::load(&a.out, dev)?;
            adopt(&mut t, &start)?;
            let info = check_resume(a, &t.state.train, &a.out.join("run.json"))?;
            info.check_against(&t.state, &a.out)?;
            return Ok((t, info.preset));
        }
        Start::FineTune(init) => {
            let add = crate::train::Additions {
                temperature: a.temperature_label,
                sequence: a.sequence_label,
                blocks: a.grow_blocks,
            };
            let mut t = Trainer::load_weights(init, dev, add)?;
            adopt(&mut t, &start)?;
            let seed = t.state.train.seed;
            overrides(&mut t.state.train, a, seed);
            t.state.step = 0;
            t.state.history.clear();
            let mut info = RunInfo::read(init)?;
            info.check_against(&t.state, init)?;
            info.data = a.data.display().to_string();
            (info.n_train, info.n_val) = counts;
            (t, info)
        }
        Start::Fresh => fresh(a.preset.as_deref().unwrap_or(DEFAULT_PRESET))?,
    };
    info.write(&a.out)?;
    Ok((trainer, info.preset))
}

impl RunInfo {
    /// The record in `run`'s run.json.
    pub fn read(run: &Path) -> Result<RunInfo> {
        let path = run.join("run.json");
        let md = run.join("frames.npy").exists() || run.join("chunks").is_dir();
        if md && !run.join("latest.json").exists() {
            bail!(
                "{}: an MD run or data set, not a training run (give the --out of `bgen train`)",
                run.display()
            );
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: not a training run", path.display()))?;
        let info: RunInfo =
            serde_json::from_str(&text).with_context(|| format!("{}: corrupt", path.display()))?;
        // What samplers take from it: a temperature (kT) and a force field; an edited value
        // would weigh every sample wrongly, silently.
        if !(info.temperature_k.is_finite() && info.temperature_k > 0.0) {
            bail!(
                "{}: corrupt: temperature_k {} is not a temperature",
                path.display(),
                info.temperature_k
            );
        }
        bgen_system::Setup::from_name(&info.forcefield)
            .with_context(|| format!("{}: corrupt forcefield", path.display()))?;
        Ok(info)
    }

    /// Refuses a record that contradicts the checkpoint it sits beside (`run`'s run.json,
    /// which carries no checksum, edited or copied from another run): its model family and
    /// coordinates, and for a transferable model its force field and temperature.
    pub fn check_against(&self, state: &crate::train::State, run: &Path) -> Result<()> {
        let (family, coords) = (state.model.family(), state.coords());
        let mut diff = Vec::new();
        if self.model != family {
            diff.push(format!(
                "model {} (the checkpoint holds {family})",
                self.model
            ));
        }
        if self.coords != coords {
            diff.push(format!(
                "coords {} (the checkpoint's are {coords})",
                self.coords
            ));
        }
        if let Some(t) = &state.transfer {
            if self.forcefield != t.forcefield {
                diff.push(format!(
                    "forcefield {} (the model's is {})",
                    self.forcefield, t.forcefield
                ));
            }
            if (self.temperature_k - t.temperature_k).abs() > 1e-6 {
                diff.push(format!(
                    "temperature_k {} (the model's is {})",
                    self.temperature_k, t.temperature_k
                ));
            }
        }
        if !diff.is_empty() {
            bail!(
                "{}: corrupt: it says {}; restore the run's own run.json",
                run.join("run.json").display(),
                diff.join(", ")
            );
        }
        Ok(())
    }

    /// Writes the record to `run`'s run.json (atomically).
    fn write(&self, run: &Path) -> Result<()> {
        let path = run.join("run.json");
        let text = serde_json::to_string_pretty(self).context(path.display())?;
        Ok(bgen_system::npy::write_atomic(&path, text.as_bytes())?)
    }
}

/// The merged many-peptide data set at `data` (a dataset.json, or a directory holding one).
fn merged_dataset(data: &Path) -> Option<PathBuf> {
    let f = if data.is_dir() {
        data.join("dataset.json")
    } else {
        data.to_path_buf()
    };
    (f.file_name().is_some_and(|n| n == "dataset.json") && f.exists()).then_some(f)
}

/// The run `--init` names: a training run directory, or a shipped model's name (`dipeptides`).
fn init_dir(init: &Path) -> PathBuf {
    (!init.exists())
        .then(|| init.to_str().and_then(|n| crate::shipped::run_dir(n).ok()))
        .flatten()
        .unwrap_or_else(|| init.to_path_buf())
}

/// A new run never overwrites a training run in `out` (resume it, or choose another `out`).
fn refuse_existing(out: &Path) -> Result<()> {
    if out.join("latest.json").exists() {
        bail!(
            "{} already holds a training run; pass --resume or choose another --out",
            out.display()
        );
    }
    Ok(())
}

/// The optimiser settings given on the command line over the preset's (or a fine-tuned run's);
/// the seed is `seed` when none is given.
fn overrides(tc: &mut OptimConfig, a: &TrainArgs, seed: u64) {
    tc.steps = a.steps.unwrap_or(tc.steps);
    tc.batch_size = a.batch_size.unwrap_or(tc.batch_size);
    tc.lr = a.lr.unwrap_or(tc.lr);
    tc.seed = a.seed.unwrap_or(seed);
    tc.bf16 = bf16(a);
    tc.kl_weight = a.kl_weight.unwrap_or(tc.kl_weight);
    tc.kl_draws = a.kl_draws.unwrap_or(tc.kl_draws);
}

/// Whether `a`'s training steps use bfloat16 products.
fn bf16(a: &TrainArgs) -> bool {
    let cpu = a.device == DeviceChoice::Cpu;
    a.matmul.unwrap_or_default().bf16(cpu)
}

/// Refuses a resume whose options differ from the run being resumed (they were ignored before),
/// listing each difference; returns the run's record.
fn check_resume(a: &TrainArgs, tc: &OptimConfig, info_path: &Path) -> Result<RunInfo> {
    let info: RunInfo = serde_json::from_str(
        &std::fs::read_to_string(info_path).with_context(|| info_path.display().to_string())?,
    )
    .with_context(|| format!("{}: corrupt", info_path.display()))?;
    let mut diff = Vec::new();
    let mut text = |name: &str, given: Option<String>, saved: String| {
        if let Some(g) = given {
            if g != saved {
                diff.push(format!("--{name} {g} (the run has {saved})"));
            }
        }
    };
    text(
        "model",
        a.model.map(|m| m.to_string()),
        info.model.to_string(),
    );
    text("preset", a.preset.clone(), info.preset.clone());
    text(
        "coords",
        a.coords.map(|c| c.to_string()),
        info.coords.to_string(),
    );
    let num = |name: &str, given: Option<f64>, saved: f64| {
        given
            .filter(|g| g != &saved)
            .map(|g| format!("--{name} {g} (the run has {saved})"))
    };
    diff.extend(num("steps", a.steps.map(|v| v as f64), tc.steps as f64));
    diff.extend(num(
        "batch-size",
        a.batch_size.map(|v| v as f64),
        tc.batch_size as f64,
    ));
    diff.extend(num("lr", a.lr, tc.lr));
    diff.extend(num("seed", a.seed.map(|v| v as f64), tc.seed as f64));
    diff.extend(num("kl-weight", a.kl_weight, tc.kl_weight));
    diff.extend(num(
        "kl-draws",
        a.kl_draws.map(|v| v as f64),
        tc.kl_draws as f64,
    ));
    if a.matmul.is_some() && bf16(a) != tc.bf16 {
        diff.push(format!(
            "--matmul {} (the run's products are {})",
            a.matmul.unwrap_or_default(),
            if tc.bf16 { Matmul::Bf16 } else { Matmul::F32 }
        ));
    }
    let same_path = |x: &str, y: &Path| -> bool {
        match (std::fs::canonicalize(x), std::fs::canonicalize(y)) {
            (Ok(p), Ok(q)) => p == q,
            _ => Path::new(x) == y,
        }
    };
    let saved: Vec<&str> = info.data.split(", ").collect();
    let given: Vec<&PathBuf> = std::iter::once(&a.data).chain(&a.extra_data).collect();
    if saved.len() != given.len() || saved.iter().zip(&given).any(|(x, y)| !same_path(x, y)) {
        diff.push(format!(
            "--data/--extra-data {} (the run has {})",
            given
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            info.data
        ));
    }
    if !diff.is_empty() {
        bail!(
            "{}: --resume with other settings than the run's: {}; drop them or train into another --out",
            a.out.display(),
            diff.join("; ")
        );
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run.json whose temperature or force field was edited into nonsense is refused by
    /// name: samplers take kT and the force field from it.
    #[test]
    fn a_run_record_with_nonsense_values_is_refused() {
        let dir = std::env::temp_dir().join(format!("bgen-runinfo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let info = RunInfo {
            model: Family::Tarflow,
            preset: "tiny".into(),
            system: "aldp".into(),
            forcefield: "amber99sbildn-obc2".into(),
            temperature_k: 300.0,
            data: "data".into(),
            n_train: 1,
            n_val: 1,
            coords: Coords::Internal,
        };
        info.write(&dir).unwrap();
        assert_eq!(RunInfo::read(&dir).unwrap().temperature_k, 300.0);
        let text = std::fs::read_to_string(dir.join("run.json")).unwrap();
        for (from, to, says) in [
            ("300.0", "-5.0", "temperature_k -5"),
            ("amber99sbildn-obc2", "charmm36", "forcefield"),
        ] {
            std::fs::write(dir.join("run.json"), text.replace(from, to)).unwrap();
            let err = RunInfo::read(&dir).err().unwrap().to_string();
            assert!(err.contains("run.json") && err.contains(says), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A run.json that contradicts its checkpoint (edited, or copied from another run) is
    /// refused, naming each contradiction; one that agrees passes.
    #[test]
    fn a_run_record_that_contradicts_its_checkpoint_is_refused() {
        let (config, tc) = preset("tiny", 4).unwrap();
        let norm = crate::data::Normalizer {
            n_atoms: 4,
            std: 1.0,
        };
        let mut state = Trainer::new(config, tc, norm, tch::Device::Cpu).state;
        let info = RunInfo {
            model: Family::Tarflow,
            preset: "tiny".into(),
            system: "aldp".into(),
            forcefield: "amber14-obc1".into(),
            temperature_k: 310.0,
            data: "data".into(),
            n_train: 1,
            n_val: 1,
            coords: Coords::Cartesian,
        };
        let run = Path::new("some-run");
        info.check_against(&state, run).unwrap();
        let err = |info: &RunInfo, state: &crate::train::State| {
            info.check_against(state, run).unwrap_err().to_string()
        };
        let arbg_internal = RunInfo {
            model: Family::Arbg,
            coords: Coords::Internal,
            ..info.clone()
        };
        let e = err(&arbg_internal, &state);
        assert!(
            e.contains("some-run/run.json")
                && e.contains("model arbg (the checkpoint holds tarflow)")
                && e.contains("coords internal (the checkpoint's are cartesian)"),
            "{e}"
        );
        // A transferable model's force field and temperature are its own.
        state.transfer = Some(crate::train::Transfer {
            standards: Default::default(),
            forcefield: "amber14-obc1".into(),
            temperature_k: 310.0,
            trained_on: Vec::new(),
            ring_closure: TRANSFER_RING_CLOSURE,
            data_crc: None,
            raised_rungs: None,
            validation: None,
            oversample: Default::default(),
        });
        let internal = RunInfo {
            coords: Coords::Internal,
            ..info.clone()
        };
        internal.check_against(&state, run).unwrap();
        let hotter = RunInfo {
            temperature_k: 350.0,
            ..internal
        };
        let e = err(&hotter, &state);
        assert!(e.contains("temperature_k 350 (the model's is 310)"), "{e}");
    }
}
