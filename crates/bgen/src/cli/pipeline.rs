//! `bgen run`: the main job. From a molecule to reweighted equilibrium samples and a report in
//! one command: MD data, a data split, training, sampling (SNIS and SMC, or twisted SMC for an
//! ArBG), evaluation against held-out MD. Every stage is one of the other subcommands, run with
//! the settings of one TOML file (written as DIR/config.toml, and accepted back by --config), and
//! is skipped when its outputs exist or resumed when it was interrupted.

use anyhow::{bail, Context, Result};
use bgen_eval::stage::EvalArgs;
use bgen_md::stage::{MdArgs, SplitArgs};
use bgen_models::stage::TrainArgs;
use bgen_models::{Coords, DeviceChoice, Family};
use bgen_sample::stage::{default_final_rounds, default_n, SampleArgs};
use bgen_sample::{ComForm, Method};
use bgen_system::SystemArgs;
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub struct RunArgs {
    /// Embedded system (default aldp; overrides the config's).
    #[arg(long, conflicts_with = "pdb")]
    system: Option<String>,
    /// Your own molecule: a PDB file with hydrogens (overrides the config's).
    #[arg(long)]
    pdb: Option<PathBuf>,
    /// Settings (TOML); DIR/config.toml of an earlier run reproduces it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output directory (stages in md/, data/, model/, sample-*/, eval-*/).
    #[arg(long)]
    out: PathBuf,
    /// Model family (overrides the config's).
    #[arg(long, value_enum)]
    model: Option<Family>,
    /// Threads (MD replicas, energies, libtorch); default: all cores.
    #[arg(long)]
    threads: Option<usize>,
}

/// Every setting of a run. Missing keys take the defaults (alanine dipeptide, CPU sizes). Each
/// section holds the pipeline's choices for one stage (e.g. a temperature ladder as its top and
/// rungs); `run` turns them into that stage's typed settings ([`MdArgs`], [`TrainArgs`],
/// [`SampleArgs`], [`EvalArgs`]) and calls the stage.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Embedded system name (`bgen systems`), or empty with `pdb`.
    pub system: String,
    /// Your own molecule: a PDB file with hydrogens, instead of `system`.
    pub pdb: Option<PathBuf>,
    /// Force field and implicit solvent: amber99sbildn-obc2 or amber14-obc1 (default: the
    /// system's own).
    pub forcefield: Option<String>,
    /// Temperature, K (default: the force field's).
    pub temperature: Option<f64>,
    /// MD data.
    pub md: MdSection,
    /// Training of the proposal.
    pub train: TrainSection,
    /// The samplers.
    pub sample: SampleSection,
    /// Evaluation against reference MD.
    pub eval: EvalSection,
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MdSection {
    /// Existing data instead of new MD: a `bgen dataset split` directory (train/, val/, test/)
    /// or an MD run directory.
    pub data: Option<PathBuf>,
    /// Production ns per replica (per rung of the ladder).
    pub ns: f64,
    /// Independent replicas of plain MD at the run's temperature (with `ladder_rungs = 0`),
    /// and of each run at `extra_temperatures`.
    pub replicas: usize,
    /// A frame every this many ps.
    pub save_every_ps: f64,
    /// Equilibration before the first frame, ps.
    pub equilibrate_ps: f64,
    /// Seed of the Langevin noise and initial velocities.
    pub seed: u64,
    /// Replica exchange from the run's temperature up to this one (K), over `ladder_rungs`
    /// rungs of `ns` each: the lowest rung is the data (split in time), the raised rungs are
    /// extra training frames.
    pub ladder_top_k: Option<f64>,
    /// Rungs of the ladder (geometric temperatures), at least 2; 0: no ladder, `replicas`
    /// independent runs of plain MD at the run's temperature.
    pub ladder_rungs: usize,
    /// Raised temperatures (K) of more MD runs (same length and replicas) whose frames are
    /// added to the training data: they cross barriers that MD at the target temperature
    /// rarely does, and the importance weights correct to the target temperature.
    pub extra_temperatures: Vec<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Model family: tarflow or arbg.
    pub model: Family,
    /// Size and schedule (`bgen train --help` lists the presets).
    pub preset: String,
    /// Optimiser steps (default: the preset's).
    pub steps: Option<i64>,
    /// Frames per step (default: the preset's).
    pub batch_size: Option<i64>,
    /// Peak learning rate (default: the preset's).
    pub lr: Option<f64>,
    /// Seed of the initial weights and batches.
    pub seed: u64,
    /// cpu, cuda or cuda:N.
    #[schemars(with = "String")]
    pub device: DeviceChoice,
    /// internal or cartesian (default: internal).
    pub coords: Option<Coords>,
    /// Seconds between checkpoints.
    pub checkpoint_secs: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SampleSection {
    /// Samples for SNIS.
    pub n: usize,
    /// Samplers: proposal, snis, smc and resample-move (TarFlow), twisted (ArBG); none given:
    /// snis and the model's SMC (smc for a TarFlow, twisted for an ArBG).
    pub methods: Vec<Method>,
    /// Particles of SMC.
    pub smc_particles: usize,
    /// SMC: annealing levels (the most levels with `cess`).
    pub smc_steps: usize,
    /// SMC: Langevin moves per level.
    pub smc_moves: usize,
    /// SMC: initial Langevin step (default by coordinates: see `bgen sample --step-size`).
    pub step_size: Option<f64>,
    /// SMC: Metropolis-adjusted (MALA) moves; false: unadjusted (ULA).
    pub mala: bool,
    /// SMC: adaptive schedule at this conditional ESS (none: `smc_steps` equal levels).
    pub cess: Option<f64>,
    /// SMC: independence moves (fresh proposals, exact acceptance) per level.
    pub independence: usize,
    /// SMC: rounds of moves at t = 1 after the final resampling (target gradient only).
    pub final_rounds: usize,
    /// Sampling temperature of the proposal (a TarFlow's prior, an ArBG's bins); 1: as trained.
    pub tau: f64,
    /// Particles of twisted SMC.
    pub twisted_particles: usize,
    /// CoM term of a Cartesian model: gaussian, chi or none.
    pub com: ComForm,
    /// Seed of the samplers.
    pub seed: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSection {
    /// At most this many samples and reference frames are scored (evenly strided).
    pub max_samples: usize,
    /// TICA lag, in reference frames.
    pub tica_lag: usize,
    /// Reference MD to evaluate against. Default: the long held-out MD shipped for an embedded
    /// system at its own force field and temperature (replica exchange for aldp, ala3 and ala4,
    /// never trained on), else the test split of the run's own MD.
    pub reference: Option<PathBuf>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            system: "aldp".into(),
            pdb: None,
            forcefield: None,
            temperature: None,
            md: MdSection::default(),
            train: TrainSection::default(),
            sample: SampleSection::default(),
            eval: EvalSection::default(),
        }
    }
}

impl MdSection {
    /// The ladder's top temperature (K), or `None` for plain MD (no `ladder_top_k`, as a
    /// Python config's `None` gives, or `ladder_rungs = 0`, as a TOML can say).
    pub fn ladder(&self) -> Option<f64> {
        self.ladder_top_k.filter(|_| self.ladder_rungs > 0)
    }
}

impl Default for MdSection {
    fn default() -> Self {
        MdSection {
            data: None,
            ns: 10.0,
            replicas: 2,
            save_every_ps: 1.0,
            equilibrate_ps: 100.0,
            seed: 0,
            ladder_top_k: Some(450.0),
            ladder_rungs: 4,
            extra_temperatures: Vec::new(),
        }
    }
}

/// The training stage's own defaults (`bgen train`'s), but for the steps: `bgen run` trains
/// 3,000 (the `small` preset's 8,000 gain little on aldp).
impl Default for TrainSection {
    fn default() -> Self {
        let t = TrainArgs::default();
        TrainSection {
            model: t.model.unwrap_or_default(),
            preset: bgen_models::stage::DEFAULT_PRESET.into(),
            steps: Some(3000),
            batch_size: t.batch_size,
            lr: t.lr,
            seed: t.seed.unwrap_or(0),
            device: t.device,
            coords: t.coords,
            checkpoint_secs: t.checkpoint_secs,
        }
    }
}

/// The sampling stage's own defaults (`bgen sample`'s).
impl Default for SampleSection {
    fn default() -> Self {
        let s = SampleArgs::default();
        SampleSection {
            n: default_n(Method::Snis),
            methods: Vec::new(),
            smc_particles: default_n(Method::Smc),
            smc_steps: s.steps,
            smc_moves: s.moves,
            step_size: s.step_size,
            mala: !s.ula,
            cess: Some(s.cess),
            independence: s.independence,
            final_rounds: default_final_rounds(Method::Smc),
            tau: s.tau,
            twisted_particles: default_n(Method::Twisted),
            com: s.com,
            seed: s.seed,
        }
    }
}

/// The evaluation stage's own defaults (`bgen eval`'s).
impl Default for EvalSection {
    fn default() -> Self {
        EvalSection {
            max_samples: bgen_eval::stage::MAX_SAMPLES,
            tica_lag: bgen_eval::stage::TICA_LAG,
            reference: None,
        }
    }
}

impl RunConfig {
    /// The samplers to run: the configured ones, else SNIS plus the model's SMC.
    fn methods(&self) -> Vec<Method> {
        if !self.sample.methods.is_empty() {
            return self.sample.methods.clone();
        }
        let smc = match self.train.model {
            Family::Arbg => Method::Twisted,
            Family::Tarflow => Method::Smc,
        };
        vec![Method::Snis, smc]
    }

    /// The model's coordinates: the configured ones, else internal (for both families: on
    /// aldp an ArBG's SNIS ESS goes from 1e-4 in Cartesian coordinates to 0.014).
    fn coords(&self) -> Coords {
        self.train.coords.unwrap_or_default()
    }

    /// The arguments that name the system to a subcommand.
    /// Checks every setting before the first stage runs, naming the offending key.
    fn validate(&self) -> Result<()> {
        let c = self;
        if c.train.model == Family::Arbg && c.methods().contains(&Method::Smc) {
            bail!("sample.methods: smc needs a TarFlow; an ArBG uses snis and twisted");
        }
        if c.train.model == Family::Tarflow && c.methods().contains(&Method::Twisted) {
            bail!("sample.methods: twisted needs an ArBG");
        }
        use bgen_system::options::check;
        let positive = |k: &str, v: f64| check::positive(k, v).map_err(anyhow::Error::msg);
        let non_negative = |k: &str, v: f64| check::non_negative(k, v).map_err(anyhow::Error::msg);
        let count = |k: &str, v: i64| check::count(k, v).map_err(anyhow::Error::msg);
        if let Some(t) = self.temperature {
            positive("temperature", t)?;
        }
        let m = &self.md;
        positive("md.ns", m.ns)?;
        count("md.replicas", m.replicas as i64)?;
        positive("md.save_every_ps", m.save_every_ps)?;
        non_negative("md.equilibrate_ps", m.equilibrate_ps)?;
        for &t in &m.extra_temperatures {
            positive("md.extra_temperatures", t)?;
        }
        if let Some(t) = m.ladder() {
            positive("md.ladder_top_k", t)?;
            if m.ladder_rungs < 2 {
                bail!(
                    "md.ladder_rungs = {}: a ladder needs at least 2 (0: no ladder)",
                    m.ladder_rungs
                );
            }
        }
        let t = &self.train;
        let preset = match t.model {
            Family::Tarflow => bgen_models::stage::preset(&t.preset, 1).map(|_| ()),
            Family::Arbg => bgen_models::stage::arbg_preset(&t.preset, 1).map(|_| ()),
        };
        preset.map_err(|e| anyhow::anyhow!("train.preset = \"{}\": {e}", t.preset))?;
        if let Some(v) = t.steps {
            count("train.steps", v)?;
        }
        if let Some(v) = t.batch_size {
            count("train.batch_size", v)?;
        }
        if let Some(v) = t.lr {
            positive("train.lr", v)?;
        }
        non_negative("train.checkpoint_secs", t.checkpoint_secs)?;
        let sc = &self.sample;
        count("sample.n", sc.n as i64)?;
        count("sample.smc_particles", sc.smc_particles as i64)?;
        count("sample.smc_steps", sc.smc_steps as i64)?;
        count("sample.twisted_particles", sc.twisted_particles as i64)?;
        positive("sample.tau", sc.tau)?;
        if let Some(h) = sc.step_size {
            positive("sample.step_size", h)?;
        }
        if let Some(c) = sc.cess {
            if !(0.0..1.0).contains(&c) {
                bail!("sample.cess = {c}: must lie in [0, 1)");
            }
        }
        count("eval.max_samples", self.eval.max_samples as i64)?;
        count("eval.tica_lag", self.eval.tica_lag as i64)?;
        // Paths that the last stages read: missing ones would fail after hours of MD and training.
        for (k, p) in [
            ("md.data", &m.data),
            ("eval.reference", &self.eval.reference),
        ] {
            if let Some(p) = p.as_ref().filter(|p| !p.exists()) {
                bail!("{k} = \"{}\": no such file or directory", p.display());
            }
        }
        Ok(())
    }

    /// The system of the run as a stage names it.
    fn system_args(&self) -> SystemArgs {
        SystemArgs {
            system: self.pdb.is_none().then(|| self.system.clone()),
            pdb: self.pdb.clone(),
            forcefield: self.forcefield.clone(),
            temperature: self.temperature,
        }
    }
}

/// Runs one stage (a typed call of the library: no command line in between), naming it in
/// any error.
fn stage<T, E>(name: &str, f: impl FnOnce() -> std::result::Result<T, E>) -> Result<()>
where
    anyhow::Error: From<E>,
{
    bgen_system::say!("\n== {name}");
    f().map(|_| ())
        .map_err(anyhow::Error::from)
        .with_context(|| format!("stage {name}"))
}

/// Settings from a TOML file; errors name the file.
fn read_config(p: &Path) -> Result<RunConfig> {
    let text = std::fs::read_to_string(p).with_context(|| p.display().to_string())?;
    toml::from_str(&text).with_context(|| format!("{}: invalid settings", p.display()))
}

/// Parses and checks the settings of a `bgen run` TOML, as `bgen run --config` does before
/// any stage: an error names the offending key.
pub fn check_config(text: &str) -> Result<RunConfig> {
    let c: RunConfig = toml::from_str(text).context("invalid settings")?;
    c.validate()?;
    Ok(c)
}

fn load_config(a: &RunArgs) -> Result<RunConfig> {
    let saved_path = a.out.join("config.toml");
    let saved = match saved_path.exists() {
        true => Some(read_config(&saved_path)?),
        false => None,
    };
    let mut c: RunConfig = match (&a.config, &saved) {
        (Some(p), _) => read_config(p)?,
        // A rerun of an interrupted run continues with the settings it started with.
        (None, Some(s)) => s.clone(),
        (None, None) => RunConfig::default(),
    };
    if let Some(sys) = &a.system {
        c.system = sys.clone();
        c.pdb = None;
    }
    if let Some(p) = &a.pdb {
        c.pdb = Some(std::fs::canonicalize(p).with_context(|| p.display().to_string())?);
    }
    if let Some(m) = a.model {
        c.train.model = m;
    }
    c.validate().with_context(|| match &a.config {
        Some(p) => format!("{}: invalid settings", p.display()),
        None => "invalid settings".into(),
    })?;
    if let Some(before) = &saved {
        if toml::to_string(before)? != toml::to_string(&c)? {
            bail!(
                "{} holds a run with other settings ({}); use another --out or the same settings",
                a.out.display(),
                saved_path.display()
            );
        }
    }
    Ok(c)
}

/// The main job.
pub fn run(a: RunArgs) -> Result<()> {
    let t0 = Instant::now();
    // The stages receive their paths as text: a path that is not UTF-8 would be written
    // somewhere else (its lossy form).
    for (name, p) in [
        ("--out", Some(&a.out)),
        ("--pdb", a.pdb.as_ref()),
        ("--config", a.config.as_ref()),
    ] {
        if let Some(p) = p.filter(|p| p.to_str().is_none()) {
            bail!(
                "{name} {}: the path is not valid UTF-8; choose another",
                p.display()
            );
        }
    }
    let c = load_config(&a)?;
    let _lock = bgen_system::outdir::lock_dir(&a.out)?;
    let dir = &a.out;
    bgen_system::npy::write_atomic(&dir.join("config.toml"), toml::to_string(&c)?.as_bytes())?;
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if let Some(t) = a.threads {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global();
    }

    let (data, extra) = data_stage(&c, dir, threads)?;
    let model = train_stage(&c, dir, &data, extra, threads)?;
    let rows = sample_and_evaluate(&c, dir, &model, &data, threads)?;
    report(&c, dir, &rows, t0)
}

/// Stage 1, data: MD (resumable) and a split in time, or the data given; with the frames at raised
/// temperatures for more training data (the ladder's raised rungs, MD at extra temperatures).
fn data_stage(c: &RunConfig, dir: &Path, threads: usize) -> Result<(PathBuf, Vec<PathBuf>)> {
    let data = match &c.md.data {
        Some(d) if d.join("train").join("frames.npy").exists() => d.clone(),
        Some(d) => {
            split_stage(d, &dir.join("data"))?;
            dir.join("data")
        }
        None => {
            md_stage(c, dir, "md", None, c.md.seed, threads)?;
            split_stage(&dir.join("md"), &dir.join("data"))?;
            dir.join("data")
        }
    };

    // 1b. Frames at raised temperatures for more training data: the ladder's raised rungs, and
    // MD at each extra temperature.
    let mut extra = Vec::new();
    if c.md.data.is_none() && c.md.ladder().is_some() {
        extra.push(dir.join("md"));
    }
    if c.md.data.is_none() {
        for (k, &temp) in c.md.extra_temperatures.iter().enumerate() {
            let name = format!("md-{temp}K");
            let seed = c.md.seed + 1000 * (k as u64 + 1);
            md_stage(c, dir, &name, Some(temp), seed, threads)?;
            extra.push(dir.join(&name));
        }
    }
    Ok((data, extra))
}

/// Stage 2, training (resumed from its last checkpoint after a kill); the model's directory.
fn train_stage(
    c: &RunConfig,
    dir: &Path,
    data: &Path,
    extra: Vec<PathBuf>,
    threads: usize,
) -> Result<PathBuf> {
    let model = dir.join("model");
    let tc = &c.train;
    let mut args = TrainArgs::new(data.join("train"), model.clone());
    args.model = Some(tc.model);
    args.preset = Some(tc.preset.clone());
    args.seed = Some(tc.seed);
    args.device = tc.device;
    args.threads = threads;
    args.checkpoint_secs = tc.checkpoint_secs;
    args.steps = tc.steps;
    args.batch_size = tc.batch_size;
    args.lr = tc.lr;
    if c.pdb.is_none() {
        args.system = Some(c.system.clone());
    }
    args.extra_data = extra.clone();
    if model.join("latest.json").exists() {
        args.resume = true;
    } else {
        args.coords = Some(c.coords());
    }
    let label = match args.resume {
        true => "training (resumed)",
        false => "training",
    };
    stage(label, || bgen_models::stage::run(args))?;
    Ok(model)
}

/// Stages 3 and 4, sampling and evaluation, per sampler (each skipped when done): (method, summary,
/// metrics) of each.
fn sample_and_evaluate(
    c: &RunConfig,
    dir: &Path,
    model: &Path,
    data: &Path,
    threads: usize,
) -> Result<Vec<(Method, serde_json::Value, serde_json::Value)>> {
    let reference = match (&c.eval.reference, shipped_reference(c)?) {
        (Some(r), _) => r.clone(),
        (None, Some(r)) => r,
        (None, None) => data.join("test"),
    };
    let sc = &c.sample;
    let mut rows = Vec::new();
    for method in c.methods() {
        let out = dir.join(format!("sample-{method}"));
        if !out.join("summary.json").exists() {
            let n = match method {
                Method::Smc | Method::ResampleMove => sc.smc_particles,
                Method::Twisted => sc.twisted_particles,
                Method::Snis | Method::Proposal => sc.n,
            };
            let mut args = SampleArgs::new(model.to_path_buf(), out.clone());
            args.method = Some(method);
            args.n = Some(n);
            args.com = sc.com;
            args.seed = sc.seed;
            args.tau = sc.tau;
            args.device = c.train.device;
            args.threads = threads;
            if method == Method::Smc {
                args.steps = sc.smc_steps;
                args.moves = sc.smc_moves;
                args.independence = sc.independence;
                args.step_size = sc.step_size;
                args.cess = sc.cess.unwrap_or(0.0);
                args.final_rounds = Some(sc.final_rounds);
                args.ula = !sc.mala;
            }
            stage(&format!("sampling ({method})"), || {
                bgen_sample::stage::run(args)
            })?;
        }
        let ev = dir.join(format!("eval-{method}"));
        if !ev.join("metrics.json").exists() {
            let mut args =
                EvalArgs::new(c.system_args(), out.clone(), reference.clone(), ev.clone());
            args.model = Some(model.to_path_buf());
            args.max_samples = c.eval.max_samples;
            args.tica_lag = c.eval.tica_lag;
            stage(&format!("evaluation ({method})"), || {
                bgen_eval::stage::run(args)
            })?;
        }
        rows.push((
            method,
            read_json(&out.join("summary.json"))?,
            read_json(&ev.join("metrics.json"))?,
        ));
    }
    Ok(rows)
}

/// The run's report (the last, most corrected sampler's), summary.json and the table.
fn report(
    c: &RunConfig,
    dir: &Path,
    rows: &[(Method, serde_json::Value, serde_json::Value)],
    t0: Instant,
) -> Result<()> {
    if let Some((m, _, _)) = rows.last() {
        for f in ["report.html", "metrics.json"] {
            std::fs::copy(dir.join(format!("eval-{m}")).join(f), dir.join(f))?;
        }
    }
    let summary = serde_json::json!({
        "system": c.pdb.as_ref().map_or(c.system.clone(), |p| p.display().to_string()),
        "model": c.train.model,
        "samplers": rows.iter().map(|(m, s, e)| serde_json::json!({
            "method": m,
            "ess": s["ess"],
            "energy_w2": e["energy_w2"],
            "torus_w2": e["torus_w2"],
            "tica_w2": e["tica_w2"],
            "nll": e["nll"],
            "samples": format!("sample-{m}/samples.npy"),
        })).collect::<Vec<_>>(),
        "wall_seconds": t0.elapsed().as_secs_f64(),
    });
    bgen_system::npy::write_atomic(
        &dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    bgen_system::show!(
        "\n{} with {} ({}): held-out NLL {:.3} per dim",
        summary["system"].as_str().unwrap_or("?"),
        c.train.model,
        c.train.preset,
        rows.first()
            .and_then(|r| r.2["nll"].as_f64())
            .unwrap_or(f64::NAN)
    );
    bgen_system::show!(
        "{:<10} {:>8} {:>10} {:>10} {:>10}",
        "sampler",
        "ESS",
        "E-W2 (kT)",
        "T-W2",
        "TICA-W2"
    );
    for (m, s, e) in rows {
        let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
        bgen_system::show!(
            "{m:<10} {:>8.4} {:>10.3} {:>10.3} {:>10.3}",
            f(&s["ess"]),
            f(&e["energy_w2"]),
            f(&e["torus_w2"]),
            f(&e["tica_w2"])
        );
    }
    bgen_system::show!(
        "report: {}  ({:.1} min)",
        dir.join("report.html").display(),
        t0.elapsed().as_secs_f64() / 60.0
    );
    Ok(())
}

/// Long MD of the embedded systems at their own force field and temperature, held out from
/// training (`models/reference/`, how it was made in its README).
const REFERENCES: &[(&str, &[u8])] = &[
    (
        "aldp",
        include_bytes!("../../../../models/reference/aldp-300K-remd.npy"),
    ),
    (
        "ala3",
        include_bytes!("../../../../models/reference/ala3-310K-remd.npy"),
    ),
    (
        "ala4",
        include_bytes!("../../../../models/reference/ala4-300K-remd.npy"),
    ),
];

/// The shipped reference MD of the run's system (written once to the temporary directory), if
/// there is one for its settings.
fn shipped_reference(c: &RunConfig) -> Result<Option<PathBuf>> {
    if c.pdb.is_some() || c.forcefield.is_some() || c.temperature.is_some() {
        return Ok(None);
    }
    let Some((name, bytes)) = REFERENCES.iter().find(|r| r.0 == c.system) else {
        return Ok(None);
    };
    let p = std::env::temp_dir().join(format!(
        "bgen-{}-reference-{name}-{}.npy",
        env!("CARGO_PKG_VERSION"),
        bytes.len()
    ));
    if std::fs::read(&p).ok().as_deref() != Some(*bytes) {
        bgen_system::npy::write_atomic(&p, bytes)?;
    }
    Ok(Some(p))
}

/// The MD stage into `dir/name` (resumed when it exists), at `temperature` (K) instead of the
/// run's own when given.
fn md_stage(
    c: &RunConfig,
    dir: &Path,
    name: &str,
    temperature: Option<f64>,
    seed: u64,
    threads: usize,
) -> Result<()> {
    let out = dir.join(name);
    let mut args = match out.join("run.json").exists() {
        true => MdArgs {
            resume: true,
            ..MdArgs::new(SystemArgs::default(), out.clone())
        },
        false => md_args(c, out, temperature, seed)?,
    };
    args.threads = Some(threads);
    let mut label = match temperature {
        Some(t) => format!("molecular dynamics at {t} K"),
        None => "molecular dynamics".into(),
    };
    if args.resume {
        label.push_str(" (resumed)");
    }
    stage(&label, || bgen_md::stage::run(args))
}

/// A new MD run's settings into `out`: the ladder, or `replicas` runs of plain MD at
/// `temperature` (K) when given or when there is no ladder.
fn md_args(c: &RunConfig, out: PathBuf, temperature: Option<f64>, seed: u64) -> Result<MdArgs> {
    let at = RunConfig {
        temperature: temperature.or(c.temperature),
        ..c.clone()
    };
    let mut args = MdArgs::new(at.system_args(), out);
    match (temperature, c.md.ladder()) {
        (None, Some(top)) => {
            let t = run_temperature(c)?;
            if top <= t {
                bail!("md.ladder_top_k = {top}: must be above the run's {t} K");
            }
            args.temperatures = Some(
                bgen_md::stage::parse_ladder(&format!("{t}:{top}:{}", c.md.ladder_rungs))
                    .map_err(|e| anyhow::anyhow!("md.ladder_rungs: {e}"))?,
            );
        }
        _ => args.replicas = Some(c.md.replicas),
    }
    args.ns = Some(c.md.ns);
    args.save_every_ps = Some(c.md.save_every_ps);
    args.equilibrate_ps = Some(c.md.equilibrate_ps);
    args.seed = Some(seed);
    Ok(args)
}

/// The run's temperature, K: the one set, else the force field's default.
fn run_temperature(c: &RunConfig) -> Result<f64> {
    if let Some(t) = c.temperature {
        return Ok(t);
    }
    let setup = c
        .forcefield
        .as_deref()
        .map(bgen_system::Setup::from_name)
        .transpose()?;
    Ok(match &c.pdb {
        Some(p) => bgen_system::System::from_pdb_file(
            p,
            setup.unwrap_or(bgen_system::Setup::Amber14Obc1),
            None,
        )?,
        None => bgen_system::System::named(&c.system, setup, None)?,
    }
    .temperature)
}

fn split_stage(run: &Path, out: &Path) -> Result<()> {
    if out.join("split.json").exists() {
        return Ok(());
    }
    let args = SplitArgs::new(run.to_path_buf(), out.to_path_buf());
    stage("data split", || bgen_md::stage::split(args))
}

fn read_json(p: &Path) -> Result<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(p).with_context(|| p.display().to_string())?)
        .with_context(|| format!("{}: corrupt", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(toml: &str) -> Result<MdArgs> {
        let c = check_config(toml)?;
        md_args(&c, PathBuf::from("md"), None, 0)
    }

    /// The default MD is a 4-rung ladder from the run's temperature to 450 K; `ladder_rungs =
    /// 0` (a TOML has no None) gives `replicas` runs of plain MD; 1 rung is refused.
    #[test]
    fn a_toml_turns_the_ladder_on_and_off() {
        let ladder = md("[md]\nreplicas = 3").unwrap();
        let t = &ladder.temperatures.as_ref().expect("a ladder").0;
        assert_eq!(t.len(), 4);
        assert!(
            (t[0] - 300.0).abs() < 1e-9 && (t[3] - 450.0).abs() < 1e-9,
            "{t:?}"
        );
        assert_eq!(ladder.replicas, None);

        let plain = md("[md]\nreplicas = 3\nladder_rungs = 0").unwrap();
        assert!(plain.temperatures.is_none());
        assert_eq!(plain.replicas, Some(3));

        let one = md("[md]\nladder_rungs = 1").unwrap_err().to_string();
        assert!(one.contains("md.ladder_rungs = 1"), "{one}");
    }

    /// Every `bgen sample` setting is either set by `bgen run` (from `[sample]`, `[train]` or
    /// the run itself) or left at the stage's default on purpose: a setting added to
    /// `SampleArgs` fails here until it is put in one of the two lists.
    #[test]
    fn every_sample_setting_is_set_by_bgen_run_or_left_on_purpose() {
        const SET: &[&str] = &[
            "run",
            "out",
            "method",
            "n",
            "com",
            "seed",
            "tau",
            "device",
            "threads",
            "steps",
            "moves",
            "independence",
            "step_size",
            "cess",
            "final_rounds",
            "ula",
        ];
        const LEFT: &[&str] = &[
            // The molecule comes with the trained model.
            "system",
            "pdb",
            "sequence",
            "caps",
            // Method details that `bgen run` keeps at the stage's defaults.
            "blocks",
            "drop_top",
            "no_truncate",
            "energy_cutoff",
            "mala",
            "leapfrog",
            "precision",
            "draws",
            "keep_weights",
            "ess_threshold",
            "no_ema",
            "batch",
        ];
        let args = SampleArgs::new(PathBuf::from("r"), PathBuf::from("o"));
        let value = serde_json::to_value(&args).unwrap();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut listed: Vec<&str> = SET.iter().chain(LEFT).copied().collect();
        keys.sort_unstable();
        listed.sort_unstable();
        assert_eq!(
            keys, listed,
            "put each new setting in SET (and map it) or in LEFT"
        );
    }
}
