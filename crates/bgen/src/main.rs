//! `bgen`: Boltzmann generators for molecules, from the command line.

mod args;
mod bench;
mod energy;
mod eval;
mod md;
mod pipeline;
mod sample;
mod train;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bgen",
    version,
    about = "Boltzmann generators for molecules: AMBER + GBSA-OBC energies exact to OpenMM, samplers and metrics"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// The main job: MD data, training, sampling (SNIS + SMC), evaluation and a report, from one
    /// TOML of settings; every stage resumable and skipped when done.
    Run(pipeline::RunArgs),
    /// Potential energy (by term) and forces of conformations.
    Energy(energy::EnergyArgs),
    /// Langevin molecular dynamics that writes training data (resumable).
    Md(md::MdArgs),
    /// Data sets made from runs.
    #[command(subcommand)]
    Dataset(md::DatasetCommand),
    /// Train a proposal model (TarFlow or ArBG) by maximum likelihood on MD frames (resumable).
    Train(train::TrainArgs),
    /// Sample a trained model: proposal, SNIS, SMC or twisted SMC toward the Boltzmann density.
    Sample(sample::SampleArgs),
    /// Metrics (ESS, energy / torus / TICA Wasserstein, basins), plots and an HTML report of
    /// samples against reference MD.
    Eval(eval::EvalArgs),
    /// List the embedded molecular systems.
    Systems,
    /// Benchmarks that print bgen's speed beside its peer measured in the same run.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Runs one command.
pub(crate) fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(a) => pipeline::run(a),
        Command::Energy(a) => energy::run(a),
        Command::Md(a) => md::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Train(a) => train::run(a),
        Command::Sample(a) => sample::run(a),
        Command::Dataset(c) => md::dataset(c),
        Command::Systems => {
            for (name, what, _, setup) in bgen_system::systems::NAMED {
                let s = bgen_system::Setup::from_name(setup).expect("embedded setup");
                println!(
                    "{name:<10} {what:<45} {setup} at {} K",
                    s.default_temperature()
                );
            }
            Ok(())
        }
        Command::Bench(b) => bench::run(b),
    }
}

/// glibc's allocator returns large freed blocks to the OS and takes them back with fresh
/// page faults on every training step (5-8% of the time in `perf`). Keep them instead: blocks up
/// to 32 MB from the heap, the heap trimmed only past 1 GB, and grown 256 MB at a time.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_TOP_PAD: i32 = -2;
    const M_MMAP_THRESHOLD: i32 = -3;
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
        mallopt(M_TOP_PAD, 256 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() {
    tune_allocator();
    let cli = Cli::parse();
    if let Err(e) = dispatch(cli.command) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
