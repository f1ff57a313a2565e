//! # bgen-models: the proposal, on libtorch
//!
//! TarFlow (the Sequential Boltzmann Generators' normalizing flow) and ArBG (the
//! Autoregressive Boltzmann Generators' discretised Transformer).

pub mod arbg;
pub mod attention;
pub mod data;
pub mod internal;
pub mod model;
pub mod proposal;
pub mod tarflow;
pub mod train;

pub use arbg::{Arbg, ArbgConfig};
pub use model::{Model, ModelConfig};
pub use tarflow::{TarFlow, TarFlowConfig};
