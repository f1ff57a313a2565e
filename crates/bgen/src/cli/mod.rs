//! The command line: a thin layer over the stages, each of which lives in its own crate as a
//! function of typed, serialisable settings ([`bgen_md::stage`], [`bgen_models::stage`],
//! [`bgen_sample::stage`], [`bgen_eval::stage`]); here are only the commands that chain or
//! measure them (`bgen run`, `bgen bench`) and `bgen energy`.

pub mod bench;
pub mod docs;
pub mod energy;
pub mod pipeline;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bgen",
    version,
    about = "Boltzmann generators for molecules: AMBER + GBSA-OBC energies exact to OpenMM, samplers and metrics"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// The main job: MD data, training, sampling (SNIS + SMC), evaluation and a report, from one
    /// TOML of settings; every stage resumable and skipped when done.
    Run(pipeline::RunArgs),
    /// Potential energy (by term) and forces of conformations.
    Energy(energy::EnergyArgs),
    /// A peptide from its sequence (ideal geometry from the force field, L chirality,
    /// minimised) as a PDB that every stage accepts.
    Build(bgen_md::stage::BuildArgs),
    /// Langevin molecular dynamics that writes training data (resumable).
    Md(bgen_md::MdArgs),
    /// Data sets made from runs.
    #[command(subcommand)]
    Dataset(bgen_md::stage::DatasetCommand),
    /// Train a proposal model (TarFlow or ArBG) by maximum likelihood on MD frames (resumable).
    Train(bgen_models::TrainArgs),
    /// Sample a trained model: proposal, SNIS, SMC or twisted SMC toward the Boltzmann density.
    Sample(bgen_sample::SampleArgs),
    /// Metrics (ESS, energy / torus / TICA Wasserstein, basins), plots and an HTML report of
    /// samples against reference MD.
    Eval(bgen_eval::EvalArgs),
    /// List the embedded molecular systems.
    Systems,
    /// Benchmarks that print bgen's speed beside its peer measured in the same run.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Write the command-line and `bgen run` TOML references (docs/cli.md, docs/config.md)
    /// from these definitions.
    Docs(docs::DocsArgs),
}

/// Runs one command.
pub fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(a) => pipeline::run(a),
        Command::Energy(a) => energy::run(a),
        Command::Build(a) => {
            let r = bgen_md::stage::build(a)?;
            bgen_system::say!(
                "{}: {} atoms, {:.3} -> {:.3} kJ/mol (RMS force {:.2} kJ/mol/nm)",
                r.out.display(),
                r.atoms,
                r.initial_energy_kj_mol,
                r.energy_kj_mol,
                r.rms_force
            );
            Ok(())
        }
        Command::Md(a) => bgen_md::stage::run(a).map(|_| ()).map_err(Into::into),
        Command::Eval(a) => bgen_eval::stage::run(a).map(|_| ()).map_err(Into::into),
        Command::Train(a) => bgen_models::stage::run(a).map(|_| ()).map_err(Into::into),
        Command::Sample(a) => bgen_sample::stage::run(a).map(|_| ()).map_err(Into::into),
        Command::Dataset(c) => bgen_md::stage::dataset(c).map_err(Into::into),
        Command::Systems => {
            for (name, what, _, setup) in bgen_system::systems::NAMED {
                let s = bgen_system::Setup::from_name(setup).expect("embedded setup");
                bgen_system::show!(
                    "{name:<10} {what:<45} {setup} at {} K",
                    s.default_temperature()
                );
            }
            Ok(())
        }
        Command::Bench(b) => bench::run(b),
        Command::Docs(a) => docs::run(a),
    }
}
