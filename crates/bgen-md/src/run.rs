//! A resumable MD run: minimise the start structure once, then integrate independent replicas in
//! parallel (one random stream each), saving a frame every `save_every_ps` after
//! `equilibrate_ps`. Frames go to `DIR/chunks/` in atomically written chunks, each followed by an
//! atomic `DIR/checkpoint.json` (positions, velocities, random-stream state and step of every
//! replica), so a killed run resumes exactly and keeps every frame once. At the end the chunks
//! are merged into the data-set files of [`crate::dataset`].
//!
//! With a temperature ladder (`temperatures_k`), the replicas are the rungs of a replica-exchange
//! run ([`crate::exchange`]): replica k always holds the ladder's k-th temperature, so the frames
//! of replica 0 sample the run's temperature and the others the raised ones.

use crate::dataset::Frames;
use crate::error::{file_err, io_err, Error, Result};
use crate::exchange::{Exchange, ExchangeSummary};
use crate::langevin::{stream, LangevinMiddle, State};
use crate::minimize::{minimize, MinimizeOptions, MinimizeReport};
use bgen_system::energy::Precision;
use bgen_system::npy::write_atomic;
use bgen_system::{Setup, System};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Every setting of a run (stored in `run.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MdSettings {
    /// Embedded system name, or the PDB file the run started from.
    pub system: String,
    /// Force-field setup name (e.g. "amber99sbildn-obc2").
    pub forcefield: String,
    /// K.
    pub temperature_k: f64,
    /// 1/ps.
    pub friction_per_ps: f64,
    /// fs.
    pub timestep_fs: f64,
    /// Production length of each replica, ns.
    pub ns_per_replica: f64,
    pub replicas: usize,
    pub seed: u64,
    /// Interval between saved frames, ps.
    pub save_every_ps: f64,
    /// Equilibration of each replica before the first frame, ps (not saved).
    pub equilibrate_ps: f64,
    /// RMS force tolerance of the initial minimisation, kJ/mol/nm.
    pub minimize_tolerance: f64,
    /// Replica exchange: the ladder's temperatures, K, lowest first and equal to
    /// `temperature_k` (e.g. [`crate::exchange::geometric_ladder`]); `replicas` is a whole
    /// number of ladders, side by side (replica r at rung r % len). Empty: independent replicas
    /// all at `temperature_k`.
    #[serde(default)]
    pub temperatures_k: Vec<f64>,
    /// Replica exchange: interval between exchange rounds, ps (a whole number of steps that
    /// divides the save interval).
    #[serde(default = "default_exchange_every_ps")]
    pub exchange_every_ps: f64,
    /// How the pair terms are computed ([`Precision`]). A run file without it was made by the
    /// scalar reference, which its resume keeps.
    #[serde(default = "legacy_precision")]
    pub precision: Precision,
    /// Hydrogen mass repartitioning ([`crate::hmr`]): each hydrogen's mass, Da, taken from its
    /// heavy atom. Changes the dynamics only, not the sampled ensemble. None: the force field's
    /// masses (what a run file without it used).
    #[serde(default)]
    pub hydrogen_mass_da: Option<f64>,
}

fn default_exchange_every_ps() -> f64 {
    0.1
}

fn legacy_precision() -> Precision {
    Precision::Reference
}

impl MdSettings {
    /// Defaults for `system` with `setup` at its default temperature: 1/ps, 2 fs steps with
    /// hydrogens at 3 Da (repartitioned; the same ensemble as 1 fs with the force field's masses,
    /// tested on aldp), 1 ns, one replica, seed 1, a frame every 1 ps after 100 ps of equilibration, tolerance 10 kJ/mol/nm,
    /// mixed precision (f32 pair math as OpenMM's CPU and CUDA platforms: the same ensemble as
    /// f64 within the statistical errors, tested on aldp; about 1.5x faster than double).
    pub fn new(system: &str, setup: Setup) -> MdSettings {
        MdSettings {
            system: system.to_string(),
            forcefield: setup.name().to_string(),
            temperature_k: setup.default_temperature(),
            friction_per_ps: 1.0,
            timestep_fs: 2.0,
            ns_per_replica: 1.0,
            replicas: 1,
            seed: 1,
            save_every_ps: 1.0,
            equilibrate_ps: 100.0,
            minimize_tolerance: 10.0,
            temperatures_k: Vec::new(),
            exchange_every_ps: default_exchange_every_ps(),
            precision: Precision::Mixed,
            hydrogen_mass_da: Some(3.0),
        }
    }

    /// Whether the replicas exchange along a temperature ladder.
    pub fn is_exchange(&self) -> bool {
        !self.temperatures_k.is_empty()
    }

    /// Temperature of each replica, K.
    pub fn replica_temperatures(&self) -> Vec<f64> {
        if self.is_exchange() {
            let t = &self.temperatures_k;
            (0..self.replicas).map(|r| t[r % t.len()]).collect()
        } else {
            vec![self.temperature_k; self.replicas]
        }
    }

    /// Replica exchange: how many ladders run side by side (0 without a ladder).
    pub fn ladders(&self) -> usize {
        self.replicas
            .checked_div(self.temperatures_k.len())
            .unwrap_or(0)
    }

    /// Integration steps between exchange rounds (with a ladder).
    pub fn steps_per_exchange(&self) -> u64 {
        (self.exchange_every_ps / self.dt_ps()).round() as u64
    }

    fn dt_ps(&self) -> f64 {
        self.timestep_fs * 1e-3
    }

    /// Integration steps between saved frames.
    pub fn steps_per_frame(&self) -> u64 {
        (self.save_every_ps / self.dt_ps()).round() as u64
    }

    /// Equilibration steps of each replica.
    pub fn equilibration_steps(&self) -> u64 {
        (self.equilibrate_ps / self.dt_ps()).round() as u64
    }

    /// Frames saved per replica.
    pub fn frames_per_replica(&self) -> u64 {
        (self.ns_per_replica * 1e3 / self.save_every_ps).round() as u64
    }

    /// Checks ranges and that the intervals are whole numbers of steps.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Settings(m));
        let positive = [
            ("temperature", self.temperature_k),
            ("timestep", self.timestep_fs),
            ("save interval", self.save_every_ps),
            ("length (ns)", self.ns_per_replica),
            ("minimisation tolerance", self.minimize_tolerance),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("{name} must be positive, got {v}"));
            }
        }
        if !(self.friction_per_ps.is_finite() && self.friction_per_ps >= 0.0) {
            return bad(format!(
                "friction must be >= 0, got {}",
                self.friction_per_ps
            ));
        }
        if !(self.equilibrate_ps.is_finite() && self.equilibrate_ps >= 0.0) {
            return bad(format!(
                "equilibration must be >= 0 ps, got {}",
                self.equilibrate_ps
            ));
        }
        if self.replicas == 0 {
            return bad("at least one replica is needed".into());
        }
        // Step counts are u64 and frames are counted exactly in f64: at most 2^53 of each.
        let most = 2f64.powi(53);
        for (name, ps) in [
            ("length (ns)", self.ns_per_replica * 1e3),
            ("equilibration (ps)", self.equilibrate_ps),
        ] {
            if ps / self.dt_ps() >= most {
                return bad(format!(
                    "{name} is more than 2^53 steps of {} fs",
                    self.timestep_fs
                ));
            }
        }
        let steps = self.save_every_ps / self.dt_ps();
        if steps < 0.5 || (steps - steps.round()).abs() > 1e-6 {
            return bad(format!(
                "the save interval {} ps is not a whole number of {} fs steps",
                self.save_every_ps, self.timestep_fs
            ));
        }
        if self.is_exchange() {
            let t = &self.temperatures_k;
            if t.len() < 2 || !self.replicas.is_multiple_of(t.len()) {
                return bad(format!(
                    "a replica-exchange ladder needs at least 2 temperatures, and the replicas \
                     must fill whole ladders ({} temperatures, {} replicas)",
                    t.len(),
                    self.replicas
                ));
            }
            if t.iter().any(|v| !(v.is_finite() && *v > 0.0)) || t.windows(2).any(|w| w[1] <= w[0])
            {
                return bad(format!(
                    "the ladder's temperatures must be positive and increasing, got {t:?}"
                ));
            }
            if (t[0] - self.temperature_k).abs() > 1e-9 {
                return bad(format!(
                    "the ladder starts at {} K but the run's temperature is {} K",
                    t[0], self.temperature_k
                ));
            }
            let m = self.exchange_every_ps / self.dt_ps();
            let whole = m >= 0.5 && (m - m.round()).abs() < 1e-6;
            if !(whole && self.steps_per_frame().is_multiple_of(m.round() as u64)) {
                return bad(format!(
                    "the exchange interval {} ps must be a whole number of {} fs steps that \
                     divides the save interval ({} ps)",
                    self.exchange_every_ps, self.timestep_fs, self.save_every_ps
                ));
            }
        }
        if self.frames_per_replica() == 0 {
            return bad(format!(
                "{} ns is shorter than one save interval ({} ps)",
                self.ns_per_replica, self.save_every_ps
            ));
        }
        Ok(())
    }

    /// Builds the system: an embedded one by name, else the run's `topology.pdb` in `dir`.
    pub fn build_system(&self, dir: &Path) -> Result<System> {
        let setup = Setup::from_name(&self.forcefield)?;
        Ok(System::recorded(
            &self.system,
            &dir.join("topology.pdb"),
            setup,
            self.temperature_k,
        )?)
    }
}

/// Progress of a run, passed to the caller after every frame interval.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Steps taken by one replica so far, and in all.
    pub steps: u64,
    pub total_steps: u64,
    /// Frames saved per replica so far.
    pub frames: u64,
    /// Simulated time of all replicas in this session, ns, and the wall time it took.
    pub session_ns: f64,
    pub session_wall: Duration,
}

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    /// Chunks of frames written before this checkpoint.
    chunks: usize,
    /// Whether the chunks have been merged into the final files.
    complete: bool,
    states: Vec<State>,
    /// Replica exchange only.
    #[serde(default)]
    exchange: Option<Exchange>,
    /// Wall time of the integration so far, over every session, s (0 in older runs).
    #[serde(default)]
    wall_seconds: f64,
}

#[derive(Serialize, Deserialize)]
struct RunFile {
    bgen_version: String,
    settings: MdSettings,
    n_atoms: usize,
    /// Frames saved per replica when complete, and the steps between them.
    frames_per_replica: u64,
    steps_per_frame: u64,
    minimization: Option<MinimizeSummary>,
    /// Replica exchange only: acceptance per neighbour pair and round trips (when complete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exchange: Option<ExchangeSummary>,
    /// Wall time of the integration (every session, equilibration included), s: what the
    /// run's frames cost (0 in older runs).
    #[serde(default)]
    wall_seconds: f64,
    files: serde_json::Value,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct MinimizeSummary {
    initial_energy_kj_mol: f64,
    final_energy_kj_mol: f64,
    rms_force_kj_mol_nm: f64,
    iterations: usize,
    converged: bool,
}

impl From<MinimizeReport> for MinimizeSummary {
    fn from(r: MinimizeReport) -> Self {
        MinimizeSummary {
            initial_energy_kj_mol: r.initial_energy,
            final_energy_kj_mol: r.final_energy,
            rms_force_kj_mol_nm: r.rms_force,
            iterations: r.iterations,
            converged: r.converged,
        }
    }
}

/// A run directory with its system, integrator and the replicas' states.
pub struct MdRun {
    pub dir: PathBuf,
    pub settings: MdSettings,
    pub system: System,
    /// One integrator per replica (at the replica's temperature).
    pub integrators: Vec<LangevinMiddle>,
    states: Vec<State>,
    exchange: Option<Exchange>,
    chunks: usize,
    complete: bool,
    minimization: Option<MinimizeSummary>,
    /// Wall time of the integration at the last checkpoint, s.
    wall_seconds: f64,
    /// Held while the run is open: one writer per directory.
    _lock: bgen_system::outdir::DirLock,
}

/// The settings of the finished run in `dir` and the wall time its integration took, s (0 for
/// runs made before bgen recorded it).
pub fn settings_and_wall(dir: &Path) -> Result<(MdSettings, f64)> {
    let rf: RunFile = read_json(&dir.join("run.json"))?;
    Ok((rf.settings, rf.wall_seconds))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    serde_json::from_str(&text)
        .map_err(|e| file_err(path, format!("corrupt or not a bgen file: {e}")))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("serialisable");
    Ok(write_atomic(path, text.as_bytes())?)
}

impl MdRun {
    /// Starts a new run of `system` in `dir` (created; must not hold a run yet): writes
    /// `run.json` and `topology.pdb`, minimises and draws the initial velocities.
    pub fn create(dir: &Path, settings: MdSettings, system: System) -> Result<MdRun> {
        settings.validate()?;
        if dir.join("run.json").exists() {
            return Err(file_err(
                dir,
                "already holds a run (run.json); resume it or choose another output directory",
            ));
        }
        let lock = bgen_system::outdir::lock_dir(dir)?;
        std::fs::create_dir_all(dir.join("chunks")).map_err(io_err(dir))?;
        let pdb = bgen_system::pdb::write_pdb(&system.topology, &system.positions);
        write_atomic(&dir.join("topology.pdb"), pdb.as_bytes())?;
        let mut run = MdRun::assemble(dir, settings, system, lock)?;
        run.write_run_file()?;
        run.start();
        run.write_checkpoint()?;
        Ok(run)
    }

    /// Opens the run in `dir` to continue it from its last checkpoint (or from the start when
    /// it was killed before its first checkpoint). Chunks written after that checkpoint are
    /// discarded, so every frame is kept once.
    pub fn resume(dir: &Path) -> Result<MdRun> {
        let lock = bgen_system::outdir::lock_dir(dir)?;
        let rf: RunFile = read_json(&dir.join("run.json"))?;
        rf.settings.validate()?;
        let system = rf.settings.build_system(dir)?;
        if system.n_atoms() != rf.n_atoms {
            return Err(file_err(
                &dir.join("run.json"),
                format!(
                    "records {} atoms but the system has {}",
                    rf.n_atoms,
                    system.n_atoms()
                ),
            ));
        }
        let mut run = MdRun::assemble(dir, rf.settings, system, lock)?;
        let cp_path = dir.join("checkpoint.json");
        if !cp_path.exists() {
            run.start();
            run.clear_chunks_from(0)?;
            run.write_checkpoint()?;
            return Ok(run);
        }
        let cp: Checkpoint = read_json(&cp_path)?;
        let d = 3 * run.system.n_atoms();
        if cp.states.len() != run.settings.replicas {
            return Err(file_err(
                &cp_path,
                format!(
                    "holds {} replicas, run.json {}",
                    cp.states.len(),
                    run.settings.replicas
                ),
            ));
        }
        for (r, s) in cp.states.iter().enumerate() {
            if s.x.len() != d || s.v.len() != d || s.x.iter().chain(&s.v).any(|v| !v.is_finite()) {
                return Err(file_err(
                    &cp_path,
                    format!("replica {r}: positions or velocities are malformed or non-finite"),
                ));
            }
        }
        if run.settings.is_exchange()
            && cp.exchange.as_ref().is_none_or(|e| {
                e.rungs() != run.settings.replicas
                    || e.ladder_len() != run.settings.temperatures_k.len()
            })
        {
            return Err(file_err(
                &cp_path,
                "a replica-exchange run without a matching exchange state",
            ));
        }
        run.states = cp.states;
        run.exchange = cp.exchange;
        run.chunks = cp.chunks;
        run.complete = cp.complete;
        run.wall_seconds = cp.wall_seconds;
        run.minimization = rf.minimization;
        let model = run.system.model().clone();
        run.refresh_all(&model);
        if !run.complete {
            run.clear_chunks_from(run.chunks)?;
        }
        Ok(run)
    }

    fn assemble(
        dir: &Path,
        settings: MdSettings,
        system: System,
        lock: bgen_system::outdir::DirLock,
    ) -> Result<MdRun> {
        let mass = match settings.hydrogen_mass_da {
            Some(h) => crate::hmr::repartition(&system.topology, &system.params.mass, h)?,
            None => system.params.mass.clone(),
        };
        let integrators = settings
            .replica_temperatures()
            .iter()
            .map(|&t| {
                LangevinMiddle::new(
                    &mass,
                    bgen_system::units::kt(t),
                    settings.friction_per_ps,
                    settings.dt_ps(),
                    true,
                )
            })
            .collect();
        Ok(MdRun {
            dir: dir.to_path_buf(),
            settings,
            system,
            integrators,
            states: Vec::new(),
            exchange: None,
            chunks: 0,
            complete: false,
            minimization: None,
            wall_seconds: 0.0,
            _lock: lock,
        })
    }

    /// Minimises the start structure and draws each replica's velocities from its stream.
    fn start(&mut self) {
        let model = self.system.model();
        let mut ws = model.workspace_in(self.settings.precision);
        let mut x = self.system.positions.clone();
        let opts = MinimizeOptions {
            tolerance: self.settings.minimize_tolerance,
            ..Default::default()
        };
        let report = minimize(&mut x, opts, |x, g| {
            model.energy_grad(x, g, &mut ws).total()
        });
        self.minimization = Some(report.into());
        self.states = (0..self.settings.replicas)
            .map(|r| {
                self.integrators[r].init(x.clone(), stream(self.settings.seed, r as u64), |x, g| {
                    model.energy_grad(x, g, &mut ws).total()
                })
            })
            .collect();
        let s = &self.settings;
        let (n, len) = (s.replicas, s.temperatures_k.len());
        self.exchange = s
            .is_exchange()
            .then(|| Exchange::ladders(len, s.ladders(), stream(s.seed, n as u64)));
    }

    fn write_run_file(&self) -> Result<()> {
        let rf = RunFile {
            bgen_version: env!("CARGO_PKG_VERSION").into(),
            settings: self.settings.clone(),
            n_atoms: self.system.n_atoms(),
            frames_per_replica: self.settings.frames_per_replica(),
            steps_per_frame: self.settings.steps_per_frame(),
            minimization: self.minimization,
            exchange: self
                .exchange
                .as_ref()
                .filter(|_| self.complete)
                .map(Exchange::summary),
            wall_seconds: self.wall_seconds,
            files: serde_json::json!({
                "frames.npy": "float32 (frames, atoms, 3), nm; replica-major, then time",
                "energies.npy": "float64 (frames,), potential energy, kJ/mol",
                "kinetic.npy": "float64 (frames,), kinetic energy of the half-step velocities, kJ/mol",
                "replica.npy": "int64 (frames,), replica index (with a ladder: the index of its temperature)",
                "time_ps.npy": "float64 (frames,), production time within the replica, ps",
                "topology.pdb": "the input structure (before minimisation)",
            }),
        };
        write_json(&self.dir.join("run.json"), &rf)
    }

    fn write_checkpoint(&self) -> Result<()> {
        let cp = Checkpoint {
            chunks: self.chunks,
            complete: self.complete,
            states: self.states.clone(),
            exchange: self.exchange.clone(),
            wall_seconds: self.wall_seconds,
        };
        write_json(&self.dir.join("checkpoint.json"), &cp)
    }

    fn chunk_dir(&self) -> PathBuf {
        self.dir.join("chunks")
    }

    /// Removes chunk files with index >= `first` (written after the last checkpoint).
    fn clear_chunks_from(&self, first: usize) -> Result<()> {
        let dir = self.chunk_dir();
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        for e in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let e = e.map_err(io_err(&dir))?;
            let name = e.file_name().to_string_lossy().to_string();
            let index = name.split('.').next().and_then(|s| s.parse::<usize>().ok());
            if index.is_none_or(|i| i >= first) {
                std::fs::remove_file(e.path()).map_err(io_err(&e.path()))?;
            }
        }
        Ok(())
    }

    /// Lengthens the run to `ns` per replica, more than it was set to: it continues from its
    /// last state as if it had been started this long, and a finished run's frames become its
    /// first chunk, kept bit for bit. A kill at any point leaves the run finished at its old
    /// length, open at its old length (a resume finishes it again), or open at the new one (a
    /// resume goes on); lengthening again works from each.
    pub fn lengthen(&mut self, ns: f64) -> Result<()> {
        let old = self.settings.ns_per_replica;
        if ns.is_nan() || ns <= old {
            return Err(file_err(
                &self.dir.join("run.json"),
                format!("runs {old} ns per replica; it can only be lengthened, not to {ns} ns"),
            ));
        }
        let mut longer = self.settings.clone();
        longer.ns_per_replica = ns;
        longer.validate()?;
        if self.complete {
            let frames = Frames::read(&self.dir, "")?;
            self.clear_chunks_from(0)?;
            frames.write(&self.chunk_dir(), "00000.")?;
            self.chunks = 1;
            self.complete = false;
            self.write_checkpoint()?;
        }
        self.settings = longer;
        self.write_run_file()?;
        // The old length's merged files, now the first chunk (the end writes them anew):
        // frames.npy first, so that a kill here leaves no frames.npy beside arrays of another
        // set, then their manifest.
        let files = Frames::ARRAYS
            .iter()
            .rev()
            .map(|name| format!("{name}.npy"));
        for name in files.chain(["manifest.txt".to_string()]) {
            let f = self.dir.join(name);
            if f.exists() {
                std::fs::remove_file(&f).map_err(io_err(&f))?;
            }
        }
        Ok(())
    }

    /// Whether all frames have been saved and merged.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The replicas' current states.
    pub fn states(&self) -> &[State] {
        &self.states
    }

    /// Replica exchange: acceptance per neighbour pair and round trips so far.
    pub fn exchange_summary(&self) -> Option<ExchangeSummary> {
        self.exchange.as_ref().map(Exchange::summary)
    }

    /// Result of the initial minimisation (None when unknown).
    pub fn minimization_energy(&self) -> Option<(f64, f64)> {
        self.minimization
            .map(|m| (m.initial_energy_kj_mol, m.final_energy_kj_mol))
    }

    /// Steps of one replica from start to finish.
    pub fn total_steps(&self) -> u64 {
        self.settings.equilibration_steps()
            + self.settings.frames_per_replica() * self.settings.steps_per_frame()
    }

    /// Integrates until all frames are saved, writing a chunk and a checkpoint whenever
    /// `checkpoint_every` has passed (and at the end), then merges the chunks. `stop_after`
    /// (for tests and time-limited jobs) returns early after that many chunks in this session.
    pub fn run(
        &mut self,
        checkpoint_every: Duration,
        stop_after: Option<usize>,
        mut progress: impl FnMut(Progress),
    ) -> Result<()> {
        if self.complete {
            return Ok(());
        }
        let s = &self.settings;
        let (eq_steps, per_frame, total) = (
            s.equilibration_steps(),
            s.steps_per_frame(),
            self.total_steps(),
        );
        let dt_ps = s.dt_ps();
        let model = self.system.model().clone();
        // The cached gradients as this thread pool's steps compute them (the kernel depends on
        // the replicas per thread), so that a run continues bit for bit from any checkpoint.
        self.refresh_all(&model);
        let n_rep = self.states.len();
        let start_steps = self.states[0].step;
        let t0 = Instant::now();
        let banked = self.wall_seconds;
        let mut last_cp = Instant::now();
        let mut pending = Frames::new(self.system.n_atoms());
        let mut written = 0;
        while self.states[0].step < total {
            let step = self.states[0].step;
            let n = if step < eq_steps {
                per_frame.min(eq_steps - step)
            } else {
                per_frame
            };
            self.advance(n, &model);
            for (r, st) in self.states.iter().enumerate() {
                if !st.energy.is_finite() {
                    return Err(Error::Unstable {
                        replica: r,
                        step: st.step,
                        time_ps: st.step as f64 * dt_ps,
                    });
                }
            }
            let step = self.states[0].step;
            if step > eq_steps {
                let time_ps = (step - eq_steps) as f64 * dt_ps;
                for (r, st) in self.states.iter().enumerate() {
                    let ke = self.integrators[r].kinetic_energy(&st.v);
                    pending.push(&st.x, st.energy, ke, r as i64, time_ps);
                }
            }
            progress(Progress {
                steps: step,
                total_steps: total,
                frames: step.saturating_sub(eq_steps) / per_frame,
                session_ns: (step - start_steps) as f64 * dt_ps * 1e-3 * n_rep as f64,
                session_wall: t0.elapsed(),
            });
            if last_cp.elapsed() >= checkpoint_every || step >= total {
                if !pending.is_empty() {
                    pending.sort();
                    pending.write(&self.chunk_dir(), &format!("{:05}.", self.chunks))?;
                    self.chunks += 1;
                    pending = Frames::new(self.system.n_atoms());
                }
                self.wall_seconds = banked + t0.elapsed().as_secs_f64();
                self.write_checkpoint()?;
                last_cp = Instant::now();
                written += 1;
                if stop_after.is_some_and(|m| written >= m) && step < total {
                    return Ok(());
                }
            }
        }
        self.finish()
    }

    /// Integrates every replica by `steps` steps in parallel; with a ladder, in blocks of the
    /// exchange interval, each block followed by an exchange round once the replicas sit on a
    /// whole number of intervals.
    fn advance(&mut self, steps: u64, model: &bgen_system::EnergyModel) {
        let block = match self.exchange {
            Some(_) => self.settings.steps_per_exchange(),
            None => steps,
        };
        let mut left = steps;
        let precision = self.settings.precision;
        let (per, lockstep) = self.grouping(model);
        // One evaluator per thread's group, kept over the blocks, every one with the run's
        // kernel (a smaller last group pads its lanes), so that swaps between groups carry
        // gradients of the same arithmetic.
        let mut evals: Vec<GroupEval> = match lockstep {
            true => (0..self.states.len().div_ceil(per))
                .map(|_| GroupEval::new(model, precision, per))
                .collect(),
            false => Vec::new(),
        };
        while left > 0 {
            let m = block.min(left);
            match lockstep {
                true => self
                    .states
                    .par_chunks_mut(per)
                    .zip(self.integrators.par_chunks(per))
                    .zip(evals.par_iter_mut())
                    .for_each(|((states, integrators), eval)| {
                        LangevinMiddle::run_lockstep(integrators, states, m, |x, g, e| {
                            eval.run(model, x, g, e)
                        });
                    }),
                false => self
                    .states
                    .par_iter_mut()
                    .zip(&self.integrators)
                    .for_each_init(
                        || model.workspace_in(precision),
                        |ws, (st, integrator)| {
                            integrator.run(st, m, |x, g| model.energy_grad(x, g, ws).total())
                        },
                    ),
            }
            left -= m;
            if let Some(ex) = &mut self.exchange {
                if self.states[0].step.is_multiple_of(block)
                    && self.states.iter().all(|s| s.energy.is_finite())
                {
                    let energy: Vec<f64> = self.states.iter().map(|s| s.energy).collect();
                    let beta: Vec<f64> = self.integrators.iter().map(|i| 1.0 / i.kt).collect();
                    for k in ex.round(&energy, &beta) {
                        swap_replicas(&mut self.states, &self.integrators, k);
                    }
                }
            }
        }
    }

    /// Replicas per thread (split evenly), and whether a thread's replicas step in lockstep:
    /// when they fill a register's conformation lanes (one batched evaluation a step).
    fn grouping(&self, model: &bgen_system::EnergyModel) -> (usize, bool) {
        let threads = rayon::current_num_threads().clamp(1, self.states.len().max(1));
        let per = self.states.len().div_ceil(threads).max(1);
        let lockstep = model
            .batch_lanes_filled_by(self.settings.precision, per)
            .is_some();
        (per, lockstep)
    }

    /// Recomputes every replica's energy and gradient (after loading a checkpoint) exactly as
    /// the steps compute them, so that a resumed run continues bit for bit.
    fn refresh_all(&mut self, model: &bgen_system::EnergyModel) {
        let precision = self.settings.precision;
        let (per, lockstep) = self.grouping(model);
        if !lockstep {
            return self
                .states
                .par_iter_mut()
                .zip(&self.integrators)
                .for_each_init(
                    || model.workspace_in(precision),
                    |ws, (s, integrator)| {
                        integrator.refresh(s, |x, g| model.energy_grad(x, g, ws).total())
                    },
                );
        }
        self.states.par_chunks_mut(per).for_each(|states| {
            let d = states[0].x.len();
            let k = states.len();
            let x: Vec<f64> = states.iter().flat_map(|s| s.x.iter().copied()).collect();
            let (mut g, mut e) = (vec![0.0; k * d], vec![0.0; k]);
            GroupEval::new(model, precision, per).run(model, &x, &mut g, &mut e);
            for (r, s) in states.iter_mut().enumerate() {
                s.grad = g[r * d..(r + 1) * d].to_vec();
                s.energy = e[r];
            }
        });
    }

    /// Merges the chunks into the final files, marks the run complete, removes the chunks.
    fn finish(&mut self) -> Result<()> {
        let frames = crate::dataset::load_chunks(&self.dir)?;
        let expected = self.settings.frames_per_replica() as usize * self.settings.replicas;
        if frames.len() != expected {
            let found = std::fs::read_dir(self.chunk_dir())
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .filter(|e| e.file_name().to_string_lossy().ends_with("frames.npy"))
                        .count()
                })
                .unwrap_or(0);
            return Err(file_err(
                &self.chunk_dir(),
                format!(
                    "holds {} frames, expected {expected}: {found} chunk frame files of the {} \
                     the checkpoint counts (a chunk removed or cut); the run cannot be merged",
                    frames.len(),
                    self.chunks
                ),
            ));
        }
        frames.write(&self.dir, "")?;
        self.complete = true;
        self.write_run_file()?;
        self.write_checkpoint()?;
        self.clear_chunks_from(0)
    }
}

/// The energies of a thread's group of replicas stepping in lockstep: in conformation lanes
/// when the group fills them, else (a last, smaller group) one at a time.
struct GroupEval {
    kernel: std::result::Result<bgen_system::energy::BatchWorkspace, bgen_system::Workspace>,
    out: Vec<bgen_system::Energies>,
}

impl GroupEval {
    /// The evaluator of groups of at most `per` replicas: the lanes that `per` fills, also for a
    /// smaller last group.
    fn new(model: &bgen_system::EnergyModel, precision: Precision, per: usize) -> GroupEval {
        GroupEval {
            kernel: model
                .batch_workspace_filled_by(precision, per)
                .ok_or_else(|| model.workspace_in(precision)),
            out: vec![bgen_system::Energies::default(); per],
        }
    }

    /// Energies (kJ/mol) into `e` and gradients (kJ/mol/nm) into `g` of the group's positions
    /// `x` (k x atoms x 3, nm).
    fn run(&mut self, model: &bgen_system::EnergyModel, x: &[f64], g: &mut [f64], e: &mut [f64]) {
        let out = &mut self.out[..e.len()];
        match &mut self.kernel {
            Ok(ws) => model.energy_grad_batch(x, Some(g), out, ws),
            Err(one) => {
                let d = x.len() / out.len();
                for (r, o) in out.iter_mut().enumerate() {
                    let (xr, gr) = (&x[r * d..(r + 1) * d], &mut g[r * d..(r + 1) * d]);
                    *o = model.energy_grad(xr, gr, one);
                }
            }
        }
        for (ei, o) in e.iter_mut().zip(out.iter()) {
            *ei = o.total();
        }
    }
}

/// Swaps the configurations of replicas `k` and `k + 1` (positions, forces, energies), scaling
/// the velocities to the new temperatures by sqrt(T_new / T_old); each replica keeps its random
/// stream and step count.
fn swap_replicas(states: &mut [State], integrators: &[LangevinMiddle], k: usize) {
    let (lo, hi) = states.split_at_mut(k + 1);
    let (a, b) = (&mut lo[k], &mut hi[0]);
    std::mem::swap(&mut a.x, &mut b.x);
    std::mem::swap(&mut a.v, &mut b.v);
    std::mem::swap(&mut a.grad, &mut b.grad);
    std::mem::swap(&mut a.energy, &mut b.energy);
    let up = (integrators[k + 1].kt / integrators[k].kt).sqrt();
    a.v.iter_mut().for_each(|v| *v /= up);
    b.v.iter_mut().for_each(|v| *v *= up);
}
