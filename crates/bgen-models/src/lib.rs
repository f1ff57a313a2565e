//! # bgen-models: the proposal, on libtorch
//!
//! TarFlow (the Sequential Boltzmann Generators' normalizing flow).

pub mod data;
pub mod proposal;
pub mod tarflow;
pub mod train;

pub use tarflow::{TarFlow, TarFlowConfig};
