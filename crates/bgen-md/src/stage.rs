//! The MD stage as functions of typed, serialisable settings: [`run`] (resumable Langevin MD or
//! replica exchange of a molecule, writing training data; `bgen md`), [`split`] (`bgen dataset
//! split`) and [`export`] (`bgen dataset export`). The command line, `bgen run` and the Python
//! package call these.

use crate::dataset::{self, SplitBy};
use crate::{ExchangeSummary, MdRun, MdSettings, Result};
use bgen_system::energy::Precision;
use bgen_system::error::Context;
use bgen_system::options::{count, non_negative, positive};
use bgen_system::peptide::Caps;
use bgen_system::{bail, System, SystemArgs};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The settings of the MD stage: `bgen md`'s options, `bgen run`'s MD stage (built with
/// [`MdArgs::new`]) and `bgen.md(...)`'s keywords in Python (deserialised; unknown keys are
/// refused). Unset options take the run's defaults ([`MdSettings::new`]).
#[derive(Args, Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MdArgs {
    #[command(flatten)]
    pub sys: SystemArgs,
    /// Production length of each replica, ns. Given longer with --resume (or to a many-peptide
    /// run's command again), it lengthens the run: as if made that long from the start.
    #[arg(long, value_parser = positive, allow_hyphen_values = true)]
    pub ns: Option<f64>,
    /// Independent replicas, run in parallel (use at least as many as cores). With
    /// `temperatures`: a whole number of ladders side by side (the default is one), e.g. 16
    /// replicas on a 4-rung ladder are 4 independent ladders, which step together in SIMD lanes.
    #[arg(long, value_parser = count::<usize>, allow_hyphen_values = true)]
    pub replicas: Option<usize>,
    /// Seed of the random streams (replica r uses stream r of this seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Friction coefficient, 1/ps.
    #[arg(long, value_parser = non_negative, allow_hyphen_values = true)]
    pub friction: Option<f64>,
    /// Time step, fs (no constraints: 1 fs is safe with the force field's masses; 2 fs with
    /// --hydrogen-mass 3).
    #[arg(long, value_parser = positive, allow_hyphen_values = true)]
    pub timestep_fs: Option<f64>,
    /// Hydrogen mass repartitioning: each hydrogen's mass, Da, taken from its heavy atom (the
    /// same ensemble, slower X-H vibrations, so a longer time step is stable; default 3); 0: the
    /// force field's masses.
    #[arg(long, value_parser = non_negative, allow_hyphen_values = true)]
    pub hydrogen_mass: Option<f64>,
    /// Interval between saved frames, ps.
    #[arg(long, value_parser = positive, allow_hyphen_values = true)]
    pub save_every_ps: Option<f64>,
    /// Equilibration before the first saved frame, ps.
    #[arg(long, value_parser = non_negative, allow_hyphen_values = true)]
    pub equilibrate_ps: Option<f64>,
    /// RMS-force tolerance of the initial minimisation, kJ/mol/nm.
    #[arg(long, value_parser = positive, allow_hyphen_values = true)]
    pub minimize_tol: Option<f64>,
    /// Replica exchange (parallel tempering): one replica per temperature, K, lowest first; the
    /// lowest is the run's temperature and its frames are replica 0 (of each ladder, with more
    /// `replicas`). Give a list (300,340,385) or a geometric ladder as LOW:HIGH:COUNT (300:600:8).
    #[arg(long, value_parser = parse_ladder)]
    pub temperatures: Option<Ladder>,
    /// Replica exchange: interval between exchange rounds, ps.
    #[arg(long, value_parser = positive, allow_hyphen_values = true)]
    pub exchange_every_ps: Option<f64>,
    /// How the pair terms are computed: mixed (f32 pair math, f64 sums, energies within 1e-6
    /// relative; the default), double (f64 SIMD) or reference (the scalar f64 path).
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Seconds between checkpoints.
    #[arg(long, default_value_t = MD_CHECKPOINT_SECS, value_parser = non_negative, allow_hyphen_values = true)]
    pub checkpoint_secs: f64,
    /// Stop after writing this many checkpoints in this session (for time-limited jobs; resume later).
    #[arg(long, hide = true)]
    pub stop_after_checkpoints: Option<usize>,
    /// Threads (default: all cores).
    #[arg(long, value_parser = bgen_system::options::threads, allow_hyphen_values = true)]
    pub threads: Option<usize>,
    /// Many peptides: one-letter sequences (KW,AA,...), each built (`bgen build`) and run as its
    /// own shard in OUT/shards/SEQ/ with these settings; shards run in parallel (`jobs`), finished
    /// ones are skipped, interrupted ones resumed. Merge them with `bgen dataset merge`.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["system", "pdb"])]
    pub sequences: Vec<String>,
    /// Many peptides: a file of sequences, one per line (# comments), added to `sequences`.
    #[arg(long, conflicts_with_all = ["system", "pdb"])]
    pub sequences_file: Option<PathBuf>,
    /// Many peptides: PDB files, each its own shard (named by the file's stem).
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["system", "pdb"])]
    pub pdbs: Vec<PathBuf>,
    /// Many peptides built from sequences: their ends, none (zwitterions) or ace-nme.
    #[arg(long, value_enum, default_value_t)]
    pub caps: Caps,
    /// Many peptides: shards run at once (default: the threads; each shard's replicas share them).
    #[arg(long, value_parser = count::<usize>, allow_hyphen_values = true)]
    pub jobs: Option<usize>,
    /// Many peptides on many nodes (a SLURM job array): this task runs the shards whose index
    /// modulo `shard_count` is `shard_index` (SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT).
    #[arg(long, requires = "shard_count")]
    pub shard_index: Option<usize>,
    #[arg(long, requires = "shard_index", value_parser = count::<usize>, allow_hyphen_values = true)]
    pub shard_count: Option<usize>,
}

/// Seconds between MD checkpoints by default.
const MD_CHECKPOINT_SECS: f64 = 30.0;

impl Default for MdArgs {
    fn default() -> Self {
        MdArgs::new(SystemArgs::default(), PathBuf::new())
    }
}

impl MdArgs {
    /// The defaults of `bgen md --out OUT` for the system `sys`.
    pub fn new(sys: SystemArgs, out: PathBuf) -> MdArgs {
        MdArgs {
            sys,
            ns: None,
            replicas: None,
            seed: None,
            friction: None,
            timestep_fs: None,
            hydrogen_mass: None,
            save_every_ps: None,
            equilibrate_ps: None,
            minimize_tol: None,
            temperatures: None,
            exchange_every_ps: None,
            precision: None,
            out,
            resume: false,
            checkpoint_secs: MD_CHECKPOINT_SECS,
            stop_after_checkpoints: None,
            threads: None,
            sequences: Vec::new(),
            sequences_file: None,
            pdbs: Vec::new(),
            caps: Caps::None,
            jobs: None,
            shard_index: None,
            shard_count: None,
        }
    }
}

impl MdArgs {
    /// Applies the options given on the command line to `s`; returns the names of those that
    /// differ from `s` (for checking a resume).
    pub(crate) fn apply(&self, s: &mut MdSettings) -> Vec<&'static str> {
        let mut changed = Vec::new();
        macro_rules! set {
            ($opt:expr, $field:ident, $name:literal) => {
                if let Some(v) = $opt.clone() {
                    if s.$field != v {
                        changed.push($name);
                        s.$field = v;
                    }
                }
            };
        }
        set!(self.sys.temperature, temperature_k, "--temperature");
        if let Some(Ladder(t)) = &self.temperatures {
            if self.sys.temperature.is_none() && s.temperature_k != t[0] {
                changed.push("--temperature");
                s.temperature_k = t[0];
            }
            if self.replicas.is_none() && s.replicas != t.len() {
                changed.push("--replicas");
                s.replicas = t.len();
            }
        }
        set!(
            self.temperatures.as_ref().map(|l| l.0.clone()),
            temperatures_k,
            "--temperatures"
        );
        set!(
            self.exchange_every_ps,
            exchange_every_ps,
            "--exchange-every-ps"
        );
        set!(self.ns, ns_per_replica, "--ns");
        set!(self.replicas, replicas, "--replicas");
        set!(self.seed, seed, "--seed");
        set!(self.friction, friction_per_ps, "--friction");
        set!(self.timestep_fs, timestep_fs, "--timestep-fs");
        set!(
            self.hydrogen_mass.map(|h| (h > 0.0).then_some(h)),
            hydrogen_mass_da,
            "--hydrogen-mass"
        );
        set!(self.save_every_ps, save_every_ps, "--save-every-ps");
        set!(self.equilibrate_ps, equilibrate_ps, "--equilibrate-ps");
        set!(self.minimize_tol, minimize_tolerance, "--minimize-tol");
        set!(self.sys.forcefield, forcefield, "--forcefield");
        set!(self.precision, precision, "--precision");
        changed
    }
}

/// A temperature ladder, K, lowest first. Deserialised from a list of temperatures or the
/// command line's text (`"300:600:8"`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(try_from = "LadderText", into = "Vec<f64>")]
pub struct Ladder(pub Vec<f64>);

#[derive(Deserialize)]
#[serde(untagged)]
enum LadderText {
    List(Vec<f64>),
    Text(String),
}

impl TryFrom<LadderText> for Ladder {
    type Error = String;
    fn try_from(t: LadderText) -> std::result::Result<Ladder, String> {
        match t {
            LadderText::List(t) => {
                let text: Vec<String> = t.iter().map(|t| t.to_string()).collect();
                parse_ladder(&text.join(","))
            }
            LadderText::Text(t) => parse_ladder(&t),
        }
    }
}

impl From<Ladder> for Vec<f64> {
    fn from(l: Ladder) -> Vec<f64> {
        l.0
    }
}

/// A ladder from a list (300,340,385) or LOW:HIGH:COUNT (geometric).
pub fn parse_ladder(text: &str) -> std::result::Result<Ladder, String> {
    let num = |v: &str| {
        v.trim()
            .parse::<f64>()
            .map_err(|_| format!("'{v}' is not a temperature in K"))
    };
    let parts: Vec<&str> = text.split(':').collect();
    match parts.len() {
        1 => Ok(Ladder(
            text.split(',')
                .map(num)
                .collect::<std::result::Result<_, _>>()?,
        )),
        3 => {
            let (lo, hi) = (num(parts[0])?, num(parts[1])?);
            let n: usize = parts[2]
                .trim()
                .parse()
                .map_err(|_| format!("'{}' is not a number of temperatures", parts[2]))?;
            if !(lo > 0.0 && hi > lo && n >= 2) {
                return Err(format!(
                    "LOW:HIGH:COUNT needs 0 < LOW < HIGH and COUNT >= 2, got {text}"
                ));
            }
            Ok(Ladder(crate::geometric_ladder(lo, hi, n)))
        }
        _ => Err(format!(
            "'{text}': give temperatures as a list (300,340,385) or LOW:HIGH:COUNT (300:600:8)"
        )),
    }
}

/// Continues `run` with the options of `a`: the same as the run's, or a longer `--ns` alone,
/// which lengthens it ([`MdRun::lengthen`]). Returns the options that differ otherwise (the
/// run is left as it was).
pub(crate) fn reopen(a: &MdArgs, run: &mut MdRun) -> Result<Vec<&'static str>> {
    let mut s = run.settings.clone();
    let changed = a.apply(&mut s);
    if changed == ["--ns"] && s.ns_per_replica > run.settings.ns_per_replica {
        run.lengthen(s.ns_per_replica)?;
        return Ok(Vec::new());
    }
    Ok(changed)
}

/// A molecule given to a resumed run (--pdb or --system) must be the run's own: same atoms,
/// same names, same residues (positions aside: the run goes on from its own).
fn same_molecule(a: &MdArgs, run: &MdRun) -> Result<()> {
    if a.sys.pdb.is_none() && a.sys.system.is_none() {
        return Ok(());
    }
    let given = a.sys.load()?;
    let names = |s: &System| -> Vec<(String, String)> {
        let t = &s.topology;
        t.atoms
            .iter()
            .map(|at| (t.residues[at.residue].name.clone(), at.name.clone()))
            .collect()
    };
    if names(&given) != names(&run.system) {
        bail!(
            "{}: {} is not the molecule of the run being resumed ({}, {} atoms); drop it or \
             start a new run",
            a.out.display(),
            a.sys.label(),
            bgen_system::peptide::identity(&run.system.topology),
            run.system.n_atoms()
        );
    }
    Ok(())
}

fn open_run(a: &MdArgs) -> Result<MdRun> {
    let run_json = a.out.join("run.json");
    if a.resume {
        if crate::dataset::is_many_peptide_run(&a.out) {
            bail!(
                "{}: a many-peptide directory; its shards resume when the same bgen md \
                 --sequences/--sequences-file/--pdbs command runs again (without --resume)",
                a.out.display()
            );
        }
        if !run_json.exists() {
            bail!("{}: no run to resume (run.json missing)", a.out.display());
        }
        let mut run = MdRun::resume(&a.out)?;
        same_molecule(a, &run)?;
        let changed = reopen(a, &mut run)?;
        if !changed.is_empty() {
            let (verb, them) = match changed.len() {
                1 => ("differs", "it"),
                _ => ("differ", "them"),
            };
            bail!(
                "{}: {} {verb} from the run being resumed; drop {them} or start a new run \
                 (a longer --ns alone lengthens it)",
                run_json.display(),
                changed.join(", ")
            );
        }
        return Ok(run);
    }
    if run_json.exists() {
        bail!(
            "{} already holds a run; pass --resume to continue it or choose another --out",
            a.out.display()
        );
    }
    let sys = a.sys.load()?;
    // Coinciding atoms: no minimiser or integrator recovers from a NaN energy.
    sys.check_energy(&sys.positions, &a.sys.label())?;
    let mut s = MdSettings::new(&a.sys.label(), sys.params.setup);
    s.temperature_k = sys.temperature;
    a.apply(&mut s);
    MdRun::create(&a.out, s, sys)
}

/// What the MD stage did: the frames of the run's temperature written so far and their mean
/// energy, and the exchange statistics of a replica-exchange run.
#[derive(Clone, Debug, Serialize)]
pub struct MdResult {
    /// The run directory.
    pub out: PathBuf,
    /// Whether every replica reached its length (else it stopped at a checkpoint).
    pub complete: bool,
    /// Frames of every replica (None before the run completes).
    pub frames: Option<usize>,
    /// Mean potential energy of the frames, kJ/mol (None before the run completes).
    pub mean_energy_kj_mol: Option<f64>,
    /// Replica exchange: acceptance per neighbour pair, round trips, rounds.
    pub exchange: Option<ExchangeSummary>,
    /// Many peptides: every shard of this task, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<Vec<crate::shards::ShardStatus>>,
}

impl MdArgs {
    /// Whether this is the MD of many peptides (sequences, a file of them, or PDBs).
    pub fn is_many(&self) -> bool {
        !self.sequences.is_empty() || self.sequences_file.is_some() || !self.pdbs.is_empty()
    }

    /// Refuses settings that would break a run, naming them (the command line's parsers do the
    /// same; this covers settings from TOML or Python).
    pub fn check(&self) -> Result<()> {
        use bgen_system::options::check;
        if self.out.as_os_str().is_empty() {
            bail!("out: give an output directory");
        }
        let positives = [
            ("ns", self.ns),
            ("timestep_fs", self.timestep_fs),
            ("save_every_ps", self.save_every_ps),
            ("minimize_tol", self.minimize_tol),
            ("exchange_every_ps", self.exchange_every_ps),
            ("temperature", self.sys.temperature),
        ];
        for (k, v) in positives {
            if let Some(v) = v {
                check::positive(k, v)?;
            }
        }
        for (k, v) in [
            ("friction", self.friction),
            ("equilibrate_ps", self.equilibrate_ps),
            ("hydrogen_mass", self.hydrogen_mass),
            ("checkpoint_secs", Some(self.checkpoint_secs)),
        ] {
            if let Some(v) = v {
                check::non_negative(k, v)?;
            }
        }
        match (self.shard_index, self.shard_count) {
            (Some(i), Some(n)) if i >= n => {
                bail!("shard_index {i}: must be below shard_count {n}")
            }
            (Some(_), None) | (None, Some(_)) => {
                bail!("shard_index and shard_count go together (this task's index, and how many)")
            }
            _ => {}
        }
        if self.is_many() && (self.sys.system.is_some() || self.sys.pdb.is_some()) {
            bail!("give sequences/pdbs (many peptides) or system/pdb (one molecule), not both");
        }
        // Options of the many-peptide path take effect there or are refused.
        if !self.is_many() {
            for (k, given) in [
                ("shard_index", self.shard_index.is_some()),
                ("jobs", self.jobs.is_some()),
                ("caps", self.caps != Caps::None),
            ] {
                if given {
                    bail!("{k}: for many peptides (sequences, sequences_file or pdbs); one molecule runs as one job");
                }
            }
        }
        if self.caps != Caps::None && self.sequences.is_empty() && self.sequences_file.is_none() {
            bail!("caps: for peptides built from sequences; a PDB keeps its own ends");
        }
        if self.is_many() && self.resume {
            bail!(
                "resume: a many-peptide run resumes when the same command runs again (finished \
                 shards are skipped, stopped ones continue from their checkpoints); drop --resume"
            );
        }
        for (k, v) in [("replicas", self.replicas), ("jobs", self.jobs)] {
            if let Some(v) = v {
                check::count(k, v as i64)?;
            }
        }
        if let Some(t) = self.threads {
            check::threads("threads", t as i64)?;
        }
        Ok(())
    }
}

/// Runs (or resumes, with `resume`) the MD of `a.out`, checkpointing every `checkpoint_secs`;
/// with `sequences`/`pdbs`, the MD of each peptide as its own shard ([`crate::shards`]).
pub fn run(a: MdArgs) -> Result<MdResult> {
    a.check()?;
    if a.is_many() {
        return crate::shards::run(&a);
    }
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(t) = a.threads {
        builder = builder.num_threads(t);
    }
    let pool = builder.build().context("thread pool")?;
    let mut run = open_run(&a)?;
    if run.is_complete() {
        // Its outputs read first: a finished run whose frames are gone is an error, not done.
        let done = result(&a.out, &run)?;
        bgen_system::say!("{}: run already complete", a.out.display());
        return Ok(done);
    }
    announce(&run);
    let (dt_ns, replicas) = (run.settings.timestep_fs * 1e-6, run.settings.replicas);
    let total = run.total_steps();
    let bar = progress_bar(&run, total);
    let outcome = pool.install(|| {
        run.run(
            bgen_system::options::seconds(a.checkpoint_secs),
            a.stop_after_checkpoints,
            |p| {
                bar.set_position(p.steps);
                let per_day = p.session_ns / p.session_wall.as_secs_f64().max(1e-9) * 86400.0;
                bar.set_message(format!(
                    "{:.3}/{:.3} ns per replica, {} frames, {per_day:.0} ns/day in all",
                    p.steps as f64 * dt_ns,
                    total as f64 * dt_ns,
                    p.frames
                ));
            },
        )
    });
    bar.finish();
    outcome?;
    let res = result(&a.out, &run)?;
    report(&a.out, replicas, &res);
    Ok(res)
}

/// The run's settings, its exchange ladder and its minimisation, on the status stream.
fn announce(run: &MdRun) {
    let s = &run.settings;
    bgen_system::say!(
        "{}: {} atoms, {} at {} K; {} replica(s) x {} ns, {} fs steps{}, friction {}/ps, a frame every {} ps after {} ps, {} precision",
        s.system,
        run.system.n_atoms(),
        s.forcefield,
        s.temperature_k,
        s.replicas,
        s.ns_per_replica,
        s.timestep_fs,
        s.hydrogen_mass_da
            .map(|h| format!(" (hydrogens {h} Da)"))
            .unwrap_or_default(),
        s.friction_per_ps,
        s.save_every_ps,
        s.equilibrate_ps,
        s.precision.name()
    );
    if s.is_exchange() {
        let t: Vec<String> = s.temperatures_k.iter().map(|t| format!("{t:.1}")).collect();
        let ladders = match s.ladders() {
            1 => String::new(),
            n => format!("{n} ladders side by side, "),
        };
        bgen_system::say!(
            "replica exchange every {} ps over {} K; {ladders}the lowest rung samples {} K",
            s.exchange_every_ps,
            t.join(", "),
            s.temperature_k
        );
    }
    if let Some((e0, e1)) = run.minimization_energy() {
        bgen_system::say!("minimised: {e0:.3} -> {e1:.3} kJ/mol");
    }
}

/// A progress bar of `total` steps, at the run's first replica's step.
fn progress_bar(run: &MdRun, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {percent:>3}% {msg} [{elapsed_precise} elapsed, ETA {eta_precise}]",
        )
        .expect("template"),
    );
    bar.set_position(run.states()[0].step);
    bar.reset_eta();
    bar
}

/// What a finished (or stopped) run wrote, and its exchanges, on the status stream.
fn report(out: &Path, replicas: usize, res: &MdResult) {
    if let Some(e_mean) = res.mean_energy_kj_mol {
        bgen_system::say!(
            "wrote {} frames ({} replicas) to {}: <U> = {e_mean:.3} kJ/mol",
            res.frames.unwrap_or(0),
            replicas,
            out.display()
        );
    } else {
        bgen_system::say!("stopped at a checkpoint; continue with --resume");
    }
    if let Some(x) = &res.exchange {
        let acc: Vec<String> = x.acceptance.iter().map(|a| format!("{a:.2}")).collect();
        bgen_system::say!(
            "exchanges: acceptance per neighbour pair {}; {} round trips in {} rounds",
            acc.join(" "),
            x.round_trips,
            x.rounds
        );
    }
}

fn result(out: &Path, run: &MdRun) -> Result<MdResult> {
    let complete = run.is_complete();
    let (frames, mean) = if complete {
        let f = dataset::load(out)?;
        let mean = f.energy.iter().sum::<f64>() / f.len().max(1) as f64;
        (Some(f.len()), Some(mean))
    } else {
        (None, None)
    };
    Ok(MdResult {
        out: out.to_path_buf(),
        complete,
        frames,
        mean_energy_kj_mol: mean,
        exchange: run.exchange_summary(),
        shards: None,
    })
}

#[derive(Subcommand)]
pub enum DatasetCommand {
    /// Split runs into train / validation / test sets without interleaving frames.
    Split(SplitArgs),
    /// Check the shards of a many-peptide MD run and split them by sequence into training and
    /// held-out sets (dataset.json).
    Merge(crate::shards::MergeArgs),
    /// Write a run or data set as DCD or XTC trajectories (one per replica) with a topology
    /// PDB, for VMD, PyMOL, GROMACS, mdtraj or MDAnalysis.
    Export(ExportArgs),
}

/// The settings of `bgen dataset export`.
#[derive(Args, Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportArgs {
    /// Run or data-set directory (with topology.pdb), or a (frames, atoms, 3) .npy or an .xtc
    /// file with --pdb.
    #[arg(long)]
    pub run: PathBuf,
    /// Topology for a bare .npy (default: the run's topology.pdb).
    #[arg(long)]
    #[serde(default)]
    pub pdb: Option<PathBuf>,
    /// Output directory: replica_NNN.dcd (or .xtc) and topology.pdb.
    #[arg(long)]
    pub out: PathBuf,
    /// dcd (float32, exact to 1e-7 nm) or xtc (GROMACS' compressed format).
    #[arg(long, value_enum, default_value = "dcd")]
    #[serde(default)]
    pub format: TrajFormat,
    /// XTC: coordinates kept to 1/precision nm (GROMACS' default 1000).
    #[arg(long, default_value_t = 1000.0, value_parser = positive_f32)]
    #[serde(default = "xtc_precision")]
    pub precision: f32,
}

fn xtc_precision() -> f32 {
    1000.0
}

/// A finite f32 > 0 (the XTC precision is stored as one: 1e-300 would be 0, 1e300 inf).
fn positive_f32(s: &str) -> std::result::Result<f32, String> {
    let v = positive(s)? as f32;
    match v > 0.0 && v.is_finite() {
        true => Ok(v),
        false => Err(format!("{s}: out of range of a 32-bit float")),
    }
}

/// A trajectory format of `bgen dataset export`.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrajFormat {
    #[default]
    Dcd,
    Xtc,
}

/// The settings of `bgen dataset split` (and of `bgen run`'s split, built with
/// [`SplitArgs::new`]).
#[derive(Args, Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitArgs {
    /// Run or data-set directories (from `bgen md`), (frames, atoms, 3) .npy or .xtc files. Of a
    /// replica-exchange run only replica 0 (the run's temperature) is split.
    #[arg(long = "run", required = true)]
    pub runs: Vec<PathBuf>,
    /// Output directory: train/, val/, test/ and split.json.
    #[arg(long)]
    pub out: PathBuf,
    /// time: each replica in consecutive blocks; replica: whole replicas per set.
    #[arg(long, value_enum, default_value = "time")]
    #[serde(default)]
    pub by: By,
    /// Fractions of train, validation and test, comma-separated (default 0.8,0.1,0.1).
    #[arg(long, value_delimiter = ',', default_values_t = SPLIT_FRACTIONS, hide_default_value = true)]
    #[serde(default = "split_fractions")]
    pub fractions: Vec<f64>,
    /// Frames dropped at each cut between sets (time split), to lower their correlation.
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub gap: usize,
}

fn split_fractions() -> Vec<f64> {
    SPLIT_FRACTIONS.to_vec()
}

/// Frames in each set of a split.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SplitResult {
    pub train: usize,
    pub val: usize,
    pub test: usize,
}

/// Fractions of train, validation and test by default.
const SPLIT_FRACTIONS: [f64; 3] = [0.8, 0.1, 0.1];

impl SplitArgs {
    /// The defaults of `bgen dataset split --run RUN --out OUT`: each replica split 80/10/10 in
    /// time.
    pub fn new(run: PathBuf, out: PathBuf) -> SplitArgs {
        SplitArgs {
            runs: vec![run],
            out,
            by: By::Time,
            fractions: SPLIT_FRACTIONS.to_vec(),
            gap: 0,
        }
    }
}

/// How `bgen dataset split` cuts: each replica in consecutive time blocks, or whole replicas.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    #[default]
    Time,
    Replica,
}

/// Runs `bgen dataset split` or `bgen dataset export`.
pub fn dataset(c: DatasetCommand) -> Result<()> {
    match c {
        DatasetCommand::Split(a) => split(a).map(|_| ()),
        DatasetCommand::Export(a) => export(a),
        DatasetCommand::Merge(a) => {
            let d = crate::shards::merge(a)?;
            bgen_system::say!(
                "{} training and {} held-out shards ({} at {} K); held out: {}",
                d.train.len(),
                d.held_out.len(),
                d.forcefield,
                d.temperature_k,
                d.held_out
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(())
        }
    }
}

/// Writes a run or data set as DCD or XTC trajectories, one per replica, with its topology.
pub fn export(a: ExportArgs) -> Result<()> {
    if let Err(e) = positive_f32(&a.precision.to_string()) {
        bail!("precision = {e}");
    }
    bgen_system::outdir::refuse_same(&a.run, &a.out, "input")?;
    if let Some(p) = &a.pdb {
        bgen_system::outdir::refuse_same(p, &a.out, "topology")?;
    }
    let _lock = bgen_system::outdir::lock_dir(&a.out)?;
    let frames = dataset::load(&a.run)?;
    let topology = a.pdb.clone().unwrap_or_else(|| a.run.join("topology.pdb"));
    if !topology.exists() {
        bail!("{}: no topology.pdb; give --pdb FILE", a.run.display());
    }
    let pdb = bgen_system::pdb::PdbFile::read(&topology)?;
    if pdb.atoms.len() != frames.n_atoms {
        bail!(
            "{}: {} atoms, but {} has {}",
            a.run.display(),
            frames.n_atoms,
            topology.display(),
            pdb.atoms.len()
        );
    }
    std::fs::create_dir_all(&a.out).with_context(|| a.out.display().to_string())?;
    copy(&topology, &a.out.join("topology.pdb"))?;
    let mut replicas = frames.replica.clone();
    replicas.dedup();
    for r in replicas {
        let idx: Vec<usize> = (0..frames.len())
            .filter(|&i| frames.replica[i] == r)
            .collect();
        let sel = frames.select(&idx);
        let interval = if sel.len() > 1 {
            sel.time_ps[1] - sel.time_ps[0]
        } else {
            1.0
        };
        let path = match a.format {
            TrajFormat::Dcd => {
                let path = a.out.join(format!("replica_{r:03}.dcd"));
                crate::dcd::write_dcd(&path, &sel.x, sel.n_atoms, interval)?;
                path
            }
            TrajFormat::Xtc => {
                let path = a.out.join(format!("replica_{r:03}.xtc"));
                crate::xtc::write_xtc(&path, &sel.x, sel.n_atoms, interval, a.precision)?;
                path
            }
        };
        bgen_system::say!("{}: {} frames", path.display(), sel.len());
    }
    Ok(())
}

/// Splits runs into train/, val/ and test/ under `a.out` (`bgen dataset split`).
pub fn split(a: SplitArgs) -> Result<SplitResult> {
    if a.fractions.len() != 3 {
        bail!("--fractions needs three values (train,val,test)");
    }
    for r in &a.runs {
        bgen_system::outdir::refuse_same(r, &a.out, "input")?;
    }
    let _lock = bgen_system::outdir::lock_dir(&a.out)?;
    let mut all: Option<crate::Frames> = None;
    let mut topology: Option<PathBuf> = None;
    for path in &a.runs {
        let mut f = dataset::load_run_temperature(path)?;
        let offset = all
            .as_ref()
            .and_then(|x| x.replica.iter().max().copied())
            .map_or(0, |m| m + 1);
        f.replica.iter_mut().for_each(|r| *r += offset);
        if topology.is_none() && path.join("topology.pdb").exists() {
            topology = Some(path.join("topology.pdb"));
            // The run's settings (system, force field, temperature) go along with the sets.
            if path.join("run.json").exists() {
                std::fs::create_dir_all(&a.out).with_context(|| a.out.display().to_string())?;
                copy(&path.join("run.json"), &a.out.join("run.json"))?;
            }
        }
        match &mut all {
            Some(x) if x.n_atoms != f.n_atoms => bail!(
                "{}: {} atoms, but the runs before have {}",
                path.display(),
                f.n_atoms,
                x.n_atoms
            ),
            Some(x) => x.extend(&f),
            None => all = Some(f),
        }
    }
    let all = all.context("no frames")?;
    let by = match a.by {
        By::Time => SplitBy::Time,
        By::Replica => SplitBy::Replica,
    };
    let sets = dataset::split(
        &all,
        [a.fractions[0], a.fractions[1], a.fractions[2]],
        by,
        a.gap,
    )?;
    let counts = SplitResult {
        train: sets[0].len(),
        val: sets[1].len(),
        test: sets[2].len(),
    };
    for ((name, set), f) in ["train", "val", "test"].iter().zip(&sets).zip(&a.fractions) {
        if set.is_empty() && *f > 0.0 {
            bail!(
                "the {name} set would get no frames ({} frames in all, --gap {}): give more \
                 frames, a smaller --gap or a larger fraction",
                all.len(),
                a.gap
            );
        }
    }
    for (name, set) in ["train", "val", "test"].iter().zip(&sets) {
        let dir = a.out.join(name);
        std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
        set.write(&dir, "")?;
        if let Some(t) = &topology {
            copy(t, &dir.join("topology.pdb"))?;
        }
        bgen_system::say!("{name}: {} frames -> {}", set.len(), dir.display());
    }
    let info = serde_json::json!({
        "runs": a.runs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "by": match by { SplitBy::Time => "time", SplitBy::Replica => "replica" },
        "fractions": a.fractions,
        "gap_frames": a.gap,
        "frames": counts,
    });
    let path = a.out.join("split.json");
    let text = serde_json::to_string_pretty(&info).context(path.display())?;
    bgen_system::npy::write_atomic(&path, text.as_bytes())?;
    Ok(counts)
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// The settings of `bgen build`: a peptide from its sequence, minimised, as a PDB that every
/// stage accepts.
#[derive(Args, Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildArgs {
    /// One-letter codes of the residues, N to C terminus (e.g. KW; HIS is built as HID, OpenMM's
    /// and pdbfixer's pH-7 choice for an isolated peptide).
    #[arg(long)]
    pub sequence: String,
    /// Ends: ace-nme (acetyl and N-methylamide caps) or none (a zwitterion, NH3+ ... COO-).
    #[arg(long, value_enum, default_value_t)]
    #[serde(default)]
    pub caps: Caps,
    /// Force field whose templates and equilibrium geometry are used (and whose energy is
    /// minimised): amber14-obc1 (default) or amber99sbildn-obc2.
    #[arg(long, default_value = "amber14-obc1")]
    #[serde(default = "amber14")]
    pub forcefield: String,
    /// Output PDB file.
    #[arg(long)]
    pub out: PathBuf,
    /// Write the ideal geometry without minimising it.
    #[arg(long)]
    #[serde(default)]
    pub no_minimize: bool,
    /// RMS-force tolerance of the minimisation, kJ/mol/nm.
    #[arg(long, default_value_t = 1.0, value_parser = positive, allow_hyphen_values = true)]
    #[serde(default = "build_tolerance")]
    pub minimize_tol: f64,
}

fn amber14() -> String {
    "amber14-obc1".into()
}
fn build_tolerance() -> f64 {
    1.0
}

/// What `bgen build` made.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BuildResult {
    pub out: PathBuf,
    pub atoms: usize,
    /// Energy of the ideal geometry and after minimisation, kJ/mol.
    pub initial_energy_kj_mol: f64,
    pub energy_kj_mol: f64,
    /// RMS force at the end, kJ/mol/nm.
    pub rms_force: f64,
}

/// Builds `a.sequence` ([`bgen_system::peptide`]), minimises it with the L-BFGS minimiser and
/// writes it as a PDB (atomically).
pub fn build(a: BuildArgs) -> Result<BuildResult> {
    use bgen_system::peptide;
    let setup = bgen_system::Setup::from_name(&a.forcefield)?;
    let caps = a.caps;
    bgen_system::options::check::positive("minimize_tol", a.minimize_tol)?;
    let sys = peptide::build(&a.sequence, caps, setup)?;
    let model = sys.model();
    let mut ws = model.workspace();
    let mut x = sys.positions.clone();
    let mut g = vec![0.0; x.len()];
    let initial = model.energy_grad(&x, &mut g, &mut ws).total();
    let (energy, rms) = if a.no_minimize {
        (initial, crate::minimize::rms(&g))
    } else {
        let opts = crate::MinimizeOptions {
            tolerance: a.minimize_tol,
            max_iterations: 50_000,
            ..Default::default()
        };
        let r = crate::minimize(&mut x, opts, |x, g| {
            model.energy_grad(x, g, &mut ws).total()
        });
        (r.final_energy, r.rms_force)
    };
    if !energy.is_finite() {
        bail!(
            "sequence {}: the built structure has a non-finite energy",
            a.sequence
        );
    }
    let text = bgen_system::pdb::write_pdb(&sys.topology, &x);
    bgen_system::npy::write_atomic(&a.out, text.as_bytes())?;
    Ok(BuildResult {
        out: a.out,
        atoms: sys.n_atoms(),
        initial_energy_kj_mol: initial,
        energy_kj_mol: energy,
        rms_force: rms,
    })
}
