//! `bgen bench`: speed of bgen beside its peer, measured in the same run.

use anyhow::{Context, Result};
use bgen_system::energy::Precision;
use bgen_system::npy::write_npy;
use bgen_system::System;
use clap::{Args, Subcommand};
use std::process::Command;
use std::time::Instant;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Energy+forces evaluations/s on batches of conformations, 1 thread and all cores, beside
    /// OpenMM's Python loop (setPositions + getState) when `openmm` is importable.
    Energy(EnergyBench),
    /// MD ns/day (Langevin middle, 1 fs, no constraints), one replica on one thread and one
    /// replica per core, beside OpenMM's CPU (1 thread, all threads) and Reference platforms.
    Md(MdBench),
    /// TarFlow training step and KV-cache sampling in bgen (tch) beside the same model in
    /// PyTorch, same CPU threads, same run.
    Tarflow(TarflowBench),
    /// ArBG training step and KV-cache sampling (tokens/s) in bgen (tch) beside the same model
    /// in PyTorch, same CPU threads, same run.
    Arbg(TarflowBench),
    /// SMC throughput (particle-steps/s) of a trained run on its system, split into model time
    /// and energy time.
    Smc(SmcBench),
}

#[derive(Args)]
pub struct SmcBench {
    /// Training run (from `bgen train`).
    #[arg(long)]
    run: std::path::PathBuf,
    /// Particles.
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// Annealing levels.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    #[arg(long, default_value_t = 1)]
    threads: i32,
}

#[derive(Args)]
pub struct TarflowBench {
    /// Model preset (TarFlow: tiny, small, aldp, peptide, chignolin; ArBG: tiny, small, base,
    /// medium).
    #[arg(long, default_value = "small")]
    preset: String,
    /// Atoms: 22 is alanine dipeptide.
    #[arg(long, default_value_t = 22)]
    tokens: i64,
    /// Timed training steps.
    #[arg(long, default_value_t = 20)]
    steps: i64,
    /// Samples drawn in the sampling timing.
    #[arg(long, default_value_t = 1000)]
    samples: i64,
    #[arg(long, default_value_t = 1)]
    threads: i32,
    /// Python interpreter with torch (make / scripts/libtorch.sh put .venv's first on PATH).
    #[arg(long, default_value = "python3", env = "BGEN_TORCH_PYTHON")]
    python: String,
}

#[derive(Args)]
pub struct MdBench {
    /// Systems to time: embedded names, or one-letter sequences in capitals (zwitterions built
    /// as `bgen build` builds them).
    #[arg(long, value_delimiter = ',', default_value = "aldp,KW,ala6,chignolin")]
    systems: Vec<String>,
    /// Seconds of timing per measurement.
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// Skip OpenMM.
    #[arg(long)]
    no_openmm: bool,
    /// Python interpreter with `openmm` installed.
    #[arg(long, default_value = "python3", env = "BGEN_PYTHON")]
    python: String,
}

#[derive(Args)]
pub struct EnergyBench {
    /// Systems to time: embedded names, or one-letter sequences in capitals (zwitterions built
    /// as `bgen build` builds them).
    #[arg(long, value_delimiter = ',', default_value = "aldp,KW,ala6,chignolin")]
    systems: Vec<String>,
    /// Conformations per batch for bgen.
    #[arg(long, default_value_t = 10_000)]
    n: usize,
    /// Conformations for OpenMM (a subset of the same batch; its loop is slow). 0 skips OpenMM.
    #[arg(long, default_value_t = 2_000)]
    openmm_n: usize,
    /// Python interpreter with `openmm` installed.
    #[arg(long, default_value = "python3", env = "BGEN_PYTHON")]
    python: String,
}

/// Deterministic Gaussian noise (xorshift64* + Box-Muller).
fn gaussian_noise(seed: u64, n: usize, sigma: f64) -> Vec<f64> {
    let mut s = seed.max(1);
    let mut next = move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        ((s.wrapping_mul(0x2545F4914F6CDD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| sigma * (-2.0 * next().ln()).sqrt() * (std::f64::consts::TAU * next()).cos())
        .collect()
}

/// Evaluations per second (energy and forces) of the batch `x` on `threads` threads through
/// [`System::energies_batch_in`] (conformation lanes); the best of [`BENCH_REPEATS`] passes.
fn time_batch(sys: &System, x: &[f64], threads: usize, precision: Precision) -> Result<f64> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let mut f = vec![0.0; x.len()];
    let n = x.len() / (3 * sys.n_atoms());
    let warm = x.len().min(3 * sys.n_atoms() * 100); // 100 conformations
    pool.install(|| sys.energies_batch_in(&x[..warm], Some(&mut f[..warm]), precision));
    Ok(best_rate(n, || {
        pool.install(|| sys.energies_batch_in(x, Some(&mut f), precision));
    }))
}

/// Evaluations per second (energy and forces) of the batch `x` on one thread, one conformation
/// at a time (partner atoms in SIMD lanes: what one MD replica runs); the best of
/// [`BENCH_REPEATS`] passes.
fn time_one(sys: &System, x: &[f64], precision: Precision) -> f64 {
    let m = sys.model();
    let d = 3 * sys.n_atoms();
    let mut ws = m.workspace_in(precision);
    let mut g = vec![0.0; d];
    for xi in x.chunks(d).take(100) {
        m.energy_grad(xi, &mut g, &mut ws);
    }
    best_rate(x.len() / d, || {
        for xi in x.chunks(d) {
            m.energy_grad(xi, &mut g, &mut ws);
        }
    })
}

/// Passes of each energy measurement; the fastest counts (the shared VMs this runs on slow
/// down at random by up to half, and only ever slow down).
const BENCH_REPEATS: usize = 3;

/// `n` items per pass of `f`, per second, at the fastest of [`BENCH_REPEATS`] passes.
fn best_rate(n: usize, mut f: impl FnMut()) -> f64 {
    (0..BENCH_REPEATS)
        .map(|_| {
            let t0 = Instant::now();
            f();
            n as f64 / t0.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

/// OpenMM's evals/s per platform (CPU 1 thread, Reference) and the largest |dE| (kJ/mol) from ours.
fn openmm_rates(
    sys: &System,
    name: &str,
    x: &[f64],
    m: usize,
    python: &str,
) -> Result<Vec<(String, f64, f64)>> {
    if m == 0 || !has_openmm(python) {
        return Ok(vec![]);
    }
    let (dir, pdb, script) = scratch(
        name,
        "openmm_energy.py",
        include_str!("bench/openmm_energy.py"),
    )?;
    let d = 3 * sys.n_atoms();
    let m = m.min(x.len() / d);
    let pos = dir.join("positions.npy");
    write_npy(&pos, &[m, sys.n_atoms(), 3], &x[..m * d], false)?;
    let setup = std::ffi::OsStr::new(sys.params.setup.name());
    let v = run_peer(
        python,
        &dir,
        &script,
        [pdb.as_os_str(), setup, pos.as_os_str()],
    )?;
    let mut rates = Vec::new();
    for (plat, r) in v["platforms"].as_object().context("platforms")? {
        let rate = r["evals_per_s"].as_f64().unwrap_or(0.0);
        let mut worst: f64 = 0.0;
        for (c, e) in r["energies"]
            .as_array()
            .context("energies")?
            .iter()
            .enumerate()
        {
            let ours = sys.energy(&x[c * d..(c + 1) * d]).total();
            worst = worst.max((ours - e.as_f64().unwrap_or(f64::NAN)).abs());
        }
        rates.push((plat.clone(), rate, worst));
    }
    Ok(rates)
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Energy(a) => bench_energy(a),
        BenchCommand::Md(a) => bench_md(a),
        BenchCommand::Tarflow(a) => bench_tarflow(a),
        BenchCommand::Arbg(a) => bench_arbg(a),
        BenchCommand::Smc(a) => bench_smc(a),
    }
}

fn bench_smc(a: SmcBench) -> Result<()> {
    // As `bgen sample`: one model copy per thread, libtorch single-threaded in each.
    tch::set_num_threads(1);
    let run = bgen_sample::stage::load_run(
        &a.run,
        tch::Device::Cpu,
        256,
        true,
        1.0,
        a.threads.max(1) as usize,
    )?;
    let (sys, proposal) = (&run.sys, run.adjusted(bgen_sample::ComForm::Gaussian));
    let o = bgen_sample::SmcOptions {
        steps: a.steps,
        step_size: 1e-6,
        mala: true,
        ..Default::default()
    };
    let t0 = Instant::now();
    let r = bgen_sample::smc(&proposal, sys, a.n, o)?;
    let wall = t0.elapsed().as_secs_f64();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    bgen_system::show!(
        "SMC (MALA) on {} ({} atoms): {} particles x {} levels in {wall:.2} s = {:.0} particle-steps/s; model {:.2} s ({:.0}%), energy {:.2} s ({:.0}%, rayon on {cores} cores), rest {:.2} s",
        sys.name,
        sys.n_atoms(),
        a.n,
        a.steps,
        r.particle_steps_per_s,
        r.model_seconds,
        100.0 * r.model_seconds / wall,
        r.energy_seconds,
        100.0 * r.energy_seconds / wall,
        wall - r.model_seconds - r.energy_seconds
    );
    Ok(())
}

fn bench_tarflow(a: TarflowBench) -> Result<()> {
    let (model, tc) = bgen_models::stage::preset(&a.preset, a.tokens)?;
    let (t, step_s) = timed_trainer(model.clone(), tc.clone(), &a);
    let (bgen_sps, workers) = sampling_rate(&t, &a);
    bgen_system::show!(
        "TarFlow {} ({} wide, {} blocks x {} layers, {} tokens), batch {}, {} thread(s)",
        a.preset,
        model.width,
        model.blocks,
        model.layers,
        a.tokens,
        tc.batch_size,
        a.threads
    );
    bgen_system::show!(
        "bgen (tch): training step {:.1} ms, sampling {:.0} samples/s with log q (KV cache, {} worker(s))",
        step_s * 1e3,
        bgen_sps,
        workers
    );
    let args = [
        a.tokens,
        model.width,
        model.blocks,
        model.layers,
        model.head_dim,
        tc.batch_size,
        a.steps,
        a.samples,
        a.threads as i64,
    ];
    if let Some(v) = torch_peer(
        &a.python,
        "torch_tarflow",
        include_str!("bench/torch_tarflow.py"),
        &args,
    )? {
        print_ratios(&v, step_s, bgen_sps, "samples_per_s", "samples/s");
    }
    Ok(())
}

fn bench_arbg(a: TarflowBench) -> Result<()> {
    let (model, tc) = bgen_models::stage::arbg_preset(&a.preset, a.tokens)?;
    let d = model.dim();
    let (t, step_s) = timed_trainer(model.clone(), tc.clone(), &a);
    let (samples_per_s, workers) = sampling_rate(&t, &a);
    let bgen_tps = samples_per_s * d as f64;
    bgen_system::show!(
        "ArBG {} ({} wide x {} layers, {} bins, {} tokens), batch {}, {} thread(s)",
        a.preset,
        model.width,
        model.layers,
        model.bins,
        d,
        tc.batch_size,
        a.threads
    );
    bgen_system::show!(
        "bgen (tch): training step {:.1} ms, sampling {:.0} tokens/s (KV cache, {} samples, {} worker(s))",
        step_s * 1e3,
        bgen_tps,
        a.samples,
        workers
    );
    let args = [
        a.tokens,
        model.width,
        model.layers,
        model.head_dim,
        model.bins,
        tc.batch_size,
        a.steps,
        a.samples,
        a.threads as i64,
    ];
    if let Some(v) = torch_peer(
        &a.python,
        "torch_arbg",
        include_str!("bench/torch_arbg.py"),
        &args,
    )? {
        print_ratios(&v, step_s, bgen_tps, "tokens_per_s", "tokens/s");
    }
    Ok(())
}

/// Samples per second (log q included) of the trained model as `bgen sample --threads` runs
/// it: a copy per thread, each on its own batches of 256, libtorch single-threaded; best of 3
/// draws of `a.samples` after a warm-up. Also returns the number of workers.
fn sampling_rate(t: &bgen_models::train::Trainer, a: &TarflowBench) -> (f64, usize) {
    tch::set_num_threads(1);
    let workers = a.threads.max(1) as usize;
    let pooled = bgen_models::proposal::Pooled::new(
        t.copies(workers, true),
        &t.state.normalizer,
        t.state.internal.as_ref(),
        tch::Device::Cpu,
        256,
        1.0,
    );
    let pool = pooled.proposal();
    let _ = pool.sample(8, 0);
    let n = a.samples as usize;
    (n as f64 / best_of_3(|| drop(pool.sample(n, 1))), workers)
}

/// Seconds of the fastest of 3 runs of `f` (the PyTorch peers time their sampling the same
/// way), which keeps a shared machine's noise out of the ratios.
fn best_of_3(mut f: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Runs a PyTorch peer script with integer arguments and an output path; its JSON result, or
/// None (with a message) when no Python with torch is at hand.
fn torch_peer(
    python: &str,
    name: &str,
    script: &str,
    args: &[i64],
) -> Result<Option<serde_json::Value>> {
    let dir = std::env::temp_dir().join(format!("bgen-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.py"));
    std::fs::write(&path, script)?;
    let out = dir.join("out.json");
    let status = Command::new(python)
        .arg(&path)
        .args(args.iter().map(|v| v.to_string()))
        .arg(&out)
        .status();
    let v = match status {
        Ok(s) if s.success() => Some(serde_json::from_str(&std::fs::read_to_string(&out)?)?),
        _ => {
            bgen_system::show!(
                "PyTorch peer not run ({python} with torch not found; run under make or scripts/libtorch.sh)"
            );
            None
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    Ok(v)
}

/// Prints a PyTorch peer's training step and sampling rate (`key`, in `unit`) and bgen's ratios.
fn print_ratios(v: &serde_json::Value, step_s: f64, rate: f64, key: &str, unit: &str) {
    let ps = v["train_step_s"].as_f64().unwrap_or(f64::NAN);
    let pr = v[key].as_f64().unwrap_or(f64::NAN);
    bgen_system::show!(
        "PyTorch {}: training step {:.1} ms, sampling {pr:.0} {unit} (KV cache)",
        v["torch"].as_str().unwrap_or("?"),
        ps * 1e3,
    );
    bgen_system::show!(
        "ratio bgen / PyTorch: training {:.2}x, sampling {:.2}x (higher is faster)",
        ps / step_s,
        rate / pr
    );
}

/// A fresh CPU trainer of `model` for `a.tokens` atoms (unit std, a schedule long enough to
/// stay at its peak) with `a.threads` data-parallel workers, and its seconds per training step:
/// `a.steps` timed steps on a fixed random data set after 3 warm-up steps.
fn timed_trainer(
    model: impl Into<bgen_models::ModelConfig>,
    mut tc: bgen_models::train::OptimConfig,
    a: &TarflowBench,
) -> (bgen_models::train::Trainer, f64) {
    let (atoms, steps, workers) = (a.tokens, a.steps, a.threads.max(1) as usize);
    use bgen_models::data::Normalizer;
    use tch::{Device, Kind, Tensor};
    tc.steps = 1_000_000;
    let norm = Normalizer {
        n_atoms: atoms,
        std: 1.0,
    };
    let mut t = bgen_models::train::Trainer::new(model, tc, norm, Device::Cpu);
    // As `bgen train --threads`: data-parallel workers, libtorch single-threaded in each.
    tch::set_num_threads(1);
    t.set_workers(workers);
    let (d, b) = (t.state.model.dim(), t.state.train.batch_size);
    let data = Tensor::randn([4096, d], (Kind::Float, Device::Cpu));
    let batch = |i: i64| {
        let idx = (Tensor::arange(b, (Kind::Int64, Device::Cpu)) * 7 + i * b).remainder(4096);
        data.index_select(0, &idx)
    };
    for i in 0..3 {
        t.step(&batch(i));
    }
    let t0 = Instant::now();
    for i in 0..steps {
        t.step(&batch(i));
    }
    let step_s = t0.elapsed().as_secs_f64() / steps as f64;
    (t, step_s)
}

fn has_openmm(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import openmm"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The CPU clock in GHz as /proc/cpuinfo reports it (2.5 where it cannot be read).
fn cpu_ghz() -> f64 {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("cpu MHz"))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .map_or(2.5, |mhz| mhz / 1000.0)
}

/// The force field of peptides timed by their sequence: `bgen build`'s and the many-peptide
/// data sets' default.
const BUILT_SETUP: bgen_system::Setup = bgen_system::Setup::Amber14Obc1;

/// A system to time: an embedded one by name, or a zwitterionic peptide by its one-letter
/// sequence in capitals (e.g. KW), built as `bgen build` builds it.
fn bench_system(name: &str) -> Result<System> {
    if bgen_system::systems::NAMED.iter().any(|s| s.0 == name) {
        return Ok(System::named(name, None, None)?);
    }
    let mut sys = bgen_system::peptide::build(name, bgen_system::peptide::Caps::None, BUILT_SETUP)?;
    sys.name = name.to_string();
    Ok(sys)
}

/// The PDB text of [`bench_system`]'s `name`.
fn bench_pdb(name: &str) -> Result<String> {
    if let Some(s) = bgen_system::systems::NAMED.iter().find(|s| s.0 == name) {
        return Ok(s.2.to_string());
    }
    Ok(bgen_system::peptide::build_pdb(
        name,
        bgen_system::peptide::Caps::None,
        BUILT_SETUP,
    )?)
}

/// Writes the PDB of `name` and `script` into a fresh temporary directory.
fn scratch(
    name: &str,
    script_name: &str,
    script: &str,
) -> Result<(std::path::PathBuf, std::path::PathBuf, std::path::PathBuf)> {
    let dir = std::env::temp_dir().join(format!("bgen-bench-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let pdb = dir.join(format!("{name}.pdb"));
    std::fs::write(&pdb, bench_pdb(name)?)?;
    let path = dir.join(script_name);
    std::fs::write(&path, script)?;
    Ok((dir, pdb, path))
}

/// Runs the peer's `script` in `dir` with `python`, `args` and an output path last, and returns
/// the JSON it wrote there; `dir` is removed after.
fn run_peer<A: AsRef<std::ffi::OsStr>>(
    python: &str,
    dir: &std::path::Path,
    script: &std::path::Path,
    args: impl IntoIterator<Item = A>,
) -> Result<serde_json::Value> {
    let out = dir.join("out.json");
    let status = Command::new(python)
        .arg(script)
        .args(args)
        .arg(&out)
        .status()?;
    if !status.success() {
        anyhow::bail!("the peer's benchmark script {} failed", script.display());
    }
    let v = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
    let _ = std::fs::remove_dir_all(dir);
    Ok(v)
}

/// How the bench integrates: 1 fs steps with the force field's masses (OpenMM's setting in
/// the same run), or `bgen md`'s default dynamics.
#[derive(Clone, Copy, PartialEq)]
enum Dynamics {
    Plain,
    Default,
}

/// bgen MD speed: `replicas` replicas on as many threads for about `seconds`; simulated ns/day
/// of all replicas together.
fn md_rate(
    sys: &System,
    replicas: usize,
    seconds: f64,
    precision: Precision,
    dynamics: Dynamics,
) -> Result<f64> {
    use bgen_md::langevin::{stream, LangevinMiddle};
    let (dt_fs, mass) = match dynamics {
        Dynamics::Plain => (1.0, sys.params.mass.clone()),
        Dynamics::Default => {
            let d = bgen_md::MdSettings::new(&sys.name, sys.params.setup);
            let mass = match d.hydrogen_mass_da {
                Some(h) => bgen_md::hmr::repartition(&sys.topology, &sys.params.mass, h)?,
                None => sys.params.mass.clone(),
            };
            (d.timestep_fs, mass)
        }
    };
    let model = sys.model();
    let mut x = sys.positions.clone();
    let mut ws = model.workspace_in(precision);
    bgen_md::minimize(&mut x, Default::default(), |x, g| {
        model.energy_grad(x, g, &mut ws).total()
    });
    let lm = LangevinMiddle::new(&mass, sys.kt(), 1.0, dt_fs * 1e-3, true);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(replicas)
        .build()?;
    let steps: Vec<u64> = pool.install(|| {
        use rayon::prelude::*;
        (0..replicas)
            .into_par_iter()
            .map(|r| {
                let mut ws = model.workspace_in(precision);
                let mut f = |x: &[f64], g: &mut [f64]| model.energy_grad(x, g, &mut ws).total();
                let mut s = lm.init(x.clone(), stream(1, r as u64), &mut f);
                lm.run(&mut s, 500, &mut f);
                let t0 = Instant::now();
                let mut n = 0;
                while t0.elapsed().as_secs_f64() < seconds {
                    lm.run(&mut s, 500, &mut f);
                    n += 500;
                }
                (n as f64 / t0.elapsed().as_secs_f64()) as u64
            })
            .collect()
    });
    Ok(steps.iter().sum::<u64>() as f64 * dt_fs * 1e-6 * 86400.0)
}

/// bgen MD speed on one thread with as many replicas as `precision`'s conformation lanes hold,
/// stepped in lockstep (one batched evaluation a step, as `bgen md` runs many replicas), about
/// `seconds`, plain dynamics (1 fs); simulated ns/day of all replicas together.
fn md_lockstep_rate(sys: &System, seconds: f64, precision: Precision) -> Result<f64> {
    use bgen_md::langevin::{stream, LangevinMiddle};
    let model = sys.model();
    let mut x = sys.positions.clone();
    let mut ws = model.workspace_in(precision);
    bgen_md::minimize(&mut x, Default::default(), |x, g| {
        model.energy_grad(x, g, &mut ws).total()
    });
    let mut bws = model.batch_workspace(precision);
    let k = bws.lanes();
    let lm = LangevinMiddle::new(&sys.params.mass, sys.kt(), 1.0, 1e-3, true);
    let ints = vec![lm.clone(); k];
    let mut f = |x: &[f64], g: &mut [f64]| model.energy_grad(x, g, &mut ws).total();
    let mut states: Vec<_> = (0..k)
        .map(|r| lm.init(x.clone(), stream(1, r as u64), &mut f))
        .collect();
    let mut out = vec![bgen_system::Energies::default(); k];
    let mut batch = |x: &[f64], g: &mut [f64], e: &mut [f64]| {
        model.energy_grad_batch(x, Some(g), &mut out, &mut bws);
        for (ei, o) in e.iter_mut().zip(&out) {
            *ei = o.total();
        }
    };
    LangevinMiddle::run_lockstep(&ints, &mut states, 200, &mut batch);
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed().as_secs_f64() < seconds {
        LangevinMiddle::run_lockstep(&ints, &mut states, 200, &mut batch);
        n += 200;
    }
    let steps_per_s = (n * k as u64) as f64 / t0.elapsed().as_secs_f64();
    Ok(steps_per_s * 1e-6 * 86400.0)
}

/// `a / b` as "2.5x", or "-" without a peer rate.
fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.1}x", a / b)
    } else {
        "-".into()
    }
}

/// OpenMM's MD ns/day on `sys` by platform ("CPU 1 thread", "CPU n threads", "Reference"),
/// from the bundled script run with `a.python`.
fn openmm_md_rates(
    sys: &System,
    name: &str,
    a: &MdBench,
    cores: usize,
) -> Result<std::collections::BTreeMap<String, f64>> {
    let (dir, pdb, script) = scratch(name, "openmm_md.py", include_str!("bench/openmm_md.py"))?;
    let args = [
        pdb.into_os_string(),
        sys.params.setup.name().into(),
        sys.temperature.to_string().into(),
        a.seconds.to_string().into(),
        cores.to_string().into(),
    ];
    let v = run_peer(&a.python, &dir, &script, args)?;
    let mut peer = std::collections::BTreeMap::new();
    for (k, r) in v["platforms"].as_object().context("platforms")? {
        peer.insert(k.clone(), r["ns_per_day"].as_f64().unwrap_or(0.0));
    }
    Ok(peer)
}

/// The pair kernels' GFLOP/s at the evaluation `rates` (double, mixed, double lanes, mixed
/// lanes; per second, 1 thread) and their share of the core's peak with `lanes` (f64, f32).
fn show_flops(sys: &System, rates: [f64; 4], lanes: [f64; 2]) {
    let (flops, pairs) = sys.model().pair_flops(&sys.positions);
    let ghz = cpu_ghz();
    let gflops = |rate: f64| rate * flops * pairs as f64 * 1e-9;
    let peak = |lanes: f64| 2.0 * 2.0 * lanes * ghz; // 2 FMA pipes x lanes x 2 flops
    let share = |rate: f64, lanes: f64| {
        format!(
            "{:.1} GFLOP/s ({:.0}% of {:.0})",
            gflops(rate),
            100.0 * gflops(rate) / peak(lanes),
            peak(lanes)
        )
    };
    let [double, mixed, dbl_lanes, mix_lanes] = rates;
    bgen_system::show!(
        "{:<10} pair terms: {flops:.0} flops/pair x {pairs} pairs; 1 thread: double {}, mixed {}, double lanes {}, mixed lanes {}",
        "",
        share(double, lanes[0]),
        share(mixed, lanes[1]),
        share(dbl_lanes, lanes[0]),
        share(mix_lanes, lanes[1])
    );
}

fn bench_md(a: MdBench) -> Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let openmm = !a.no_openmm && has_openmm(&a.python);
    let d = bgen_md::MdSettings::new("", bgen_system::Setup::Amber14Obc1);
    bgen_system::show!("MD ns/day: Langevin middle 1/ps, 1 fs, no constraints, {cores} cores, ~{} s per measurement", a.seconds);
    bgen_system::show!("bgen on 1 thread in each precision (reference = the scalar f64 path), mixed on all cores (one replica per core), and on 1 thread as many replicas as the mixed conformation lanes hold in lockstep (lanes); OpenMM's platforms");
    bgen_system::show!(
        "default 1: bgen md's default dynamics on 1 thread ({} precision, {} fs steps, hydrogens {} Da; the same ensemble), dflt/ref its ns/day over the scalar path's at 1 fs",
        d.precision.name(),
        d.timestep_fs,
        d.hydrogen_mass_da.map_or("as the force field".into(), |h| h.to_string())
    );
    bgen_system::show!(
        "{:<10} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "system",
        "atoms",
        "ref 1",
        "double 1",
        "mixed 1",
        "lanes 1",
        "mixed all",
        "default 1",
        "OMM CPU1",
        "OMM CPUn",
        "OMM Ref",
        "dbl/ref",
        "mix/ref",
        "lane/ref",
        "dflt/ref",
        "mix/OMM1",
        "all/OMMn"
    );
    for name in &a.systems {
        let sys = bench_system(name)?;
        let rate =
            |threads: usize, p: Precision, dy: Dynamics| md_rate(&sys, threads, a.seconds, p, dy);
        let reference = rate(1, Precision::Reference, Dynamics::Plain)?;
        let double = rate(1, Precision::Double, Dynamics::Plain)?;
        let one = rate(1, Precision::Mixed, Dynamics::Plain)?;
        let lanes = md_lockstep_rate(&sys, a.seconds, Precision::Mixed)?;
        let all = rate(cores, Precision::Mixed, Dynamics::Plain)?;
        let default = rate(1, d.precision, Dynamics::Default)?;
        let peer = match openmm {
            true => openmm_md_rates(&sys, name, &a, cores)?,
            false => Default::default(),
        };
        let get = |k: &str| peer.get(k).copied();
        let cpu1 = get("CPU 1 thread");
        let cpu_all = get(&format!("CPU {cores} threads"));
        let omm_ref = get("Reference");
        let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
        // Per core: bgen on one thread against the faster OpenMM platform on one thread.
        let best1 = [cpu1, omm_ref].into_iter().flatten().fold(0.0, f64::max);
        let best_all = [cpu_all, omm_ref].into_iter().flatten().fold(0.0, f64::max);
        bgen_system::show!(
            "{:<10} {:>5} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
            name,
            sys.n_atoms(),
            reference,
            double,
            one,
            lanes,
            all,
            default,
            fmt(cpu1),
            fmt(cpu_all),
            fmt(omm_ref),
            ratio(double, reference),
            ratio(one, reference),
            ratio(lanes, reference),
            ratio(default, reference),
            ratio(one, best1),
            ratio(all, best_all)
        );
    }
    if openmm {
        bgen_system::show!("mix/OMM1: bgen mixed on 1 thread / the faster OpenMM platform on 1 thread; all/OMMn: bgen mixed one replica per core / the faster of OpenMM CPU on all threads and Reference");
    }
    Ok(())
}

fn bench_energy(a: EnergyBench) -> Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let isa = bgen_system::energy::Isa::detect();
    let (f64_lanes, f32_lanes) = match isa {
        bgen_system::energy::Isa::Avx512 => (8.0, 16.0),
        _ => (4.0, 8.0),
    };
    bgen_system::show!("energy+forces evaluations/s, batches of {} conformations (structure + 0.005 nm noise), {cores} cores, {isa:?} lanes", a.n);
    bgen_system::show!("1 thread: the scalar f64 path (ref), one conformation at a time with partner atoms in lanes (double, mixed), and the batch in conformation lanes (lanes: one conformation per lane; all: on every core); OpenMM's platforms");
    bgen_system::show!(
        "{:<10} {:>5} {:>19} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8}",
        "system",
        "atoms",
        "forcefield",
        "ref 1",
        "double 1",
        "mixed 1",
        "dbl lanes",
        "mix lanes",
        "mix all",
        "OMM CPU",
        "OMM Ref",
        "mix/ref",
        "lane/ref",
        "lane/mix",
        "all/OMM"
    );
    for name in &a.systems {
        let sys = bench_system(name)?;
        let d = 3 * sys.n_atoms();
        let noise = gaussian_noise(42, a.n * d, 0.005);
        let x: Vec<f64> = noise
            .iter()
            .enumerate()
            .map(|(k, z)| sys.positions[k % d] + z)
            .collect();
        let reference = time_one(&sys, &x, Precision::Reference);
        let double = time_one(&sys, &x, Precision::Double);
        let mixed = time_one(&sys, &x, Precision::Mixed);
        let dbl_lanes = time_batch(&sys, &x, 1, Precision::Double)?;
        let lanes = time_batch(&sys, &x, 1, Precision::Mixed)?;
        let all = time_batch(&sys, &x, cores, Precision::Mixed)?;
        let peer = openmm_rates(&sys, name, &x, a.openmm_n, &a.python)?;
        let rate = |p: &str| {
            peer.iter()
                .find(|r| r.0 == p)
                .map_or("-".to_string(), |r| format!("{:.0}", r.1))
        };
        let best = peer.iter().map(|r| r.1).fold(0.0, f64::max);
        bgen_system::show!(
            "{:<10} {:>5} {:>19} {:>8.0} {:>8.0} {:>8.0} {:>9.0} {:>9.0} {:>9.0} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8}",
            name,
            sys.n_atoms(),
            sys.params.setup.name(),
            reference,
            double,
            mixed,
            dbl_lanes,
            lanes,
            all,
            rate("CPU"),
            rate("Reference"),
            ratio(mixed, reference),
            ratio(lanes, reference),
            ratio(lanes, mixed),
            ratio(all, best)
        );
        show_flops(
            &sys,
            [double, mixed, dbl_lanes, lanes],
            [f64_lanes, f32_lanes],
        );
        if let Some(w) = peer.iter().map(|r| r.2).reduce(f64::max) {
            bgen_system::show!("{:<10} OpenMM and bgen energies agree to {w:.1e} kJ/mol on the first 20 conformations", "");
        }
    }
    bgen_system::show!(
        "flops: the pair kernels' operations counted by running them on a counting number type (an FMA is 2, a division or square root 1, exp and ln their polynomials); GFLOP/s over the whole evaluation (bonded terms included); peak: 2 FMA pipes x {f64_lanes} (f64) or {f32_lanes} (f32) lanes x 2 at {:.2} GHz (/proc/cpuinfo)",
        cpu_ghz()
    );
    if a.openmm_n > 0 {
        bgen_system::show!("OpenMM: Python loop of setPositions + getState(energy, forces), as Boltzmann-generator codes evaluate samples; ratios against the faster platform");
    }
    Ok(())
}
