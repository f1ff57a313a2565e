//! The sampling stage as a function of typed, serialisable settings: [`run`] draws from a
//! trained model and corrects toward the Boltzmann density (proposal only, SNIS, SMC, or for an
//! ArBG twisted SMC over partial molecules; `bgen sample`, `bgen run`'s sampling,
//! `bgen.sample(...)` in Python). Also loading a run ([`load_run`]), a transferable one for a molecule ([`load_transferable`]).

use crate::resample::Scheme;
use crate::{
    smc, snis, twisted_smc, ComAdjusted, ComForm, Proposal, Result, SmcOptions, SnisOptions,
    TwistedOptions,
};
use bgen_models::internal::Internal;
use bgen_models::proposal::Pooled;
use bgen_models::stage::RunInfo;
use bgen_models::train::Trainer;
use bgen_models::{Coords, DeviceChoice};
use bgen_system::energy::Precision;
use bgen_system::error::Context;
use bgen_system::npy::{write_atomic, write_npy};
use bgen_system::peptide::Caps;
use bgen_system::{bail, InternalTarget, Setup, System, Target};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The settings of `bgen sample` (and of `bgen run`'s sampling stage, which builds them with
/// [`SampleArgs::new`]).
/// Python's `bgen.sample(...)` keywords (deserialised; unknown keys are refused).
#[derive(Args, Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SampleArgs {
    /// Training run directory (from `bgen train`).
    #[arg(long, required_unless_present = "system")]
    pub run: Option<PathBuf>,
    /// Use the weights shipped with bgen instead of a run: an embedded system's (aldp, ala3,
    /// ala4, ala6), or `dipeptides`, the transferable dipeptide model, for the dipeptide given
    /// with `--pdb` or `--sequence`.
    #[arg(long, conflicts_with = "run")]
    pub system: Option<String>,
    /// Number of samples (particles for SMC); default 10,000 for proposal and snis, 5,000 for
    /// smc (with 2,000 the energy W2 alone has a noise floor of about 0.2 kT), 4,000 for
    /// resample-move, 2,000 for twisted.
    #[arg(long, value_parser = bgen_system::options::count::<usize>, allow_hyphen_values = true)]
    pub n: Option<usize>,
    /// proposal, snis, smc (annealed Langevin; TarFlow), resample-move (SNIS, resampled, then
    /// HMC, or MALA with --leapfrog 0, on the target alone; either family) or twisted (SMC
    /// over partial molecules; ArBG). Default: smc for a TarFlow, resample-move for a
    /// transferable TarFlow (the model's gradient, which annealing needs at every level, is
    /// most of SMC's time), twisted for an ArBG.
    #[arg(long, value_enum)]
    pub method: Option<Method>,
    /// Centre-of-mass term of the proposal energy (SBG Proposition 1): gaussian, chi or none.
    #[arg(long, value_enum, default_value_t)]
    pub com: ComForm,
    /// Twisted SMC: blocks of generation, residue or atom (default: residue in Cartesian
    /// coordinates; atom in internal ones, where a residue-sized block of Z-matrix atoms is a
    /// fragment whose partial energy collapses the particles).
    #[arg(long, value_enum)]
    pub blocks: Option<Blocks>,
    /// Sampling temperature, with log q exact at it: a TarFlow's prior becomes N(0, tau^2 I),
    /// an ArBG's bin distributions softmax(logits / tau). Below 1 trades the tails for fewer
    /// high-energy proposals.
    #[arg(long, default_value_t = TAU, value_parser = bgen_system::options::positive, allow_hyphen_values = true)]
    pub tau: f64,
    /// Output directory: samples.npy (nm), log_q.npy, energies.npy (kJ/mol), log_weights.npy,
    /// summary.json.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// SNIS: fraction of the largest log-weights dropped (default none). Dropping trades
    /// variance for bias, and the bias falls on the basins the proposal covers thinly: on aldp
    /// dropping the top 0.2% takes alphaL from 2.2% of the weight to 0.6%.
    #[arg(long, default_value_t = 0.0, value_parser = bgen_system::options::fraction, allow_hyphen_values = true)]
    pub drop_top: f64,
    /// SNIS and resample-move: keep the raw weights; by default each is capped at sqrt(n) times
    /// the mean weight (truncated importance sampling, consistent as n grows), so that no single
    /// sample carries more than about 1/sqrt(n) of the mass.
    #[arg(long)]
    pub no_truncate: bool,
    /// SNIS: samples with a target energy above this (kT) get zero weight.
    #[arg(long, value_parser = bgen_system::options::finite, allow_hyphen_values = true)]
    pub energy_cutoff: Option<f64>,
    /// SMC: the most annealing levels of the adaptive schedule, or the levels of the fixed
    /// one (--cess 0).
    #[arg(long, default_value_t = SMC_STEPS, value_parser = bgen_system::options::count::<usize>, allow_hyphen_values = true)]
    pub steps: usize,
    /// SMC: Langevin moves at each level (more let the particles relax between reweightings;
    /// at least 1).
    #[arg(long, default_value_t = SMC_MOVES, value_parser = bgen_system::options::count::<usize>, allow_hyphen_values = true)]
    pub moves: usize,
    /// SMC: initial Langevin step size (MALA adapts it): nm^2 per kT for a Cartesian model
    /// (default 1e-6); for a model in internal coordinates in units of each coordinate's squared
    /// spread in the training data (default 0.05; 0.002 for resample-move, whose moves are on
    /// the target from the start).
    #[arg(long, value_parser = bgen_system::options::positive, allow_hyphen_values = true)]
    pub step_size: Option<f64>,
    /// SMC: Metropolis-adjusted moves (MALA) with the step size adapted; the default, so the
    /// flag only makes it explicit.
    #[arg(long, conflicts_with = "ula")]
    pub mala: bool,
    /// SMC: unadjusted Langevin moves (ULA) instead of MALA.
    #[arg(long)]
    pub ula: bool,
    /// SMC: adaptive schedule that keeps the conditional ESS of each level at this fraction
    /// (--steps is then the most levels); 0: --steps equal levels.
    #[arg(long, default_value_t = CESS, value_parser = bgen_system::options::fraction, allow_hyphen_values = true)]
    pub cess: f64,
    /// SMC: independence moves per level (fresh proposals accepted with the exact ratio), which
    /// let particles jump between basins.
    #[arg(long, default_value_t = INDEPENDENCE)]
    pub independence: usize,
    /// SMC and resample-move: rounds of moves at t = 1 after the final resampling, so that
    /// the resampled copies part ways and relax in their basins (0: none; default 1 for smc,
    /// 30 for resample-move). A round needs the target's gradient only, not the model's: about
    /// 1% of an annealing level's cost per Langevin move or leapfrog step.
    #[arg(long)]
    pub final_rounds: Option<usize>,
    /// SMC and resample-move: each final round is a Hamiltonian Monte Carlo trajectory of this
    /// many leapfrog steps on the target (0: --moves Langevin moves). Default 10 for
    /// resample-move (30 rounds: the 300 target gradients of 100 rounds of 3 Langevin moves,
    /// and strained rings relax: KW's E-W2 0.7 kT instead of 2.4), 0 for smc.
    #[arg(long)]
    pub leapfrog: Option<usize>,
    /// SMC and resample-move: how the target's pair terms are computed for the sampler
    /// (weights and moves): mixed (f32 pair math, f64 sums: energies within 1e-6 relative,
    /// about 1e-4 kT on KW; 1.6x faster, as MD uses it; the default) or double. The
    /// written energies are recomputed in double either way.
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
    /// Resample-move: proposals drawn and weighted, of which the final resampling keeps --n
    /// (default 2.5 x --n: 10,000 for 4,000; at least --n; with --keep-weights every draw is
    /// kept). The weights of more draws spread over more lineages (KW: 201 instead of 110,
    /// basin error 0.08 instead of 0.18), while the final rounds, most of the time, move only
    /// the kept ones.
    #[arg(long, value_parser = bgen_system::options::count::<usize>, allow_hyphen_values = true)]
    pub draws: Option<usize>,
    /// SMC and resample-move: no final resampling; the final rounds move every particle, and
    /// its weight goes to log_weights.npy. Lower variance than copies of a few survivors, and
    /// every draw relaxes in its own basin (relaxed draws to fine-tune a model on, say).
    #[arg(long)]
    pub keep_weights: bool,
    /// SMC and twisted SMC: resample when the normalised ESS falls below this.
    #[arg(long, default_value_t = ESS_THRESHOLD, value_parser = bgen_system::options::closed_fraction, allow_hyphen_values = true)]
    pub ess_threshold: f64,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value_t)]
    pub device: DeviceChoice,
    /// Worker threads on the CPU, each with its own copy of the model, splitting the samples
    /// by batches (libtorch runs single-threaded in each; the samples do not depend on it).
    /// Default: all cores.
    #[arg(long, default_value_t = bgen_system::options::cores(), hide_default_value = true, value_parser = bgen_system::options::threads, allow_hyphen_values = true)]
    pub threads: usize,
    /// Use the raw weights instead of their moving average.
    #[arg(long)]
    pub no_ema: bool,
    /// Samples per network pass (and per unit of work of a thread).
    #[arg(long, default_value_t = BATCH, value_parser = bgen_system::options::count::<usize>, allow_hyphen_values = true)]
    pub batch: usize,
    /// A transferable model (`bgen train` on a merged many-peptide data set): the molecule to
    /// sample, zero-shot if the model never saw it: a PDB file with hydrogens...
    #[arg(long, conflicts_with = "sequence")]
    pub pdb: Option<PathBuf>,
    /// ... or its one-letter sequence, built as `bgen build` builds it.
    #[arg(long)]
    pub sequence: Option<String>,
    /// With `sequence`: the ends, none (a zwitterion) or ace-nme.
    #[arg(long, value_enum, default_value_t, conflicts_with = "pdb")]
    pub caps: Caps,
}

/// A sampler (`proposal`, `snis`, `smc`, `resample-move` or `twisted`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The model's own samples, unweighted.
    Proposal,
    /// Self-normalised importance sampling.
    Snis,
    /// SMC from the proposal to the target with Langevin moves (TarFlow).
    Smc,
    /// SNIS's draws resampled, then rounds of HMC (or MALA, with --leapfrog 0) on the target
    /// alone: the model is evaluated once per sample (either family).
    #[value(name = "resample-move")]
    #[serde(rename = "resample-move")]
    ResampleMove,
    /// SMC over partial molecules (ArBG).
    Twisted,
}

/// Twisted SMC's blocks of generation (`residue` or `atom`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Blocks {
    Residue,
    Atom,
}

bgen_system::display_as_value!(Method);

/// Defaults of [`SampleArgs`], shared by the command line and [`SampleArgs::new`].
const TAU: f64 = 1.0;
const SMC_STEPS: usize = 300;
const SMC_MOVES: usize = 3;
const CESS: f64 = 0.98;
const INDEPENDENCE: usize = 1;
const FINAL_ROUNDS: usize = 1;
const RESAMPLE_MOVE_ROUNDS: usize = 30;
const RESAMPLE_MOVE_LEAPFROG: usize = 10;
/// The target's precision in SMC and resample-move (`--precision`).
const SAMPLER_PRECISION: Precision = Precision::Mixed;
/// Resample-move's proposals per sample kept (10,000 for the default 4,000).
const RESAMPLE_MOVE_DRAWS_PER_SAMPLE: f64 = 2.5;
const ESS_THRESHOLD: f64 = 0.5;
const BATCH: usize = 256;

impl SampleArgs {
    /// The defaults of `bgen sample --run RUN --out OUT`.
    pub fn new(run: PathBuf, out: PathBuf) -> SampleArgs {
        SampleArgs {
            run: Some(run),
            system: None,
            n: None,
            method: None,
            com: ComForm::default(),
            blocks: None,
            tau: TAU,
            out,
            seed: 0,
            drop_top: 0.0,
            no_truncate: false,
            energy_cutoff: None,
            steps: SMC_STEPS,
            moves: SMC_MOVES,
            step_size: None,
            mala: false,
            ula: false,
            cess: CESS,
            independence: INDEPENDENCE,
            final_rounds: None,
            leapfrog: None,
            precision: None,
            draws: None,
            keep_weights: false,
            ess_threshold: ESS_THRESHOLD,
            device: DeviceChoice::Cpu,
            threads: bgen_system::options::cores(),
            no_ema: false,
            batch: BATCH,
            pdb: None,
            sequence: None,
            caps: Caps::None,
        }
    }
}

impl Default for SampleArgs {
    fn default() -> Self {
        let mut a = SampleArgs::new(PathBuf::new(), PathBuf::new());
        a.run = None;
        a
    }
}

impl SampleArgs {
    /// Refuses settings that would break sampling, naming them (the command line's parsers do
    /// the same; this covers settings from TOML or Python).
    pub fn check(&self) -> Result<()> {
        use bgen_system::options::check;
        if self.out.as_os_str().is_empty() {
            bail!("out: give an output directory");
        }
        match (&self.run, &self.system) {
            (None, None) => bail!("give run (a training run) or system (shipped weights)"),
            (Some(_), Some(_)) => bail!("give run or system, not both"),
            _ => {}
        }
        if self.mala && self.ula {
            bail!("mala and ula exclude each other");
        }
        for (k, v) in [
            ("n", self.n),
            ("steps", Some(self.steps)),
            ("moves", Some(self.moves)),
            ("batch", Some(self.batch)),
        ] {
            if let Some(v) = v {
                check::count(k, v as i64)?;
            }
        }
        check::threads("threads", self.threads as i64)?;
        check::positive("tau", self.tau)?;
        if let Some(h) = self.step_size {
            check::positive("step_size", h)?;
        }
        check::fraction("drop_top", self.drop_top)?;
        check::fraction("cess", self.cess)?;
        if !(0.0..=1.0).contains(&self.ess_threshold) {
            bail!("ess_threshold = {}: must lie in [0, 1]", self.ess_threshold);
        }
        if let Some(c) = self.energy_cutoff {
            if !c.is_finite() {
                bail!("energy_cutoff = {c}: must be a finite number");
            }
        }
        Ok(())
    }
}

/// A training run ready to sample: its system, model and the CoM noise scale.
pub struct LoadedRun {
    pub sys: System,
    pub model: Pooled,
    /// CoM noise scale of training, std / sqrt(N), nm.
    pub com_sigma: f64,
    /// The model's internal coordinates, if it works in them (its samples and log q are then
    /// on them).
    pub internal: Option<Internal>,
    /// A transferable model: whether it was trained on this molecule.
    pub seen_in_training: Option<bool>,
}

impl LoadedRun {
    /// The model as a plain proposal.
    pub fn proposal(&self) -> &dyn Proposal {
        self.model.proposal()
    }

    /// The proposal with the CoM term of `form` folded in (E_src = -log q + A).
    pub fn adjusted(&self, form: ComForm) -> ComAdjusted<&dyn Proposal> {
        ComAdjusted {
            inner: self.proposal(),
            form,
            sigma: self.com_sigma,
            n_atoms: self.sys.n_atoms(),
        }
    }
}

/// Files of a run directory: (path in it, bytes).
/// Loads the system and model of a training run (EMA weights with `ema`; `tau` is the
/// sampling temperature), with a copy of the model for each of `workers` threads.
pub fn load_run(
    run: &Path,
    dev: tch::Device,
    batch: usize,
    ema: bool,
    tau: f64,
    workers: usize,
) -> Result<LoadedRun> {
    let info = RunInfo::read(run)?;
    if info.system == "transferable" {
        bail!(
            "{}: a transferable model samples a molecule you name: give --pdb FILE or --sequence SEQ",
            run.display()
        );
    }
    let setup = Setup::from_name(&info.forcefield)?;
    let sys = System::recorded(
        &info.system,
        &run.join("topology.pdb"),
        setup,
        info.temperature_k,
    )?;
    let (state, models) = Trainer::load_models(run, dev, ema, workers)?;
    info.check_against(&state, run)?;
    let norm = state.normalizer.clone();
    if norm.n_atoms as usize != sys.n_atoms() {
        bail!(
            "{}: the model has {} atoms, {} has {}",
            run.display(),
            norm.n_atoms,
            sys.name,
            sys.n_atoms()
        );
    }
    let com_sigma = norm.std / (sys.n_atoms() as f64).sqrt();
    let model = Pooled::new(models, &norm, state.internal.as_ref(), dev, batch, tau);
    Ok(LoadedRun {
        sys,
        model,
        com_sigma,
        internal: state.internal,
        seen_in_training: None,
    })
}

/// Loads a transferable run for the molecule `sys` (from a PDB or a sequence): its internal
/// coordinates standardised by the run's per-class standards, its tokens labelled.
pub fn load_transferable(
    run: &Path,
    sys: System,
    dev: tch::Device,
    batch: usize,
    ema: bool,
    tau: f64,
    workers: usize,
) -> Result<LoadedRun> {
    let (state, models) = Trainer::load_models(run, dev, ema, workers)?;
    RunInfo::read(run)?.check_against(&state, run)?;
    let Some(transfer) = &state.transfer else {
        bail!(
            "{}: not a transferable model; --pdb and --sequence are for those",
            run.display()
        );
    };
    if sys.params.setup.name() != transfer.forcefield {
        bail!(
            "{}: the model was trained with {}, the molecule is set up with {}",
            run.display(),
            transfer.forcefield,
            sys.params.setup.name()
        );
    }
    let Some((tokens, conditioning)) = state.model.transfer_capacity() else {
        bail!(
            "{}: a transferable record but no labels in its model",
            run.display()
        );
    };
    // Lengths it never trained on are beyond what it learned (a dipeptide model on a
    // tripeptide): refused rather than sampled as if zero-shot meant the same.
    use bgen_system::peptide::{identity, identity_length};
    let length = identity_length(&identity(&sys.topology));
    let mut lengths: Vec<usize> = transfer
        .trained_on
        .iter()
        .map(|s| identity_length(s))
        .collect();
    lengths.sort_unstable();
    lengths.dedup();
    if !lengths.contains(&length) {
        bail!(
            "{}: trained on peptides of {} residues; {} has {length} (fine-tune it on MD of such \
             peptides with bgen train --init)",
            run.display(),
            lengths
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            sys.name
        );
    }
    bgen_models::transfer::check_fits(&sys, tokens, Some(conditioning))
        .map_err(|e| format!("{}: {} has {e}", run.display(), sys.name))?;
    refuse_mixed_hands(&sys, run)?;
    let z = bgen_system::ZMatrix::from_topology_with(&sys.topology, transfer.ring_closure)?;
    let (internal, _) = transfer.standards.internal(&sys, &z);
    let labels = bgen_models::transfer::padded_labels(&sys, &z, tokens);
    // Seen when this very molecule (caps included) reached training, whatever its shard was
    // called, in the protonation variants `bgen build` gives it, as the training molecules were
    // built: a HIP where training had HID has a residue label the model never learned.
    let unlike = bgen_system::peptide::variants_unlike_built(&sys);
    for (number, mine, built) in &unlike {
        bgen_system::say!(
            "{}: residue {number} is {mine}, where the model's training molecules (built by \
             bgen build) have {built}: never seen in training, whatever its sequence",
            sys.name
        );
    }
    let seen = transfer.trained_on.contains(&identity(&sys.topology)) && unlike.is_empty();
    let model = Pooled::labelled(
        models,
        &state.normalizer,
        Some(&internal),
        Some(&labels),
        dev,
        batch,
        tau,
    );
    Ok(LoadedRun {
        sys,
        model,
        com_sigma: 0.0,
        internal: Some(internal),
        seen_in_training: Some(seen),
    })
}

/// A transferable model learned L-amino acids (bgen build's): an all-D peptide it samples as
/// the mirror image of the all-L one (reflected back when written), but one with both hands it
/// would sample as all-L, silently the wrong diastereomer: refused, naming the D residues.
fn refuse_mixed_hands(sys: &System, run: &Path) -> Result<()> {
    use bgen_system::topology::chirality;
    let top = &sys.topology;
    let hands: Vec<(usize, bool)> = top
        .chiral_centres()
        .into_iter()
        .map(|c| {
            let residue = top.atoms[c[0]].residue;
            // Positive signed volume: L (bgen build's, tested in bgen-md's build tests).
            (residue, chirality(&sys.positions, c) > 0.0)
        })
        .collect();
    if hands.iter().all(|h| h.1) || hands.iter().all(|h| !h.1) {
        return Ok(());
    }
    let d: Vec<String> = hands
        .iter()
        .filter(|h| !h.1)
        .map(|h| top.residue_label(h.0))
        .collect();
    bail!(
        "{}: D-amino acid at {}, L at the rest: {} learned L-amino acids only; it samples an \
         all-D peptide as the mirror image of the all-L one, but not a peptide of both hands",
        sys.name,
        d.join(", "),
        run.display()
    )
}

/// Rounds of moves at t = 1 after the final resampling when `--final-rounds` is not given:
/// one for SMC, whose particles have already moved at every level; 30 HMC trajectories for
/// resample-move, whose particles have moved only there and relax strained rings slowly
/// (model388 on KW with Langevin moves: E-W2 5.6 kT after 20 rounds of 3, 2.4 after 100, 0.8
/// after 300; with 30 HMC trajectories of 10 steps, as many gradients as 100 rounds: 0.7).
pub fn default_final_rounds(method: Method) -> usize {
    match method {
        Method::ResampleMove => RESAMPLE_MOVE_ROUNDS,
        _ => FINAL_ROUNDS,
    }
}

/// Leapfrog steps of each final round when `--leapfrog` is not given: HMC trajectories of 10
/// for resample-move, Langevin moves (0) for SMC.
pub fn default_leapfrog(method: Method) -> usize {
    match method {
        Method::ResampleMove => RESAMPLE_MOVE_LEAPFROG,
        _ => 0,
    }
}

/// Samples or particles of `method` when `--n` is not given: 5,000 particles for SMC (with 2,000
/// the energy W2 alone has a noise floor of about 0.2 kT), 4,000 for resample-move, 2,000 for
/// twisted SMC, 10,000 samples otherwise. `bgen run` uses the same numbers.
pub fn default_n(method: Method) -> usize {
    match method {
        Method::Smc => 5000,
        Method::ResampleMove => 4000,
        Method::Twisted => 2000,
        Method::Proposal | Method::Snis => 10_000,
    }
}

/// Adds the fields of a sampler's result (its `Serialize` form: the arrays of samples skipped)
/// to the summary.
fn merge(
    summary: &mut serde_json::Map<String, serde_json::Value>,
    r: &impl serde::Serialize,
) -> Result<()> {
    if let serde_json::Value::Object(m) = serde_json::to_value(r).context("summary")? {
        summary.extend(m);
    }
    Ok(())
}

/// Samples the model of `a.run` (or the shipped weights of `a.system`) with `a.method`,
/// writing samples.npy (nm), energies.npy (kJ/mol), log-weights and log q where the method has
/// them, manifest.txt, and last summary.json, which it returns. The steps: load the model and
/// its molecule, draw with the method (in the model's coordinates), write.
pub fn run(a: SampleArgs) -> Result<SampleSummary> {
    a.check()?;
    bgen_system::outdir::refuse_foreign(&a.out, "samples")?;
    let run = load(&a)?;
    let method = a
        .method
        .unwrap_or(match (&run.model, run.seen_in_training) {
            (Pooled::Flow(_), None) => Method::Smc,
            (Pooled::Flow(_), Some(_)) => Method::ResampleMove,
            (Pooled::Arbg(_), _) => Method::Twisted,
        });
    let n = a.n.unwrap_or(default_n(method));
    draws(&a, method, n)?;
    refuse_final_round_settings(&a, method)?;
    // In internal coordinates the target is U(x(ic)) - log|det J| and there is no CoM.
    let com = match run.internal {
        Some(_) => ComForm::None,
        None => a.com,
    };
    let _lock = bgen_system::outdir::lock_dir(&a.out)?;
    // The outputs are committed as one at the end (manifest, then summary.json): until then the
    // directory must not look finished with an earlier run's summary.
    for f in ["summary.json", "manifest.txt"] {
        let p = a.out.join(f);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    let t0 = Instant::now();
    let mut summary = SampleSummary {
        method,
        n,
        com,
        seen_in_training: run.seen_in_training,
        molecule: run.seen_in_training.map(|_| run.sys.name.clone()),
        identity: bgen_system::peptide::identity(&run.sys.topology),
        forcefield: run.sys.params.setup.name().into(),
        temperature_k: run.sys.temperature,
        coords: match run.internal {
            Some(_) => Coords::Internal,
            None => Coords::Cartesian,
        },
        sampler: serde_json::Map::new(),
        mirrored: 0,
        non_finite_energies: 0,
        wall_seconds: 0.0,
    };
    let zmatrix = run.internal.as_ref().map(|t| t.zmatrix());
    let internal = zmatrix.as_ref().map(|z| InternalTarget {
        target: &run.sys,
        zmatrix: z,
    });
    let report = &mut summary.sampler;
    let drawn = match method {
        Method::Proposal | Method::Snis => draw_snis(&a, &run, &internal, com, n, method, report)?,
        Method::Smc | Method::ResampleMove => {
            draw_smc(&a, &run, &internal, com, n, method, report)?
        }
        Method::Twisted => draw_twisted(&a, &run, &internal, com, n, report)?,
    };
    warn_heavy_tail(report);
    write(&a, &run, drawn, summary, t0)
}

/// Says so when the weights' tail is too heavy for their estimates to be trusted (the
/// sampler's `pareto_k` above [`RELIABLE_K`]).
fn warn_heavy_tail(report: &serde_json::Map<String, serde_json::Value>) {
    use crate::pareto::RELIABLE_K;
    if let Some(k) = report.get("pareto_k").and_then(|v| v.as_f64()) {
        if k > RELIABLE_K {
            bgen_system::say!(
                "the importance weights' Pareto k is {k:.2}, above {RELIABLE_K}: their estimates \
                 (basin populations above all) are unreliable whatever the ESS says; more draws \
                 will not fix it, a closer proposal will"
            );
        }
    }
}

/// The model of `a.run` or `a.system`, with the molecule of `a.pdb` or `a.sequence` for a
/// transferable one.
fn load(a: &SampleArgs) -> Result<LoadedRun> {
    let dev = a.device.open()?;
    // Parallel over samples, not inside libtorch: at these model sizes its intra-op threads
    // gain little, while each worker on its own rows scales.
    tch::set_num_threads(1);
    let workers = match dev {
        tch::Device::Cpu => a.threads.max(1),
        _ => 1,
    };
    let run_dir = match (&a.run, &a.system) {
        (Some(r), _) => r.clone(),
        (None, Some(name)) => bgen_models::shipped::run_dir(name)?,
        (None, None) => bail!("give run or system"),
    };
    let run = match (&a.pdb, &a.sequence) {
        (None, None) => load_run(&run_dir, dev, a.batch, !a.no_ema, a.tau, workers)?,
        (pdb, seq) => {
            let info = RunInfo::read(&run_dir)?;
            let setup = Setup::from_name(&info.forcefield)?;
            let sys = match (pdb, seq) {
                (Some(p), _) => System::from_pdb_file(p, setup, Some(info.temperature_k))?,
                (None, Some(s)) => {
                    let pdb = bgen_system::peptide::build_pdb(s, a.caps, setup)?;
                    let file =
                        bgen_system::pdb::PdbFile::parse(&pdb, &bgen_system::peptide::label(s))?;
                    System::from_pdb(&file, setup, Some(info.temperature_k))?
                }
                (None, None) => unreachable!("matched above"),
            };
            load_transferable(&run_dir, sys, dev, a.batch, !a.no_ema, a.tau, workers)?
        }
    };
    if let Some(seen) = run.seen_in_training {
        let what = match seen {
            true => "seen in training",
            false => "never seen in training (zero-shot)",
        };
        bgen_system::say!("{}: {what} by this transferable model", run.sys.name);
    }
    Ok(run)
}

/// What `bgen sample` did, as summary.json holds it (and `run` returns): the method, what the
/// samples are of, the sampler's own report and the wall time.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SampleSummary {
    pub method: Method,
    /// Samples, or SMC's particles.
    pub n: usize,
    /// The CoM term used (none for a model in internal coordinates).
    pub com: ComForm,
    /// A transferable model: whether this molecule (caps included) reached its training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_in_training: Option<bool>,
    /// A transferable model: the molecule's name (its PDB file or sequence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub molecule: Option<String>,
    /// What the samples are of ([`bgen_system::peptide::identity`]), in which force field and at
    /// which temperature: `bgen eval` checks them.
    pub identity: String,
    pub forcefield: String,
    pub temperature_k: f64,
    pub coords: Coords,
    /// The sampler's own report: ESS, log Z, evaluations, acceptances, levels, lineages, ...
    /// (the serialised fields of its result).
    #[serde(flatten)]
    pub sampler: serde_json::Map<String, serde_json::Value>,
    /// Samples reflected back from their mirror image.
    pub mirrored: usize,
    /// Samples whose energy is not finite (zero weight).
    pub non_finite_energies: usize,
    pub wall_seconds: f64,
}

/// What a sampler drew, in the model's coordinates: samples, their energies (kT), and for
/// SNIS (and the raw proposal) the log-weights and log q.
struct Drawn {
    x: Vec<f64>,
    energies: Vec<f64>,
    log_w: Option<Vec<f64>>,
    log_q: Option<Vec<f64>>,
}

/// The target the samplers see: U(x(ic)) - log|det J| in internal coordinates, else U(x) of
/// `cartesian` (the system, or the system at a precision).
fn target_of<'a, T: Target>(
    cartesian: &'a T,
    internal: &'a Option<InternalTarget<'a, T>>,
) -> &'a dyn Target {
    match internal {
        Some(t) => t,
        None => cartesian,
    }
}

/// `n` proposals, weighted toward the target for SNIS (raw for `Method::Proposal`).
fn draw_snis(
    a: &SampleArgs,
    run: &LoadedRun,
    internal: &Option<InternalTarget<'_, System>>,
    com: ComForm,
    n: usize,
    method: Method,
    summary: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<Drawn> {
    let is_snis = method == Method::Snis;
    let (x, lq) = run.adjusted(com).sample(n, a.seed);
    let mut e = vec![0.0; n];
    target_of(&run.sys, internal).energy_and_grad(&x, &mut e, None);
    let src: Vec<f64> = lq.iter().map(|v| -v).collect();
    let options = SnisOptions {
        drop_top: if is_snis { a.drop_top } else { 0.0 },
        energy_cutoff: if is_snis { a.energy_cutoff } else { None },
        truncate: is_snis && !a.no_truncate,
    };
    let r = snis(&src, &e, options);
    if is_snis && r.log_weights.iter().all(|w| *w == f64::NEG_INFINITY) {
        bail!(
            "SNIS: every one of the {n} samples has weight zero (log q or the energy not \
             finite, or all cut off); at --tau {} the proposal may be too narrow: raise it",
            a.tau
        );
    }
    merge(summary, &r)?;
    summary.insert("energy_evaluations".into(), n.into());
    summary.insert("model_evaluations".into(), n.into());
    let log_w = is_snis.then_some(r.log_weights);
    Ok(Drawn {
        x,
        energies: e,
        log_w,
        log_q: Some(lq),
    })
}

/// SMC from the proposal to the target (a TarFlow: it needs grad log q), or resample-move:
/// the same with one level straight to t = 1 (SNIS's weights) and no independence moves, so
/// that after the draws only the target is evaluated (any proposal, an ArBG's too).
fn draw_smc(
    a: &SampleArgs,
    run: &LoadedRun,
    internal: &Option<InternalTarget<'_, System>>,
    com: ComForm,
    n: usize,
    method: Method,
    summary: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<Drawn> {
    // Resample-move's moves are on the target alone (t = 1), which any proposal allows; SMC's
    // below t = 1 follow the model's gradient.
    if method == Method::Smc && matches!(run.model, Pooled::Arbg(_)) {
        bail!(
            "--method smc moves along the gradient of a TarFlow's density, which an ArBG (piecewise-constant density) does not have; use snis, resample-move or twisted"
        );
    }
    if method == Method::ResampleMove {
        refuse_annealing_settings(a)?;
    }
    let draws = draws(a, method, n)?;
    let smc_opts = SmcOptions {
        steps: a.steps,
        moves_per_step: a.moves,
        step_size: a.step_size.unwrap_or(match (&run.internal, method) {
            // On the target alone the steps start as small as they end up in SMC (KW: 0.0024).
            (Some(_), Method::ResampleMove) => 0.002,
            (Some(_), _) => 0.05,
            (None, _) => 1e-6,
        }),
        mala: !a.ula,
        ess_threshold: a.ess_threshold,
        scheme: Scheme::Systematic,
        seed: a.seed,
        cess_target: (a.cess > 0.0).then_some(a.cess),
        independence: a.independence,
        final_rounds: a.final_rounds.unwrap_or(default_final_rounds(method)),
        leapfrog: a.leapfrog.unwrap_or(default_leapfrog(method)),
        keep_weights: a.keep_weights,
        ..Default::default()
    };
    let o = match method {
        Method::ResampleMove => SmcOptions {
            steps: 1,
            cess_target: None,
            independence: 0,
            truncate: !a.no_truncate,
            keep: (draws > n).then_some(n),
            ..smc_opts
        },
        _ => smc_opts,
    };
    // The sampler's target at --precision; the energies written are double: write()
    // recomputes those of internal-coordinate samples from their Cartesian positions, and
    // Cartesian samples' are recomputed here.
    let precision = a.precision.unwrap_or(SAMPLER_PRECISION);
    let fast = run.sys.at(precision);
    let fast_internal = internal.as_ref().map(|t| InternalTarget {
        target: &fast,
        zmatrix: t.zmatrix,
    });
    let mut r = smc(
        &run.adjusted(com),
        &target_of(&fast, &fast_internal),
        draws,
        o,
    )?;
    if precision != Precision::Double && internal.is_none() {
        run.sys.energy_and_grad(&r.x, &mut r.energies, None);
    }
    summary.insert("precision".into(), precision.name().into());
    summary.insert("levels".into(), r.schedule.len().into());
    summary.insert("final_rounds".into(), o.final_rounds.into());
    summary.insert("leapfrog".into(), o.leapfrog.into());
    summary.insert("draws".into(), draws.into());
    merge(summary, &r)?;
    Ok(Drawn {
        x: r.x,
        energies: r.energies,
        log_w: a.keep_weights.then_some(r.log_weights),
        log_q: None,
    })
}

/// The proposals resample-move draws and weights: `--draws`, else 2.5 per sample kept; the other
/// methods draw their `n`, and `--draws` is refused there.
fn draws(a: &SampleArgs, method: Method, n: usize) -> Result<usize> {
    match (method, a.draws) {
        (Method::ResampleMove, Some(d)) if d < n => {
            bail!("--draws {d} is fewer than the {n} samples (--n) it keeps")
        }
        (Method::ResampleMove, Some(d)) => Ok(d),
        (Method::ResampleMove, None) => {
            Ok((RESAMPLE_MOVE_DRAWS_PER_SAMPLE * n as f64).ceil() as usize)
        }
        (_, None) => Ok(n),
        (_, Some(_)) => bail!(
            "--draws is resample-move's (proposals weighted, --n kept); --method {method} draws --n"
        ),
    }
}

/// The final rounds (and keeping every weight) are SMC's and resample-move's: with another
/// method they would be ignored, so they are refused.
fn refuse_final_round_settings(a: &SampleArgs, method: Method) -> Result<()> {
    if matches!(method, Method::Smc | Method::ResampleMove) {
        return Ok(());
    }
    let set: Vec<&str> = [
        (a.final_rounds.is_some(), "--final-rounds"),
        (a.leapfrog.is_some(), "--leapfrog"),
        (a.keep_weights, "--keep-weights"),
        (a.precision.is_some(), "--precision"),
    ]
    .into_iter()
    .filter_map(|(given, flag)| given.then_some(flag))
    .collect();
    if !set.is_empty() {
        bail!(
            "{}: for --method smc or resample-move; --method {method} has no final rounds",
            set.join(", ")
        );
    }
    Ok(())
}

/// Resample-move goes to t = 1 in one level and moves only on the target: the annealing
/// settings (levels, conditional ESS, independence moves) would be ignored, so a value other
/// than the default is refused rather than dropped.
fn refuse_annealing_settings(a: &SampleArgs) -> Result<()> {
    let set: Vec<&str> = [
        (a.steps != SMC_STEPS, "--steps"),
        (a.cess != CESS, "--cess"),
        (a.independence != INDEPENDENCE, "--independence"),
    ]
    .into_iter()
    .filter_map(|(differs, flag)| differs.then_some(flag))
    .collect();
    if !set.is_empty() {
        bail!(
            "{} set the annealing of --method smc, which resample-move does not anneal (one level \
             to the target, then --final-rounds of moves on it); use --method smc, or leave them out",
            set.join(", ")
        );
    }
    Ok(())
}

/// Twisted SMC over partial molecules (an ArBG), block by block.
fn draw_twisted(
    a: &SampleArgs,
    run: &LoadedRun,
    internal: &Option<InternalTarget<'_, System>>,
    com: ComForm,
    n: usize,
    summary: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<Drawn> {
    let Pooled::Arbg(model) = &run.model else {
        bail!("--method twisted needs an autoregressive model (an ArBG run)");
    };
    let na = run.sys.n_atoms();
    // Atoms placed after each block: per residue (as many atoms as each residue has) or one
    // at a time; in internal coordinates in Z-matrix order, whose first block holds at least
    // the first three atoms.
    let blocks = a.blocks.unwrap_or(match internal {
        Some(_) => Blocks::Atom,
        None => Blocks::Residue,
    });
    let atoms: Vec<usize> = match blocks {
        Blocks::Residue => run.sys.residue_ends(),
        Blocks::Atom => (1..=na).collect(),
    };
    let mut ends: Vec<usize> = match internal {
        None => atoms.iter().map(|k| 3 * k).collect(),
        Some(_) => atoms
            .iter()
            .map(|&k| bgen_system::ZMatrix::coords_of_rows(k.max(3)))
            .collect(),
    };
    ends.dedup();
    let o = TwistedOptions {
        ess_threshold: a.ess_threshold,
        scheme: Scheme::Systematic,
        seed: a.seed,
        com,
        com_sigma: run.com_sigma,
        n_atoms: na,
    };
    let r = match internal {
        Some(t) => twisted_smc(model, t, n, &ends, o),
        None => twisted_smc(model, &run.sys, n, &ends, o),
    };
    summary.insert("blocks".into(), ends.len().into());
    merge(summary, &r)?;
    Ok(Drawn {
        x: r.x,
        energies: r.energies,
        log_w: None,
        log_q: None,
    })
}

/// Writes the samples as Cartesian nm (mirror images reflected back), their energies in
/// kJ/mol, the weights and log q the method has (removing an earlier method's), the manifest,
/// and last summary.json.
fn write(
    a: &SampleArgs,
    run: &LoadedRun,
    drawn: Drawn,
    mut summary: SampleSummary,
    t0: Instant,
) -> Result<SampleSummary> {
    let sys = &run.sys;
    let na = sys.n_atoms();
    let n = drawn.energies.len();
    // Internal coordinates to Cartesian (canonical frame), with the energies U in kT.
    let (mut x, energies) = match &run.internal {
        Some(t) => {
            let x = t.to_cartesian(&drawn.x);
            let mut u = vec![0.0; n];
            sys.energy_and_grad(&x, &mut u, None);
            (x, u)
        }
        None => (drawn.x, drawn.energies),
    };
    // Mirror images (all chiral centres inverted) are reflected back; the energy is unchanged.
    let centres = sys.topology.chiral_centres();
    let mirrored = bgen_system::topology::fix_mirror_images(&mut x, na, &centres, &sys.positions);
    summary.mirrored = mirrored;
    // Samples whose energy is not finite (a clash, coinciding atoms) carry zero weight: counted
    // and said, never dropped silently.
    let non_finite = energies.iter().filter(|e| !e.is_finite()).count();
    summary.non_finite_energies = non_finite;
    if non_finite > 0 {
        bgen_system::say!(
            "{non_finite} of {n} samples have a non-finite energy (zero weight); see non_finite_energies in summary.json"
        );
    }
    write_npy(&a.out.join("samples.npy"), &[n, na, 3], &x, true)?;
    // In kJ/mol, as every energies.npy that bgen writes (MD's too); the samplers' kT stay inside.
    let kt = sys.kt();
    let kj: Vec<f64> = energies.iter().map(|u| u * kt).collect();
    write_npy(&a.out.join("energies.npy"), &[n], &kj, false)?;
    let mut written = vec!["samples.npy", "energies.npy"];
    for (name, values) in [
        ("log_weights.npy", &drawn.log_w),
        ("log_q.npy", &drawn.log_q),
    ] {
        if let Some(v) = values {
            write_npy(&a.out.join(name), &[n], v, false)?;
            written.push(name);
        }
    }
    // Arrays of an earlier method in this directory (weights that would be applied to these
    // samples) go.
    for stale in ["log_weights.npy", "log_q.npy"] {
        let p = a.out.join(stale);
        if !written.contains(&stale) && p.exists() {
            std::fs::remove_file(&p)
                .with_context(|| format!("removing the stale {}", p.display()))?;
        }
    }
    bgen_system::manifest::write(&a.out, "manifest.txt", &written)?;
    summary.wall_seconds = t0.elapsed().as_secs_f64();
    let text = serde_json::to_string_pretty(&summary).context("summary.json")?;
    write_atomic(&a.out.join("summary.json"), text.as_bytes())?;
    bgen_system::show!("{text}");
    Ok(summary)
}
