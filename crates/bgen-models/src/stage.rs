//! The training stage as a function of typed, serialisable settings: [`run`] trains a TarFlow
//! or an ArBG by maximum likelihood on MD frames, resumably (`bgen train`, `bgen run`'s training
//! stage, `bgen.train(...)` in Python). Also the model presets and the run's record
//! ([`RunInfo`]) that the sampling stage reads back.

use crate::data::Normalizer;
use crate::internal::Internal;
use crate::train::{OptimConfig, Trainer};
use crate::{ArbgConfig, Coords, DeviceChoice, Family, ModelConfig, Result, TarFlowConfig};
use bgen_system::bail;
use bgen_system::error::Context;
use bgen_system::options::{count, non_negative, positive};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tch::{Kind, Tensor};

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
    /// Output run directory (checkpoints, run.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Size preset. TarFlow: tiny (smoke tests), small (CPU, 64 wide, 4 blocks x 2 layers, 8000
    /// steps: about 40 min on one core for aldp), aldp (256 wide, 4x4), peptide (384, 6x6),
    /// chignolin (384, 8x8); transferable: dipeptides (CPU, 128 wide, 4x2, 20,000 steps), prose
    /// (GPU, 1024 wide, 8x3, about SBG's Prose's 285M parameters). ArBG: tiny, small (CPU), base (256 wide x 8 layers), medium
    /// (512 x 12). Default: small.
    #[arg(long)]
    pub preset: Option<String>,
    /// ArBG: bins per coordinate (overrides the preset's).
    #[arg(long, value_parser = count::<i64>, allow_hyphen_values = true)]
    pub bins: Option<i64>,
    /// ArBG: half-width of the binned range in units of the data's std (default 3).
    #[arg(long, value_parser = positive, allow_hyphen_values = true)]
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
    #[arg(long, default_value_t = bgen_system::options::cores(), hide_default_value = true, value_parser = count::<usize>, allow_hyphen_values = true)]
    pub threads: usize,
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
            resume: false,
            checkpoint_secs: TRAIN_CHECKPOINT_SECS,
            system: None,
            init: None,
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
            ("threads", Some(self.threads as i64)),
        ] {
            if let Some(v) = v {
                check::count(k, v)?;
            }
        }
        for (k, v) in [("range", self.range), ("lr", self.lr)] {
            if let Some(v) = v {
                check::positive(k, v)?;
            }
        }
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

/// (model, training) configuration of an ArBG preset for `atoms` atoms.
/// Half-width (std units) of an ArBG's bins over standardised bonds and angles.
pub const INTERNAL_ARBG_RANGE: f64 = 5.0;

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
/// `checkpoint_secs`.
pub fn run(a: TrainArgs) -> Result<TrainResult> {
    a.check()?;
    if a.init.is_some() || merged_dataset(&a.data).is_some() {
        return run_transferable(a);
    }
    if a.raised_rungs > 0 {
        bail!(
            "--raised-rungs: for a transferable model on a merged data set; one molecule's raised \
             rungs come with --extra-data RUN"
        );
    }
    let dev = a.device.open()?;
    // Data-parallel over the batch rather than inside libtorch: at these model sizes its
    // intra-op threads scale poorly (2 threads: 1.2-1.4x slower per step than 2 workers).
    tch::set_num_threads(1);
    let (train_x, val_x, na) = single_frames(&a)?;
    let d = 3 * na;
    let (n_train, n_val) = (train_x.len() / d, val_x.len() / d);
    for input in std::iter::once(&a.data).chain(&a.extra_data) {
        bgen_system::outdir::refuse_same(input, &a.out, "training data")?;
    }
    let _lock = bgen_system::outdir::lock_dir(&a.out)?;
    let info_path = a.out.join("run.json");
    let family = a.model.unwrap_or_default();
    let mut preset_name = a.preset.clone().unwrap_or_else(|| DEFAULT_PRESET.into());
    let coords = a.coords.unwrap_or_default();
    let mut trainer = if a.resume {
        let t = Trainer::load(&a.out, dev)?;
        preset_name = check_resume(&a, &t.state.train, &info_path)?.preset;
        t
    } else {
        refuse_existing(&a.out)?;
        let (model, mut tc): (ModelConfig, OptimConfig) = match family {
            Family::Tarflow => {
                let (mut m, tc) = preset(&preset_name, na as i64)?;
                if a.per_coordinate {
                    m.tokens = 3 * na as i64;
                    m.token_dim = 1;
                }
                (m.into(), tc)
            }
            Family::Arbg => {
                let (mut m, tc) = arbg_preset(&preset_name, na as i64)?;
                m.bins = a.bins.unwrap_or(m.bins);
                m.range = a.range.unwrap_or(m.range);
                if m.bins < 2 || m.range <= 0.0 {
                    bail!("--bins must be at least 2 and --range positive");
                }
                (m.into(), tc)
            }
        };
        let internal = coords == Coords::Internal;
        let model = match (model, internal) {
            (m, false) => m,
            (ModelConfig::TarFlow(mut m), true) => {
                // N - 2 tokens of (b, theta, phi); the first three atoms' (b1, b2, theta2) together.
                (m.tokens, m.token_dim) = match a.per_coordinate {
                    true => (3 * na as i64 - 6, 1),
                    false => (na as i64 - 2, 3),
                };
                m.into()
            }
            (ModelConfig::Arbg(mut m), true) => {
                // Tokens of 3: (b1, b2, theta2), then (b, theta, phi) per atom from the fourth.
                m.atoms = na as i64 - 2;
                // Bonds and angles in std units: +-5 std holds all but ~1e-6 of each (a torsion
                // fills the range whatever it is).
                m.range = a.range.unwrap_or(INTERNAL_ARBG_RANGE);
                m.into()
            }
        };
        overrides(&mut tc, &a, 0);
        let norm = Normalizer::fit(&train_x, na);
        let (system, forcefield, temperature) = match (&a.system, data_system(&a.data)) {
            (Some(s), _) => {
                let sys = bgen_system::System::named(s, None, None)?;
                (
                    s.clone(),
                    sys.params.setup.name().to_string(),
                    sys.temperature,
                )
            }
            (None, Some(t)) => t,
            (None, None) => bail!(
                "{}: cannot tell which system the frames are; pass --system",
                a.data.display()
            ),
        };
        let info = RunInfo {
            model: family,
            preset: preset_name.clone(),
            system,
            forcefield,
            temperature_k: temperature,
            data: std::iter::once(&a.data)
                .chain(&a.extra_data)
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            n_train,
            n_val,
            coords,
        };
        let text = serde_json::to_string_pretty(&info).context(info_path.display())?;
        bgen_system::npy::write_atomic(&info_path, text.as_bytes())?;
        for t in [a.data.join("topology.pdb"), a.data.join("../topology.pdb")] {
            if t.exists() {
                std::fs::copy(&t, a.out.join("topology.pdb"))
                    .with_context(|| format!("copying {}", t.display()))?;
                break;
            }
        }
        let mut t = Trainer::new(model, tc, norm, dev);
        if internal {
            let sys = bgen_system::System::recorded(
                &info.system,
                &a.out.join("topology.pdb"),
                bgen_system::Setup::from_name(&info.forcefield)?,
                info.temperature_k,
            )?;
            if sys.n_atoms() != na {
                bail!(
                    "{}: frames have {na} atoms, {} has {}",
                    a.data.display(),
                    sys.name,
                    sys.n_atoms()
                );
            }
            let z = bgen_system::ZMatrix::from_topology(&sys.topology)?;
            t.state.internal = Some(Internal::fit(&train_x, &z));
        }
        t
    };
    if dev == tch::Device::Cpu {
        trainer.set_workers(a.threads);
    }
    let norm = trainer.state.normalizer.clone();
    if norm.n_atoms as usize != na {
        bail!(
            "{}: frames have {na} atoms, the run's model {}",
            a.data.display(),
            norm.n_atoms
        );
    }
    let train_t = trainer.state.features(&train_x).to_device(dev);
    let val_t = trainer.state.features(&val_x).to_device(dev);
    let tc = trainer.state.train.clone();
    bgen_system::say!(
        "{} ({}): {n_train} training / {n_val} validation frames of {na} atoms, std {:.4} nm; {} steps of {}",
        trainer.state.model.describe(), preset_name, norm.std, tc.steps, tc.batch_size
    );
    if let ModelConfig::Arbg(c) = &trainer.state.model {
        let outside = |t: &Tensor| {
            f64::try_from(
                t.abs()
                    .gt(c.range)
                    .any_dims([1].as_slice(), false)
                    .to_kind(Kind::Double)
                    .mean(Kind::Double),
            )
            .unwrap_or(f64::NAN)
        };
        bgen_system::say!(
            "frames with a coordinate outside +-{} std (before augmentation): training {:.2e}, validation {:.2e}",
            c.range,
            outside(&train_t),
            outside(&val_t)
        );
    }
    train_loop(
        &mut trainer,
        &a,
        &train_t,
        None,
        &|t: &Trainer, ema: bool| t.nll(&val_t, ema),
    )?;
    let val = trainer.nll(&val_t, true);
    let val_nm = trainer
        .state
        .internal
        .is_none()
        .then(|| norm.nll_in_nm(val));
    match val_nm {
        Some(nm) => bgen_system::say!(
            "done: validation NLL {val:.4} per dim in normalised units ({nm:.4} per dim in nm units); {}",
            a.out.display()
        ),
        None => bgen_system::say!(
            "done: validation NLL {val:.4} per dim of the standardised internal coordinates; {}",
            a.out.display()
        ),
    }
    Ok(TrainResult {
        out: a.out.clone(),
        steps: trainer.state.step,
        n_train,
        n_val,
        val_nll: val,
        val_nll_nm: val_nm,
    })
}

/// One molecule's frames: training (with `--extra-data`'s raised-temperature frames) and
/// validation (a sibling `val/`, else the last 10%), nm, and the atom count.
fn single_frames(a: &TrainArgs) -> Result<(Vec<f64>, Vec<f64>, usize)> {
    let frames = bgen_md::dataset::load_run_temperature(&a.data)?;
    let na = frames.n_atoms;
    let d = 3 * na;
    let val_dir = a
        .data
        .parent()
        .map(|p| p.join("val"))
        .filter(|p| p.join("frames.npy").exists() && a.data.is_dir());
    let (train_x, val_x): (Vec<f64>, Vec<f64>) = match &val_dir {
        Some(v) if v != &a.data => (
            frames.x.clone(),
            bgen_md::dataset::load_run_temperature(v)?.x,
        ),
        _ => {
            let n = frames.len();
            let cut = n - (n / 10).max(1);
            (frames.x[..cut * d].to_vec(), frames.x[cut * d..].to_vec())
        }
    };
    let mut train_x = train_x;
    for extra in &a.extra_data {
        let f = bgen_md::dataset::load_raised_temperatures(extra)?;
        if f.n_atoms != na {
            bail!(
                "{}: frames have {} atoms, {} has {na}",
                extra.display(),
                f.n_atoms,
                a.data.display()
            );
        }
        train_x.extend_from_slice(&f.x);
    }
    let n_train = train_x.len() / d;
    if n_train < 2 {
        bail!(
            "{}: {n_train} training frames are too few",
            a.data.display()
        );
    }
    Ok((train_x, val_x, na))
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

/// Tokens a transferable model makes room for beyond the largest training molecule's, so that
/// it can sample somewhat larger molecules zero-shot.
pub const TRANSFER_HEADROOM: i64 = 8;
/// How a new transferable model's Z-matrices close rings: from both neighbours (a perturbation of
/// 5% of each coordinate's spread strains PW by 0.58 kT (median) this way, 1.09 kT along the
/// chain; KW 1.00 against 1.33).
pub const TRANSFER_RING_CLOSURE: bgen_system::RingClosure = bgen_system::RingClosure::Both;

/// Largest residue index plus one (and molecule length) a transferable model embeds.
pub const TRANSFER_MAX_RESIDUES: i64 = 16;

/// Trains a transferable TarFlow on a merged many-peptide data set (`bgen dataset merge`): each
/// molecule in its own internal coordinates, standardised per class ([`crate::transfer`]),
/// batches mixing molecules; the last 10% of each molecule's frames validate.
fn run_transferable(a: TrainArgs) -> Result<TrainResult> {
    use crate::tarflow::{Conditioning, Labels};
    use crate::transfer::{load_dataset, rows, Standards};
    use bgen_system::peptide::identity;
    if a.model.is_some_and(|m| m != Family::Tarflow) {
        bail!("a transferable model is a TarFlow (--model tarflow)");
    }
    if a.coords.is_some_and(|c| c != Coords::Internal) || a.per_coordinate {
        bail!("a transferable model works in each molecule's internal coordinates, one token per atom");
    }
    // Options of single-molecule training take effect there or are refused here.
    for (k, given) in [
        (
            "--extra-data (raised rungs come with --raised-rungs)",
            !a.extra_data.is_empty(),
        ),
        (
            "--system (each molecule's comes with its data)",
            a.system.is_some(),
        ),
        ("--bins", a.bins.is_some()),
        ("--range", a.range.is_some()),
    ] {
        if given {
            bail!("{k}: not an option of a transferable model");
        }
    }
    let dev = a.device.open()?;
    tch::set_num_threads(1);
    // Each molecule's Z-matrix closes its rings as the model does: a new model from both
    // neighbours, a resumed or fine-tuned one as it was trained (read before the data).
    let earlier = match (a.resume, &a.init) {
        (true, _) => Some(a.out.clone()),
        (false, Some(init)) => Some(init_dir(init)),
        (false, None) => None,
    };
    let rings = match earlier {
        Some(d) => Trainer::load_state(&d)?
            .transfer
            .map_or(TRANSFER_RING_CLOSURE, |t| t.ring_closure),
        None => TRANSFER_RING_CLOSURE,
    };
    let (mols, data_crc) = match merged_dataset(&a.data) {
        Some(file) => {
            let bytes = std::fs::read(&file).with_context(|| file.display().to_string())?;
            let crc = bgen_system::manifest::crc32(&bytes);
            (
                load_dataset(&file, false, rings, a.raised_rungs)?,
                Some(crc),
            )
        }
        None => (vec![one_molecule(&a.data, rings, a.raised_rungs)?], None),
    };
    if mols.is_empty() {
        bail!("{}: no training molecules", a.data.display());
    }
    bgen_system::outdir::refuse_same(&a.data, &a.out, "training data")?;
    let _lock = bgen_system::outdir::lock_dir(&a.out)?;
    // Training and validation frames of each molecule: the last 10% validate.
    let split = |m: &crate::transfer::Molecule| {
        let d = 3 * m.system.n_atoms();
        let n = m.frames.len() / d;
        let cut = n - (n / 10).max(1);
        let mut train = m.frames[..cut * d].to_vec();
        train.extend_from_slice(&m.raised);
        (train, m.frames[cut * d..].to_vec())
    };
    let parts: Vec<(Vec<f64>, Vec<f64>)> = mols.iter().map(split).collect();
    let mut preset_name = a.preset.clone().unwrap_or_else(|| "small".into());
    // Training (false) or validation (true) frames over all molecules.
    let n_frames = |val: bool| -> usize {
        parts
            .iter()
            .zip(&mols)
            .map(|(p, m)| if val { &p.1 } else { &p.0 }.len() / (3 * m.system.n_atoms()))
            .sum()
    };
    let mut trainer =
        if a.resume {
            let t = Trainer::load(&a.out, dev)?;
            let Some(transfer) = &t.state.transfer else {
                bail!("{}: not a transferable run", a.out.display());
            };
            // The molecules a model trains on are fixed when its run starts: a data set merged
            // again with another split would leak held-out peptides into it unrecorded.
            let ids: Vec<String> = mols.iter().map(|m| identity(&m.system.topology)).collect();
            let mut now: Vec<&str> = ids.iter().map(|s| s.as_str()).collect();
            let mut then: Vec<&str> = transfer.trained_on.iter().map(|s| s.as_str()).collect();
            now.sort_unstable();
            then.sort_unstable();
            if now != then {
                let added: Vec<&str> = now.iter().filter(|n| !then.contains(n)).copied().collect();
                let gone: Vec<&str> = then.iter().filter(|n| !now.contains(n)).copied().collect();
                bail!(
                "{}: the run trains on other molecules than {} holds now (new: {}; missing: {}); \
                 resume on the data it started with, or start a new run (--init {} fine-tunes \
                 it on new data)",
                a.out.display(),
                a.data.display(),
                if added.is_empty() { "none".into() } else { added.join(",") },
                if gone.is_empty() { "none".into() } else { gone.join(",") },
                a.out.display()
            );
            }
            // The same names can hold other frames: a data set removed and merged again.
            if let (Some(then), Some(now)) = (transfer.data_crc, data_crc) {
                if then != now {
                    bail!(
                        "{}: the run started on another {} (merged again since: its \
                         dataset.json changed); resume on the data it started with, or start a \
                         new run",
                        a.out.display(),
                        a.data.display()
                    );
                }
            }
            preset_name = check_resume(&a, &t.state.train, &a.out.join("run.json"))?.preset;
            t
        } else if let Some(init) = &a.init {
            refuse_existing(&a.out)?;
            let init = &init_dir(init);
            let mut t = Trainer::load_weights(init, dev)?;
            let Some(transfer) = t.state.transfer.as_mut() else {
                bail!("--init {}: not a transferable model", init.display());
            };
            // Its labels index its force field's atom types and templates.
            for m in &mols {
                let ff = m.system.params.setup.name();
                if ff != transfer.forcefield {
                    bail!(
                    "--init {}: a model of {}, and {} was simulated in {ff}; fine-tune on data \
                     of the model's force field",
                    init.display(),
                    transfer.forcefield,
                    m.name
                );
                }
            }
            // Its standards and weights are of its temperature's ensemble.
            for m in &mols {
                if (m.system.temperature - transfer.temperature_k).abs() > 1e-6 {
                    bail!(
                        "--init {}: a model of {} K, and {} was simulated at {} K; fine-tune on \
                         data at the model's temperature",
                        init.display(),
                        transfer.temperature_k,
                        m.name,
                        m.system.temperature
                    );
                }
            }
            for m in &mols {
                let id = identity(&m.system.topology);
                if !transfer.trained_on.contains(&id) {
                    transfer.trained_on.push(id);
                }
            }
            transfer.data_crc = data_crc;
            // A fresh schedule over the new steps, from the pretrained weights and moments.
            let tc = &mut t.state.train;
            let seed = tc.seed;
            overrides(tc, &a, seed);
            t.state.step = 0;
            t.state.history.clear();
            let info_path = init.join("run.json");
            let mut info: RunInfo = serde_json::from_str(
                &std::fs::read_to_string(&info_path).context(info_path.display())?,
            )
            .with_context(|| format!("{}: corrupt", info_path.display()))?;
            info.data = a.data.display().to_string();
            (info.n_train, info.n_val) = (n_frames(false), n_frames(true));
            preset_name = info.preset.clone();
            let out_info = a.out.join("run.json");
            let text = serde_json::to_string_pretty(&info).context(out_info.display())?;
            bgen_system::npy::write_atomic(&out_info, text.as_bytes())?;
            t
        } else {
            refuse_existing(&a.out)?;
            let setup = mols[0].system.params.setup;
            let ff = setup.data();
            let max_tokens = mols
                .iter()
                .map(|m| m.system.n_atoms() as i64 - 2)
                .max()
                .unwrap_or(1);
            let tokens = max_tokens + TRANSFER_HEADROOM;
            let (mut m, mut tc) = preset(&preset_name, tokens)?;
            m.conditioning = Some(Conditioning {
                atom_types: ff.types.len() as i64 + 1,
                residue_types: ff.templates.len() as i64 + 1,
                max_residues: TRANSFER_MAX_RESIDUES,
            });
            overrides(&mut tc, &a, 0);
            let fit: Vec<(&bgen_system::System, &bgen_system::ZMatrix, &[f64])> = mols
                .iter()
                .zip(&parts)
                .map(|(m, p)| (&m.system, &m.zmatrix, p.0.as_slice()))
                .collect();
            let norm = crate::data::Normalizer {
                n_atoms: tokens + 2,
                std: 1.0,
            };
            let mut t = Trainer::new(m, tc, norm, dev);
            t.state.transfer = Some(crate::train::Transfer {
                standards: Standards::fit(&fit),
                forcefield: setup.name().into(),
                temperature_k: mols[0].system.temperature,
                trained_on: mols.iter().map(|m| identity(&m.system.topology)).collect(),
                ring_closure: rings,
                data_crc,
            });
            let info = RunInfo {
                model: Family::Tarflow,
                preset: preset_name.clone(),
                system: "transferable".into(),
                forcefield: setup.name().into(),
                temperature_k: mols[0].system.temperature,
                data: a.data.display().to_string(),
                n_train: n_frames(false),
                n_val: n_frames(true),
                coords: Coords::Internal,
            };
            let info_path = a.out.join("run.json");
            let text = serde_json::to_string_pretty(&info).context(info_path.display())?;
            bgen_system::npy::write_atomic(&info_path, text.as_bytes())?;
            t
        };
    if dev == tch::Device::Cpu {
        trainer.set_workers(a.threads);
    }
    if let ModelConfig::TarFlow(c) = &trainer.state.model {
        for m in &mols {
            crate::transfer::check_fits(&m.system, c).map_err(|e| format!("{}: {e}", m.name))?;
        }
    }
    let transfer = trainer.state.transfer.clone().expect("a transferable run");
    let tokens = match &trainer.state.model {
        ModelConfig::TarFlow(c) => c.tokens,
        ModelConfig::Arbg(_) => bail!("{}: not a TarFlow", a.out.display()),
    };
    let (mut xt, mut lt, mut xv, mut lv) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (m, p) in mols.iter().zip(&parts) {
        let (internal, _) = transfer.standards.internal(&m.system, &m.zmatrix);
        let (x, l) = rows(m, &internal, &p.0, tokens)?;
        xt.push(x);
        lt.push(l);
        let (x, l) = rows(m, &internal, &p.1, tokens)?;
        xv.push(x);
        lv.push(l);
    }
    let (train_t, train_l) = (Tensor::cat(&xt, 0).to_device(dev), Labels::cat(&lt).to(dev));
    let (val_t, val_l) = (Tensor::cat(&xv, 0).to_device(dev), Labels::cat(&lv).to(dev));
    let (n_train, n_val) = (train_t.size()[0] as usize, val_t.size()[0] as usize);
    let (val_t, val_l) = validation_rows(&val_t, &val_l);
    bgen_system::say!(
        "transferable {} ({preset_name}): {} molecules, {n_train} training / {n_val} validation frames (NLL on {}), up to {tokens} tokens; {} steps of {}",
        trainer.state.model.describe(),
        mols.len(),
        val_t.size()[0],
        trainer.state.train.steps,
        trainer.state.train.batch_size
    );
    train_loop(
        &mut trainer,
        &a,
        &train_t,
        Some(&train_l),
        &|t: &Trainer, ema: bool| t.nll_labelled(&val_t, &val_l, ema),
    )?;
    let val = match trainer.state.history.last() {
        Some(&(step, _, Some(v))) if step == trainer.state.step => v,
        _ => trainer.nll_labelled(&val_t, &val_l, true),
    };
    bgen_system::say!(
        "done: validation NLL {val:.4} per dim of the standardised internal coordinates; {}",
        a.out.display()
    );
    Ok(TrainResult {
        out: a.out.clone(),
        steps: trainer.state.step,
        n_train,
        n_val,
        val_nll: val,
        val_nll_nm: None,
    })
}

/// One molecule's MD run (a `bgen md` directory or its data split) as a transferable model's
/// training molecule, named by its sequence.
fn one_molecule(
    data: &Path,
    rings: bgen_system::RingClosure,
    raised_rungs: usize,
) -> Result<crate::transfer::Molecule> {
    let Some((_, forcefield, temperature)) = data_system(data) else {
        bail!(
            "{}: not an MD run (no run.json beside the frames)",
            data.display()
        );
    };
    let setup = bgen_system::Setup::from_name(&forcefield)?;
    let top = [data.join("topology.pdb"), data.join("../topology.pdb")]
        .into_iter()
        .find(|p| p.exists())
        .with_context(|| format!("{}: no topology.pdb", data.display()))?;
    let system = bgen_system::System::from_pdb_file(&top, setup, Some(temperature))?;
    let zmatrix = bgen_system::ZMatrix::from_topology_with(&system.topology, rings)?;
    let frames = bgen_md::dataset::load_run_temperature(data)?.x;
    let raised = crate::transfer::raised_frames(data, raised_rungs)?;
    let name = bgen_system::peptide::sequence(&system.topology);
    Ok(crate::transfer::Molecule {
        name,
        system,
        zmatrix,
        frames,
        raised,
    })
}

/// The training loop shared by every model: batches drawn from a fresh permutation of the rows
/// per epoch (reproducible from the seed and the epoch), with their labels for a transferable
/// flow; a checkpoint and the validation NLL (`val(trainer, ema)`) every `checkpoint_secs` and at
/// the end; a clear error (the last checkpoint intact) if the loss diverges.
fn train_loop(
    trainer: &mut Trainer,
    a: &TrainArgs,
    train_t: &Tensor,
    labels: Option<&crate::tarflow::Labels>,
    val: &dyn Fn(&Trainer, bool) -> f64,
) -> Result<()> {
    let tc = trainer.state.train.clone();
    let dev = train_t.device();
    let n_train = train_t.size()[0] as usize;
    let bar = ProgressBar::new(tc.steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} {msg} [{elapsed_precise}, ETA {eta_precise}]",
        )
        .expect("template"),
    );
    bar.set_position(trainer.state.step as u64);
    bar.reset_eta();
    let t0 = Instant::now();
    let start = trainer.state.step;
    let mut last_cp = Instant::now();
    let mut order: Vec<i64> = Vec::new();
    let n = n_train as i64;
    // Molecules of mixed sizes: each row's real tokens, for batches of like sizes.
    let row_tokens: Option<Vec<i64>> = labels.map(|l| Vec::try_from(&l.tokens).unwrap_or_default());
    while trainer.state.step < tc.steps {
        let s = trainer.state.step;
        // A fresh permutation per epoch, reproducible from the seed and the epoch.
        let per_epoch = (n / tc.batch_size).max(1);
        let (epoch, k) = (s / per_epoch, s % per_epoch);
        if order.is_empty() || k == 0 {
            let keys = crate::data::normals(
                n as usize,
                tc.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9),
            );
            let mut idx: Vec<i64> = (0..n).collect();
            idx.sort_by(|&p, &q| keys[p as usize].total_cmp(&keys[q as usize]));
            order = match &row_tokens {
                Some(t) => sortish(&idx, t, tc.batch_size as usize, &keys),
                None => idx,
            };
        }
        let b: Vec<i64> = (0..tc.batch_size)
            .map(|j| order[((k * tc.batch_size + j) % n) as usize])
            .collect();
        let batch = train_t.index_select(0, &Tensor::from_slice(&b).to_device(dev));
        let idx = Tensor::from_slice(&b).to_device(dev);
        let l = labels.map(|l| l.select(&idx));
        let loss = trainer.step_labelled(&batch, l.as_ref());
        if !loss.is_finite() {
            bail!(
                "training diverged at step {s} (loss {loss}); the last checkpoint in {} is intact",
                a.out.display()
            );
        }
        let done = trainer.state.step;
        let rate = (done - start) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
        bar.set_position(done as u64);
        bar.set_message(format!("loss {loss:.3}/dim, {rate:.1} steps/s"));
        if last_cp.elapsed() >= Duration::from_secs_f64(a.checkpoint_secs) || done == tc.steps {
            let (val, raw) = (val(trainer, true), val(trainer, false));
            trainer.state.history.push((done, loss, Some(val)));
            trainer.save(&a.out)?;
            bar.suspend(|| {
                bgen_system::say!("step {done}: train {loss:.4}, validation NLL {val:.4} per dim (EMA; {raw:.4} without)")
            });
            last_cp = Instant::now();
        }
    }
    bar.finish();
    Ok(())
}

/// The validation rows a transferable run scores at each checkpoint: at most `VALIDATION_ROWS`,
/// evenly spaced (rows come molecule by molecule, so every molecule keeps its share), ordered
/// by size so that each pass cuts its pads. The same rows every time, so NLLs compare.
fn validation_rows(x: &Tensor, l: &crate::tarflow::Labels) -> (Tensor, crate::tarflow::Labels) {
    let n = x.size()[0];
    let stride = (n + VALIDATION_ROWS - 1) / VALIDATION_ROWS;
    let tokens: Vec<i64> = Vec::try_from(&l.tokens).unwrap_or_default();
    let mut rows: Vec<i64> = (0..n).step_by(stride.max(1) as usize).collect();
    rows.sort_by_key(|&r| tokens.get(r as usize).copied().unwrap_or(0));
    let idx = Tensor::from_slice(&rows).to_device(x.device());
    (x.index_select(0, &idx), l.select(&idx))
}

/// Most validation rows of a transferable run (an NLL per dimension within about 0.003; the
/// same rows at every checkpoint, so differences between checkpoints are much finer).
const VALIDATION_ROWS: i64 = 2048;

/// The run `--init` names: a training run directory, or a shipped model's name (`dipeptides`).
fn init_dir(init: &Path) -> PathBuf {
    (!init.exists())
        .then(|| init.to_str().and_then(|n| crate::shipped::run_dir(n).ok()))
        .flatten()
        .unwrap_or_else(|| init.to_path_buf())
}

/// Batches of molecules of like sizes from a shuffled `order` of rows (`tokens`: each row's real
/// tokens): the order is cut into groups of `SORTISH_BATCHES` batches, each group sorted by
/// size and its batches put back in a shuffled order (`keys`: one normal per row). Every row is
/// still drawn once per epoch, while a batch's pads, which the flow cuts before its work
/// ([`crate::tarflow::TarFlow`]), shrink to a few tokens.
fn sortish(order: &[i64], tokens: &[i64], batch: usize, keys: &[f64]) -> Vec<i64> {
    let group = batch * SORTISH_BATCHES;
    let mut out = Vec::with_capacity(order.len());
    for g in order.chunks(group) {
        let mut rows = g.to_vec();
        rows.sort_by_key(|&r| tokens[r as usize]);
        // Whole batches shuffled; a last, partial one stays last (batches are read in place).
        let whole = rows.len() / batch * batch;
        let mut batches: Vec<&[i64]> = rows[..whole].chunks(batch).collect();
        batches.sort_by(|a, b| keys[a[0] as usize].total_cmp(&keys[b[0] as usize]));
        out.extend(batches.into_iter().flatten());
        out.extend(&rows[whole..]);
    }
    out
}

/// Batches per group of [`sortish`].
const SORTISH_BATCHES: usize = 64;

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

    /// Sortish batches draw every row once and put molecules of like sizes together.
    #[test]
    fn sortish_batches_are_a_permutation_of_like_sizes() {
        let n = 10_000usize;
        let keys = crate::data::normals(n, 3);
        let tokens: Vec<i64> = (0..n).map(|i| 15 + (i * 7919 % 33) as i64).collect();
        let mut order: Vec<i64> = (0..n as i64).collect();
        order.sort_by(|&p, &q| keys[p as usize].total_cmp(&keys[q as usize]));
        let out = sortish(&order, &tokens, 32, &keys);
        let mut seen = out.clone();
        seen.sort();
        assert_eq!(seen, (0..n as i64).collect::<Vec<_>>());
        // Mean padding per row (batch max minus own size): random batches about 30 tokens.
        let pad = |o: &[i64]| {
            let total: i64 = o
                .chunks(32)
                .map(|b| {
                    let m = b.iter().map(|&r| tokens[r as usize]).max().unwrap();
                    b.iter().map(|&r| m - tokens[r as usize]).sum::<i64>()
                })
                .sum();
            total as f64 / o.len() as f64
        };
        let (random, sorted) = (pad(&order), pad(&out));
        assert!(random > 10.0 && sorted < 1.5, "{random} {sorted}");
    }
}
