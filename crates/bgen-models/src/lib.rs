//! # bgen-models: the proposal, on libtorch
//!
//! TarFlow (the Sequential Boltzmann Generators' normalizing flow).

pub mod tarflow;

pub use tarflow::{TarFlow, TarFlowConfig};
