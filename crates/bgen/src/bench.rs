//! `bgen bench`: speed of bgen beside its peer, measured in the same run.

use anyhow::{Context, Result};
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
}

#[derive(Args)]
pub struct EnergyBench {
    /// Embedded systems to time.
    #[arg(long, value_delimiter = ',', default_value = "aldp,ala6,chignolin")]
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

fn time_batch(sys: &System, x: &[f64], threads: usize) -> Result<f64> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let mut f = vec![0.0; x.len()];
    let n = x.len() / (3 * sys.n_atoms());
    let warm = x.len().min(3 * sys.n_atoms() * 100); // 100 conformations
    pool.install(|| sys.energies_batch(&x[..warm], Some(&mut f[..warm])));
    let t0 = Instant::now();
    pool.install(|| sys.energies_batch(x, Some(&mut f)));
    Ok(n as f64 / t0.elapsed().as_secs_f64())
}

/// OpenMM's evals/s per platform (CPU 1 thread, Reference) and the largest |dE| (kJ/mol) from ours.
fn openmm_rates(
    sys: &System,
    name: &str,
    x: &[f64],
    m: usize,
    python: &str,
) -> Result<Vec<(String, f64, f64)>> {
    if m == 0
        || Command::new(python)
            .args(["-c", "import openmm"])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
    {
        return Ok(vec![]);
    }
    let dir = std::env::temp_dir().join(format!("bgen-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let pdb = dir.join(format!("{name}.pdb"));
    let pdb_text = bgen_system::systems::NAMED
        .iter()
        .find(|s| s.0 == name)
        .map(|s| s.2)
        .context("embedded system")?;
    std::fs::write(&pdb, pdb_text)?;
    let script = dir.join("openmm_energy.py");
    std::fs::write(&script, include_str!("bench/openmm_energy.py"))?;
    let d = 3 * sys.n_atoms();
    let m = m.min(x.len() / d);
    let pos = dir.join("positions.npy");
    write_npy(&pos, &[m, sys.n_atoms(), 3], &x[..m * d], false)?;
    let out = dir.join("out.json");
    let status = Command::new(python)
        .arg(&script)
        .arg(&pdb)
        .arg(sys.params.setup.name())
        .arg(&pos)
        .arg(&out)
        .status()?;
    if !status.success() {
        anyhow::bail!("the OpenMM benchmark script failed");
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
    let _ = std::fs::remove_dir_all(&dir);
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
    let BenchCommand::Energy(a) = cmd;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("energy+forces evaluations/s, batches of {} conformations (structure + 0.005 nm noise), {cores} cores", a.n);
    println!(
        "{:<10} {:>6} {:>19} {:>11} {:>11} {:>11} {:>11} {:>10} {:>10}",
        "system",
        "atoms",
        "forcefield",
        "bgen 1 thr",
        "bgen all",
        "OpenMM CPU",
        "OpenMM Ref",
        "best/1thr",
        "best/all"
    );
    for name in &a.systems {
        let sys = System::named(name, None, None)?;
        let d = 3 * sys.n_atoms();
        let noise = gaussian_noise(42, a.n * d, 0.005);
        let x: Vec<f64> = noise
            .iter()
            .enumerate()
            .map(|(k, z)| sys.positions[k % d] + z)
            .collect();
        let one = time_batch(&sys, &x, 1)?;
        let all = time_batch(&sys, &x, cores)?;
        let peer = openmm_rates(&sys, name, &x, a.openmm_n, &a.python)?;
        let rate = |p: &str| {
            peer.iter()
                .find(|r| r.0 == p)
                .map_or("-".to_string(), |r| format!("{:.0}", r.1))
        };
        let best = peer.iter().map(|r| r.1).fold(0.0, f64::max);
        let ratio = |v: f64| {
            if best > 0.0 {
                format!("{:.1}x", v / best)
            } else {
                "-".into()
            }
        };
        println!(
            "{:<10} {:>6} {:>19} {:>11.0} {:>11.0} {:>11} {:>11} {:>10} {:>10}",
            name,
            sys.n_atoms(),
            sys.params.setup.name(),
            one,
            all,
            rate("CPU"),
            rate("Reference"),
            ratio(one),
            ratio(all)
        );
        if let Some(w) = peer.iter().map(|r| r.2).reduce(f64::max) {
            println!("{:<10} OpenMM and bgen energies agree to {w:.1e} kJ/mol on the first 20 conformations", "");
        }
    }
    if a.openmm_n > 0 {
        println!("OpenMM: Python loop of setPositions + getState(energy, forces), as Boltzmann-generator codes evaluate samples; ratios against the faster platform");
    }
    Ok(())
}
