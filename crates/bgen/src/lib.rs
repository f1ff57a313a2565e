//! # bgen: Boltzmann generators for molecules
//!
//! The library behind the `bgen` command. Each stage is a crate, re-exported here in the order
//! the data flows; `examples/aldp.rs` runs them all on alanine dipeptide.
//!
//! | stage | module | CLI |
//! |---|---|---|
//! | the target: topology, AMBER + GBSA-OBC energies in f64 | [`system`] | `bgen energy` |
//! | MD data: minimiser, Langevin, replicas, data sets | [`md`] | `bgen md`, `bgen dataset` |
//! | proposals: TarFlow, ArBG, training (libtorch) | [`models`] | `bgen train` |
//! | correction: SNIS, SMC, twisted SMC | [`sample`] | `bgen sample` |
//! | evaluation: ESS, W2s, TICA, plots, report | [`eval`] | `bgen eval` |
//!
//! Units: nm, kJ/mol inside the force field, kT at the sampler seams, ps, K.

pub mod cli;

pub use bgen_eval as eval;
pub use bgen_md as md;
pub use bgen_models as models;
pub use bgen_sample as sample;
pub use bgen_system as system;
