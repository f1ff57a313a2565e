//! # bgen: Boltzmann generators for molecules
//!
//! The library behind the `bgen` command. Each stage is a crate, re-exported here in the order
//! the data flows, and each crate's `stage` module holds the stage as a plain function of typed,
//! serialisable settings, which the command line, `bgen run` and the Python package call;
//! `examples/stages.rs` runs every stage on alanine dipeptide, `examples/aldp.rs` the building
//! blocks underneath.
//!
//! | stage | module | stage function (settings -> result) | CLI |
//! |---|---|---|---|
//! | the target: topology, AMBER + GBSA-OBC energies in f64 | [`system`] | [`system::SystemArgs::load`] | `bgen energy` |
//! | MD data: minimiser, Langevin, replicas, data sets | [`md`] | [`md::stage::run`], [`md::stage::split`] | `bgen md`, `bgen dataset` |
//! | proposals: TarFlow, ArBG, training (libtorch) | [`models`] | [`models::stage::run`] | `bgen train` |
//! | correction: SNIS, SMC, twisted SMC | [`sample`] | [`sample::stage::run`] | `bgen sample` |
//! | evaluation: ESS, W2s, TICA, plots, report | [`eval`] | [`eval::stage::run`] | `bgen eval` |
//!
//! Units: nm, kJ/mol inside the force field, kT at the sampler seams, ps, K.

pub mod cli;

pub use bgen_eval as eval;
pub use bgen_md as md;
pub use bgen_models as models;
pub use bgen_sample as sample;
pub use bgen_system as system;
